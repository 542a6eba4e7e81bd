/**
 * The conference audio mixer (RFC 4353 §5: the focus mixes media; RFC 7667 §3.6 "Media
 * Mixing Mixer" topology). All audio is 48 kHz mono in 20 ms frames (960 samples).
 *
 * Each {@link AudioMixer.tick} (driven by the media ticker every 20 ms, no timers here):
 * 1. updates voice activity for every participant (RFC 6464 level when given, else energy);
 * 2. selects the top-N loudest active, unmuted participants (`maxSpeakers`, default 4;
 *    the already-selected get a small bonus so near-equal voices do not flap) — only they
 *    are mixed;
 * 3. builds the full mix (selected speakers × their gain, plus tones for everyone) once;
 * 4. sends: every **selected** speaker gets its own encode of the mix minus itself; every
 *    other listener shares **one** encode per codec group (codec + clock rate + ptime +
 *    encoder settings) — so encodes per tick = speakers + groups, not participants.
 *
 * Clipping: the sum goes through a soft knee — linear up to ±24576 (−2.5 dBFS), above that
 * `knee + (32767 − knee)·tanh(excess / (32767 − knee))`, so it never exceeds 16 bits and has
 * no corner.
 *
 * Shared ↔ own encoder switch (Opus is stateful: a receiver's decoder follows one encoder's
 * prediction state, and a different encoder's packets would decode with a burst and a
 * slowly fading mismatch). A participant's own encoder is created lazily the first time it
 * is needed, kept while used, and closed after `ownEncoderIdleTicks` unused ticks.
 * - shared → own: the own encoder is reset (OPUS_RESET_STATE), primed with the frame the
 *   listener heard last tick (so its analysis window holds the same audio), and its first
 *   packet is coded without inter-frame prediction ({@link AudioEncoder.encodeIndependent});
 * - own → shared: the group's shared frame of that tick is coded without prediction, so
 *   the joining decoder locks onto the shared stream at once (measured: from the next frame
 *   on its output equals a long-standing listener's to > 40 dB; without this, ~5–20 dB for
 *   several frames). Every other listener of the group gets one less efficient frame.
 * RTP continuity (sequence, timestamp, SSRC) is the RTP session's job and does not change
 * with the switch.
 *
 * Inputs: {@link AudioMixer.pushFrame} takes decoded PCM (tests, tools);
 * {@link AudioMixer.pushLazyFrame} takes a level (RFC 6464, or one computed cheaply) and a
 * callback that decodes only if the participant is mixed this tick. The conference's
 * receive path (`AudioInput` → `LazyAudioDecoder`) uses only the lazy one: decoding 1,000
 * inputs every 20 ms would cost more than all the mixing and encoding.
 *
 * Sinks receive the shared payload as the very same `Uint8Array`: they must not modify it.
 * @module
 */

import { createLogger } from "../config/log.ts";
import {
  type AudioCodecName,
  type AudioEncoder,
  createEncoder,
  type EncoderOptions,
} from "./codecs/codec.ts";
import type { LazyFrame } from "./codecs/lazy_decoder.ts";
import { ContributingSources } from "./contributing_sources.ts";
import { NO_CSRCS } from "./rtp.ts";
import { softClip } from "./soft_clip.ts";
import { encoderKey, encodeSafely, OwnEncoder } from "./own_encoder.ts";
import { generateTone, type ToneName, TonePlayer } from "./tones.ts";
import {
  DominantSpeaker,
  type SpeakerLevel,
  VoiceActivityDetector,
  type VoiceActivityOptions,
} from "./voice_activity.ts";

export type { LazyFrame };

/** Samples per second inside the mixer. */
export const MIXER_RATE = 48000;
/** Samples per 20 ms mixer frame. */
export const MIXER_FRAME = 960;
/** Frame duration in ms (the RTP ptime of every output stream). */
export const MIXER_PTIME = 20;

/** Thrown for unknown participants, duplicate ids and malformed frames. */
export class MixerError extends RangeError {
  override name = "MixerError";
}

/** How a participant's outgoing audio is encoded. */
export interface MixerParticipantOptions {
  /** Codec of the participant's outgoing stream. */
  readonly codec: AudioCodecName;
  /** Encoder settings (Opus complexity, bit rate…); listeners share only with equal settings. */
  readonly encoderOptions?: EncoderOptions;
}

/** Extra facts about a payload handed to a sink. */
export interface SinkInfo {
  /** True when the same payload object went to every non-speaker of the codec group. */
  readonly shared: boolean;
  /**
   * Contributing sources of this payload (RFC 3550 §7.1: a mixer lists the SSRCs it mixed
   * in the CSRC list): the source ids ({@link AudioMixer.setSourceId}) of the speakers mixed
   * into it, the listener's own never included, at most 15. The array is reused across
   * ticks while the speakers stay the same: read it, do not keep or change it.
   */
  readonly csrcs: readonly number[];
}

/** Receives one encoded 20 ms payload per tick for one participant. */
export type AudioSink = (payload: Uint8Array, info: SinkInfo) => void;

/** Called with the new dominant speaker (null once nobody is left to be it). */
export type ActiveSpeakerListener = (speakerId: string | null) => void;

/** Which built-in announcements the mixer plays by itself. */
export interface AnnouncementOptions {
  /** Play `join` to everyone when a participant is added (default true when enabled). */
  readonly join?: boolean;
  /** Play `leave` to everyone when a participant is removed (default true when enabled). */
  readonly leave?: boolean;
  /** Play `alone` to a participant who is (or is left) alone (default true when enabled). */
  readonly alone?: boolean;
}

/** Mixer configuration. */
export interface AudioMixerOptions {
  /** Speakers mixed at most (default 4). */
  readonly maxSpeakers?: number;
  /**
   * `shared` (default): the scale design above. `per-listener`: every listener gets its
   * own encode (the FreeSWITCH/Janus way), kept as the benchmark baseline.
   */
  readonly encoding?: "shared" | "per-listener";
  /** Voice activity tuning. */
  readonly vad?: VoiceActivityOptions;
  /** Ranking bonus in dB for speakers already selected (default 3). */
  readonly selectionStickinessDb?: number;
  /** Dominant-speaker switch: the challenger must be louder by this many dB (default 3)… */
  readonly activeSpeakerMarginDb?: number;
  /** …for this many consecutive ticks (default 10 = 200 ms). */
  readonly activeSpeakerHoldTicks?: number;
  /** Own encoders unused this many ticks are closed (default 500 = 10 s). */
  readonly ownEncoderIdleTicks?: number;
  /** Tones can be played at all (default true); false makes {@link AudioMixer.playTone} a no-op. */
  readonly tones?: boolean;
  /** Automatic join/leave/alone announcements (default false). */
  readonly announcements?: boolean | AnnouncementOptions;
  /** Linear gain applied to tones (default 1). */
  readonly toneGain?: number;
}

/** What one tick did. */
export interface MixerTickStats {
  /** Tick counter (1 for the first tick). */
  readonly tick: number;
  /** Ids of the speakers mixed this tick, loudest first. */
  readonly selected: readonly string[];
  /** Encodes of a participant-specific mix (speakers, private tones, per-listener mode). */
  readonly ownEncodes: number;
  /** Encodes shared by a codec group. */
  readonly sharedEncodes: number;
  /** Payloads handed to sinks. */
  readonly sends: number;
  /** Of which carried a shared payload. */
  readonly sharedSends: number;
}

/** Totals since the mixer was created. */
export interface MixerTotals {
  readonly ticks: number;
  readonly ownEncodes: number;
  readonly sharedEncodes: number;
  readonly sends: number;
  readonly sharedSends: number;
  /** Own encoders currently open. */
  readonly ownEncoders: number;
  /** Codec groups (shared encoders) currently open. */
  readonly groups: number;
}

interface Group {
  readonly key: string;
  readonly encoder: AudioEncoder;
  members: number;
  /** Tick whose shared payload is cached in `payload`. */
  tick: number;
  payload: Uint8Array | null;
  /** Tick whose shared frame must be coded independently (someone joins the stream). */
  independentTick: number;
}

interface Participant {
  readonly id: string;
  readonly codec: AudioCodecName;
  readonly encoderOptions: EncoderOptions;
  readonly sink: AudioSink;
  readonly group: Group;
  readonly vad: VoiceActivityDetector;
  frame: Int16Array | undefined;
  lazy: LazyFrame | undefined;
  audioLevel: number | undefined;
  voice: boolean | undefined;
  muted: boolean;
  gain: number;
  listening: boolean;
  selected: boolean;
  /** Gain-scaled contribution while selected (lazily allocated). */
  contrib: Float32Array | null;
  readonly own: OwnEncoder;
  readonly privateTones: TonePlayer;
  /** Where this tick's audio comes from (ROUTE_*). */
  route: number;
  /** RTP SSRC of what this participant sends, listed as a CSRC when it is mixed. */
  sourceId: number | undefined;
  /** CSRCs of this participant's own (minus-self) mix, and the shared list it was built from. */
  ownCsrcs: readonly number[];
  ownCsrcsFrom: readonly number[] | undefined;
}

const ROUTE_NONE = 0;
const ROUTE_OWN = 1;
const ROUTE_SHARED = 2;

const log = createLogger("media.mixer");

/**
 * N−1 conference mixer with top-N speaker selection and shared encodes (see the module
 * comment for the algorithm, the clipping and the encoder-switch policy).
 */
export class AudioMixer {
  readonly #maxSpeakers: number;
  readonly #perListener: boolean;
  readonly #vadOptions: VoiceActivityOptions;
  readonly #stickiness: number;
  readonly #ownIdle: number;
  readonly #tonesEnabled: boolean;
  readonly #announce: Required<AnnouncementOptions>;
  readonly #toneGain: number;
  readonly #participants = new Map<string, Participant>();
  readonly #groups = new Map<string, Group>();
  readonly #listeners = new Set<ActiveSpeakerListener>();
  readonly #globalTones = new TonePlayer();
  readonly #mix = new Float32Array(MIXER_FRAME);
  readonly #scratch = new Float32Array(MIXER_FRAME);
  #fullPcm = new Int16Array(MIXER_FRAME);
  #prevFullPcm = new Int16Array(MIXER_FRAME);
  readonly #ownPcm = new Int16Array(MIXER_FRAME);
  #selected: Participant[] = [];
  /** CSRCs of the current tick's mixes. */
  readonly #contributors = new ContributingSources();
  #tick = 0;
  readonly #dominant: DominantSpeaker;
  #totals = { ticks: 0, ownEncodes: 0, sharedEncodes: 0, sends: 0, sharedSends: 0 };
  #closed = false;

  constructor(options: AudioMixerOptions = {}) {
    this.#maxSpeakers = Math.max(1, Math.floor(options.maxSpeakers ?? 4));
    this.#perListener = options.encoding === "per-listener";
    this.#vadOptions = options.vad ?? {};
    this.#stickiness = options.selectionStickinessDb ?? 3;
    this.#dominant = new DominantSpeaker({
      marginDb: options.activeSpeakerMarginDb ?? 3,
      holdTicks: options.activeSpeakerHoldTicks ?? 10,
    });
    this.#ownIdle = Math.max(1, options.ownEncoderIdleTicks ?? 500);
    this.#tonesEnabled = options.tones ?? true;
    const a = options.announcements ?? false;
    const on = a !== false;
    const o: AnnouncementOptions = typeof a === "object" ? a : {};
    this.#announce = {
      join: on && (o.join ?? true),
      leave: on && (o.leave ?? true),
      alone: on && (o.alone ?? true),
    };
    this.#toneGain = options.toneGain ?? 1;
  }

  /** Number of participants. */
  get size(): number {
    return this.#participants.size;
  }

  /** True when `id` is a participant. */
  has(id: string): boolean {
    return this.#participants.has(id);
  }

  /** Speakers mixed in the last tick, loudest first. */
  get selectedSpeakers(): readonly string[] {
    return this.#selected.map((p) => p.id);
  }

  /** Current dominant speaker (the loudest, with hysteresis), or null. */
  get activeSpeaker(): string | null {
    return this.#dominant.current;
  }

  /** Totals since creation, plus encoders currently open. */
  get totals(): MixerTotals {
    let own = 0;
    for (const p of this.#participants.values()) if (p.own.open) own++;
    return { ...this.#totals, ownEncoders: own, groups: this.#groups.size };
  }

  /**
   * Adds a participant whose outgoing audio is encoded with `options.codec` and handed to
   * `sink` once per tick while it is listening.
   */
  addParticipant(id: string, options: MixerParticipantOptions, sink: AudioSink): void {
    this.#assertOpen();
    if (this.#participants.has(id)) throw new MixerError(`participant ${id} already mixed`);
    const encoderOptions: EncoderOptions = { ...(options.encoderOptions ?? {}) };
    const key = encoderKey(options.codec, encoderOptions);
    let group = this.#groups.get(key);
    if (!group) {
      group = {
        key,
        encoder: createEncoder(options.codec, { ...encoderOptions, sampleRate: MIXER_RATE }),
        members: 0,
        tick: -1,
        payload: null,
        independentTick: -1,
      };
      this.#groups.set(key, group);
    }
    group.members++;
    this.#participants.set(id, {
      id,
      codec: options.codec,
      encoderOptions,
      sink,
      group,
      vad: new VoiceActivityDetector(this.#vadOptions),
      frame: undefined,
      lazy: undefined,
      audioLevel: undefined,
      voice: undefined,
      muted: false,
      gain: 1,
      listening: true,
      selected: false,
      contrib: null,
      own: new OwnEncoder(id, options.codec, encoderOptions, MIXER_RATE),
      privateTones: new TonePlayer(),
      route: ROUTE_NONE,
      sourceId: undefined,
      ownCsrcs: NO_CSRCS,
      ownCsrcsFrom: undefined,
    });
    if (this.#announce.join && this.#participants.size > 1) this.playTone("join");
    if (this.#announce.alone && this.#participants.size === 1) this.playTone("alone", id);
  }

  /** Removes a participant and frees its encoders; false if unknown. */
  removeParticipant(id: string): boolean {
    const p = this.#participants.get(id);
    if (!p) return false;
    this.#participants.delete(id);
    p.own.close();
    const g = p.group;
    if (--g.members === 0) {
      g.encoder.close();
      this.#groups.delete(g.key);
    }
    if (p.selected) this.#selected = this.#selected.filter((s) => s !== p);
    if (this.#dominant.remove(id, this.#selected[0]?.id ?? null)) this.#emitDominant();
    if (this.#announce.leave && this.#participants.size > 0) this.playTone("leave");
    if (this.#announce.alone && this.#participants.size === 1) {
      const [last] = this.#participants.keys();
      if (last !== undefined) this.playTone("alone", last);
    }
    return true;
  }

  /**
   * Supplies this tick's decoded frame (960 samples at 48 kHz) from `id`; `audioLevel` is
   * the RFC 6464 level (0 … 127 = −dBov) and `voice` its V flag when the packet carried
   * them. A participant with no frame at tick time contributes silence. The array is read
   * at the next tick, not copied: do not modify it before then.
   */
  pushFrame(id: string, pcm48: Int16Array, audioLevel?: number, voice?: boolean): void {
    const p = this.#get(id);
    if (pcm48.length !== MIXER_FRAME) {
      throw new MixerError(`frame must be ${MIXER_FRAME} samples at 48 kHz, got ${pcm48.length}`);
    }
    p.frame = pcm48;
    p.lazy = undefined;
    p.audioLevel = audioLevel;
    p.voice = voice;
  }

  /**
   * Supplies this tick's frame from `id` as a level plus a decoder callback (see
   * {@link LazyFrame}); replaces a frame pushed earlier in the same tick.
   */
  pushLazyFrame(id: string, frame: LazyFrame): void {
    const p = this.#get(id);
    p.frame = undefined;
    p.lazy = frame;
    p.audioLevel = frame.audioLevel;
    p.voice = frame.voice;
  }

  /** Mute by the focus (RFC 4575 `muted-via-focus`): the participant is not mixed. */
  setMuted(id: string, muted: boolean): void {
    this.#get(id).muted = muted;
  }

  /**
   * Sets the source id (the SSRC `id` sends, RFC 3550 §8) that payloads mixing `id` list as a
   * contributing source (RFC 3550 §7.1); `undefined` lists nothing for it.
   */
  setSourceId(id: string, ssrc: number | undefined): void {
    this.#get(id).sourceId = ssrc === undefined ? undefined : ssrc >>> 0;
  }

  /** Linear gain applied to what others hear from `id` (1 = unchanged, 0 = silent). */
  setGain(id: string, linearGain: number): void {
    if (!Number.isFinite(linearGain) || linearGain < 0) {
      throw new MixerError(`gain must be a finite number ≥ 0, got ${linearGain}`);
    }
    this.#get(id).gain = linearGain;
  }

  /** False while the participant must not be sent audio (hold: sendonly/inactive, RFC 3264 §8.4). */
  setListening(id: string, listening: boolean): void {
    this.#get(id).listening = listening;
  }

  /**
   * Plays a tone (built-in name or 48 kHz PCM) mixed into everyone's audio, or only into
   * `target`'s (which then gets its own encode while the tone lasts). No-op when tones are
   * disabled or `target` is unknown.
   */
  playTone(tone: ToneName | Int16Array, target?: string): void {
    if (!this.#tonesEnabled) return;
    const pcm = typeof tone === "string" ? generateTone(tone) : tone;
    if (pcm.length === 0) return;
    if (target === undefined) {
      this.#globalTones.play(pcm);
    } else {
      this.#participants.get(target)?.privateTones.play(pcm);
    }
  }

  /** Subscribes to dominant-speaker changes; returns the unsubscribe function. */
  onActiveSpeakerChange(listener: ActiveSpeakerListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Mixes and sends one 20 ms frame for every listener (see the module comment). */
  tick(): MixerTickStats {
    this.#assertOpen();
    const tick = ++this.#tick;
    const previous = this.#selected;
    this.#select();
    this.#updateDominant();

    // Full mix: selected speakers × gain (ramped in on their first selected tick) + tones.
    const mix = this.#mix;
    mix.fill(0);
    for (const s of this.#selected) {
      const contrib = s.contrib ?? (s.contrib = new Float32Array(MIXER_FRAME));
      const frame = s.frame;
      if (frame === undefined) {
        contrib.fill(0);
        continue;
      }
      const g = s.gain;
      const rampIn = !s.selected;
      for (let i = 0; i < MIXER_FRAME; i++) {
        const v = (frame[i] as number) * (rampIn ? (g * (i + 1)) / MIXER_FRAME : g);
        contrib[i] = v;
        mix[i] = (mix[i] as number) + v;
      }
    }
    for (const s of previous) s.selected = false;
    for (const s of this.#selected) s.selected = true;
    this.#contributors.update(this.#selected, (s) => s.frame !== undefined);
    this.#globalTones.mixInto(mix, this.#toneGain);
    const prevFull = this.#fullPcm; // what shared listeners heard last tick
    this.#fullPcm = this.#prevFullPcm;
    this.#prevFullPcm = prevFull;
    softClip(this.#fullPcm, mix);

    // Route every listener; someone leaving its own encoder for the shared one this tick
    // makes the group code this frame independently (see the module comment).
    for (const p of this.#participants.values()) {
      const route = !p.listening
        ? ROUTE_NONE
        : p.selected || p.privateTones.active || this.#perListener
        ? ROUTE_OWN
        : ROUTE_SHARED;
      p.route = route;
      if (route === ROUTE_SHARED && p.own.lastTick === tick - 1) p.group.independentTick = tick;
    }

    let ownEncodes = 0;
    let sharedEncodes = 0;
    let sends = 0;
    let sharedSends = 0;
    for (const p of this.#participants.values()) {
      p.frame = undefined;
      p.lazy = undefined;
      p.audioLevel = undefined;
      p.voice = undefined;
      let payload: Uint8Array | null;
      let shared = false;
      let csrcs = this.#contributors.all;
      if (p.route === ROUTE_NONE) {
        p.privateTones.clear();
        p.own.expire(tick, this.#ownIdle);
        continue;
      } else if (p.route === ROUTE_OWN) {
        let pcm = this.#fullPcm;
        const privateTone = p.privateTones.active;
        if (p.selected || privateTone) {
          const own = this.#scratch;
          own.set(mix);
          if (p.selected && p.contrib) {
            const c = p.contrib;
            for (let i = 0; i < MIXER_FRAME; i++) own[i] = (own[i] as number) - (c[i] as number);
          }
          if (privateTone) p.privateTones.mixInto(own, this.#toneGain);
          softClip(this.#ownPcm, own);
          pcm = this.#ownPcm;
        }
        const heardLast = !this.#perListener && tick > 1 ? this.#prevFullPcm : undefined;
        payload = p.own.encode(pcm, tick, heardLast);
        if (payload) ownEncodes++;
        if (p.selected) csrcs = this.#contributors.without(p);
      } else {
        p.own.expire(tick, this.#ownIdle);
        const g = p.group;
        if (g.tick !== tick) {
          g.tick = tick;
          g.payload = encodeSafely(g.encoder, this.#fullPcm, g.key, g.independentTick === tick);
          if (g.payload) sharedEncodes++;
        }
        payload = g.payload;
        shared = true;
      }
      if (payload === null) continue;
      try {
        p.sink(payload, { shared, csrcs });
      } catch (e) {
        log.warn("sink failed", { participant: p.id, error: String(e) });
      }
      sends++;
      if (shared) sharedSends++;
    }

    const t = this.#totals;
    t.ticks++;
    t.ownEncodes += ownEncodes;
    t.sharedEncodes += sharedEncodes;
    t.sends += sends;
    t.sharedSends += sharedSends;
    return {
      tick,
      selected: this.#selected.map((s) => s.id),
      ownEncodes,
      sharedEncodes,
      sends,
      sharedSends,
    };
  }

  /** Closes every encoder and forgets all participants; further ticks throw. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#participants.values()) p.own.close();
    for (const g of this.#groups.values()) g.encoder.close();
    this.#participants.clear();
    this.#groups.clear();
    this.#listeners.clear();
    this.#selected = [];
  }

  #assertOpen(): void {
    if (this.#closed) throw new MixerError("mixer closed");
  }

  #get(id: string): Participant {
    const p = this.#participants.get(id);
    if (!p) throw new MixerError(`unknown participant ${id}`);
    return p;
  }

  /** Updates voice activity and picks the top-N active, unmuted speakers. */
  #select(): void {
    const candidates: { p: Participant; score: number }[] = [];
    for (const p of this.#participants.values()) {
      const vad = p.vad;
      vad.feed(p.frame, p.audioLevel, p.voice);
      if (!vad.active || p.muted || (p.frame === undefined && p.lazy === undefined)) continue;
      candidates.push({ p, score: vad.smoothedLevel + (p.selected ? this.#stickiness : 0) });
    }
    if (candidates.length > this.#maxSpeakers) {
      candidates.sort((a, b) => b.score - a.score || (a.p.id < b.p.id ? -1 : 1));
      candidates.length = this.#maxSpeakers;
    } else {
      candidates.sort((a, b) => b.score - a.score || (a.p.id < b.p.id ? -1 : 1));
    }
    this.#selected = candidates.map((c) => c.p);
    for (const s of this.#selected) {
      const lazy = s.lazy;
      if (lazy === undefined) continue;
      s.lazy = undefined;
      try {
        const pcm = lazy.pcm48();
        if (pcm.length === MIXER_FRAME) s.frame = pcm;
        else log.warn("lazy frame has the wrong length", { participant: s.id, length: pcm.length });
      } catch (e) {
        log.warn("lazy frame failed", { participant: s.id, error: String(e) });
      }
    }
  }

  /** Dominant speaker (hysteresis in {@link DominantSpeaker}); emits on change. */
  #updateDominant(): void {
    const level = (p: Participant): SpeakerLevel => ({
      id: p.id,
      level: p.vad.smoothedLevel,
      active: p.vad.active && !p.muted,
    });
    const top = this.#selected[0];
    const id = this.#dominant.current;
    const current = id === null ? undefined : this.#participants.get(id);
    if (this.#dominant.update(top && level(top), current && level(current))) {
      this.#emitDominant();
    }
  }

  #emitDominant(): void {
    const id = this.#dominant.current;
    for (const l of [...this.#listeners]) {
      try {
        l(id);
      } catch (e) {
        log.warn("active speaker listener failed", { error: String(e) });
      }
    }
  }
}
