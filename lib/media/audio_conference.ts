/**
 * One conference's audio: RTP sessions in, jitter buffers, decoders, the N−1 mixer, and RTP
 * sessions out (RFC 4353 §5 focus mixing; RFC 7667 §3.6 media-mixing mixer topology).
 *
 * Each media tick ({@link AudioConference.tick}, driven by the shared `MediaTicker`):
 * 1. every receiving participant's `AudioInput` pops its jitter buffer and hands the mixer
 *    one 20 ms lazy frame: a level now, the samples decoded only for the speakers the
 *    mixer selects (`audio_input.ts`, `codecs/lazy_decoder.ts`);
 * 2. `mixer.tick()` — the mixer hands each listener one encoded payload (possibly the very
 *    same array for all non-speakers of a codec group);
 * 3. each listener's own `RtpSession` wraps the payload in its own header (SSRC, sequence
 *    number, timestamp) and sends it. A listener that got nothing this tick (hold, encode
 *    failure) has its timestamp advanced anyway, so the next packet is a new talk-spurt
 *    with a timestamp true to elapsed time (RFC 3550 §5.1, RFC 3551 §4.1).
 *
 * RFC 4733 telephone-events bypass the jitter buffer and become DTMF digit callbacks.
 * `direction` is ours, as in the SDP answer we gave (RFC 3264 §6.1): `sendonly` = we send
 * but ignore their media (they hold us… or listen only), `recvonly` = we mix them in but
 * send nothing, `inactive` = neither.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import { AudioInput, type ConferenceJitterOptions } from "./audio_input.ts";
import { AudioMixer, type AudioMixerOptions } from "./audio_mixer.ts";
import { type AudioCodecName, codecClockRate, type EncoderOptions } from "./codecs/codec.ts";
import type { JitterBufferStats } from "./jitter_buffer.ts";
import type { MediaTicker } from "./media_ticker.ts";
import type { RtpPacket } from "./rtp.ts";
import {
  type LatchingPolicy,
  RtpSession,
  type RtpSessionOptions,
  type RtpSessionStats,
} from "./rtp_session.ts";
import { type DtmfDigitEvent, DtmfReceiver } from "./telephone_event.ts";
import type { ToneName } from "./tones.ts";
import type { UdpAddress, UdpSocket } from "./udp_socket.ts";

/** Our media direction for a stream (RFC 3264 §6.1, as in our SDP answer). */
export type MediaDirection = "sendrecv" | "sendonly" | "recvonly" | "inactive";

/** Negotiated parameters of one audio stream (plain values from the SDP layer, RFC 3264). */
export interface AudioStreamParams {
  /** The peer's RTP address from SDP (`c=` + `m=` port); `0.0.0.0`/absent: wait to latch. */
  readonly remote?: UdpAddress;
  /** The peer's RTCP address (`a=rtcp`), when not muxed. */
  readonly remoteRtcp?: UdpAddress;
  /** RTP/RTCP multiplexing agreed (RFC 5761). Default true. */
  readonly rtcpMux?: boolean;
  /** Payload type of the negotiated codec. */
  readonly payloadType: number;
  readonly codec: AudioCodecName;
  /** RTP clock rate; default the codec's (8000 G.711, 48000 Opus). */
  readonly clockRate?: number;
  /** RFC 4733 telephone-event payload type, if negotiated. */
  readonly telephoneEventPt?: number;
  /** `a=extmap` id of RFC 6464 `urn:ietf:params:rtp-hdrext:ssrc-audio-level`, if negotiated. */
  readonly audioLevelExtId?: number;
  /** Our direction, as in our answer (RFC 3264 §6.1). */
  readonly direction: MediaDirection;
  /** Encoder settings for what this participant hears (Opus bit rate, complexity…). */
  readonly encoderOptions?: EncoderOptions;
  /** Our RTCP CNAME for this stream. */
  readonly cname?: string;
}

/** A stream's parameters plus the sockets it uses (the media engine binds them). */
export interface AudioParticipantParams extends AudioStreamParams {
  /** Our bound RTP socket (and RTCP when muxed). Not closed by the conference. */
  readonly socket: UdpSocket;
  /** Our RTCP socket when not muxed. Not closed by the conference. */
  readonly rtcpSocket?: UdpSocket;
  /** Symmetric RTP policy (default `follow`). */
  readonly latching?: LatchingPolicy;
}

/** What a re-INVITE/UPDATE can change (hold/resume, new address, codec change). */
export interface AudioParticipantUpdate {
  readonly remote?: UdpAddress;
  readonly remoteRtcp?: UdpAddress;
  readonly direction?: MediaDirection;
  readonly payloadType?: number;
  readonly codec?: AudioCodecName;
  readonly clockRate?: number;
  readonly telephoneEventPt?: number;
  readonly audioLevelExtId?: number;
  readonly encoderOptions?: EncoderOptions;
}

/** Options of {@link AudioConference}. */
export interface AudioConferenceOptions {
  readonly clock: Clock;
  /** When given, the conference ticks on it; otherwise call {@link AudioConference.tick}. */
  readonly ticker?: MediaTicker;
  readonly mixer?: AudioMixerOptions;
  readonly jitterBuffer?: ConferenceJitterOptions;
  /** RTCP report interval for every stream (default 5000 ms). */
  readonly rtcpIntervalMs?: number;
  /** Random source for SSRCs and initial sequence numbers (default Math.random). */
  readonly random?: () => number;
  /** A digit typed by a participant (RFC 4733). */
  readonly onDtmf?: (participantId: string, event: DtmfDigitEvent) => void;
  /** The dominant speaker changed (null: nobody). */
  readonly onActiveSpeakerChange?: (participantId: string | null) => void;
  /**
   * A participant's RTP source is first seen or changed (RFC 3550 §8.2): the SSRC the mixer
   * now lists as that participant's contributing source (RFC 4575 §5.7.1.3 `src-id`).
   */
  readonly onSourceId?: (participantId: string, ssrc: number) => void;
}

/** Counters of one participant's audio. */
export interface AudioParticipantStats {
  readonly codec: AudioCodecName;
  readonly direction: MediaDirection;
  readonly rtp: RtpSessionStats;
  readonly jitter: JitterBufferStats;
  /** Payloads decoded / frames concealed / lazy frames the mixer did not need. */
  readonly framesDecoded: number;
  readonly framesConcealed: number;
  readonly framesSkipped: number;
  /** Clock time of the last RTP packet (for no-RTP timeouts). */
  readonly lastRtpAt: number | undefined;
}

/** Thrown for unknown or duplicate participants. */
export class AudioConferenceError extends RangeError {
  override name = "AudioConferenceError";
}

interface Participant {
  readonly id: string;
  readonly params: AudioParticipantParams;
  codec: AudioCodecName;
  payloadType: number;
  clockRate: number;
  telephoneEventPt: number | undefined;
  audioLevelExtId: number | undefined;
  direction: MediaDirection;
  encoderOptions: EncoderOptions | undefined;
  muted: boolean;
  gain: number;
  session: RtpSession;
  readonly input: AudioInput;
  readonly dtmf: DtmfReceiver;
  sentThisTick: boolean;
  /** SSRC of the participant's stream, once seen. */
  sourceId: number | undefined;
  /** Reused for every send: carries the CSRC list the mixer handed with the payload. */
  readonly sendOptions: { csrcs: readonly number[] };
}

function receives(direction: MediaDirection): boolean {
  return direction === "sendrecv" || direction === "recvonly";
}

function sends(direction: MediaDirection): boolean {
  return direction === "sendrecv" || direction === "sendonly";
}

/** One conference's audio; see the module documentation. */
export class AudioConference {
  readonly #o: AudioConferenceOptions;
  readonly #clock: Clock;
  readonly #mixer: AudioMixer;
  readonly #participants = new Map<string, Participant>();
  #unsubscribeTicker: (() => void) | undefined;
  #unsubscribeSpeaker: () => void;
  #closed = false;

  constructor(options: AudioConferenceOptions) {
    this.#o = options;
    this.#clock = options.clock;
    this.#mixer = new AudioMixer(options.mixer ?? {});
    this.#unsubscribeSpeaker = this.#mixer.onActiveSpeakerChange((id) => {
      options.onActiveSpeakerChange?.(id);
    });
    if (options.ticker) this.#unsubscribeTicker = options.ticker.add(() => this.tick());
  }

  /** Participant ids. */
  get participantIds(): string[] {
    return [...this.#participants.keys()];
  }

  /** Number of participants. */
  get size(): number {
    return this.#participants.size;
  }

  /** The current dominant speaker. */
  get activeSpeaker(): string | null {
    return this.#mixer.activeSpeaker;
  }

  /** The mixer (for totals and tones). */
  get mixer(): AudioMixer {
    return this.#mixer;
  }

  /** Adds a participant and starts its RTP session. */
  addParticipant(id: string, params: AudioParticipantParams): void {
    if (this.#closed) throw new AudioConferenceError("conference closed");
    if (this.#participants.has(id)) throw new AudioConferenceError(`participant ${id} exists`);
    const clockRate = params.clockRate ?? codecClockRate(params.codec);
    const session = this.#newSession(
      { id, params, clockRate, payloadType: params.payloadType },
      params.remote,
      params.remoteRtcp,
    );
    const p: Participant = {
      id,
      params,
      codec: params.codec,
      payloadType: params.payloadType,
      clockRate,
      telephoneEventPt: params.telephoneEventPt,
      audioLevelExtId: params.audioLevelExtId,
      direction: params.direction,
      encoderOptions: params.encoderOptions,
      muted: false,
      gain: 1,
      session,
      input: new AudioInput({
        clock: this.#clock,
        codec: params.codec,
        payloadType: params.payloadType,
        clockRate,
        ...(params.audioLevelExtId === undefined
          ? {}
          : { audioLevelExtId: params.audioLevelExtId }),
        ...(this.#o.jitterBuffer ? { jitter: this.#o.jitterBuffer } : {}),
      }),
      dtmf: new DtmfReceiver((event) => this.#o.onDtmf?.(id, event)),
      sentThisTick: false,
      sourceId: undefined,
      sendOptions: { csrcs: [] },
    };
    this.#participants.set(id, p);
    this.#addToMixer(p);
    p.session.start();
  }

  #newSession(
    p: Pick<Participant, "id" | "params" | "clockRate" | "payloadType">,
    remote: UdpAddress | undefined,
    remoteRtcp: UdpAddress | undefined,
  ): RtpSession {
    const { id, params } = p;
    const options: RtpSessionOptions = {
      socket: params.socket,
      clock: this.#clock,
      clockRate: p.clockRate,
      payloadType: p.payloadType,
      onRtp: (packet) => {
        const participant = this.#participants.get(id);
        if (participant) this.#onRtp(participant, packet);
      },
      ...(params.rtcpSocket ? { rtcpSocket: params.rtcpSocket } : {}),
      ...(params.rtcpMux === undefined ? {} : { rtcpMux: params.rtcpMux }),
      ...(remote ? { remote } : {}),
      ...(remoteRtcp ? { remoteRtcp } : {}),
      ...(params.telephoneEventPt === undefined
        ? {}
        : { telephoneEventPt: params.telephoneEventPt }),
      ...(params.cname === undefined ? {} : { cname: params.cname }),
      ...(params.latching === undefined ? {} : { latching: params.latching }),
      ...(this.#o.rtcpIntervalMs === undefined ? {} : { rtcpIntervalMs: this.#o.rtcpIntervalMs }),
      ...(this.#o.random === undefined ? {} : { random: this.#o.random }),
    };
    return new RtpSession(options);
  }

  #addToMixer(p: Participant): void {
    this.#mixer.addParticipant(
      p.id,
      p.encoderOptions ? { codec: p.codec, encoderOptions: p.encoderOptions } : { codec: p.codec },
      (payload, info) => {
        p.sentThisTick = true;
        p.sendOptions.csrcs = info.csrcs;
        p.session.sendFrame(payload, p.clockRate / 50, p.sendOptions);
      },
    );
    this.#mixer.setListening(p.id, sends(p.direction));
    if (p.muted) this.#mixer.setMuted(p.id, true);
    if (p.gain !== 1) this.#mixer.setGain(p.id, p.gain);
  }

  #onRtp(p: Participant, packet: RtpPacket): void {
    if (!receives(p.direction)) return;
    if (packet.ssrc !== p.sourceId) {
      p.sourceId = packet.ssrc;
      this.#mixer.setSourceId(p.id, packet.ssrc);
      this.#o.onSourceId?.(p.id, packet.ssrc);
    }
    if (packet.payloadType === p.telephoneEventPt) {
      p.dtmf.receive(packet.timestamp, packet.payload, this.#clock.now());
      return;
    }
    p.input.push(packet);
  }

  #get(id: string): Participant {
    const p = this.#participants.get(id);
    if (!p) throw new AudioConferenceError(`unknown participant ${id}`);
    return p;
  }

  /** Applies a re-negotiation: new remote address, direction (hold/resume), or codec. */
  updateParticipant(id: string, update: AudioParticipantUpdate): void {
    const p = this.#get(id);
    if (update.direction !== undefined && update.direction !== p.direction) {
      p.direction = update.direction;
      this.#mixer.setListening(id, sends(p.direction));
      if (!receives(p.direction)) p.input.reset();
    }
    if (update.telephoneEventPt !== undefined) p.telephoneEventPt = update.telephoneEventPt;
    if (update.audioLevelExtId !== undefined) p.audioLevelExtId = update.audioLevelExtId;
    const codec = update.codec ?? p.codec;
    const clockRate = update.clockRate ?? (update.codec ? codecClockRate(codec) : p.clockRate);
    const codecChanged = codec !== p.codec;
    const encoderChanged = update.encoderOptions !== undefined;
    if (update.payloadType !== undefined) p.payloadType = update.payloadType;
    p.input.update({
      ...(codecChanged ? { codec } : {}),
      ...(clockRate !== p.clockRate ? { clockRate } : {}),
      ...(update.payloadType === undefined ? {} : { payloadType: update.payloadType }),
      ...(update.audioLevelExtId === undefined ? {} : { audioLevelExtId: update.audioLevelExtId }),
    });
    p.codec = codec;
    if (encoderChanged) p.encoderOptions = update.encoderOptions;
    if (codecChanged || encoderChanged) {
      this.#mixer.removeParticipant(id);
      this.#addToMixer(p);
    }
    if (clockRate !== p.clockRate) {
      // A new clock rate is a new RTP stream: new SSRC, sequence and timestamp (RFC 3550 §5.1).
      p.clockRate = clockRate;
      const remote = update.remote ?? p.session.remote;
      const remoteRtcp = update.remoteRtcp ?? p.session.remoteRtcp;
      p.session.close();
      p.session = this.#newSession(p, remote, p.params.rtcpMux === false ? remoteRtcp : undefined);
      p.session.start();
    } else {
      if (update.payloadType !== undefined) p.session.setPayloadType(update.payloadType);
      if (update.remote !== undefined) p.session.setRemote(update.remote, update.remoteRtcp);
    }
  }

  /** Mute by the focus (RFC 4575 `muted-via-focus`). */
  setMuted(id: string, muted: boolean): void {
    const p = this.#get(id);
    p.muted = muted;
    this.#mixer.setMuted(id, muted);
  }

  /** True when the focus muted `id`. */
  isMuted(id: string): boolean {
    return this.#get(id).muted;
  }

  /** Linear gain of what others hear from `id`. */
  setGain(id: string, gain: number): void {
    this.#mixer.setGain(id, gain);
    this.#get(id).gain = gain;
  }

  /** Plays a tone to everyone or to one participant. */
  playTone(tone: ToneName | Int16Array, target?: string): void {
    this.#mixer.playTone(tone, target);
  }

  /** Counters of one participant. */
  participantStats(id: string): AudioParticipantStats {
    const p = this.#get(id);
    const rtp = p.session.stats;
    return {
      codec: p.codec,
      direction: p.direction,
      rtp,
      ...p.input.stats,
      lastRtpAt: rtp.lastRtpAt,
    };
  }

  /** Removes a participant: its session says BYE; its sockets stay with their owner. */
  removeParticipant(id: string, reason?: string): boolean {
    const p = this.#participants.get(id);
    if (!p) return false;
    this.#participants.delete(id);
    this.#mixer.removeParticipant(id);
    p.session.close(reason);
    p.input.close();
    return true;
  }

  /** One 20 ms media tick (see the module documentation). */
  tick(): void {
    if (this.#closed) return;
    for (const p of this.#participants.values()) {
      p.sentThisTick = false;
      if (receives(p.direction)) p.input.feed(this.#mixer, p.id);
    }
    this.#mixer.tick();
    for (const p of this.#participants.values()) {
      if (!p.sentThisTick) p.session.skipFrame(p.clockRate / 50);
    }
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Removes everyone (BYE on each session), closes the mixer and leaves the ticker. */
  close(): void {
    if (this.#closed) return;
    for (const id of [...this.#participants.keys()]) this.removeParticipant(id);
    this.#closed = true;
    this.#unsubscribeTicker?.();
    this.#unsubscribeTicker = undefined;
    this.#unsubscribeSpeaker();
    this.#mixer.close();
  }
}
