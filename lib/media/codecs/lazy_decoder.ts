/**
 * Decoding only what the mixer mixes. A conference of 1,000 senders costs ~50 µs per Opus
 * decode and ~40 µs per G.711 decode + 8→48 kHz interpolation every 20 ms — more than all
 * the mixing and encoding together — while the mixer only mixes its top-N speakers. A
 * {@link LazyAudioDecoder} turns each received 20 ms payload into a {@link LazyFrame}: the
 * level is known up front (the RFC 6464 header extension when the sender provides it,
 * else measured cheaply), the 48 kHz samples are produced only if the mixer asks.
 *
 * - G.711 (RFC 3551 §4.5.14): the table decode to 8 kHz always runs (it is cheap) and gives
 *   the level; the interpolation to 48 kHz runs only when asked. Frames that were not asked
 *   for still feed the interpolator's history ({@link Resampler.skip}), so a stream that
 *   starts being mixed joins without a click.
 * - Opus (RFC 7587): with an RFC 6464 level, the packet is decoded only when asked; packets
 *   not asked for never reach the decoder, which then resumes on a later packet as after a
 *   loss (the mixer fades a newly selected speaker in over one frame). Without a level the
 *   packet is decoded at once and measured.
 * @module
 */

import { Resampler } from "../resampler.ts";
import { frameLevelDbov } from "../voice_activity.ts";
import { type AudioCodecName, type AudioDecoder, createDecoder } from "./codec.ts";
import { G711Decoder } from "./g711.ts";

/** A frame whose 48 kHz samples are produced only if needed (see `audio_mixer.ts`). */
export interface LazyFrame {
  /** RFC 6464 level, 0 … 127 = 0 … −127 dBov. */
  readonly audioLevel: number;
  /** RFC 6464 V flag, when known. */
  readonly voice?: boolean;
  /** Produces the 48 kHz frame; decodes on the first call, returns the same array after. */
  pcm48(): Int16Array;
}

/** dBov (−127 … 0) to the RFC 6464 level field (0 … 127). */
function toRfc6464(dbov: number): number {
  const l = Math.round(-dbov);
  return l < 0 ? 0 : l > 127 ? 127 : l;
}

/** A decoder for one incoming stream that defers work the mixer does not need. */
export class LazyAudioDecoder {
  /** Codec of the stream. */
  readonly codec: AudioCodecName;
  readonly #g711: G711Decoder | null;
  readonly #up: Resampler | null;
  readonly #opus: AudioDecoder | null;
  /** G.711: the 8 kHz frame handed out last, until it is interpolated or skipped. */
  #pending: Int16Array | null = null;
  #decoded = 0;
  #skipped = 0;

  constructor(codec: AudioCodecName) {
    this.codec = codec;
    if (codec === "opus") {
      this.#opus = createDecoder("opus");
      this.#g711 = null;
      this.#up = null;
    } else {
      this.#opus = null;
      this.#g711 = new G711Decoder(codec);
      this.#up = new Resampler(8000, 48000);
    }
  }

  /** Frames whose 48 kHz samples were produced / never asked for (for statistics). */
  get counts(): { decoded: number; skipped: number } {
    return { decoded: this.#decoded, skipped: this.#skipped };
  }

  /**
   * Wraps one received 20 ms payload (`null` = lost: concealment). `audioLevel`/`voice` are
   * the RFC 6464 fields when the packet carried them.
   */
  frame(payload: Uint8Array | null, audioLevel?: number, voice?: boolean): LazyFrame {
    if (this.#g711 !== null) return this.#g711Frame(this.#g711, payload, audioLevel, voice);
    const opus = this.#opus as AudioDecoder;
    if (audioLevel === undefined || payload === null) {
      const pcm = payload === null ? opus.conceal() : opus.decode(payload);
      this.#decoded++;
      return { audioLevel: audioLevel ?? toRfc6464(frameLevelDbov(pcm)), pcm48: () => pcm };
    }
    let pcm: Int16Array | null = null;
    this.#skipped++;
    const frame: { audioLevel: number; voice?: boolean; pcm48(): Int16Array } = {
      audioLevel,
      pcm48: () => {
        if (pcm === null) {
          pcm = opus.decode(payload);
          this.#skipped--;
          this.#decoded++;
        }
        return pcm;
      },
    };
    if (voice !== undefined) frame.voice = voice;
    return frame;
  }

  /** Frees the decoder. */
  close(): void {
    this.#opus?.close();
  }

  #g711Frame(
    g711: G711Decoder,
    payload: Uint8Array | null,
    audioLevel: number | undefined,
    voice: boolean | undefined,
  ): LazyFrame {
    const up = this.#up as Resampler;
    if (this.#pending !== null) up.skip(this.#pending); // previous frame never asked for
    const pcm8 = payload === null ? g711.conceal() : g711.decode(payload);
    this.#pending = pcm8;
    this.#skipped++;
    let pcm: Int16Array | null = null;
    const frame: { audioLevel: number; voice?: boolean; pcm48(): Int16Array } = {
      audioLevel: audioLevel ?? toRfc6464(frameLevelDbov(pcm8)),
      pcm48: () => {
        if (pcm === null) {
          if (this.#pending === pcm8) this.#pending = null;
          pcm = up.process(pcm8);
          this.#skipped--;
          this.#decoded++;
        }
        return pcm;
      },
    };
    if (voice !== undefined) frame.voice = voice;
    return frame;
  }
}
