/**
 * The focus's view of SDP offer/answer (RFC 3264): turns an offer into an answer plus the
 * plain values the media engine needs, and builds offers for dial-out. Wraps lib/sdp.
 * @module
 */

import type { AudioCodecName } from "../media/codecs/codec.ts";
import type { MediaDirection } from "../media/audio_conference.ts";
import type { VideoFeedback } from "../media/video_conference.ts";

/** Video codecs the SFU forwards (RFC 7741 VP8). */
export type VideoCodecName = "vp8";

/** The negotiated audio stream of one participant. */
export interface NegotiatedAudio {
  readonly payloadType: number;
  readonly codec: AudioCodecName;
  readonly clockRate: number;
  readonly telephoneEventPt?: number;
  readonly audioLevelExtId?: number;
  readonly remote: { readonly address: string; readonly port: number };
  readonly remoteRtcp?: { readonly address: string; readonly port: number };
  readonly rtcpMux: boolean;
  /** Our direction (as written in our SDP). */
  readonly direction: MediaDirection;
  /** The stream's label (RFC 4574), if any. */
  readonly label?: string;
}

/** One negotiated video m-line of a participant (RFC 3264; RFC 4574 label). */
export interface NegotiatedVideo {
  /** Position of the m= line (0-based): the stream's identity across re-offers. */
  readonly index: number;
  /** Our RTP port. */
  readonly port: number;
  readonly payloadType: number;
  readonly codec: VideoCodecName;
  readonly clockRate: number;
  readonly remote: { readonly address: string; readonly port: number };
  readonly remoteRtcp?: { readonly address: string; readonly port: number };
  readonly rtcpMux: boolean;
  /** Our direction (as written in our SDP, or as the answer to our offer leaves it). */
  readonly direction: MediaDirection;
  /** The peer's direction attribute. */
  readonly remoteDirection: MediaDirection;
  readonly feedback: VideoFeedback;
  /** The line's `a=label` (theirs echoed, or ours). */
  readonly label?: string;
  /** `a=content` (RFC 4796): "main", "speaker", "thumbnail", ... */
  readonly content?: string;
  /** SSRCs the peer announced with `a=ssrc` (RFC 5576). */
  readonly ssrcs: readonly number[];
}

/** Outcome of answering an offer. */
export type AnswerOutcome =
  | {
    readonly ok: true;
    readonly answer: string;
    readonly audio: NegotiatedAudio | undefined;
    /** Accepted video m-lines (empty when none). */
    readonly video: readonly NegotiatedVideo[];
  }
  | { readonly ok: false; readonly status: number; readonly reason: string };

/** Audio and video read from the answer to one of our offers. */
export interface NegotiatedMedia {
  readonly audio: NegotiatedAudio | undefined;
  readonly video: readonly NegotiatedVideo[];
}

/** An acceptable offered video m-line, as the allocator sees it. */
export interface OfferedVideoLine {
  readonly index: number;
  readonly label?: string;
  readonly content?: string;
  /** The offerer's direction (recvonly: it only wants to view). */
  readonly remoteDirection: MediaDirection;
}

/** Our side of one video m-line: port, label, SSRC (announced with `a=ssrc`). */
export interface VideoAllocation {
  readonly port: number;
  readonly ssrc: number;
  readonly cname?: string;
  readonly label?: string;
  readonly content?: string;
  /** What we want on the line (default sendrecv). */
  readonly direction?: MediaDirection;
}

/** What the focus can do with video for one call. */
export interface VideoCaps {
  readonly codecs: readonly VideoCodecName[];
  /** Our side of an acceptable offered video line; undefined refuses it (port 0). */
  allocate(line: OfferedVideoLine): VideoAllocation | undefined;
  /**
   * Video lines of our own offers (dial-out, re-INVITE), keyed by the m-line position they
   * take; a position past the previous SDP's lines is appended (RFC 3264 §8).
   */
  readonly offer?: ReadonlyMap<number, VideoAllocation>;
}

/** Local capabilities for negotiation. */
export interface LocalMediaCaps {
  /** Address written in `c=`/`o=`. */
  readonly address: string;
  readonly audioCodecs: readonly AudioCodecName[];
  /** Port of our audio socket. */
  readonly audioPort: number;
  /** Video, when the conference may carry it. */
  readonly video?: VideoCaps;
}

/** The m-line layout of a call's last SDP, for re-offers. */
export interface LineLayout {
  readonly index: number;
  readonly type: string;
  readonly port: number;
}

/** Offer/answer functions (RFC 3264) the focus uses; `sdp_negotiator.ts` implements them over lib/sdp. */
export interface Negotiator {
  answer(offer: string, caps: LocalMediaCaps): AnswerOutcome;
  /** Our offer; with `previous` (our last SDP in the dialog) its m-line layout is kept. */
  offer(caps: LocalMediaCaps, previous?: string): string;
  parseAnswer(offer: string, answer: string): NegotiatedAudio | undefined;
  /** Audio and video of the answer to our offer (undefined when unusable). */
  parseMedia(offer: string, answer: string): NegotiatedMedia | undefined;
  /** The m-lines of an SDP, with the codecs of ours each lists (empty when malformed). */
  mediaLines(sdp: string): (LineLayout & { readonly codecs: readonly string[] })[];
  /** True when the offer asks for rtcp-mux (RFC 5761). */
  offersRtcpMux(offer: string): boolean;
}
