/**
 * The receive side of one participant's audio, from RTP packets to one mixer input per
 * 20 ms tick: jitter buffer (RFC 3550 sequence order), decoding or concealment, re-framing
 * of packets that are not 20 ms long, and the level the mixer ranks speakers by.
 *
 * Decoding every input every tick would cost more than all the mixing (1,000 inputs), so
 * inputs are lazy where the level is known without the 48 kHz samples
 * (`AudioMixer.pushLazyFrame`: the samples are produced only for speakers being mixed):
 * - G.711 (RFC 3551 §4.5.14) is decoded at its native 8 kHz by table — cheap — for the level
 *   (or the RFC 6464 level is used when sent); the 8 → 48 kHz resampling runs only when
 *   mixed, otherwise the resampler just keeps its history (`Resampler.skip`);
 * - Opus (RFC 7587) packets carrying an RFC 6464 level and lasting 20 ms (TOC byte, RFC 6716
 *   §3.1) are decoded only when mixed; the decoder treats the skipped packets like lost ones
 *   when it resumes. Without a level, Opus is decoded every tick.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import { type AudioMixer, MIXER_FRAME } from "./audio_mixer.ts";
import {
  type AudioCodecName,
  type AudioDecoder,
  codecClockRate,
  createDecoder,
} from "./codecs/codec.ts";
import { JitterBuffer, type JitterBufferStats } from "./jitter_buffer.ts";
import { Resampler } from "./resampler.ts";
import { type AudioLevel, readAudioLevel, type RtpPacket } from "./rtp.ts";
import { frameLevelDbov } from "./voice_activity.ts";

/** Jitter buffer tuning shared by a conference's inputs. */
export interface ConferenceJitterOptions {
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly capacity?: number;
}

/** Options of {@link AudioInput}. */
export interface AudioInputOptions {
  readonly clock: Clock;
  readonly codec: AudioCodecName;
  /** Payload type carrying `codec`; other types (comfort noise…) play as silence. */
  readonly payloadType: number;
  /** RTP clock rate (default: the codec's). */
  readonly clockRate?: number;
  /** `a=extmap` id of the RFC 6464 audio level, if negotiated. */
  readonly audioLevelExtId?: number;
  readonly jitter?: ConferenceJitterOptions;
}

/** Counters of an {@link AudioInput}. */
export interface AudioInputStats {
  readonly jitter: JitterBufferStats;
  /** Payloads decoded. */
  readonly framesDecoded: number;
  /** Frames concealed (loss, decode error). */
  readonly framesConcealed: number;
  /** Lazy frames the mixer did not need (decode or resampling saved). */
  readonly framesSkipped: number;
}

/** Most PCM kept between ticks at 48 kHz: a 120 ms Opus packet plus a frame. */
const FIFO_MAX_MS = 140;
/** Jitter buffer pops per tick at most (10 ms packets need 2; guards a runaway loop). */
const MAX_POPS_PER_TICK = 6;

/** Duration of an Opus packet in ms from its TOC byte (RFC 6716 §3.1, Table 2 and §3.2). */
export function opusPacketDurationMs(payload: Uint8Array): number | undefined {
  if (payload.length < 1) return undefined;
  const toc = payload[0]!;
  const config = toc >> 3;
  const frameMs = config < 12
    ? [10, 20, 40, 60][config & 3]!
    : config < 16
    ? (config & 1 ? 20 : 10)
    : [2.5, 5, 10, 20][config & 3]!;
  const code = toc & 3;
  if (code === 0) return frameMs;
  if (code !== 3) return 2 * frameMs;
  if (payload.length < 2) return undefined;
  return (payload[1]! & 0x3f) * frameMs;
}

/** RFC 6464 level (0…127 = −dBov) of a PCM frame. */
function rfc6464Level(pcm: Int16Array): number {
  return Math.min(127, Math.max(0, Math.round(-frameLevelDbov(pcm))));
}

/** One participant's receive path; see the module documentation. */
export class AudioInput {
  readonly #clock: Clock;
  readonly #jitterOptions: ConferenceJitterOptions;
  #codec: AudioCodecName;
  #payloadType: number;
  #audioLevelExtId: number | undefined;
  #jitter: JitterBuffer<RtpPacket>;
  #decoder: AudioDecoder;
  /** G.711 only: the decoder runs at 8 kHz and this brings mixed frames to 48 kHz. */
  #upsampler: Resampler | undefined;
  #frameSamples: number;
  #silence: Int16Array;
  #fifo: Int16Array | undefined;
  #fifoLength = 0;
  /** G.711 frame handed lazily this tick, and whether the mixer used it. */
  #pending: Int16Array | undefined;
  #used = false;
  #decoded = 0;
  #concealed = 0;
  #skipped = 0;

  constructor(options: AudioInputOptions) {
    this.#clock = options.clock;
    this.#jitterOptions = options.jitter ?? {};
    this.#codec = options.codec;
    this.#payloadType = options.payloadType;
    this.#audioLevelExtId = options.audioLevelExtId;
    this.#jitter = this.#newJitter(options.clockRate ?? codecClockRate(options.codec));
    this.#decoder = this.#newDecoder(options.codec);
    this.#frameSamples = this.#decoder.frameSamples;
    this.#silence = new Int16Array(this.#frameSamples);
  }

  #newJitter(clockRate: number): JitterBuffer<RtpPacket> {
    const j = this.#jitterOptions;
    return new JitterBuffer<RtpPacket>({
      clock: this.#clock,
      clockRate,
      ...(j.minDelayMs === undefined ? {} : { minDelayMs: j.minDelayMs }),
      ...(j.maxDelayMs === undefined ? {} : { maxDelayMs: j.maxDelayMs }),
      ...(j.capacity === undefined ? {} : { capacity: j.capacity }),
    });
  }

  #newDecoder(codec: AudioCodecName): AudioDecoder {
    if (codec === "opus") {
      this.#upsampler = undefined;
      return createDecoder(codec);
    }
    this.#upsampler = new Resampler(8000, 48000);
    return createDecoder(codec, { sampleRate: 8000 });
  }

  /** The codec being decoded. */
  get codec(): AudioCodecName {
    return this.#codec;
  }

  /** Counters. */
  get stats(): AudioInputStats {
    return {
      jitter: this.#jitter.stats,
      framesDecoded: this.#decoded,
      framesConcealed: this.#concealed,
      framesSkipped: this.#skipped,
    };
  }

  /** Queues an arrived packet (not telephone-events: those go to the DTMF receiver). */
  push(packet: RtpPacket): void {
    this.#jitter.push(packet);
  }

  /** Forgets buffered packets and PCM (hold, or a change of stream). */
  reset(): void {
    this.#jitter.reset();
    this.#fifoLength = 0;
  }

  /** Re-negotiation: payload type, level extension id, codec or clock rate. */
  update(changes: {
    readonly codec?: AudioCodecName;
    readonly payloadType?: number;
    readonly clockRate?: number;
    readonly audioLevelExtId?: number;
  }): void {
    if (changes.payloadType !== undefined) this.#payloadType = changes.payloadType;
    if (changes.audioLevelExtId !== undefined) this.#audioLevelExtId = changes.audioLevelExtId;
    if (changes.codec !== undefined && changes.codec !== this.#codec) {
      this.#decoder.close();
      this.#codec = changes.codec;
      this.#decoder = this.#newDecoder(changes.codec);
      this.#frameSamples = this.#decoder.frameSamples;
      this.#silence = new Int16Array(this.#frameSamples);
      this.#fifo = undefined;
      this.#fifoLength = 0;
    }
    if (changes.clockRate !== undefined || changes.codec !== undefined) {
      this.#jitter = this.#newJitter(changes.clockRate ?? codecClockRate(this.#codec));
    }
  }

  #decode(payload: Uint8Array): Int16Array {
    try {
      const pcm = this.#decoder.decode(payload);
      this.#decoded++;
      return pcm;
    } catch {
      this.#concealed++;
      return this.#decoder.conceal();
    }
  }

  /**
   * Produces this tick's input for mixer participant `id` (call once per tick, before
   * `mixer.tick()`); pushes nothing when the stream has nothing to play.
   */
  feed(mixer: AudioMixer, id: string): void {
    this.#pending = undefined;
    let level: AudioLevel | undefined;
    let direct: Int16Array | undefined;
    for (let pops = 0; this.#fifoLength < this.#frameSamples && pops < MAX_POPS_PER_TICK; pops++) {
      const out = this.#jitter.pop();
      if (out.kind === "empty") break;
      let pcm: Int16Array;
      if (out.kind === "lost") {
        pcm = this.#decoder.conceal();
        this.#concealed++;
      } else if (out.packet.payloadType !== this.#payloadType) {
        pcm = this.#silence; // comfort noise (RFC 3389) or an unexpected payload type
      } else {
        const packet = out.packet;
        if (this.#audioLevelExtId !== undefined) {
          level = readAudioLevel(packet, this.#audioLevelExtId) ?? level;
        }
        if (
          this.#codec === "opus" && level !== undefined && this.#fifoLength === 0 &&
          opusPacketDurationMs(packet.payload) === 20
        ) {
          this.#feedLazyOpus(mixer, id, packet.payload, level);
          return;
        }
        pcm = this.#decode(packet.payload);
      }
      if (this.#fifoLength === 0 && pcm.length === this.#frameSamples) {
        direct = pcm;
        break;
      }
      this.#append(pcm);
    }
    const frame = direct ?? this.#takeFromFifo();
    if (!frame) return; // nothing this tick: silence to the mixer
    if (this.#upsampler) {
      const upsampler = this.#upsampler;
      this.#pending = frame;
      this.#used = false;
      mixer.pushLazyFrame(id, {
        audioLevel: level?.level ?? rfc6464Level(frame),
        ...(level ? { voice: level.voiceActivity } : {}),
        pcm48: () => {
          this.#used = true;
          return upsampler.process(frame);
        },
      });
    } else {
      mixer.pushFrame(id, frame, level?.level, level?.voiceActivity);
    }
  }

  #feedLazyOpus(mixer: AudioMixer, id: string, payload: Uint8Array, level: AudioLevel): void {
    this.#skipped++; // undone below if the mixer asks for the samples
    mixer.pushLazyFrame(id, {
      audioLevel: level.level,
      voice: level.voiceActivity,
      pcm48: () => {
        this.#skipped--;
        const pcm = this.#decode(payload);
        return pcm.length === MIXER_FRAME ? pcm : this.#silence;
      },
    });
  }

  /**
   * Call after `mixer.tick()`: a lazy G.711 frame the mixer did not use still advances the
   * resampler's history, so the next mixed frame joins without a click.
   */
  settle(): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    this.#pending = undefined;
    if (!this.#used) {
      this.#upsampler?.skip(pending);
      this.#skipped++;
    }
  }

  #takeFromFifo(): Int16Array | undefined {
    const fifo = this.#fifo;
    const n = this.#frameSamples;
    if (!fifo || this.#fifoLength === 0) return undefined;
    if (this.#fifoLength < n) {
      fifo.fill(0, this.#fifoLength, n); // stream paused mid-frame: pad with silence
      this.#fifoLength = n;
    }
    const frame = fifo.slice(0, n);
    fifo.copyWithin(0, n, this.#fifoLength);
    this.#fifoLength -= n;
    return frame;
  }

  #append(pcm: Int16Array): void {
    const max = Math.round((this.#frameSamples * FIFO_MAX_MS) / 20);
    const src = pcm.length > max ? pcm.subarray(pcm.length - max) : pcm;
    const needed = this.#fifoLength + src.length;
    if (!this.#fifo || this.#fifo.length < needed) {
      const grown = new Int16Array(Math.min(max, Math.max(needed, 2 * this.#frameSamples)));
      if (this.#fifo) grown.set(this.#fifo.subarray(0, this.#fifoLength));
      this.#fifo = grown;
    }
    const fifo = this.#fifo;
    const overflow = needed - fifo.length;
    if (overflow > 0) {
      // Too much buffered PCM (a long packet after a burst): drop the oldest samples.
      fifo.copyWithin(0, overflow, this.#fifoLength);
      this.#fifoLength -= overflow;
    }
    fifo.set(src, this.#fifoLength);
    this.#fifoLength += src.length;
  }

  /** Releases the decoder. */
  close(): void {
    this.#decoder.close();
  }
}
