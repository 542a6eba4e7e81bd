/**
 * Opus packets read without decoding them (RFC 6716): the TOC byte (§3.1), the frames of a
 * packet (§3.2), and the voice-activity facts the first bits of each frame carry.
 *
 * {@link opusActivity} is how the mixer's input side avoids decoding silent Opus streams
 * that do not send an RFC 6464 level. It reads, with a few steps of the range decoder
 * (§4.1), only what the sender's encoder already decided:
 * - **SILK and hybrid frames** (TOC configs 0–15) start with one VAD flag per SILK frame
 *   (§4.2.3 "Header Bits": 1 for 10/20 ms, 2 for 40 ms, 3 for 60 ms), the encoder's own
 *   speech decision. All flags clear → `inactive`; any flag set → `active`.
 * - **CELT-only frames** (configs 16–31) start with the silence flag (§4.3, decoded with
 *   a probability of 2^−15), set only for digital silence → `silent`; otherwise
 *   `unknown` (CELT carries no speech decision).
 * - A frame of **0 bytes** (a TOC-only packet, what libopus emits in DTX, §3.2.1 says it
 *   is decoded by concealment) → `silent`.
 * A packet is `active` if any of its frames is, then `unknown`, `inactive`, `silent` in
 * that order. Measured with our libopus build: speech-like bursts set the flag on 99 % of
 * the talking frames and 2 % of the pauses; microphone noise at −60 dBov never; but a
 * **stationary tone** sets it only for its first ~0.7 s — `inactive` means "not speech",
 * not "quiet" (`lazy_decoder.ts` handles that).
 * @module
 */

/** What the first bits of an Opus packet say about voice activity (see the module comment). */
export type OpusActivity = "active" | "inactive" | "silent" | "unknown";

/** Byte range of one frame inside a packet. */
export interface OpusFrameSpan {
  readonly offset: number;
  readonly length: number;
}

/** TOC fields (RFC 6716 §3.1). */
export interface OpusToc {
  /** Configuration number 0…31 (Table 2). */
  readonly config: number;
  /** `silk` (0–11), `hybrid` (12–15) or `celt` (16–31). */
  readonly mode: "silk" | "hybrid" | "celt";
  /** Duration of each frame in ms (2.5 … 60). */
  readonly frameMs: number;
  /** Stereo flag. */
  readonly stereo: boolean;
  /** Frame-count code 0…3 (§3.2). */
  readonly code: number;
}

/** Reads the TOC byte (RFC 6716 §3.1, Table 2); undefined for an empty payload. */
export function opusToc(payload: Uint8Array): OpusToc | undefined {
  if (payload.length < 1) return undefined;
  const toc = payload[0]!;
  const config = toc >> 3;
  const frameMs = config < 12
    ? [10, 20, 40, 60][config & 3]!
    : config < 16
    ? (config & 1 ? 20 : 10)
    : [2.5, 5, 10, 20][config & 3]!;
  return {
    config,
    mode: config < 12 ? "silk" : config < 16 ? "hybrid" : "celt",
    frameMs,
    stereo: (toc & 0x04) !== 0,
    code: toc & 3,
  };
}

/** Duration of an Opus packet in ms from its TOC (and frame count byte for code 3). */
export function opusPacketDurationMs(payload: Uint8Array): number | undefined {
  const toc = opusToc(payload);
  if (toc === undefined) return undefined;
  if (toc.code === 0) return toc.frameMs;
  if (toc.code !== 3) return 2 * toc.frameMs;
  if (payload.length < 2) return undefined;
  return (payload[1]! & 0x3f) * toc.frameMs;
}

/** A frame length (§3.2.1): one byte < 252, else two bytes (first + 4 × second). */
function frameLength(p: Uint8Array, at: number, end: number): [number, number] | undefined {
  if (at >= end) return undefined;
  const b0 = p[at]!;
  if (b0 < 252) return [b0, 1];
  if (at + 1 >= end) return undefined;
  return [b0 + 4 * p[at + 1]!, 2];
}

/**
 * The frames of a packet (RFC 6716 §3.2, codes 0–3 with padding and VBR lengths);
 * undefined when the packet is malformed (the §3.4 requirements R1–R7 that concern sizes).
 */
export function opusFrames(payload: Uint8Array): OpusFrameSpan[] | undefined {
  const toc = opusToc(payload);
  if (toc === undefined) return undefined;
  const n = payload.length;
  switch (toc.code) {
    case 0:
      return [{ offset: 1, length: n - 1 }];
    case 1: {
      if ((n - 1) % 2 !== 0) return undefined; // R3
      const half = (n - 1) / 2;
      return [{ offset: 1, length: half }, { offset: 1 + half, length: half }];
    }
    case 2: {
      const first = frameLength(payload, 1, n);
      if (first === undefined) return undefined;
      const [len, size] = first;
      const start = 1 + size;
      if (start + len > n) return undefined; // R4
      return [{ offset: start, length: len }, { offset: start + len, length: n - start - len }];
    }
    default: {
      if (n < 2) return undefined; // R6
      const count = payload[1]! & 0x3f;
      const vbr = (payload[1]! & 0x80) !== 0;
      if (count === 0 || count * toc.frameMs > 120) return undefined; // R5
      let at = 2;
      let padding = 0;
      if (payload[1]! & 0x40) {
        for (;;) {
          if (at >= n) return undefined;
          const b = payload[at++]!;
          padding += b === 255 ? 254 : b;
          if (b !== 255) break;
        }
      }
      const end = n - padding;
      if (end < at) return undefined;
      const lengths: number[] = [];
      if (vbr) {
        for (let i = 0; i < count - 1; i++) {
          const l = frameLength(payload, at, end);
          if (l === undefined) return undefined;
          lengths.push(l[0]);
          at += l[1];
        }
        const used = lengths.reduce((a, b) => a + b, 0);
        if (at + used > end) return undefined; // R7
        lengths.push(end - at - used);
      } else {
        if ((end - at) % count !== 0) return undefined; // R6
        for (let i = 0; i < count; i++) lengths.push((end - at) / count);
      }
      const frames: OpusFrameSpan[] = [];
      for (const length of lengths) {
        frames.push({ offset: at, length });
        at += length;
      }
      return frames;
    }
  }
}

/**
 * The first `count` binary symbols of a frame, each decoded with probability 2^−logp for
 * a 1, by the range decoder of RFC 6716 §4.1 (init §4.1.1, renormalization §4.1.2.1,
 * `ec_dec_bit_logp` §4.1.3.2). Returns them as a bit mask, first symbol in bit 0.
 */
export function rangeDecodeBits(
  payload: Uint8Array,
  frame: OpusFrameSpan,
  count: number,
  logp: number,
): number {
  let at = frame.offset;
  const end = frame.offset + frame.length;
  const next = (): number => (at < end ? payload[at++]! : 0);
  let rem = next();
  let rng = 128;
  let val = 127 - (rem >> 1);
  const normalize = (): void => {
    while (rng <= 0x800000) {
      rng *= 256;
      const b = next();
      const sym = ((rem & 1) << 7) | (b >> 1);
      rem = b;
      val = (val * 256 + (255 - sym)) % 0x80000000;
    }
  };
  normalize();
  let bits = 0;
  for (let i = 0; i < count; i++) {
    const s = Math.floor(rng / 2 ** logp);
    const one = val < s;
    if (one) {
      rng = s;
      bits |= 1 << i;
    } else {
      val -= s;
      rng -= s;
    }
    normalize();
  }
  return bits;
}

const RANK: Readonly<Record<OpusActivity, number>> = {
  silent: 0,
  inactive: 1,
  unknown: 2,
  active: 3,
};

/** What one frame's first bits say (see the module comment). */
function frameActivity(payload: Uint8Array, toc: OpusToc, frame: OpusFrameSpan): OpusActivity {
  if (frame.length === 0) return "silent";
  if (toc.mode === "celt") return rangeDecodeBits(payload, frame, 1, 15) ? "silent" : "unknown";
  const vadFlags = Math.max(1, toc.frameMs / 20);
  return rangeDecodeBits(payload, frame, vadFlags, 1) === 0 ? "inactive" : "active";
}

/**
 * Voice activity of a packet from the sender encoder's own flags, without decoding (see
 * the module comment for the rule); `unknown` for a malformed packet.
 */
export function opusActivity(payload: Uint8Array): OpusActivity {
  const toc = opusToc(payload);
  const frames = opusFrames(payload);
  if (toc === undefined || frames === undefined) return "unknown";
  let result: OpusActivity = "silent";
  for (const frame of frames) {
    const a = frameActivity(payload, toc, frame);
    if (RANK[a] > RANK[result]) result = a;
  }
  return result;
}
