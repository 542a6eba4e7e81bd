/**
 * The media of one conference as the focus drives it: the audio mix (RFC 7667 §3.6
 * media-mixing mixer, started with the first call that has audio), the video routing (RFC 7667
 * §3.7 media-switching SFU, video_routing.ts), the local capabilities written in our SDP
 * (RFC 3264 §6), and the re-INVITEs sent to other calls when the conference's media change
 * (RFC 3264 §8, media_reoffer.ts). The conference owns calls and roster; this owns what flows.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { AvailableMediaSnapshot, MediaSnapshot } from "../events/conference_info.ts";
import { AudioConference } from "../media/audio_conference.ts";
import type { MediaTicker } from "../media/media_ticker.ts";
import type { PortPool } from "../media/port_pool.ts";
import type { DtmfDigitEvent } from "../media/telephone_event.ts";
import type { ToneName } from "../media/tones.ts";
import type { VideoConference } from "../media/video_conference.ts";
import { type Call, endpointMediaOf, mixParticipantOf, mixUpdateOf } from "./call.ts";
import { KeyFrameInfo } from "./key_frame_info.ts";
import type {
  LineLayout,
  LocalMediaCaps,
  NegotiatedVideo,
  Negotiator,
  VideoCodecName,
} from "./media_negotiation.ts";
import { type ReofferCall, reofferCall, type ReofferHost } from "./media_reoffer.ts";
import { VideoRouting } from "./video_routing.ts";

/** Media settings and services of a conference (part of the focus's ConferenceServices). */
export interface ConferenceMediaServices {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly ports: PortPool;
  readonly ticker: MediaTicker;
  readonly negotiator: Negotiator;
  readonly mediaAddress: string;
  readonly audioCodecs: LocalMediaCaps["audioCodecs"];
  /** The `video-port` pool (default: the audio pool). */
  readonly videoPorts?: PortPool;
  /** Video codecs the SFU forwards; empty or absent: video m-lines get port 0. */
  readonly videoCodecs?: readonly VideoCodecName[];
  readonly maxSpeakers: number;
  /** Join/leave/alone tones mixed in (config `announcements`). */
  readonly announcements: boolean;
}

/** What {@link ConferenceMedia} needs from its conference. */
export interface ConferenceMediaHost {
  readonly conferenceId: string;
  /** Media types the conference was created with (RFC 4575 `available-media`). */
  readonly mediaTypes: readonly string[];
  /** The live calls. */
  calls(): Iterable<Call>;
  callById(id: string): Call | undefined;
  /** False once the conference ends or the server shuts down: no more re-INVITEs. */
  active(): boolean;
  /** A DTMF digit from a call (RFC 4733). */
  onDigit(call: Call, event: DtmfDigitEvent): void;
  /** A call's negotiated media changed: its endpoint's media/status must be rebuilt. */
  refreshDevice(call: Call): void;
  /** Media shown in conference-info changed for several calls (labels, SSRCs, video). */
  refreshAll(): void;
  /** Publish the conference state (a partial notification). */
  publish(): void;
}

/** The audio mix and video routing of one conference; see the module documentation. */
export class ConferenceMedia {
  readonly #s: ConferenceMediaServices;
  readonly #host: ConferenceMediaHost;
  readonly #video: VideoRouting;
  readonly #keyFrameInfo: KeyFrameInfo;
  #audio: AudioConference | undefined;

  constructor(services: ConferenceMediaServices, host: ConferenceMediaHost) {
    this.#s = services;
    this.#host = host;
    this.#keyFrameInfo = new KeyFrameInfo(services.clock, services.logger);
    this.#video = new VideoRouting({
      conferenceId: host.conferenceId,
      clock: services.clock,
      logger: services.logger,
      ports: services.videoPorts ?? services.ports,
      codecs: host.mediaTypes.includes("video") ? services.videoCodecs ?? [] : [],
      onChange: () => host.refreshAll(),
      onKeyFrameBySignalling: (callId) =>
        this.#keyFrameInfo.request(callId, () => host.callById(callId)?.session),
    });
  }

  /** The conference's video streams and forwarder, once a video line started. */
  get videoMedia(): VideoConference | undefined {
    return this.#video.media;
  }

  /** RFC 5168 key-frame INFOs sent to sources without RTCP feedback. */
  get keyFrameInfosSent(): number {
    return this.#keyFrameInfo.sent;
  }

  /** RFC 4575 `available-media` now. */
  availableMedia(): AvailableMediaSnapshot[] {
    return this.#video.availableMedia(this.#host.mediaTypes);
  }

  /** Our capabilities for an answer, or for an offer laid out like `offer.layout`. */
  caps(
    port: number,
    callId: string,
    offer?: { readonly layout: readonly LineLayout[]; readonly offerVideo: boolean },
  ): LocalMediaCaps {
    const video = this.#video.caps(callId, offer);
    return {
      address: this.#s.mediaAddress,
      audioCodecs: this.#s.audioCodecs,
      audioPort: port,
      ...(video ? { video } : {}),
    };
  }

  /** Our capabilities for the offer of a dial-out. */
  dialOutCaps(port: number, callId: string): LocalMediaCaps {
    return this.caps(port, callId, { layout: [], offerVideo: this.#video.hasVideo });
  }

  /** Records the m-lines of an offer before answering it (video capability, labels). */
  noteOffer(callId: string, offer: string): void {
    this.#video.noteOffer(callId, this.#s.negotiator.mediaLines(offer));
  }

  /** An offer of the call was refused or never answered: forget what it reserved. */
  abandon(callId: string): void {
    this.#video.abandon(callId);
  }

  /**
   * Applies a call's negotiated media (audio into the mix, video lines into the SFU).
   * Returns whether the conference's media changed (see {@link reofferOthers}).
   */
  apply(call: Call, video: readonly NegotiatedVideo[]): boolean {
    this.#updateAudio(call);
    return this.#video.apply(call.id, video);
  }

  /** The call's RFC 4575 `media` elements (audio with its `src-id`, then video). */
  mediaOf(call: Call): MediaSnapshot[] {
    return endpointMediaOf(call, this.#video.mediaOf(call.id));
  }

  /**
   * Clock time of the call's last RTP packet: undefined when none came yet, null when the
   * call is not in a mix (nothing to check).
   */
  lastRtpAt(call: Call): number | undefined | null {
    if (!this.#audio) return null;
    try {
      return this.#audio.participantStats(call.id).lastRtpAt;
    } catch {
      return null;
    }
  }

  /** Mutes a call in the mix; false when there is no mix. */
  setMuted(call: Call, muted: boolean): boolean {
    if (!this.#audio) return false;
    this.#audio.setMuted(call.id, muted);
    return true;
  }

  /** Plays an announcement tone to everyone, when announcements are on (config). */
  playTone(tone: ToneName): void {
    if (this.#s.announcements) this.#audio?.playTone(tone);
  }

  /**
   * A call is gone: its media leave the mix and the SFU; when that changes the conference's
   * media, the others are re-INVITEd.
   */
  dropCall(call: Call): void {
    this.#keyFrameInfo.forget(call.id);
    if (this.#video.dropCall(call.id)) this.reofferOthers(call);
    if (this.#audio?.participantIds.includes(call.id)) this.#audio.removeParticipant(call.id);
  }

  /** Stops the mix and the SFU (end of the conference or shutdown). */
  close(): void {
    this.#audio?.close();
    this.#audio = undefined;
    this.#video.close();
  }

  /** The conference's media changed: re-INVITE the calls that do not reflect it yet. */
  reofferOthers(except: ReofferCall): void {
    if (!this.#host.active()) return;
    for (const call of this.#host.calls()) {
      if (call !== except && this.#video.needsReoffer(call.id)) {
        void reofferCall(this.#reofferHost(), call);
      }
    }
  }

  #updateAudio(call: Call): void {
    const a = call.audio;
    if (!a) return;
    if (this.#audio?.participantIds.includes(call.id)) {
      this.#audio.updateParticipant(call.id, mixUpdateOf(a));
    } else {
      this.#startAudio(call);
    }
  }

  #startAudio(call: Call): void {
    const s = this.#s;
    if (!call.audio || !call.ports) return;
    if (!this.#audio) {
      const host = this.#host;
      this.#audio = new AudioConference({
        clock: s.clock,
        ticker: s.ticker,
        mixer: { maxSpeakers: s.maxSpeakers, announcements: s.announcements },
        onDtmf: (participantId, event) => {
          const c = host.callById(participantId);
          if (c) host.onDigit(c, event);
        },
        onActiveSpeakerChange: (participantId) => {
          this.#video.setActiveSpeaker(participantId);
          const speaker = participantId === null ? undefined : host.callById(participantId);
          s.logger.debug("active speaker", {
            conference: host.conferenceId,
            device: speaker?.deviceUri ?? null,
          });
        },
        onSourceId: (participantId, ssrc) => this.#onSourceId(participantId, ssrc),
      });
    }
    this.#audio.addParticipant(call.id, mixParticipantOf(call.ports, call.audio));
  }

  /**
   * A device's audio SSRC was first seen (or changed, RFC 3550 §8.2): conference-info shows
   * it as the media `src-id` (RFC 4575 §5.7.1.3), the value the mixer lists as that device's
   * CSRC in what others receive, so clients can tell who is speaking.
   */
  #onSourceId(participantId: string, ssrc: number): void {
    const call = this.#host.callById(participantId);
    if (!call || call.audioSsrc === ssrc) return;
    call.audioSsrc = ssrc;
    this.#host.refreshDevice(call);
    this.#host.publish();
  }

  /** The conference's side of {@link reofferCall}. */
  #reofferHost(): ReofferHost {
    const host = this.#host;
    return {
      clock: this.#s.clock,
      logger: this.#s.logger,
      needed: (c) =>
        host.active() && host.callById(c.id) !== undefined && this.#video.needsReoffer(c.id),
      offer: (c, layout, previous) => {
        const port = host.callById(c.id)?.ports?.port ?? 0;
        const caps = this.caps(port, c.id, { layout, offerVideo: this.#video.hasVideo });
        return this.#s.negotiator.offer(caps, previous);
      },
      layout: (sdp) => this.#s.negotiator.mediaLines(sdp),
      parse: (offer, answer) => this.#s.negotiator.parseMedia(offer, answer),
      answered: (c, media) => {
        const call = host.callById(c.id);
        if (!call) return false;
        if (media.audio) {
          call.audio = media.audio;
          this.#updateAudio(call);
        }
        const changed = this.#video.apply(call.id, media.video);
        host.refreshDevice(call);
        host.publish();
        return changed;
      },
      failed: (c) => this.#video.abandon(c.id),
      changed: (c) => this.reofferOthers(c),
    };
  }
}
