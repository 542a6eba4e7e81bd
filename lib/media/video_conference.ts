/**
 * One conference's video: an RTP session per video m-line of each participant, glued to the
 * switching {@link VideoForwarder} (RFC 7667 §3.7 media-switching mixer; no decoding).
 *
 * Each stream has its own UDP socket (like audio) and `RtpSession`: the session validates and
 * latches incoming RTP (RFC 3550, RFC 4961), keeps reception statistics, sends our RR/SR and
 * SDES, and BYE on removal. Incoming packets go to the forwarder as they arrive; the
 * forwarder's rewritten packets leave through the receiving stream's own session (so our
 * sender reports describe what we really sent). RTCP feedback is read from every stream:
 * PLI/FIR from a receiver are passed on to the source it views, generic NACKs are answered
 * from the forwarder's buffer. Key frames are requested with PLI (RFC 4585 §6.3.1) when the
 * source negotiated `nack pli`, else with FIR (RFC 5104 §4.3.1) when it negotiated `ccm fir`,
 * else with a PLI anyway (a sender that does not know it ignores it) and, for such a source,
 * {@link VideoConferenceOptions.onKeyFrameBySignalling} so that the owner can ask through
 * SIP instead (RFC 5168 `picture_fast_update`; Linphone negotiates no RTCP feedback on a video
 * line it adds by re-INVITE after an audio-only answer, and then sends key frames only on
 * request).
 *
 * `direction` is ours, as in our SDP (RFC 3264 §6.1): `sendrecv`/`recvonly` make the stream a
 * source, `sendrecv`/`sendonly` a receiver.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { MediaDirection } from "./audio_conference.ts";
import type { RtcpPacket } from "./rtcp.ts";
import { firPacket, pliPacket, readFeedback } from "./rtcp_feedback.ts";
import {
  type LatchingPolicy,
  RtpSession,
  type RtpSessionOptions,
  type RtpSessionStats,
} from "./rtp_session.ts";
import {
  type ForwardedStreamState,
  VideoForwarder,
  type VideoForwarderOptions,
  type VideoSourceState,
} from "./video_forwarder.ts";
import type { UdpAddress, UdpSocket } from "./udp_socket.ts";

/** RTCP feedback the remote negotiated for the stream (RFC 4585 §4.2, RFC 5104 §7.1). */
export interface VideoFeedback {
  readonly nack: boolean;
  readonly pli: boolean;
  readonly fir: boolean;
}

/** Negotiated parameters of one video stream (plain values from the SDP layer). */
export interface VideoStreamParams {
  /** The participant the stream belongs to (the id the audio mix reports as speaker). */
  readonly owner: string;
  /** The peer's RTP address; `0.0.0.0`/absent: wait to latch. */
  readonly remote?: UdpAddress;
  readonly remoteRtcp?: UdpAddress;
  /** RTP/RTCP multiplexing agreed (RFC 5761). Default true. */
  readonly rtcpMux?: boolean;
  /** The receiver's payload type number for the codec (RFC 3264 §6.1: the offerer's). */
  readonly payloadType: number;
  /** Default 90000. */
  readonly clockRate?: number;
  /** Our direction (RFC 3264 §6.1). */
  readonly direction: MediaDirection;
  readonly feedback: VideoFeedback;
  /** Our SSRC for what we send on this stream (announced with `a=ssrc`). */
  readonly ssrc?: number;
  readonly cname?: string;
  /** The source stream this receiver selected (`a=label`), if any. */
  readonly pin?: string;
}

/** A stream's parameters plus its sockets (bound by the caller, not closed here). */
export interface VideoStreamSetup extends VideoStreamParams {
  readonly socket: UdpSocket;
  readonly rtcpSocket?: UdpSocket;
  readonly latching?: LatchingPolicy;
}

/** What a re-INVITE/UPDATE can change. */
export interface VideoStreamUpdate {
  readonly remote?: UdpAddress;
  readonly remoteRtcp?: UdpAddress;
  readonly direction?: MediaDirection;
  readonly payloadType?: number;
  readonly feedback?: VideoFeedback;
  /** `null` unpins. */
  readonly pin?: string | null;
}

/** Options of {@link VideoConference}. */
export interface VideoConferenceOptions {
  readonly clock: Clock;
  readonly rtcpIntervalMs?: number;
  readonly random?: () => number;
  /** Forwarder tuning (key-frame wait, request interval, NACK buffer). */
  readonly forwarder?: Omit<VideoForwarderOptions, "output" | "random">;
  /** The SSRC a source stream sends with became known or changed (conference-info src-id). */
  readonly onSourceSsrc?: (streamId: string, ssrc: number) => void;
  /**
   * A key frame is wanted from a source stream that negotiated neither PLI nor FIR: the RTCP
   * request most likely goes unheard, ask through signalling (RFC 5168 SIP INFO).
   */
  readonly onKeyFrameBySignalling?: (streamId: string) => void;
}

/** Counters of one video stream. */
export interface VideoStreamStats {
  readonly owner: string;
  readonly direction: MediaDirection;
  readonly rtp: RtpSessionStats;
  readonly forwarded: ForwardedStreamState | undefined;
  readonly source: VideoSourceState | undefined;
}

/** Thrown for unknown or duplicate streams. */
export class VideoConferenceError extends RangeError {
  override name = "VideoConferenceError";
}

interface Stream {
  readonly id: string;
  params: VideoStreamParams;
  readonly session: RtpSession;
  remoteSsrc: number | undefined;
  firSeq: number;
}

function receives(direction: MediaDirection): boolean {
  return direction === "sendrecv" || direction === "recvonly";
}

function sends(direction: MediaDirection): boolean {
  return direction === "sendrecv" || direction === "sendonly";
}

/** One conference's video; see the module documentation. */
export class VideoConference {
  readonly #o: VideoConferenceOptions;
  readonly #clock: Clock;
  readonly #forwarder: VideoForwarder;
  readonly #streams = new Map<string, Stream>();
  #closed = false;

  constructor(options: VideoConferenceOptions) {
    this.#o = options;
    this.#clock = options.clock;
    this.#forwarder = new VideoForwarder({
      ...(options.forwarder ?? {}),
      ...(options.random ? { random: options.random } : {}),
      output: {
        send: (id, packet, timestamp, size) => {
          this.#streams.get(id)?.session.sendPacket(packet, timestamp, size);
        },
        requestKeyFrame: (id) => this.#requestKeyFrame(id),
      },
    });
  }

  /** Stream ids. */
  get streamIds(): string[] {
    return [...this.#streams.keys()];
  }

  /** The forwarder (for state queries in tests and statistics). */
  get forwarder(): VideoForwarder {
    return this.#forwarder;
  }

  /** Adds a stream and starts its RTP session; returns our SSRC on it. */
  addStream(id: string, setup: VideoStreamSetup): number {
    if (this.#closed) throw new VideoConferenceError("conference closed");
    if (this.#streams.has(id)) throw new VideoConferenceError(`video stream ${id} exists`);
    const o = this.#o;
    const sessionOptions: RtpSessionOptions = {
      socket: setup.socket,
      ...(setup.rtcpSocket ? { rtcpSocket: setup.rtcpSocket } : {}),
      clock: this.#clock,
      clockRate: setup.clockRate ?? 90000,
      payloadType: setup.payloadType,
      ...(setup.remote ? { remote: setup.remote } : {}),
      ...(setup.remoteRtcp ? { remoteRtcp: setup.remoteRtcp } : {}),
      rtcpMux: setup.rtcpMux ?? true,
      ...(setup.latching ? { latching: setup.latching } : {}),
      ...(setup.ssrc === undefined ? {} : { ssrc: setup.ssrc }),
      ...(setup.cname === undefined ? {} : { cname: setup.cname }),
      ...(o.rtcpIntervalMs === undefined ? {} : { rtcpIntervalMs: o.rtcpIntervalMs }),
      ...(o.random ? { random: o.random } : {}),
      onRtp: (packet) => {
        const stream = this.#streams.get(id);
        if (!stream || !receives(stream.params.direction)) return;
        if (stream.remoteSsrc !== packet.ssrc) {
          stream.remoteSsrc = packet.ssrc;
          o.onSourceSsrc?.(id, packet.ssrc);
        }
        this.#forwarder.onPacket(id, packet, this.#clock.now());
      },
      onRtcp: (packets) => this.#onRtcp(id, packets),
    };
    const session = new RtpSession(sessionOptions);
    const stream: Stream = {
      id,
      params: setup,
      session,
      remoteSsrc: undefined,
      firSeq: 0,
    };
    this.#streams.set(id, stream);
    session.start();
    this.#applyRole(stream);
    return session.ssrc;
  }

  #applyRole(stream: Stream): void {
    const p = stream.params;
    this.#forwarder.setStream(stream.id, {
      owner: p.owner,
      source: receives(p.direction),
      ...(sends(p.direction)
        ? { receiver: { ssrc: stream.session.ssrc, payloadType: p.payloadType } }
        : {}),
      ...(p.pin === undefined ? {} : { pin: p.pin }),
    }, this.#clock.now());
  }

  /** Applies a re-negotiation (new address, direction, payload type, selection). */
  updateStream(id: string, update: VideoStreamUpdate): void {
    const stream = this.#stream(id);
    const { pin, ...rest } = update;
    const next: VideoStreamParams = { ...stream.params, ...rest };
    stream.params = pin === null
      ? (({ pin: _drop, ...p }) => p)(next)
      : pin === undefined
      ? next
      : { ...next, pin };
    if (update.remote !== undefined) stream.session.setRemote(update.remote, update.remoteRtcp);
    if (update.payloadType !== undefined) stream.session.setPayloadType(update.payloadType);
    this.#applyRole(stream);
  }

  /** Removes a stream: RTCP BYE, out of the forwarder. Unknown ids are ignored. */
  removeStream(id: string, reason?: string): void {
    const stream = this.#streams.get(id);
    if (!stream) return;
    this.#streams.delete(id);
    this.#forwarder.removeStream(id, this.#clock.now());
    stream.session.close(reason);
  }

  /** The dominant speaker changed (an owner id, as the audio mix reports it). */
  setActiveSpeaker(owner: string | null): void {
    this.#forwarder.setActiveSpeaker(owner, this.#clock.now());
  }

  /** The SSRC a stream's participant sends with, once seen. */
  remoteSsrc(id: string): number | undefined {
    return this.#streams.get(id)?.remoteSsrc;
  }

  /** Counters of a stream. */
  streamStats(id: string): VideoStreamStats {
    const s = this.#stream(id);
    return {
      owner: s.params.owner,
      direction: s.params.direction,
      rtp: s.session.stats,
      forwarded: this.#forwarder.receiverState(id),
      source: this.#forwarder.sourceState(id),
    };
  }

  #stream(id: string): Stream {
    const s = this.#streams.get(id);
    if (!s) throw new VideoConferenceError(`unknown video stream ${id}`);
    return s;
  }

  #requestKeyFrame(id: string): void {
    const stream = this.#streams.get(id);
    if (!stream) return;
    const fb = stream.params.feedback;
    if (!fb.pli && !fb.fir) this.#o.onKeyFrameBySignalling?.(id);
    const media = stream.remoteSsrc;
    if (media === undefined) return;
    const session = stream.session;
    if (!fb.pli && fb.fir) {
      stream.firSeq = (stream.firSeq + 1) & 0xff;
      session.sendFeedback([firPacket(session.ssrc, media, stream.firSeq)]);
    } else {
      session.sendFeedback([pliPacket(session.ssrc, media)]);
    }
  }

  #onRtcp(id: string, packets: readonly RtcpPacket[]): void {
    const now = this.#clock.now();
    for (const packet of packets) {
      const fb = readFeedback(packet);
      if (fb === undefined) continue;
      if (fb.kind === "nack") this.#forwarder.onNack(id, fb.lost);
      else this.#forwarder.onKeyFrameRequest(id, now);
    }
  }

  /** Closes every stream (RTCP BYE); sockets stay with their owner. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#streams.keys()]) this.removeStream(id);
  }
}
