/**
 * G.711 µ-law (PCMU) and A-law (PCMA) written from ITU-T Recommendation G.711 (11/88),
 * with lookup tables: the encoder indexes a table by the 14-bit (µ-law) or 13-bit (A-law)
 * linear sample, the decoder indexes a 256-entry table by the code. RTP payload formats:
 * RFC 3551 §4.5.14 (8000 Hz, one byte per sample, static payload types 0 and 8).
 *
 * Packet-loss concealment: the last decoded frame is repeated with a falling gain
 * (0.8, 0.5, 0.25, then silence), ramped sample by sample so no step is audible; this is
 * the simple "repeat and fade" scheme, not the pitch-based G.711 Appendix I algorithm.
 * @module
 */

/** Samples per second of G.711 (RFC 3551 §4.5.14). */
export const G711_RATE = 8000;
/** Samples in one 20 ms G.711 frame. */
export const G711_FRAME_SAMPLES = 160;

/** µ-law bias in the 14-bit domain (G.711 Table 2a: segment ends at 2^k·33 − 33). */
const ULAW_BIAS = 33;
/** Largest 14-bit magnitude that still fits segment 8 (decision value 8159 − 1). */
const ULAW_CLIP = 8158;

/**
 * Encodes one 14-bit two's-complement sample (−8192…8191) to a µ-law code
 * (G.711 §2, Table 2a; the code is transmitted with all bits inverted).
 */
function ulawEncode14(x: number): number {
  let sign = 0;
  let m = x;
  if (m < 0) {
    sign = 0x80;
    m = -m;
  }
  if (m > ULAW_CLIP) m = ULAW_CLIP;
  m += ULAW_BIAS; // 33 … 8191: the highest set bit gives the segment
  let seg = 0;
  for (let v = m >> 6; v !== 0; v >>= 1) seg++;
  const mant = (m >> (seg + 1)) & 0x0f;
  return ~(sign | (seg << 4) | mant) & 0xff;
}

/** Decodes a µ-law code to its 14-bit reconstruction value (G.711 Table 2a, column 7). */
function ulawDecode14(code: number): number {
  const c = ~code & 0xff;
  const seg = (c >> 4) & 0x07;
  const mant = c & 0x0f;
  const mag = (((mant << 1) + ULAW_BIAS) << seg) - ULAW_BIAS;
  return c & 0x80 ? -mag : mag;
}

/**
 * Encodes one 13-bit two's-complement sample (−4096…4095) to an A-law code
 * (G.711 §3, Table 1a; even bits inverted: XOR 0x55; bit 8 = 1 for positive values).
 */
function alawEncode13(x: number): number {
  let sign = 0x80;
  let m = x;
  if (m < 0) {
    sign = 0;
    m = -m - 1; // A-law is symmetric around −½: −1 maps to magnitude 0
  }
  if (m > 4095) m = 4095;
  let seg = 0;
  for (let v = m >> 5; v !== 0; v >>= 1) seg++;
  const mant = (m >> (seg === 0 ? 1 : seg)) & 0x0f;
  return (sign | (seg << 4) | mant) ^ 0x55;
}

/** Decodes an A-law code to its 13-bit reconstruction value (G.711 Table 1a, column 7). */
function alawDecode13(code: number): number {
  const c = (code ^ 0x55) & 0xff;
  const seg = (c >> 4) & 0x07;
  const mant = c & 0x0f;
  const mag = seg === 0 ? (mant << 1) + 1 : ((mant << 1) + 33) << (seg - 1);
  return c & 0x80 ? mag : -mag;
}

function buildUlawEncodeTable(): Uint8Array {
  const table = new Uint8Array(1 << 14);
  for (let i = 0; i < table.length; i++) table[i] = ulawEncode14((i << 18) >> 18);
  return table;
}

function buildAlawEncodeTable(): Uint8Array {
  const table = new Uint8Array(1 << 13);
  for (let i = 0; i < table.length; i++) table[i] = alawEncode13((i << 19) >> 19);
  return table;
}

/** µ-law encode table indexed by the 14-bit sample `(x16 >> 2) & 0x3fff` (G.711 Table 2a). */
export const ULAW_ENCODE_TABLE: Uint8Array = buildUlawEncodeTable();
/** A-law encode table indexed by the 13-bit sample `(x16 >> 3) & 0x1fff` (G.711 Table 1a). */
export const ALAW_ENCODE_TABLE: Uint8Array = buildAlawEncodeTable();
/** µ-law code → 16-bit linear (14-bit value ×4; ±32124 full scale), G.711 Table 2a. */
export const ULAW_DECODE_TABLE: Int16Array = Int16Array.from(
  { length: 256 },
  (_, c) => ulawDecode14(c) * 4,
);
/** A-law code → 16-bit linear (13-bit value ×8; ±32256 full scale), G.711 Table 1a. */
export const ALAW_DECODE_TABLE: Int16Array = Int16Array.from(
  { length: 256 },
  (_, c) => alawDecode13(c) * 8,
);

/** Encodes one 16-bit linear sample to µ-law (G.711 §2). */
export function linearToUlaw(sample: number): number {
  return ULAW_ENCODE_TABLE[(sample >> 2) & 0x3fff] as number;
}

/** Decodes one µ-law code to 16-bit linear (G.711 §2). */
export function ulawToLinear(code: number): number {
  return ULAW_DECODE_TABLE[code & 0xff] as number;
}

/** Encodes one 16-bit linear sample to A-law (G.711 §3). */
export function linearToAlaw(sample: number): number {
  return ALAW_ENCODE_TABLE[(sample >> 3) & 0x1fff] as number;
}

/** Decodes one A-law code to 16-bit linear (G.711 §3). */
export function alawToLinear(code: number): number {
  return ALAW_DECODE_TABLE[code & 0xff] as number;
}

/** The G.711 law: `pcmu` = µ-law, `pcma` = A-law (RFC 3551 §4.5.14 encoding names). */
export type G711Law = "pcmu" | "pcma";

/**
 * A G.711 encoder at its native 8 kHz: 16-bit linear in, one byte per sample out.
 * Stateless; the object exists so every codec has the same shape (see `codec.ts`).
 */
export class G711Encoder {
  /** Codec name (RFC 3551 encoding name, lower case). */
  readonly codec: G711Law;
  /** RTP clock rate (RFC 3551 §4.5.14). */
  readonly clockRate = G711_RATE;
  /** PCM sample rate this encoder takes. */
  readonly sampleRate = G711_RATE;
  /** Samples per 20 ms frame. */
  readonly frameSamples = G711_FRAME_SAMPLES;
  readonly #table: Uint8Array;
  readonly #shift: number;
  readonly #mask: number;

  constructor(law: G711Law) {
    this.codec = law;
    this.#table = law === "pcmu" ? ULAW_ENCODE_TABLE : ALAW_ENCODE_TABLE;
    this.#shift = law === "pcmu" ? 2 : 3;
    this.#mask = law === "pcmu" ? 0x3fff : 0x1fff;
  }

  /** Encodes any number of samples (one code per sample). */
  encode(pcm: Int16Array): Uint8Array {
    const out = new Uint8Array(pcm.length);
    const table = this.#table;
    const shift = this.#shift;
    const mask = this.#mask;
    for (let i = 0; i < pcm.length; i++) {
      out[i] = table[((pcm[i] as number) >> shift) & mask] as number;
    }
    return out;
  }

  /** Nothing to release. */
  close(): void {}
}

/** Gains applied to successive concealed frames; after the last one, silence. */
const PLC_GAINS: readonly number[] = [0.8, 0.5, 0.25];

/**
 * A G.711 decoder at its native 8 kHz with repeat-and-fade concealment.
 */
export class G711Decoder {
  /** Codec name (RFC 3551 encoding name, lower case). */
  readonly codec: G711Law;
  /** RTP clock rate (RFC 3551 §4.5.14). */
  readonly clockRate = G711_RATE;
  /** PCM sample rate this decoder produces. */
  readonly sampleRate = G711_RATE;
  /** Samples per 20 ms frame. */
  readonly frameSamples = G711_FRAME_SAMPLES;
  readonly #table: Int16Array;
  #last: Int16Array = new Int16Array(G711_FRAME_SAMPLES);
  #lost = 0;

  constructor(law: G711Law) {
    this.codec = law;
    this.#table = law === "pcmu" ? ULAW_DECODE_TABLE : ALAW_DECODE_TABLE;
  }

  /** Decodes one payload (one sample per byte); resets the concealment fade. */
  decode(payload: Uint8Array): Int16Array {
    return this.decodeInto(payload, new Int16Array(payload.length));
  }

  /**
   * Like {@link decode}, into `out` (at least `payload.length` samples): returns the view of
   * `out` holding the samples. The decoder keeps that view for concealment, so `out` must
   * stay unchanged until the next decode (callers alternate between two arrays).
   */
  decodeInto(payload: Uint8Array, out: Int16Array): Int16Array {
    const n = payload.length;
    if (out.length < n) throw new RangeError(`output holds ${out.length} < ${n} samples`);
    const pcm = out.length === n ? out : out.subarray(0, n);
    const table = this.#table;
    for (let i = 0; i < n; i++) pcm[i] = table[payload[i] as number] as number;
    if (n > 0) this.#last = pcm;
    this.#lost = 0;
    return pcm;
  }

  /**
   * Conceals one lost frame: repeats the last good frame, each repeat quieter
   * (gain 0.8, 0.5, 0.25, then silence), the gain ramped linearly across the frame.
   */
  conceal(): Int16Array {
    const last = this.#last;
    const out = new Int16Array(last.length);
    const from = this.#lost === 0 ? 1 : (PLC_GAINS[this.#lost - 1] ?? 0);
    const to = PLC_GAINS[this.#lost] ?? 0;
    this.#lost++;
    if (from === 0 && to === 0) return out;
    const n = last.length;
    for (let i = 0; i < n; i++) {
      const g = from + (to - from) * ((i + 1) / n);
      out[i] = Math.round((last[i] as number) * g);
    }
    return out;
  }

  /** Nothing to release. */
  close(): void {}
}
