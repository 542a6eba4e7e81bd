/**
 * Opus (RFC 6716) for RTP (RFC 7587: 48 kHz RTP clock, 20 ms frames) through npm
 * `@evan/opus` in **WebAssembly** mode.
 *
 * How the package picks its backend: its main entry (`lib.js`) does
 * `require('./node/index.js')` — a native `.node` addon loaded through `process.dlopen`,
 * which in Deno needs `--allow-ffi` and silently wins under `--allow-all` — and falls back
 * to `./wasm/index.js` only if that throws (or when env `OPUS_FORCE_WASM` is set). We
 * therefore import the WASM entry `@evan/opus/wasm/index.mjs` directly: the native addon is
 * never loaded, whatever the permissions. The WASM entry reads `wasm/simd.wasm` (or
 * `opus.wasm` without SIMD) from Deno's npm cache, so it needs read permission there.
 * All instances share one WASM memory that grows on demand (thousands of instances work).
 *
 * The WASM entry exposes raw classes: `encode(pcm)`, `decode(packet)`, `ctl(request, value?)`
 * (Opus CTL numbers from `opus_defines.h`) and `drop()` (frees the WASM allocation).
 * @module
 */

import { Decoder as WasmDecoder, Encoder as WasmEncoder } from "@evan/opus/wasm/index.mjs";

/** The raw WASM encoder class as the package defines it (no typings ship for this entry). */
interface RawEncoder {
  encode(pcm: ArrayBufferView): Uint8Array;
  ctl(request: number, value?: number): number;
  drop(): void;
}

/** The raw WASM decoder class as the package defines it. */
interface RawDecoder {
  decode(packet: ArrayBufferView): Uint8Array;
  ctl(request: number, value?: number): number;
  drop(): void;
}

type RawEncoderCtor = new (
  opts: { channels: number; sample_rate: number; application: string },
) => RawEncoder;
type RawDecoderCtor = new (opts: { channels: number; sample_rate: number }) => RawDecoder;

const EncoderClass = WasmEncoder as unknown as RawEncoderCtor;
const DecoderClass = WasmDecoder as unknown as RawDecoderCtor;

/** Opus CTL request numbers (opus_defines.h). */
const CTL = {
  setBitrate: 4002,
  setComplexity: 4010,
  setInbandFec: 4012,
  setPacketLossPerc: 4014,
  setDtx: 4016,
  setSignal: 4024,
  resetState: 4028,
  setMaxBandwidth: 4004,
  setPredictionDisabled: 4042,
} as const;

const SIGNAL_VOICE = 3001;
const BANDWIDTH = { narrowband: 1101, wideband: 1103, superwideband: 1104, fullband: 1105 };

/** Sample rates Opus accepts for PCM (RFC 6716 §2). */
export type OpusSampleRate = 8000 | 12000 | 16000 | 24000 | 48000;

/** Encoder settings (RFC 6716 §2.1; RFC 7587 §3.1.3 for the SDP-visible ones). */
export interface OpusEncoderOptions {
  /** PCM rate (default 48000). The RTP clock is always 48000 (RFC 7587 §4.1). */
  readonly sampleRate?: OpusSampleRate;
  /** 0 (fastest) … 10 (best); default 5. */
  readonly complexity?: number;
  /** Target bit rate in bit/s (default 32000; RFC 7587 §3.1.1 suggests 20–32 kbit/s for FB speech). */
  readonly bitrate?: number;
  /** In-band FEC (LBRR) in the encoded stream (RFC 7587 `useinbandfec`); default false. */
  readonly fec?: boolean;
  /** Expected loss in percent, tunes FEC (default 0). */
  readonly packetLossPercent?: number;
  /** Discontinuous transmission (RFC 7587 `usedtx`); default false. */
  readonly dtx?: boolean;
  /** Opus application mode; default `voip`. */
  readonly application?: "voip" | "audio" | "restricted_lowdelay";
  /** Upper audio bandwidth (RFC 7587 `maxplaybackrate` mapped); default full band. */
  readonly maxBandwidth?: keyof typeof BANDWIDTH;
}

/** Decoder settings. */
export interface OpusDecoderOptions {
  /** PCM rate (default 48000). */
  readonly sampleRate?: OpusSampleRate;
}

/** Thrown when Opus rejects a frame or a packet. */
export class OpusError extends Error {
  override name = "OpusError";
}

const RTP_CLOCK = 48000;

function checkRate(rate: number): OpusSampleRate {
  if (rate === 8000 || rate === 12000 || rate === 16000 || rate === 24000 || rate === 48000) {
    return rate;
  }
  throw new OpusError(`opus: unsupported sample rate ${rate}`);
}

/** A mono Opus encoder producing one packet per 20 ms frame (RFC 7587 §4.2). */
export class OpusEncoder {
  /** Codec name. */
  readonly codec = "opus" as const;
  /** RTP clock rate, always 48000 (RFC 7587 §4.1). */
  readonly clockRate = RTP_CLOCK;
  /** PCM sample rate taken by {@link encode}. */
  readonly sampleRate: OpusSampleRate;
  /** Samples per 20 ms frame at {@link sampleRate}. */
  readonly frameSamples: number;
  /** The settings in force (defaults filled in), useful as a grouping key. */
  readonly settings: Readonly<Required<Omit<OpusEncoderOptions, "sampleRate">>>;
  #raw: RawEncoder | null;

  constructor(options: OpusEncoderOptions = {}) {
    this.sampleRate = checkRate(options.sampleRate ?? 48000);
    this.frameSamples = this.sampleRate / 50;
    this.settings = {
      complexity: Math.max(0, Math.min(10, Math.round(options.complexity ?? 5))),
      bitrate: options.bitrate ?? 32000,
      fec: options.fec ?? false,
      packetLossPercent: options.packetLossPercent ?? 0,
      dtx: options.dtx ?? false,
      application: options.application ?? "voip",
      maxBandwidth: options.maxBandwidth ?? "fullband",
    };
    const raw = new EncoderClass({
      channels: 1,
      sample_rate: this.sampleRate,
      application: this.settings.application,
    });
    try {
      raw.ctl(CTL.setComplexity, this.settings.complexity);
      raw.ctl(CTL.setBitrate, this.settings.bitrate);
      raw.ctl(CTL.setInbandFec, this.settings.fec ? 1 : 0);
      raw.ctl(CTL.setPacketLossPerc, this.settings.packetLossPercent);
      raw.ctl(CTL.setDtx, this.settings.dtx ? 1 : 0);
      raw.ctl(CTL.setSignal, SIGNAL_VOICE);
      raw.ctl(CTL.setMaxBandwidth, BANDWIDTH[this.settings.maxBandwidth]);
    } catch (e) {
      raw.drop();
      throw new OpusError(`opus: encoder setup failed: ${(e as Error).message}`);
    }
    this.#raw = raw;
  }

  /** Encodes exactly one 20 ms frame ({@link frameSamples} samples). */
  encode(pcm: Int16Array): Uint8Array {
    const raw = this.#raw;
    if (raw === null) throw new OpusError("opus: encoder closed");
    if (pcm.length !== this.frameSamples) {
      throw new OpusError(`opus: frame must be ${this.frameSamples} samples, got ${pcm.length}`);
    }
    return raw.encode(pcm);
  }

  /**
   * Encodes one frame with inter-frame prediction disabled (OPUS_SET_PREDICTION_DISABLED,
   * CELT intra energy and no pitch pre-filter, SILK independent coding), so a decoder that
   * was following another encoder can take this stream up cleanly. Prediction is enabled
   * again for the next frame.
   */
  encodeIndependent(pcm: Int16Array): Uint8Array {
    const raw = this.#raw;
    if (raw === null) throw new OpusError("opus: encoder closed");
    raw.ctl(CTL.setPredictionDisabled, 1);
    try {
      return this.encode(pcm);
    } finally {
      raw.ctl(CTL.setPredictionDisabled, 0);
    }
  }

  /**
   * Clears the encoder's prediction state (OPUS_RESET_STATE), as if newly created; used
   * when an encoder resumes after a gap so it does not predict from stale audio.
   */
  reset(): void {
    this.#raw?.ctl(CTL.resetState);
  }

  /** Frees the WASM allocation; further use throws. */
  close(): void {
    this.#raw?.drop();
    this.#raw = null;
  }
}

/**
 * A mono Opus decoder. Concealment (RFC 6716 §4.4) decodes a one-byte packet holding only
 * the last packet's TOC with frame-count code 0: Opus treats a frame of 0 bytes as lost and
 * runs its PLC for exactly that frame's duration in the last mode. (Passing an empty
 * buffer instead would conceal 120 ms, the package's maximum frame size.) In-band FEC
 * recovery needs `decode_fec = 1`, which this package's `decode()` does not expose: FEC
 * carried in the next packet is not used for recovery.
 */
export class OpusDecoder {
  /** Codec name. */
  readonly codec = "opus" as const;
  /** RTP clock rate, always 48000 (RFC 7587 §4.1). */
  readonly clockRate = RTP_CLOCK;
  /** PCM sample rate produced. */
  readonly sampleRate: OpusSampleRate;
  /** Samples per 20 ms frame at {@link sampleRate}. */
  readonly frameSamples: number;
  #raw: RawDecoder | null;
  /** TOC of the last good packet with the frame-count code cleared; 20 ms CELT FB before any. */
  #toc = 0xf8;
  #gotPacket = false;

  constructor(options: OpusDecoderOptions = {}) {
    this.sampleRate = checkRate(options.sampleRate ?? 48000);
    this.frameSamples = this.sampleRate / 50;
    this.#raw = new DecoderClass({ channels: 1, sample_rate: this.sampleRate });
  }

  /** Decodes one RTP payload (one Opus packet, RFC 7587 §4.2) into PCM. */
  decode(payload: Uint8Array): Int16Array {
    const raw = this.#raw;
    if (raw === null) throw new OpusError("opus: decoder closed");
    if (payload.length === 0) return this.conceal();
    let bytes: Uint8Array;
    try {
      bytes = raw.decode(payload);
    } catch (e) {
      throw new OpusError(`opus: bad packet: ${(e as Error).message}`);
    }
    this.#toc = (payload[0] as number) & 0xfc;
    this.#gotPacket = true;
    return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  }

  /** Runs Opus PLC for one lost frame of the last packet's duration (20 ms normally). */
  conceal(): Int16Array {
    const raw = this.#raw;
    if (raw === null) throw new OpusError("opus: decoder closed");
    if (!this.#gotPacket) return new Int16Array(this.frameSamples);
    const bytes = raw.decode(Uint8Array.of(this.#toc));
    return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  }

  /** Frees the WASM allocation; further use throws. */
  close(): void {
    this.#raw?.drop();
    this.#raw = null;
  }
}
