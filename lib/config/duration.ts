/**
 * Duration literals in configuration files, compatible with Flexisip's `DurationS` keys:
 * `500ms`, `30s`, `10min`, `2h`, `30d`, `1w`, `100y`, compounds such as `1h30min`, and a bare
 * number meaning seconds (Flexisip reads `no-rtp-timeout=30` as 30 seconds).
 * @module
 */

const MS_PER_UNIT: ReadonlyMap<string, number> = new Map([
  ["ms", 1],
  ["msec", 1],
  ["millisecond", 1],
  ["milliseconds", 1],
  ["s", 1_000],
  ["sec", 1_000],
  ["second", 1_000],
  ["seconds", 1_000],
  ["secs", 1_000],
  ["min", 60_000],
  ["minute", 60_000],
  ["minutes", 60_000],
  ["mins", 60_000],
  ["h", 3_600_000],
  ["hour", 3_600_000],
  ["hours", 3_600_000],
  ["hr", 3_600_000],
  ["hrs", 3_600_000],
  ["d", 86_400_000],
  ["day", 86_400_000],
  ["days", 86_400_000],
  ["w", 604_800_000],
  ["week", 604_800_000],
  ["weeks", 604_800_000],
  ["y", 31_536_000_000],
  ["year", 31_536_000_000],
  ["years", 31_536_000_000],
]);

/** Units used when writing a duration back, largest first (a year is 365 days). */
const FORMAT_UNITS: readonly (readonly [string, number])[] = [
  ["y", 31_536_000_000],
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["min", 60_000],
  ["s", 1_000],
  ["ms", 1],
];

/** Thrown by {@link parseDuration} for text that is not a duration literal. */
export class DurationSyntaxError extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = "DurationSyntaxError";
  }
}

const PART = /(\d+(?:\.\d+)?)\s*([a-z]*)\s*/y;

/**
 * Parses a duration literal into whole milliseconds (fractions are rounded).
 * `m` alone is rejected because Flexisip and other tools disagree on whether it means minutes
 * or months.
 */
export function parseDuration(text: string): number {
  const source = text.trim().toLowerCase();
  if (source === "") throw new DurationSyntaxError("empty duration");
  PART.lastIndex = 0;
  let index = 0;
  let total = 0;
  let parts = 0;
  while (index < source.length) {
    PART.lastIndex = index;
    const match = PART.exec(source);
    if (!match) {
      throw new DurationSyntaxError(
        `invalid duration "${text.trim()}" (unexpected "${source.slice(index)}")`,
      );
    }
    const amount = Number(match[1]);
    const unit = match[2] ?? "";
    index = PART.lastIndex;
    parts++;
    if (unit === "") {
      if (parts !== 1 || index < source.length) {
        throw new DurationSyntaxError(`invalid duration "${text.trim()}" (number without a unit)`);
      }
      total += amount * 1_000;
      break;
    }
    if (unit === "m") {
      throw new DurationSyntaxError(
        `ambiguous unit "m" in "${text.trim()}": write "min" for minutes`,
      );
    }
    const scale = MS_PER_UNIT.get(unit);
    if (scale === undefined) {
      throw new DurationSyntaxError(
        `unknown unit "${unit}" in "${text.trim()}" (use ms, s, min, h, d, w or y)`,
      );
    }
    total += amount * scale;
  }
  const rounded = Math.round(total);
  if (!Number.isSafeInteger(rounded)) {
    throw new DurationSyntaxError(`duration "${text.trim()}" is too large`);
  }
  return rounded;
}

/**
 * Writes milliseconds back as the shortest exact literal (`30000` → `30s`,
 * `5400000` → `1h30min`, `0` → `0`). {@link parseDuration} reads the result back unchanged.
 */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration: ${ms}`);
  if (ms === 0) return "0";
  let rest = ms;
  let text = "";
  for (const [unit, scale] of FORMAT_UNITS) {
    const count = Math.floor(rest / scale);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * scale;
    }
  }
  return text;
}
