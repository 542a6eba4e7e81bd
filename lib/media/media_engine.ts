/**
 * The media facade the conference focus uses. It speaks plain negotiated values — never a
 * SIP message and never SDP text (the SDP layer turns offers into {@link AudioStreamParams}
 * and our {@link LocalAudioEndpoint} into the answer's `c=`/`m=` lines).
 *
 * Life of one participant's audio (RFC 3264 offer/answer around it):
 * 1. `allocateAudioEndpoint()` binds an RTP port from the `audio-port` pool, for the answer;
 * 2. `startAudio(endpointId, conferenceId, params)` joins it to the conference mix once the
 *    answer is sent (RFC 3264 §6: media may flow as soon as the answer is known);
 * 3. `updateAudio(...)` applies a re-INVITE/UPDATE: hold/resume (direction, RFC 3264 §8.4),
 *    a new remote address, a codec change;
 * 4. `stopAudio(endpointId)` sends RTCP BYE and returns the port to the pool.
 * One shared {@link MediaTicker} drives every conference (one 20 ms tick for the server).
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { AudioMixerOptions, MixerTotals } from "./audio_mixer.ts";
import {
  AudioConference,
  type AudioParticipantStats,
  type AudioParticipantUpdate,
  type AudioStreamParams,
} from "./audio_conference.ts";
import type { ConferenceJitterOptions } from "./audio_input.ts";
import { MediaTicker, type MediaTickerStats } from "./media_ticker.ts";
import { type MediaPorts, PortPool } from "./port_pool.ts";
import type { LatchingPolicy } from "./rtp_session.ts";
import type { DtmfDigitEvent } from "./telephone_event.ts";
import type { ToneName } from "./tones.ts";

/** The negotiated stream values {@link MediaEngine.startAudio} takes (defined with the conference). */
export type { AudioStreamParams };

/** Options of {@link MediaEngine}. */
export interface MediaEngineOptions {
  readonly clock: Clock;
  /** Address media sockets bind to (e.g. `0.0.0.0`, `127.0.0.1`). */
  readonly bindAddress: string;
  /** The `audio-port` setting: `0`, `N`, or `A-B`. */
  readonly audioPort: string | number;
  readonly mixer?: AudioMixerOptions;
  readonly jitterBuffer?: ConferenceJitterOptions;
  /** Symmetric RTP policy for every stream (default `follow`). */
  readonly latching?: LatchingPolicy;
  /** RTCP report interval (default 5000 ms). */
  readonly rtcpIntervalMs?: number;
  /** Random source for SSRCs, sequence numbers, RTCP dithering (default Math.random). */
  readonly random?: () => number;
  /** Media tick interval (default 20 ms). */
  readonly tickIntervalMs?: number;
}

/** A bound local endpoint, to be advertised in the SDP answer. */
export interface LocalAudioEndpoint {
  /** Handle for the other calls. */
  readonly id: string;
  /** The bound address (may be a wildcard: the SDP layer picks what to advertise). */
  readonly address: string;
  /** RTP port (RTCP too with rtcp-mux). */
  readonly port: number;
  /** Separate RTCP port (port + 1) when requested. */
  readonly rtcpPort?: number;
}

/** Events of one conference's media, for the focus. */
export interface ConferenceMediaEvents {
  /** A DTMF digit from an endpoint (RFC 4733). */
  readonly onDtmf?: (endpointId: string, event: DtmfDigitEvent) => void;
  /** The dominant speaker changed (RFC 4575 conference-info, video switching). */
  readonly onActiveSpeakerChange?: (endpointId: string | null) => void;
}

/** Statistics of one endpoint. */
export interface AudioEndpointStats {
  readonly endpointId: string;
  readonly port: number;
  readonly conferenceId: string | undefined;
  /** Clock time the endpoint joined its conference. */
  readonly startedAt: number | undefined;
  /** Clock time of the last RTP packet (no-RTP timeout = now − (lastRtpAt ?? startedAt)). */
  readonly lastRtpAt: number | undefined;
  /** Stream details once started. */
  readonly audio: AudioParticipantStats | undefined;
}

/** Thrown for unknown endpoints/conferences or calls in the wrong state. */
export class MediaEngineError extends RangeError {
  override name = "MediaEngineError";
}

interface Endpoint {
  readonly id: string;
  readonly ports: MediaPorts;
  conferenceId: string | undefined;
  startedAt: number | undefined;
}

/** The media facade; see the module documentation. */
export class MediaEngine {
  readonly #o: MediaEngineOptions;
  readonly #pool: PortPool;
  readonly #ticker: MediaTicker;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #conferences = new Map<string, AudioConference>();
  #nextId = 1;
  #closed = false;

  constructor(options: MediaEngineOptions) {
    this.#o = options;
    this.#pool = new PortPool(options.audioPort, { hostname: options.bindAddress });
    this.#ticker = new MediaTicker({
      clock: options.clock,
      ...(options.tickIntervalMs === undefined ? {} : { intervalMs: options.tickIntervalMs }),
    });
  }

  /** The shared tick's counters (tick work time, skipped ticks). */
  get tickerStats(): MediaTickerStats {
    return this.#ticker.stats;
  }

  /** Endpoints allocated and not yet stopped. */
  get endpointCount(): number {
    return this.#endpoints.size;
  }

  /** Conference ids with media. */
  get conferenceIds(): string[] {
    return [...this.#conferences.keys()];
  }

  /**
   * Binds a local RTP port (from the `audio-port` pool) for an SDP answer. Pass
   * `rtcpPort: true` when the offer did not include rtcp-mux. Throws
   * `PortPoolExhaustedError` (a RangeError) when no port is free.
   */
  allocateAudioEndpoint(options: { readonly rtcpPort?: boolean } = {}): LocalAudioEndpoint {
    this.#assertOpen();
    const ports = this.#pool.allocate(options);
    const id = `a${this.#nextId++}`;
    this.#endpoints.set(id, { id, ports, conferenceId: undefined, startedAt: undefined });
    return ports.rtcp
      ? { id, address: ports.rtp.hostname, port: ports.port, rtcpPort: ports.rtcp.port }
      : { id, address: ports.rtp.hostname, port: ports.port };
  }

  /** Creates a conference's audio mix (idempotent: an existing one is kept). */
  createConference(conferenceId: string, events: ConferenceMediaEvents = {}): void {
    this.#assertOpen();
    if (this.#conferences.has(conferenceId)) return;
    const o = this.#o;
    this.#conferences.set(
      conferenceId,
      new AudioConference({
        clock: o.clock,
        ticker: this.#ticker,
        ...(o.mixer ? { mixer: o.mixer } : {}),
        ...(o.jitterBuffer ? { jitterBuffer: o.jitterBuffer } : {}),
        ...(o.rtcpIntervalMs === undefined ? {} : { rtcpIntervalMs: o.rtcpIntervalMs }),
        ...(o.random ? { random: o.random } : {}),
        ...(events.onDtmf ? { onDtmf: events.onDtmf } : {}),
        ...(events.onActiveSpeakerChange
          ? { onActiveSpeakerChange: events.onActiveSpeakerChange }
          : {}),
      }),
    );
  }

  /** True when the conference has media. */
  hasConference(conferenceId: string): boolean {
    return this.#conferences.has(conferenceId);
  }

  #endpoint(endpointId: string): Endpoint {
    const e = this.#endpoints.get(endpointId);
    if (!e) throw new MediaEngineError(`unknown media endpoint ${endpointId}`);
    return e;
  }

  #conference(conferenceId: string): AudioConference {
    const c = this.#conferences.get(conferenceId);
    if (!c) throw new MediaEngineError(`no media for conference ${conferenceId}`);
    return c;
  }

  #joined(endpointId: string): AudioConference {
    const e = this.#endpoint(endpointId);
    if (e.conferenceId === undefined) {
      throw new MediaEngineError(`media endpoint ${endpointId} not started`);
    }
    return this.#conference(e.conferenceId);
  }

  /** Starts an allocated endpoint in a conference with the negotiated parameters. */
  startAudio(endpointId: string, conferenceId: string, params: AudioStreamParams): void {
    const e = this.#endpoint(endpointId);
    if (e.conferenceId !== undefined) {
      throw new MediaEngineError(`media endpoint ${endpointId} already started`);
    }
    const conference = this.#conference(conferenceId);
    conference.addParticipant(endpointId, {
      ...params,
      socket: e.ports.rtp,
      ...(e.ports.rtcp ? { rtcpSocket: e.ports.rtcp } : {}),
      ...(e.ports.rtcp && params.rtcpMux === undefined ? { rtcpMux: false } : {}),
      ...(this.#o.latching ? { latching: this.#o.latching } : {}),
    });
    e.conferenceId = conferenceId;
    e.startedAt = this.#o.clock.now();
  }

  /** Applies a re-negotiation (hold/resume, new remote address, codec change). */
  updateAudio(endpointId: string, update: AudioParticipantUpdate): void {
    this.#joined(endpointId).updateParticipant(endpointId, update);
  }

  /** Mute by the focus (RFC 4575 `muted-via-focus`). */
  setMuted(endpointId: string, muted: boolean): void {
    this.#joined(endpointId).setMuted(endpointId, muted);
  }

  /** True when the focus muted the endpoint. */
  isMuted(endpointId: string): boolean {
    return this.#joined(endpointId).isMuted(endpointId);
  }

  /** Linear gain of what others hear from the endpoint. */
  setGain(endpointId: string, gain: number): void {
    this.#joined(endpointId).setGain(endpointId, gain);
  }

  /** Plays a tone into a conference, or to one endpoint of it. */
  playTone(conferenceId: string, tone: ToneName | Int16Array, endpointId?: string): void {
    this.#conference(conferenceId).playTone(tone, endpointId);
  }

  /** The conference's dominant speaker (an endpoint id), or null. */
  activeSpeaker(conferenceId: string): string | null {
    return this.#conference(conferenceId).activeSpeaker;
  }

  /** Mixer totals of a conference (encodes, sends). */
  mixerTotals(conferenceId: string): MixerTotals {
    return this.#conference(conferenceId).mixer.totals;
  }

  /** Statistics of an endpoint, or undefined when unknown. */
  audioStats(endpointId: string): AudioEndpointStats | undefined {
    const e = this.#endpoints.get(endpointId);
    if (!e) return undefined;
    const conference = e.conferenceId === undefined
      ? undefined
      : this.#conferences.get(e.conferenceId);
    const audio = conference?.participantStats(endpointId);
    return {
      endpointId,
      port: e.ports.port,
      conferenceId: e.conferenceId,
      startedAt: e.startedAt,
      lastRtpAt: audio?.lastRtpAt,
      audio,
    };
  }

  /**
   * Stops an endpoint: leaves its conference (RTCP BYE) and returns its port to the pool.
   * Also releases an endpoint that was allocated but never started. Unknown ids are ignored.
   */
  async stopAudio(endpointId: string, reason?: string): Promise<void> {
    const e = this.#endpoints.get(endpointId);
    if (!e) return;
    this.#endpoints.delete(endpointId);
    if (e.conferenceId !== undefined) {
      this.#conferences.get(e.conferenceId)?.removeParticipant(endpointId, reason);
    }
    await this.#pool.release(e.ports);
  }

  /** Stops every endpoint of a conference and closes its mix. */
  async closeConference(conferenceId: string): Promise<void> {
    const conference = this.#conferences.get(conferenceId);
    if (!conference) return;
    const ids = [...this.#endpoints.values()]
      .filter((e) => e.conferenceId === conferenceId)
      .map((e) => e.id);
    await Promise.all(ids.map((id) => this.stopAudio(id)));
    conference.close();
    this.#conferences.delete(conferenceId);
  }

  /** Closes every conference and releases every port (the ticker stops with them). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#conferences.keys()].map((id) => this.closeConference(id)));
    await Promise.all([...this.#endpoints.keys()].map((id) => this.stopAudio(id)));
  }

  #assertOpen(): void {
    if (this.#closed) throw new MediaEngineError("media engine closed");
  }
}
