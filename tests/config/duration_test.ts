import assert from "node:assert/strict";
import { DurationSyntaxError, formatDuration, parseDuration } from "../../lib/config/duration.ts";

Deno.test("durations with units", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["30s", 30_000],
    ["10min", 600_000],
    ["2h", 7_200_000],
    ["30d", 2_592_000_000],
    ["1w", 604_800_000],
    ["100y", 100 * 365 * 86_400_000],
    ["1h30min", 5_400_000],
    ["1h 30min 15s", 5_415_000],
    ["1.5s", 1_500],
    ["  45 s ", 45_000],
    ["2 Hours", 7_200_000],
    ["3 minutes", 180_000],
    ["0", 0],
    ["0s", 0],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("a bare number means seconds (Flexisip DurationS)", () => {
  assert.equal(parseDuration("30"), 30_000);
  assert.equal(parseDuration("0.25"), 250);
});

Deno.test("malformed durations are rejected with the reason", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["abc", /invalid duration "abc"/],
    ["-5s", /invalid duration/],
    ["5m", /ambiguous unit "m".*min/],
    ["5 fortnights", /unknown unit "fortnights"/],
    ["10 20s", /number without a unit/],
    ["1h30", /number without a unit/],
    ["1e3s", /unknown unit "e"/],
    ["30s!", /unexpected "!"/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseDuration(text), (error: unknown) => {
      assert.ok(error instanceof DurationSyntaxError, text);
      assert.match((error as Error).message, pattern, text);
      return true;
    });
  }
});

Deno.test("formatDuration writes the shortest exact literal and round-trips", () => {
  assert.equal(formatDuration(0), "0");
  assert.equal(formatDuration(500), "500ms");
  assert.equal(formatDuration(30_000), "30s");
  assert.equal(formatDuration(600_000), "10min");
  assert.equal(formatDuration(5_400_000), "1h30min");
  assert.equal(formatDuration(2_592_000_000), "30d");
  assert.equal(formatDuration(100 * 365 * 86_400_000), "100y");
  for (const ms of [1, 999, 1_001, 61_000, 90_061_001, 31_536_000_001]) {
    assert.equal(parseDuration(formatDuration(ms)), ms);
  }
  assert.throws(() => formatDuration(-1), RangeError);
  assert.throws(() => formatDuration(1.5), RangeError);
});
