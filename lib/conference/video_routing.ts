/**
 * Video of one conference as the focus sees it: which video m-lines each call has, their
 * ports, labels (RFC 4574) and SSRCs, the selection a client makes with `a=label`, the
 * conference-info `media` elements (RFC 4575 §5.6), and when the conference's media change
 * enough that other participants must be re-INVITEd (RFC 3264 §8).
 *
 * Model: every accepted video m-line of a call is one stream of the {@link VideoConference}
 * (its own UDP port from the `video-port` pool). A line on which the participant sends
 * (its direction sendrecv/sendonly) is a **source** and gets a label — the offered one echoed,
 * else ours (`vid-<call>-<line>`) — which conference-info advertises with the participant's
 * SSRC as `src-id`. A line the participant only receives on (`recvonly`) and that carries
 * the label of another participant's source **pins** that source; unaware clients (no label,
 * or a sendrecv line) get the active speaker. `a=content:thumbnail` lines are served the same
 * single stream (there is no simulcast to pick a smaller layer from).
 *
 * "The conference has video" = at least one participant sends video to the focus. When that
 * flips — the first camera arrives (a join with video, or a re-INVITE/UPDATE adding it), or
 * the last one goes — the focus re-INVITEs the other calls whose session does not reflect it.
 * Policy, chosen for what a Linphone user expects: a call is re-INVITEd to add video only if
 * its device has shown it can do video — one of its offers had an `m=video` line listing VP8,
 * even with port 0 (RFC 3264 §5.1: a disabled line still lists the formats the offerer
 * supports; Linphone keeps `m=video 0` after video is turned off). A device that never
 * offered video (Linphone with video disabled, an audio-only phone) is not disturbed: it would
 * only answer port 0, or, with auto-accept, open a video window the user never asked for.
 * When the last source goes, calls still holding a (receive-only) video line are re-INVITEd
 * with that line at port 0, so the clients close their now-empty video views. The call whose
 * own offer caused the change is answered, not re-INVITEd.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { AvailableMediaSnapshot, MediaSnapshot } from "../events/conference_info.ts";
import type { MediaPorts, PortPool } from "../media/port_pool.ts";
import { VideoConference } from "../media/video_conference.ts";
import type {
  LineLayout,
  NegotiatedVideo,
  OfferedVideoLine,
  VideoAllocation,
  VideoCaps,
  VideoCodecName,
} from "./media_negotiation.ts";

/** What {@link VideoRouting} needs from its conference. */
export interface VideoRoutingOptions {
  readonly conferenceId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The `video-port` pool. */
  readonly ports: PortPool;
  /** Codecs the conference forwards; empty turns video off (every video line gets port 0). */
  readonly codecs: readonly VideoCodecName[];
  readonly random?: () => number;
  /** Something conference-info shows changed (labels, SSRCs, the conference's media). */
  readonly onChange: () => void;
  /**
   * A key frame is wanted from this call's video, which negotiated no RTCP feedback (see
   * `VideoConferenceOptions.onKeyFrameBySignalling`).
   */
  readonly onKeyFrameBySignalling?: (callId: string) => void;
}

interface VideoLine {
  readonly index: number;
  readonly ports: MediaPorts;
  readonly ssrc: number;
  label: string;
  /** The negotiated stream once started. */
  negotiated: NegotiatedVideo | undefined;
  /** The label of another participant's source this (receive-only) line asked for. */
  selects: string | undefined;
  /** The SSRC the participant sends with (SDP `a=ssrc`, then RTP). */
  remoteSsrc: number | undefined;
}

interface CallVideo {
  readonly callId: string;
  readonly lines: Map<number, VideoLine>;
  /** Allocated for an offer or answer in progress; confirmed or released by `apply`. */
  readonly reserved: Map<number, VideoLine>;
  /** The device offered an m=video line with a codec of ours at least once. */
  capable: boolean;
}

function participantSends(direction: NegotiatedVideo["direction"]): boolean {
  // Our direction receives ⇔ the participant sends.
  return direction === "sendrecv" || direction === "recvonly";
}

/** Video lines, streams and re-offer policy of one conference; see the module docs. */
export class VideoRouting {
  readonly #o: VideoRoutingOptions;
  readonly #calls = new Map<string, CallVideo>();
  #media: VideoConference | undefined;
  #closed = false;

  constructor(options: VideoRoutingOptions) {
    this.#o = options;
  }

  /** True when the conference may carry video at all (a codec is configured). */
  get enabled(): boolean {
    return this.#o.codecs.length > 0 && !this.#closed;
  }

  /** True when at least one participant sends video (RFC 4575 available-media lists video). */
  get hasVideo(): boolean {
    for (const call of this.#calls.values()) {
      for (const line of call.lines.values()) {
        if (line.negotiated && participantSends(line.negotiated.direction)) return true;
      }
    }
    return false;
  }

  /**
   * RFC 4575 §5.3.4 available-media for the configured types: audio (label 1, liblinphone's
   * numbering), video (2) only while a participant sends video, text (3).
   */
  availableMedia(configured: readonly string[]): AvailableMediaSnapshot[] {
    const labels: Record<string, string> = { audio: "1", video: "2", text: "3" };
    return configured
      .filter((type) => type !== "video" || this.hasVideo)
      .map((type, i) => ({ label: labels[type] ?? String(4 + i), type, status: "sendrecv" }));
  }

  /** The media side, created with the first stream (for statistics and tests). */
  get media(): VideoConference | undefined {
    return this.#media;
  }

  #call(callId: string): CallVideo {
    let call = this.#calls.get(callId);
    if (!call) {
      call = { callId, lines: new Map(), reserved: new Map(), capable: false };
      this.#calls.set(callId, call);
    }
    return call;
  }

  /** Records what an offer of the call's device said about video support. */
  noteOffer(callId: string, lines: readonly { type: string; codecs: readonly string[] }[]): void {
    if (!this.enabled) return;
    const codecs = this.#o.codecs;
    if (
      lines.some((l) => l.type === "video" && l.codecs.some((c) => codecs.includes(c as never)))
    ) {
      this.#call(callId).capable = true;
    }
  }

  #lineFor(call: CallVideo, index: number): VideoLine | undefined {
    const existing = call.lines.get(index) ?? call.reserved.get(index);
    if (existing) return existing;
    let ports: MediaPorts;
    try {
      ports = this.#o.ports.allocate({ rtcpPort: true });
    } catch (err) {
      this.#o.logger.warn("no video port", {
        conference: this.#o.conferenceId,
        error: err as Error,
      });
      return undefined;
    }
    const random = this.#o.random ?? Math.random;
    const line: VideoLine = {
      index,
      ports,
      ssrc: Math.floor(random() * 0x1_0000_0000) >>> 0,
      label: `vid-${call.callId}-${index}`,
      negotiated: undefined,
      selects: undefined,
      remoteSsrc: undefined,
    };
    call.reserved.set(index, line);
    return line;
  }

  #allocation(line: VideoLine, label: string | undefined): VideoAllocation {
    return {
      port: line.ports.port,
      ssrc: line.ssrc,
      cname: `conclave-video`,
      label: label ?? line.label,
    };
  }

  /**
   * Video capabilities for answering the call's offer, or for our own offer to it: with
   * `offerVideo` the offer carries one video line, at the call's current video slot, else the
   * first port-0 video slot of `layout`, else appended (RFC 3264 §8). Undefined when video is
   * off for this conference.
   */
  caps(
    callId: string,
    offer?: { readonly layout: readonly LineLayout[]; readonly offerVideo: boolean },
  ): VideoCaps | undefined {
    if (!this.enabled) return undefined;
    const call = this.#call(callId);
    let offerMap: Map<number, VideoAllocation> | undefined;
    if (offer) {
      offerMap = new Map();
      if (offer.offerVideo) {
        const current = [...call.lines.keys()][0];
        const slot = current ??
          offer.layout.find((l) => l.type === "video" && l.port === 0)?.index ??
          Math.max(offer.layout.length, 1);
        const line = this.#lineFor(call, slot);
        if (line) offerMap.set(slot, this.#allocation(line, undefined));
      }
    }
    return {
      codecs: this.#o.codecs,
      allocate: (offered: OfferedVideoLine) => {
        const line = this.#lineFor(call, offered.index);
        if (!line) return undefined;
        // A receive-only line naming a label selects that stream; the label is echoed.
        line.selects = offered.remoteDirection === "recvonly" ? offered.label : undefined;
        if (offered.label !== undefined && offered.remoteDirection !== "recvonly") {
          line.label = offered.label;
        }
        return this.#allocation(line, offered.label);
      },
      ...(offerMap ? { offer: offerMap } : {}),
    };
  }

  /**
   * Applies the outcome of an offer/answer exchange for the call: starts, updates and stops
   * its video streams and releases what was reserved but not used. Returns true when the
   * conference's media changed ({@link hasVideo} flipped). The caller republishes.
   */
  apply(callId: string, negotiated: readonly NegotiatedVideo[]): boolean {
    const before = this.hasVideo;
    const call = this.#call(callId);
    if (negotiated.length > 0) call.capable = true;
    const keep = new Set<number>();
    for (const n of negotiated) {
      const line = call.lines.get(n.index) ?? call.reserved.get(n.index);
      if (!line || line.ports.port !== n.port) continue;
      call.reserved.delete(n.index);
      call.lines.set(n.index, line);
      keep.add(n.index);
      if (n.label !== undefined && line.selects === undefined && n.remoteDirection !== "recvonly") {
        line.label = n.label;
      }
      line.remoteSsrc = n.ssrcs[0] ?? line.remoteSsrc;
      this.#startOrUpdate(callId, line, n);
    }
    for (const [index, line] of [...call.lines]) {
      if (keep.has(index)) continue;
      call.lines.delete(index);
      this.#stopLine(callId, line);
    }
    this.abandon(callId);
    this.#resolvePins();
    return before !== this.hasVideo;
  }

  #streamId(callId: string, line: VideoLine): string {
    return `${callId}:${line.index}`;
  }

  #startOrUpdate(callId: string, line: VideoLine, n: NegotiatedVideo): void {
    const id = this.#streamId(callId, line);
    const media = this.#media ??= new VideoConference({
      clock: this.#o.clock,
      ...(this.#o.random ? { random: this.#o.random } : {}),
      onSourceSsrc: (streamId, ssrc) => this.#onSourceSsrc(streamId, ssrc),
      onKeyFrameBySignalling: (streamId) =>
        this.#o.onKeyFrameBySignalling?.(streamId.slice(0, streamId.lastIndexOf(":"))),
    });
    const had = line.negotiated !== undefined;
    line.negotiated = n;
    if (!had) {
      media.addStream(id, {
        owner: callId,
        socket: line.ports.rtp,
        ...(line.ports.rtcp ? { rtcpSocket: line.ports.rtcp } : {}),
        remote: n.remote,
        ...(n.remoteRtcp ? { remoteRtcp: n.remoteRtcp } : {}),
        rtcpMux: n.rtcpMux,
        payloadType: n.payloadType,
        clockRate: n.clockRate,
        direction: n.direction,
        feedback: n.feedback,
        ssrc: line.ssrc,
        cname: "conclave-video",
      });
    } else {
      media.updateStream(id, {
        remote: n.remote,
        ...(n.remoteRtcp ? { remoteRtcp: n.remoteRtcp } : {}),
        direction: n.direction,
        payloadType: n.payloadType,
        feedback: n.feedback,
      });
    }
  }

  #stopLine(callId: string, line: VideoLine): void {
    if (line.negotiated) this.#media?.removeStream(this.#streamId(callId, line));
    line.negotiated = undefined;
    void this.#o.ports.release(line.ports);
  }

  #onSourceSsrc(streamId: string, ssrc: number): void {
    const [callId, index] = streamId.split(":");
    const line = this.#calls.get(callId ?? "")?.lines.get(Number(index));
    if (!line || line.remoteSsrc === ssrc) return;
    line.remoteSsrc = ssrc;
    this.#o.onChange();
  }

  /** Points every selecting line at the source now carrying its label (or none). */
  #resolvePins(): void {
    const media = this.#media;
    if (!media) return;
    const sources = new Map<string, string>();
    for (const call of this.#calls.values()) {
      for (const line of call.lines.values()) {
        if (line.negotiated && participantSends(line.negotiated.direction)) {
          sources.set(line.label, this.#streamId(call.callId, line));
        }
      }
    }
    for (const call of this.#calls.values()) {
      for (const line of call.lines.values()) {
        if (!line.negotiated) continue;
        const pin = line.selects === undefined ? undefined : sources.get(line.selects);
        media.forwarder.pin(this.#streamId(call.callId, line), pin, this.#o.clock.now());
      }
    }
  }

  /** Releases ports reserved for an offer or answer that did not go through. */
  abandon(callId: string): void {
    const call = this.#calls.get(callId);
    if (!call) return;
    for (const line of call.reserved.values()) void this.#o.ports.release(line.ports);
    call.reserved.clear();
  }

  /**
   * True when the call's session does not reflect the conference's media (see the module
   * documentation for the policy).
   */
  needsReoffer(callId: string): boolean {
    if (!this.enabled) return false;
    const call = this.#calls.get(callId);
    const active = call !== undefined && call.lines.size > 0;
    if (this.hasVideo) return (call?.capable ?? false) && !active;
    return active;
  }

  /** The dominant speaker changed (a call id). */
  setActiveSpeaker(callId: string | null): void {
    this.#media?.setActiveSpeaker(callId);
  }

  /**
   * RFC 4575 `media` elements of the call's video lines: id 2 for the first (liblinphone's
   * numbering: 1 audio, 2 video, 3 text), 4 and up for more; the label a client puts in its
   * own `a=label` to pick the stream, `src-id` the SSRC the participant sends with, status our
   * direction. A line that selects someone else's stream shows no label of its own.
   */
  mediaOf(callId: string): MediaSnapshot[] {
    const call = this.#calls.get(callId);
    if (!call) return [];
    const out: MediaSnapshot[] = [];
    const lines = [...call.lines.values()].sort((a, b) => a.index - b.index);
    for (const [k, line] of lines.entries()) {
      const n = line.negotiated;
      if (!n) continue;
      const sends = participantSends(n.direction);
      out.push({
        id: k === 0 ? "2" : String(3 + k),
        type: "video",
        ...(line.selects === undefined ? { label: line.label } : {}),
        ...(sends && line.remoteSsrc !== undefined ? { srcId: String(line.remoteSsrc) } : {}),
        status: n.direction,
        ...(n.content === "thumbnail" || n.content === "slides"
          ? { streamContent: n.content }
          : {}),
      });
    }
    return out;
  }

  /** The call is gone: its streams stop, its ports return to the pool. */
  dropCall(callId: string): boolean {
    const call = this.#calls.get(callId);
    if (!call) return false;
    const before = this.hasVideo;
    this.abandon(callId);
    for (const line of call.lines.values()) this.#stopLine(callId, line);
    this.#calls.delete(callId);
    this.#resolvePins();
    return before !== this.hasVideo;
  }

  /** Closes every stream and releases every port. */
  close(): void {
    if (this.#closed) return;
    for (const callId of [...this.#calls.keys()]) this.dropCall(callId);
    this.#media?.close();
    this.#media = undefined;
    this.#closed = true;
  }
}
