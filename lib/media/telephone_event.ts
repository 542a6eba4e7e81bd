/**
 * RFC 4733 telephone-events: the 4-byte event payload (§2.3), one DTMF digit per event in
 * spite of the repeated packets and the three end-packet retransmissions (§2.5.1), and a
 * digit-sequence matcher so the focus can bind e.g. `*6` to a mute toggle.
 * @module
 */

/** A parsed RFC 4733 §2.3 event payload. */
export interface TelephoneEvent {
  /** Event code (0–9, 10 = `*`, 11 = `#`, 12–15 = A–D, 16 = flash; §3.2). */
  readonly event: number;
  /** E bit: this packet ends the event. */
  readonly end: boolean;
  /** Power level in −dBm0 (0–63). */
  readonly volume: number;
  /** Duration so far, in timestamp units. */
  readonly duration: number;
}

/** A DTMF digit: `0`–`9`, `*`, `#`, `A`–`D`. */
export type DtmfDigit =
  | "0"
  | "1"
  | "2"
  | "3"
  | "4"
  | "5"
  | "6"
  | "7"
  | "8"
  | "9"
  | "*"
  | "#"
  | "A"
  | "B"
  | "C"
  | "D";

const DIGITS: readonly DtmfDigit[] = [
  "0",
  "1",
  "2",
  "3",
  "4",
  "5",
  "6",
  "7",
  "8",
  "9",
  "*",
  "#",
  "A",
  "B",
  "C",
  "D",
];

/** Parses the 4-byte event payload (RFC 4733 §2.3). Returns `null` when too short. */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | null {
  if (payload.length < 4) return null;
  const flags = payload[1]!;
  return {
    event: payload[0]!,
    end: (flags & 0x80) !== 0,
    volume: flags & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

/** Serializes an event payload (RFC 4733 §2.3); the R bit is always 0. */
export function serializeTelephoneEvent(event: TelephoneEvent): Uint8Array {
  return Uint8Array.of(
    event.event & 0xff,
    (event.end ? 0x80 : 0) | (event.volume & 0x3f),
    (event.duration >> 8) & 0xff,
    event.duration & 0xff,
  );
}

/** The DTMF digit of an event code (RFC 4733 §3.2), or `undefined` for other events. */
export function dtmfDigit(event: number): DtmfDigit | undefined {
  return DIGITS[event];
}

/** A digit detected by {@link DtmfReceiver}. */
export interface DtmfDigitEvent {
  readonly digit: DtmfDigit;
  /** RTP timestamp of the event (its start, RFC 4733 §2.5.1.2). */
  readonly timestamp: number;
  /** Clock time at which the digit was first seen. */
  readonly at: number;
}

/**
 * Turns the packets of one RTP stream's telephone-event payload type into digits. All
 * packets of one event carry the event's start timestamp (RFC 4733 §2.5.1.2), so a digit is
 * reported once, on the first packet seen for a new (timestamp, event) pair; the repeated
 * updates and the three end packets (§2.5.1.4) are ignored. A long event split into
 * segments (§2.5.1.3) continues the previous one when it starts where that one reached
 * without having ended.
 */
export class DtmfReceiver {
  readonly #onDigit: (event: DtmfDigitEvent) => void;
  #lastTimestamp: number | undefined;
  #lastEvent: number | undefined;
  #lastDuration = 0;
  #lastEnded = false;
  /** Start timestamps of recent events: a reordered late packet of one is not a new digit. */
  readonly #recent: number[] = [];

  constructor(onDigit: (event: DtmfDigitEvent) => void) {
    this.#onDigit = onDigit;
  }

  /**
   * Feeds one telephone-event RTP packet (its timestamp and payload). Returns the digit if
   * this packet started a new one.
   */
  receive(timestamp: number, payload: Uint8Array, now: number): DtmfDigit | undefined {
    const event = parseTelephoneEvent(payload);
    if (!event) return undefined;
    if (timestamp === this.#lastTimestamp && event.event === this.#lastEvent) {
      this.#lastDuration = Math.max(this.#lastDuration, event.duration);
      this.#lastEnded ||= event.end;
      return undefined;
    }
    if (this.#recent.includes(timestamp)) return undefined;
    const continuation = this.#lastTimestamp !== undefined &&
      event.event === this.#lastEvent && !this.#lastEnded &&
      timestamp === ((this.#lastTimestamp + this.#lastDuration) >>> 0);
    this.#lastTimestamp = timestamp;
    this.#lastEvent = event.event;
    this.#lastDuration = event.duration;
    this.#lastEnded = event.end;
    this.#recent.push(timestamp);
    if (this.#recent.length > 8) this.#recent.shift();
    if (continuation) return undefined;
    const digit = dtmfDigit(event.event);
    if (digit === undefined) return undefined;
    this.#onDigit({ digit, timestamp, at: now });
    return digit;
  }
}

/**
 * Matches digit sequences (e.g. `*6`) in a stream of DTMF digits. A sequence matches when the
 * digits typed so far end with it; digits further apart than `interDigitMs` start over.
 */
export class DtmfSequenceMatcher {
  readonly #sequences: readonly string[];
  readonly #interDigitMs: number;
  readonly #maxLength: number;
  #typed = "";
  #lastAt: number | undefined;

  /** `sequences`: digit strings such as `*6`, `#`, `*71`. */
  constructor(sequences: readonly string[], interDigitMs = 3000) {
    for (const s of sequences) {
      if (!/^[0-9*#A-D]+$/.test(s)) throw new SyntaxError(`not a DTMF sequence: "${s}"`);
    }
    this.#sequences = [...sequences].sort((a, b) => b.length - a.length);
    this.#interDigitMs = interDigitMs;
    this.#maxLength = Math.max(0, ...sequences.map((s) => s.length));
  }

  /** Adds a digit typed at clock time `now`; returns the sequence it completed, if any. */
  feed(digit: DtmfDigit, now: number): string | undefined {
    if (this.#lastAt !== undefined && now - this.#lastAt > this.#interDigitMs) this.#typed = "";
    this.#lastAt = now;
    this.#typed = (this.#typed + digit).slice(-this.#maxLength);
    for (const sequence of this.#sequences) {
      if (this.#typed.endsWith(sequence)) {
        this.#typed = "";
        return sequence;
      }
    }
    return undefined;
  }

  /** Forgets the digits typed so far. */
  clear(): void {
    this.#typed = "";
    this.#lastAt = undefined;
  }
}
