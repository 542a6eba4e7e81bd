/** Bounded exponential backoff, in virtual time. */

import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import {
  DEFAULT_RETRY_POLICY,
  type FailureKind,
  resolveRetryPolicy,
  type RetryHooks,
  withRetry,
} from "../../lib/storage/retry.ts";
import { StoreUnavailableError } from "../../lib/storage/store.ts";
import { AutoAdvanceClock, rejectsWith } from "./_support.ts";

class CodedError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

function hooks(log: string[]): RetryHooks {
  return {
    classify: (error): FailureKind =>
      (error as CodedError).code === "DEAD"
        ? "connection"
        : (error as CodedError).code === "DEADLOCK"
        ? "transient"
        : "fatal",
    onConnectionFailure: () => log.push("down"),
    onSuccess: () => log.push("up"),
    describe: (error) => `cannot reach it: ${(error as CodedError).code}`,
  };
}

Deno.test("retry: gives up after the default ~2 s with the delays doubling up to the cap", async () => {
  const clock = new AutoAdvanceClock(1000);
  const log: string[] = [];
  const starts: number[] = [];
  const error = await rejectsWith(
    withRetry(clock, DEFAULT_RETRY_POLICY, hooks(log), (n) => {
      starts.push(clock.now() - 1000);
      assert.equal(n, starts.length);
      return Promise.reject(new CodedError("DEAD"));
    }),
    StoreUnavailableError,
  );
  assert.deepEqual(clock.requested, [50, 100, 200, 400, 500, 500]);
  assert.deepEqual(starts, [0, 50, 150, 350, 750, 1250, 1750]);
  assert.equal(error.retryAfterSeconds, 5);
  assert.equal(error.message, "cannot reach it: DEAD (gave up after 7 attempts)");
  assert.ok(error.cause instanceof CodedError);
  assert.deepEqual(log, Array(7).fill("down"));
});

Deno.test("retry: a recovered operation succeeds and reports it", async () => {
  const clock = new AutoAdvanceClock();
  const log: string[] = [];
  let calls = 0;
  const result = await withRetry(
    clock,
    resolveRetryPolicy({ totalMs: 10_000 }),
    hooks(log),
    () =>
      ++calls < 4
        ? Promise.reject(new CodedError(calls === 2 ? "DEADLOCK" : "DEAD"))
        : Promise.resolve("done"),
  );
  assert.equal(result, "done");
  assert.deepEqual(log, ["down", "down", "up"]);
  assert.equal(clock.now(), 50 + 100 + 200);
});

Deno.test("retry: a fatal error is rethrown at once, untouched", async () => {
  const clock = new FakeClock();
  const fatal = new CodedError("ER_DUP_ENTRY");
  let calls = 0;
  await assert.rejects(
    withRetry(clock, DEFAULT_RETRY_POLICY, hooks([]), () => {
      calls++;
      return Promise.reject(fatal);
    }),
    (error) => error === fatal,
  );
  assert.equal(calls, 1);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("retry: waits on the injected clock, not on real time", async () => {
  const clock = new FakeClock();
  let calls = 0;
  const promise = withRetry(
    clock,
    DEFAULT_RETRY_POLICY,
    hooks([]),
    () => ++calls === 1 ? Promise.reject(new CodedError("DEAD")) : Promise.resolve(calls),
  );
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(calls, 1);
  assert.equal(clock.pendingTimers, 1);
  clock.advance(49);
  assert.equal(calls, 1);
  clock.advance(1);
  assert.equal(await promise, 2);
});

Deno.test("retry: a zero budget means one attempt; bad policies are refused", async () => {
  const clock = new AutoAdvanceClock();
  let calls = 0;
  await rejectsWith(
    withRetry(clock, resolveRetryPolicy({ totalMs: 0, retryAfterSeconds: 9 }), hooks([]), () => {
      calls++;
      return Promise.reject(new CodedError("DEAD"));
    }),
    StoreUnavailableError,
    "gave up after 1 attempt)",
  );
  assert.equal(calls, 1);
  assert.throws(() => resolveRetryPolicy({ totalMs: -1 }), RangeError);
  assert.throws(() => resolveRetryPolicy({ initialDelayMs: 0 }), RangeError);
  assert.throws(() => resolveRetryPolicy({ maxDelayMs: Number.NaN }), RangeError);
});
