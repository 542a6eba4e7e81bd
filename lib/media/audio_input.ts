/**
 * The receive side of one participant's audio, from RTP packets to one mixer input per
 * 20 ms tick: jitter buffer (RFC 3550 sequence order), payload-type filtering, the RFC 6464
 * level from the header extension, and re-framing of packets that are not 20 ms long.
 *
 * This is the RTP half of the one receive path; the codec half is `LazyAudioDecoder`
 * (`codecs/lazy_decoder.ts`), which decides what must be decoded. Every tick's input goes
 * to the mixer as a lazy frame (`AudioMixer.pushLazyFrame`): a level now, the 48 kHz
 * samples only for the speakers the mixer selects (G.711: table decode always, 48 kHz
 * interpolation only when mixed; Opus: decoded only when mixed if an RFC 6464 level came
 * with the packet, else only when its TOC/VAD bits and last measured level say it may be
 * speech). Packets of other durations (10, 30, 40, 60 ms…) are decoded at once into a FIFO
 * and handed on 20 ms at a time, still lazily interpolated for G.711.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { AudioMixer } from "./audio_mixer.ts";
import { type AudioCodecName, codecClockRate } from "./codecs/codec.ts";
import { LazyAudioDecoder } from "./codecs/lazy_decoder.ts";
import { JitterBuffer, type JitterBufferStats } from "./jitter_buffer.ts";
import { type AudioLevel, readAudioLevel, type RtpPacket } from "./rtp.ts";

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
  /** Payloads run through the codec's decoder (G.711 table decodes included). */
  readonly framesDecoded: number;
  /** Concealment frames produced (loss, undecodable payload). */
  readonly framesConcealed: number;
  /** Lazy frames the mixer did not need (Opus decode or G.711 interpolation saved). */
  readonly framesSkipped: number;
}

/** Most PCM kept between ticks: a 120 ms Opus packet plus a frame. */
const FIFO_MAX_MS = 140;
/** Jitter buffer pops per tick at most (10 ms packets need 2; guards a runaway loop). */
const MAX_POPS_PER_TICK = 6;

/** One participant's receive path; see the module documentation. */
export class AudioInput {
  readonly #clock: Clock;
  readonly #jitterOptions: ConferenceJitterOptions;
  #payloadType: number;
  #audioLevelExtId: number | undefined;
  #jitter: JitterBuffer<RtpPacket>;
  #decoder: LazyAudioDecoder;
  /** Samples of 20 ms at the decoder's rate (160 for G.711 at 8 kHz, 960 for Opus). */
  #frameSamples: number;
  #silence: Int16Array;
  /** Duration of the last packet, which a concealed loss repeats. */
  #lastPacketMs = 20;
  #fifo: Int16Array | undefined;
  #fifoLength = 0;

  constructor(options: AudioInputOptions) {
    this.#clock = options.clock;
    this.#jitterOptions = options.jitter ?? {};
    this.#payloadType = options.payloadType;
    this.#audioLevelExtId = options.audioLevelExtId;
    this.#jitter = this.#newJitter(options.clockRate ?? codecClockRate(options.codec));
    this.#decoder = new LazyAudioDecoder(options.codec);
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

  /** The codec being decoded. */
  get codec(): AudioCodecName {
    return this.#decoder.codec;
  }

  /** Counters. */
  get stats(): AudioInputStats {
    const c = this.#decoder.counts;
    return {
      jitter: this.#jitter.stats,
      framesDecoded: c.decoded,
      framesConcealed: c.concealed,
      framesSkipped: c.skipped,
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
    if (changes.codec !== undefined && changes.codec !== this.#decoder.codec) {
      this.#decoder.close();
      this.#decoder = new LazyAudioDecoder(changes.codec);
      this.#frameSamples = this.#decoder.frameSamples;
      this.#silence = new Int16Array(this.#frameSamples);
      this.#lastPacketMs = 20;
      this.#fifo = undefined;
      this.#fifoLength = 0;
    }
    if (changes.clockRate !== undefined || changes.codec !== undefined) {
      this.#jitter = this.#newJitter(changes.clockRate ?? codecClockRate(this.#decoder.codec));
    }
  }

  /**
   * Produces this tick's input for mixer participant `id` (call once per tick, before
   * `mixer.tick()`); pushes nothing when the stream has nothing to play.
   */
  feed(mixer: AudioMixer, id: string): void {
    const decoder = this.#decoder;
    let level: AudioLevel | undefined;
    for (let pops = 0; this.#fifoLength < this.#frameSamples && pops < MAX_POPS_PER_TICK; pops++) {
      const out = this.#jitter.pop();
      if (out.kind === "empty") break;
      let payload: Uint8Array | null = null; // null: lost, conceal
      if (out.kind === "packet") {
        const packet = out.packet;
        if (packet.payloadType !== this.#payloadType) {
          // Comfort noise (RFC 3389) or an unexpected payload type: a frame of silence.
          this.#append(this.#silence);
          continue;
        }
        if (this.#audioLevelExtId !== undefined) {
          level = readAudioLevel(packet, this.#audioLevelExtId) ?? level;
        }
        payload = packet.payload;
        this.#lastPacketMs = decoder.durationMs(payload) ?? this.#lastPacketMs;
      }
      if (this.#fifoLength === 0 && this.#lastPacketMs === 20) {
        // The usual case: one 20 ms packet (or its loss) is this tick's frame.
        mixer.pushLazyFrame(id, decoder.frame(payload, level?.level, level?.voiceActivity));
        return;
      }
      this.#append(payload === null ? decoder.conceal() : decoder.decode(payload));
    }
    const frame = this.#takeFromFifo();
    if (!frame) return; // nothing this tick: silence to the mixer
    mixer.pushLazyFrame(id, decoder.pcmFrame(frame, level?.level, level?.voiceActivity));
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
