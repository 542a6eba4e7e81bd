/**
 * The one codec interface the media engine uses: an encoder turns a 20 ms PCM frame into
 * an RTP payload, a decoder turns a payload back into PCM and conceals lost frames.
 * Implemented by Opus (RFC 7587, `opus.ts`) and G.711 PCMU/PCMA (RFC 3551 §4.5.14,
 * `g711.ts`).
 *
 * The mixer works at 48 kHz, so by default every encoder takes and every decoder returns
 * **48 kHz** PCM, whatever the codec: G.711 is wrapped with a streaming {@link Resampler}
 * (8 kHz ↔ 48 kHz). Pass `{ sampleRate: 8000 }` to get raw 8 kHz G.711. `clockRate` is the
 * RTP timestamp rate (8000 for G.711, 48000 for Opus) and is independent of `sampleRate`.
 * @module
 */

import { Resampler } from "../resampler.ts";
import { G711Decoder, G711Encoder } from "./g711.ts";
import { OpusDecoder, OpusEncoder, type OpusEncoderOptions, type OpusSampleRate } from "./opus.ts";

/** Audio codecs the engine speaks (RTP encoding names, lower case). */
export type AudioCodecName = "opus" | "pcmu" | "pcma";

/** Turns 20 ms PCM frames into RTP payloads. */
export interface AudioEncoder {
  /** Codec name. */
  readonly codec: AudioCodecName;
  /** RTP clock: 8000 for G.711, 48000 for Opus (RFC 3551 §4.5.14, RFC 7587 §4.1). */
  readonly clockRate: number;
  /** PCM sample rate {@link encode} takes. */
  readonly sampleRate: number;
  /** Samples per 20 ms at {@link sampleRate}. */
  readonly frameSamples: number;
  /** Encodes one frame of {@link frameSamples} samples into one RTP payload. */
  encode(pcm: Int16Array): Uint8Array;
  /**
   * Forgets inter-frame state (Opus OPUS_RESET_STATE; resampler history), so the next
   * packet is coded as if the encoder were new. Optional.
   */
  reset?(): void;
  /**
   * Encodes one frame that a decoder can take up without having decoded this encoder's
   * previous packets (Opus: OPUS_SET_PREDICTION_DISABLED for this frame only, RFC 6716
   * §4.3 intra energy / SILK independent coding). Optional; stateless codecs don't need it.
   */
  encodeIndependent?(pcm: Int16Array): Uint8Array;
  /** Releases native/WASM resources; the encoder is unusable afterwards. */
  close(): void;
}

/** Turns RTP payloads into PCM frames, and conceals lost ones. */
export interface AudioDecoder {
  /** Codec name. */
  readonly codec: AudioCodecName;
  /** RTP clock: 8000 for G.711, 48000 for Opus. */
  readonly clockRate: number;
  /** PCM sample rate produced. */
  readonly sampleRate: number;
  /** Samples per 20 ms at {@link sampleRate}. */
  readonly frameSamples: number;
  /** Decodes one RTP payload (any duration the payload holds). */
  decode(payload: Uint8Array): Int16Array;
  /** Packet-loss concealment for one lost 20 ms frame (Opus PLC; G.711 repeat-and-fade). */
  conceal(): Int16Array;
  /** Releases native/WASM resources; the decoder is unusable afterwards. */
  close(): void;
}

/** Options for {@link createEncoder}; codec-specific keys are ignored by other codecs. */
export interface EncoderOptions {
  /** PCM rate the encoder takes (default 48000). G.711: 8000 or 16000 or 48000. */
  readonly sampleRate?: number;
  /** Opus complexity 0…10 (default 5). */
  readonly complexity?: number;
  /** Opus target bit rate in bit/s (default 32000). */
  readonly bitrate?: number;
  /** Opus in-band FEC (default false). */
  readonly fec?: boolean;
  /** Opus expected packet loss in percent (default 0). */
  readonly packetLossPercent?: number;
  /** Opus DTX (default false). */
  readonly dtx?: boolean;
}

/** Options for {@link createDecoder}. */
export interface DecoderOptions {
  /** PCM rate the decoder produces (default 48000). */
  readonly sampleRate?: number;
}

/** Thrown for an unknown codec or an unsupported option. */
export class CodecError extends TypeError {
  override name = "CodecError";
}

/** A G.711 encoder fed at a higher rate: low-pass + decimate, then table-encode. */
class ResampledG711Encoder implements AudioEncoder {
  readonly codec: "pcmu" | "pcma";
  readonly clockRate = 8000;
  readonly sampleRate: number;
  readonly frameSamples: number;
  readonly #inner: G711Encoder;
  readonly #resampler: Resampler;

  constructor(law: "pcmu" | "pcma", sampleRate: number) {
    this.codec = law;
    this.sampleRate = sampleRate;
    this.frameSamples = sampleRate / 50;
    this.#inner = new G711Encoder(law);
    this.#resampler = new Resampler(sampleRate, 8000);
  }

  encode(pcm: Int16Array): Uint8Array {
    return this.#inner.encode(this.#resampler.process(pcm));
  }

  reset(): void {
    this.#resampler.reset();
  }

  close(): void {
    this.#inner.close();
  }
}

/** A G.711 decoder whose output (and concealment) is interpolated to a higher rate. */
class ResampledG711Decoder implements AudioDecoder {
  readonly codec: "pcmu" | "pcma";
  readonly clockRate = 8000;
  readonly sampleRate: number;
  readonly frameSamples: number;
  readonly #inner: G711Decoder;
  readonly #resampler: Resampler;

  constructor(law: "pcmu" | "pcma", sampleRate: number) {
    this.codec = law;
    this.sampleRate = sampleRate;
    this.frameSamples = sampleRate / 50;
    this.#inner = new G711Decoder(law);
    this.#resampler = new Resampler(8000, sampleRate);
  }

  decode(payload: Uint8Array): Int16Array {
    return this.#resampler.process(this.#inner.decode(payload));
  }

  conceal(): Int16Array {
    return this.#resampler.process(this.#inner.conceal());
  }

  close(): void {
    this.#inner.close();
  }
}

function g711Rate(rate: number | undefined): number {
  const r = rate ?? 48000;
  if (r !== 8000 && r !== 16000 && r !== 48000) {
    throw new CodecError(`G.711 sample rate must be 8000, 16000 or 48000, not ${r}`);
  }
  return r;
}

function opusRate(rate: number | undefined): OpusSampleRate {
  const r = rate ?? 48000;
  if (r !== 8000 && r !== 12000 && r !== 16000 && r !== 24000 && r !== 48000) {
    throw new CodecError(`Opus sample rate must be 8/12/16/24/48 kHz, not ${r}`);
  }
  return r;
}

/** Creates an encoder for `codec` (see the module comment for the rate conventions). */
export function createEncoder(codec: AudioCodecName, opts: EncoderOptions = {}): AudioEncoder {
  switch (codec) {
    case "opus": {
      const o: { -readonly [K in keyof OpusEncoderOptions]: OpusEncoderOptions[K] } = {
        sampleRate: opusRate(opts.sampleRate),
      };
      if (opts.complexity !== undefined) o.complexity = opts.complexity;
      if (opts.bitrate !== undefined) o.bitrate = opts.bitrate;
      if (opts.fec !== undefined) o.fec = opts.fec;
      if (opts.packetLossPercent !== undefined) o.packetLossPercent = opts.packetLossPercent;
      if (opts.dtx !== undefined) o.dtx = opts.dtx;
      return new OpusEncoder(o);
    }
    case "pcmu":
    case "pcma": {
      const rate = g711Rate(opts.sampleRate);
      return rate === 8000 ? new G711Encoder(codec) : new ResampledG711Encoder(codec, rate);
    }
    default:
      throw new CodecError(`unknown codec ${String(codec)}`);
  }
}

/** Creates a decoder for `codec` (see the module comment for the rate conventions). */
export function createDecoder(codec: AudioCodecName, opts: DecoderOptions = {}): AudioDecoder {
  switch (codec) {
    case "opus":
      return new OpusDecoder({ sampleRate: opusRate(opts.sampleRate) });
    case "pcmu":
    case "pcma": {
      const rate = g711Rate(opts.sampleRate);
      return rate === 8000 ? new G711Decoder(codec) : new ResampledG711Decoder(codec, rate);
    }
    default:
      throw new CodecError(`unknown codec ${String(codec)}`);
  }
}

/** RTP clock rate of a codec (RFC 3551 §4.5.14: 8000 for G.711; RFC 7587 §4.1: 48000). */
export function codecClockRate(codec: AudioCodecName): number {
  return codec === "opus" ? 48000 : 8000;
}
