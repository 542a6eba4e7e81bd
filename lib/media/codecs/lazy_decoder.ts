/**
 * Decoding only what the mixer mixes. In a conference of 1,000 senders, an Opus decode
 * (~50 µs) or a G.711 decode + 8 → 48 kHz interpolation (~40 µs) of every stream every
 * 20 ms costs more than all the mixing and encoding together, while the mixer mixes only
 * its top-N speakers. A {@link LazyAudioDecoder} turns each received 20 ms payload into a
 * {@link LazyFrame}: the level is known up front, the 48 kHz samples are produced only if
 * the mixer asks (`AudioMixer.pushLazyFrame`). It is the codec half of the one receive
 * path; `audio_input.ts` (jitter buffer, payload types, re-framing) is the RTP half.
 *
 * - **G.711** (RFC 3551 §4.5.14): the table decode to 8 kHz always runs (cheap) and gives
 *   the level (or the RFC 6464 level is used when sent); the interpolation to 48 kHz runs
 *   only when asked. A frame not asked for still feeds the interpolator's history
 *   ({@link Resampler.skip}) when the next frame is handed out, so a stream that starts
 *   being mixed joins without a click.
 * - **Opus with an RFC 6464 level** (RFC 7587): decoded only when asked.
 * - **Opus without a level**: the packet's first bits are read instead
 *   (`opus_packet.ts`, {@link opusActivity}):
 *   1. `silent` (a 0-byte DTX frame, or the CELT silence flag) → level −127 dBov, no decode;
 *   2. `inactive` (the sender's SILK VAD flags all clear), **and** the last level this
 *      decoder measured was at most {@link QUIET_LEVEL_DBOV}, **and** that measurement is
 *      less than {@link OPUS_RECHECK_PACKETS} packets old → that last level, no decode;
 *   3. anything else (`active`, `unknown` = CELT-only, or an `inactive` stream last
 *      measured loud or too long ago) → decoded at once and measured.
 *   The level check in rule 2 is what keeps the rule honest: SILK's VAD calls a
 *   stationary tone inactive after ~0.7 s, so "inactive" alone would silence a tone; it
 *   is trusted only for streams measured quiet. A quiet stream therefore costs one decode
 *   per {@link OPUS_RECHECK_PACKETS} packets; a new talk-spurt sets the VAD flag (rule 3)
 *   and is decoded from its first packet. (Packet size alone is no such signal: with VBR,
 *   −60 dBov microphone noise coded at 32 kbit/s gave 54–72-byte packets, speech 55–101.)
 * - **Loss** (`null` payload): G.711 conceals at 8 kHz (repeat and fade) as before; Opus
 *   runs its PLC only if asked, and carries the last level meanwhile.
 * Opus packets not decoded never reach the decoder, which then takes up a later packet as
 * after a loss (the mixer fades a newly selected speaker in over one frame).
 * @module
 */

import { Resampler } from "../resampler.ts";
import { frameLevelDbov } from "../voice_activity.ts";
import { type AudioCodecName, type AudioDecoder, createDecoder } from "./codec.ts";
import { G711Decoder } from "./g711.ts";
import { opusActivity, opusPacketDurationMs } from "./opus_packet.ts";

/** A frame whose 48 kHz samples are produced only if needed (see `audio_mixer.ts`). */
export interface LazyFrame {
  /** RFC 6464 level, 0 … 127 = 0 … −127 dBov. */
  readonly audioLevel: number;
  /** RFC 6464 V flag, when known. */
  readonly voice?: boolean;
  /** Produces the 48 kHz frame; decodes on the first call, returns the same array after. */
  pcm48(): Int16Array;
}

/** Counters of a {@link LazyAudioDecoder}. */
export interface LazyDecoderCounts {
  /** Payloads run through the codec's decoder (G.711 table decodes included). */
  readonly decoded: number;
  /** Concealment frames produced (loss, undecodable payload). */
  readonly concealed: number;
  /** Frames handed out whose 48 kHz samples were never produced (work saved). */
  readonly skipped: number;
}

/** Opus without a level: streams last measured at or below this are "quiet" (dBov). */
export const QUIET_LEVEL_DBOV = -50;
/** Opus without a level: a quiet stream is decoded and measured again after this many packets. */
export const OPUS_RECHECK_PACKETS = 50;

const SILENT = 127;

/** dBov (−127 … 0) to the RFC 6464 level field (0 … 127). */
function toRfc6464(dbov: number): number {
  const l = Math.round(-dbov);
  return l < 0 ? 0 : l > 127 ? 127 : l;
}

function lazyFrame(audioLevel: number, voice: boolean | undefined, pcm48: () => Int16Array) {
  const frame: { audioLevel: number; voice?: boolean; pcm48(): Int16Array } = {
    audioLevel,
    pcm48,
  };
  if (voice !== undefined) frame.voice = voice;
  return frame;
}

/** G.711 interpolation state shared by a decoder and the frames it hands out. */
class G711Interpolation {
  readonly resampler = new Resampler(8000, 48000);
  /** The 8 kHz frame handed out last, until it is interpolated or skipped. */
  pending: Int16Array | null = null;
  /** Frames handed out whose 48 kHz samples were never produced. */
  skipped = 0;
}

/**
 * A G.711 frame: level known, 48 kHz samples interpolated on the first ask. One object per
 * frame (not an object plus closures): every G.711 participant hands one out every 20 ms.
 */
class G711Frame implements LazyFrame {
  readonly audioLevel: number;
  declare readonly voice?: boolean;
  readonly #state: G711Interpolation;
  readonly #pcm8: Int16Array;
  #pcm48: Int16Array | null = null;

  constructor(state: G711Interpolation, pcm8: Int16Array, audioLevel: number, voice?: boolean) {
    this.#state = state;
    this.#pcm8 = pcm8;
    this.audioLevel = audioLevel;
    if (voice !== undefined) (this as { voice?: boolean }).voice = voice;
  }

  pcm48(): Int16Array {
    if (this.#pcm48 === null) {
      const state = this.#state;
      if (state.pending === this.#pcm8) state.pending = null;
      this.#pcm48 = state.resampler.process(this.#pcm8);
      state.skipped--;
    }
    return this.#pcm48;
  }
}

/** A decoder for one incoming stream that defers work the mixer does not need. */
export class LazyAudioDecoder {
  /** Codec of the stream. */
  readonly codec: AudioCodecName;
  /** Samples of a 20 ms frame at the rate {@link decode} returns (160 G.711, 960 Opus). */
  readonly frameSamples: number;
  readonly #g711: G711Decoder | null;
  readonly #up: G711Interpolation | null;
  readonly #opus: AudioDecoder | null;
  /**
   * G.711: {@link frame} decodes into these two arrays in turn instead of a new array per
   * packet (20,000 packets a second in a conference of 400). A frame's samples stay valid
   * while the next frame is handed out, which is as long as they are needed: the mixer
   * reads a frame in the tick it is pushed, and {@link pcmFrame} feeds the previous one to
   * the interpolator's history when the next arrives.
   */
  readonly #g711Frames: readonly [Int16Array, Int16Array] | null;
  #g711Turn = 0;
  /** Opus: the level (RFC 6464 scale) handed out last, which a lost frame carries on. */
  #lastLevel = SILENT;
  /** Opus: the level last measured on decoded samples (none yet: undefined), and its age. */
  #measured: number | undefined;
  #sinceMeasured = 0;
  #decoded = 0;
  #concealed = 0;
  #skipped = 0;

  constructor(codec: AudioCodecName) {
    this.codec = codec;
    if (codec === "opus") {
      this.#opus = createDecoder("opus");
      this.#g711 = null;
      this.#g711Frames = null;
      this.#up = null;
      this.frameSamples = 960;
    } else {
      this.#opus = null;
      this.#g711 = new G711Decoder(codec);
      this.#g711Frames = [new Int16Array(160), new Int16Array(160)];
      this.#up = new G711Interpolation();
      this.frameSamples = 160;
    }
  }

  /** Counters. */
  get counts(): LazyDecoderCounts {
    return {
      decoded: this.#decoded,
      concealed: this.#concealed,
      skipped: this.#skipped + (this.#up?.skipped ?? 0),
    };
  }

  /** Duration of a payload in ms (G.711: one byte per 1/8 ms; Opus: its TOC), if known. */
  durationMs(payload: Uint8Array): number | undefined {
    return this.#g711 ? payload.length / 8 : opusPacketDurationMs(payload);
  }

  /**
   * Wraps one received **20 ms** payload (`null` = lost: concealment of a 20 ms frame).
   * `audioLevel`/`voice` are the RFC 6464 fields when the packet carried them.
   */
  frame(payload: Uint8Array | null, audioLevel?: number, voice?: boolean): LazyFrame {
    if (this.#g711 !== null) return this.pcmFrame(this.#g711Frame(payload), audioLevel, voice);
    const opus = this.#opus as AudioDecoder;
    if (payload === null) {
      this.#skipped++;
      return lazyFrame(audioLevel ?? this.#lastLevel, voice, this.#once(() => this.#conceal()));
    }
    const decodeLater = this.#once(() => this.#opusDecode(opus, payload));
    if (audioLevel !== undefined) {
      this.#skipped++;
      this.#lastLevel = audioLevel;
      return lazyFrame(audioLevel, voice, decodeLater);
    }
    const activity = opusActivity(payload);
    if (activity === "silent") {
      this.#measured = this.#lastLevel = SILENT;
      this.#sinceMeasured = 0;
      this.#skipped++;
      return lazyFrame(SILENT, undefined, decodeLater);
    }
    const measured = this.#measured;
    if (
      activity === "inactive" && measured !== undefined && measured >= -QUIET_LEVEL_DBOV &&
      ++this.#sinceMeasured < OPUS_RECHECK_PACKETS
    ) {
      this.#skipped++;
      this.#lastLevel = measured;
      return lazyFrame(measured, undefined, decodeLater);
    }
    const pcm = this.#opusDecode(opus, payload);
    this.#lastLevel = this.#measured ?? SILENT;
    return lazyFrame(this.#lastLevel, undefined, () => pcm);
  }

  /**
   * Wraps a 20 ms frame already decoded at the {@link decode} rate (re-framed from packets
   * of other durations): G.711 is interpolated to 48 kHz only if asked.
   */
  pcmFrame(pcm: Int16Array, audioLevel?: number, voice?: boolean): LazyFrame {
    const up = this.#up;
    if (up === null) {
      const level = toRfc6464(frameLevelDbov(pcm));
      this.#measured = level;
      this.#sinceMeasured = 0;
      this.#lastLevel = audioLevel ?? level;
      return lazyFrame(this.#lastLevel, voice, () => pcm);
    }
    if (up.pending !== null) up.resampler.skip(up.pending); // previous frame never asked for
    up.pending = pcm;
    up.skipped++;
    return new G711Frame(up, pcm, audioLevel ?? toRfc6464(frameLevelDbov(pcm)), voice);
  }

  /** Decodes a payload of any duration now, at 8 kHz (G.711) or 48 kHz (Opus). */
  decode(payload: Uint8Array): Int16Array {
    return this.#g711 !== null
      ? this.#g711Decode(payload)
      : this.#opusDecode(this.#opus as AudioDecoder, payload);
  }

  /** Conceals one lost packet (of the last packet's duration) now, at the {@link decode} rate. */
  conceal(): Int16Array {
    return this.#g711 !== null ? this.#g711Decode(null) : this.#conceal();
  }

  /** Frees the decoder. */
  close(): void {
    this.#opus?.close();
  }

  /** A `pcm48` callback that runs `produce` once and counts the frame as not skipped. */
  #once(produce: () => Int16Array): () => Int16Array {
    let pcm: Int16Array | null = null;
    return () => {
      if (pcm === null) {
        pcm = produce();
        this.#skipped--;
      }
      return pcm;
    };
  }

  /** A 20 ms G.711 payload decoded into the array whose turn it is (see `#g711Frames`). */
  #g711Frame(payload: Uint8Array | null): Int16Array {
    const frames = this.#g711Frames;
    if (payload === null || frames === null || payload.length > 160) {
      return this.#g711Decode(payload);
    }
    const out = frames[this.#g711Turn] as Int16Array;
    this.#g711Turn ^= 1;
    this.#decoded++;
    return (this.#g711 as G711Decoder).decodeInto(payload, out);
  }

  #g711Decode(payload: Uint8Array | null): Int16Array {
    const g711 = this.#g711 as G711Decoder;
    if (payload === null) {
      this.#concealed++;
      return g711.conceal();
    }
    this.#decoded++;
    return g711.decode(payload);
  }

  #opusDecode(opus: AudioDecoder, payload: Uint8Array): Int16Array {
    let pcm: Int16Array;
    try {
      pcm = opus.decode(payload);
      this.#decoded++;
    } catch {
      return this.#conceal();
    }
    this.#measured = toRfc6464(frameLevelDbov(pcm));
    this.#sinceMeasured = 0;
    return pcm;
  }

  #conceal(): Int16Array {
    this.#concealed++;
    return (this.#opus as AudioDecoder).conceal();
  }
}
