/**
 * The vocabulary of SDP offer/answer as Conclave uses it (RFC 3264, RFC 4566): codecs the
 * focus speaks, stream directions, and the structured result of a negotiation that the media
 * layer consumes. Pure data and small pure functions; `negotiate.ts` does the parsing and
 * writing.
 * @module
 */

/** Audio codecs of the mixer, by canonical name (RFC 7587 Opus, RFC 3551 PCMU/PCMA). */
export type AudioCodecName = "opus" | "pcmu" | "pcma";
/** Video codecs the router forwards (RFC 7741 VP8). */
export type VideoCodecName = "vp8";
/** What an `m=` line carries, as far as the focus cares. */
export type MediaType = "audio" | "video" | "text" | "other";
/** RFC 4566 §6 / RFC 3264 §5.1 stream direction. */
export type Direction = "sendrecv" | "sendonly" | "recvonly" | "inactive";

/** The negotiated codec of a stream. */
export interface CodecChoice {
  /** Canonical lower-case name: "opus", "pcmu", "pcma", "vp8". */
  readonly name: AudioCodecName | VideoCodecName;
  /** RTP payload type used in both directions (the offerer's number, RFC 3264 §6.1). */
  readonly payloadType: number;
  /** RTP clock rate (Opus: 48000 regardless of the audio bandwidth, RFC 7587 §4.1). */
  readonly clockRate: number;
  /** Channels from the rtpmap (Opus: always 2 on the wire, RFC 7587 §7). */
  readonly channels: number;
  /** The remote side's format parameters (its receive preferences, which bind our sender). */
  readonly fmtp: Readonly<Record<string, string>>;
}

/** Negotiated RFC 4733 telephone-event payload. */
export interface TelephoneEventChoice {
  readonly payloadType: number;
  readonly clockRate: number;
}

/** Where the remote side receives (RFC 4566 §5.7 c=, §5.14 m= port, RFC 3605, RFC 5761). */
export interface RemoteTransport {
  readonly address: string;
  readonly port: number;
  /** Both sides agreed to multiplex RTCP on the RTP port (RFC 5761 §5.1.1). */
  readonly rtcpMux: boolean;
  readonly rtcpPort: number;
  readonly rtcpAddress: string;
}

/** An `a=ssrc` source (RFC 5576 §4.1). */
export interface SsrcInfo {
  readonly id: number;
  readonly cname?: string;
}

/** RTCP feedback message agreed for a video stream (RFC 4585 §4.2, RFC 5104 §7.1). */
export interface RtcpFeedback {
  readonly type: string;
  readonly subtype?: string;
}

/** The outcome for one `m=` line, in order (RFC 3264 §6: same count, same order). */
export interface NegotiatedStream {
  /** Position of the m= line (0-based). */
  readonly index: number;
  readonly type: MediaType;
  /** The m= media token as written ("audio", "video", "application", ...). */
  readonly media: string;
  /** Transport protocol of the m= line ("RTP/AVP", ...). */
  readonly protocol: string;
  readonly accepted: boolean;
  /** Why the stream was rejected (port 0), for logs and the Warning header. */
  readonly rejectReason?: string;
  /** Our RTP port for the stream (0 when rejected). */
  readonly port: number;
  readonly remote: RemoteTransport;
  readonly codec?: CodecChoice;
  readonly telephoneEvent?: TelephoneEventChoice;
  /** Our direction: what our answer says, or what we may do after the remote's answer. */
  readonly direction: Direction;
  /** The remote's direction attribute as written (sendrecv when absent, RFC 4566 §6). */
  readonly remoteDirection: Direction;
  /** The remote holds the stream: sendonly/inactive, or `c=0.0.0.0` (RFC 3264 §8.4). */
  readonly hold: boolean;
  /** `a=label` (RFC 4574): identifies a participant's stream in conference-info. */
  readonly label?: string;
  /** `a=content` (RFC 4796): "main", "speaker", "thumbnail", "slides", ... */
  readonly content?: string;
  /** Extension id of `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464). */
  readonly audioLevelExtId?: number;
  /** Extension id of `urn:ietf:params:rtp-hdrext:csrc-audio-level` (RFC 6465). */
  readonly csrcAudioLevelExtId?: number;
  /** `a=mid` (RFC 5888). */
  readonly mid?: string;
  /** The remote's announced sources. */
  readonly ssrcs: readonly SsrcInfo[];
  /** The remote's `a=ptime` in milliseconds. */
  readonly ptime?: number;
  readonly rtcpFeedback: readonly RtcpFeedback[];
}

/** Inverts a direction for the other side's point of view (RFC 3264 §6.1). */
export function reverseDirection(direction: Direction): Direction {
  switch (direction) {
    case "sendonly":
      return "recvonly";
    case "recvonly":
      return "sendonly";
    default:
      return direction;
  }
}

/** Both directions allowed at once: the intersection of send and receive rights. */
export function intersectDirections(a: Direction, b: Direction): Direction {
  const sends = canSend(a) && canSend(b);
  const receives = canReceive(a) && canReceive(b);
  if (sends && receives) return "sendrecv";
  if (sends) return "sendonly";
  if (receives) return "recvonly";
  return "inactive";
}

/** True when the direction lets its owner send. */
export function canSend(direction: Direction): boolean {
  return direction === "sendrecv" || direction === "sendonly";
}

/** True when the direction lets its owner receive. */
export function canReceive(direction: Direction): boolean {
  return direction === "sendrecv" || direction === "recvonly";
}

/** rtpmap name, clock rate and channels of each codec (RFC 3551 §6, RFC 7587 §7, RFC 7741). */
export const CODEC_RTPMAP: Readonly<
  Record<AudioCodecName | VideoCodecName, {
    encoding: string;
    clockRate: number;
    channels: number;
    staticPayloadType?: number;
  }>
> = {
  opus: { encoding: "opus", clockRate: 48000, channels: 2 },
  pcmu: { encoding: "PCMU", clockRate: 8000, channels: 1, staticPayloadType: 0 },
  pcma: { encoding: "PCMA", clockRate: 8000, channels: 1, staticPayloadType: 8 },
  vp8: { encoding: "VP8", clockRate: 90000, channels: 1 },
};

/** RTCP feedback the video router implements (generic NACK, PLI, FIR). */
export const SUPPORTED_VIDEO_FEEDBACK: readonly RtcpFeedback[] = [
  { type: "nack" },
  { type: "nack", subtype: "pli" },
  { type: "ccm", subtype: "fir" },
];

/** RFC 6464 client-to-mixer audio level header extension. */
export const SSRC_AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/** RFC 6465 mixer-to-client audio level header extension. */
export const CSRC_AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:csrc-audio-level";

/** What the focus can do, and how its SDP is labelled (RFC 4566 §5.2 o=, §5.7 c=). */
export interface LocalMedia {
  /** Our media address, written in `c=` (IPv4 or IPv6). */
  readonly address: string;
  /** Audio codecs in preference order. */
  readonly audioCodecs: readonly AudioCodecName[];
  /** Video codecs in preference order (none: video is refused). */
  readonly videoCodecs?: readonly VideoCodecName[];
  /** Offer/accept RFC 4733 telephone-event. */
  readonly telephoneEvent: boolean;
  /** Media types accepted; default audio, plus video when `videoCodecs` is not empty. */
  readonly mediaTypes?: readonly ("audio" | "video")[];
  /** o= session id (stable for the dialog). */
  readonly sessionId: string | number;
  /** o= version: must grow with every new offer or answer in the dialog (RFC 3264 §8). */
  readonly sessionVersion: number;
  /** o= username; default "conclave". */
  readonly username?: string;
  /** s= line; default "Conclave". */
  readonly sessionName?: string;
  /** Our a=ptime for audio in milliseconds; default 20. */
  readonly ptime?: number;
  /** Our Opus receive parameters (RFC 7587 §6.1); default "useinbandfec=1". */
  readonly opusFmtp?: string;
}

/** What the allocator is told about an acceptable offered stream. */
export interface OfferedStream {
  readonly index: number;
  readonly type: "audio" | "video";
  readonly label?: string;
  readonly content?: string;
  readonly mid?: string;
  readonly remoteDirection: Direction;
  readonly hold: boolean;
  readonly codec: CodecChoice;
}

/** The allocator's decision for one stream. */
export interface StreamAllocation {
  /** Our RTP port (even, RFC 3550 §11); 0 refuses the stream. */
  readonly port: number;
  /** What we want to do on this stream (default sendrecv); intersected with the offer. */
  readonly direction?: Direction;
  /** Our `a=label` when the offer had none (an offered label is echoed, as liblinphone does). */
  readonly label?: string;
  /** Our `a=content`; default: the offered one. */
  readonly content?: string;
  /** Our SSRC, announced with `a=ssrc` (RFC 5576). */
  readonly ssrc?: number;
  /** CNAME for `a=ssrc`; default "conclave". */
  readonly cname?: string;
}

/**
 * Ports per m= line: an array indexed by m= line position, or a function called for each
 * acceptable stream (after codec checks, so ports are not spent on refused lines). A missing
 * entry, `undefined` or port 0 refuses the stream.
 */
export type PortAllocator =
  | readonly (number | StreamAllocation | undefined)[]
  | ((stream: OfferedStream) => number | StreamAllocation | undefined);

/** Options of {@link answerOffer}. */
export interface AnswerOptions extends LocalMedia {
  readonly allocate: PortAllocator;
}

/** RFC 3261 §20.43 warning to put in the failure response. */
export interface SdpWarning {
  /** 304 media type not available, 305 incompatible media format, 300 incompatible protocol. */
  readonly code: 300 | 304 | 305;
  readonly text: string;
}

/** Result of {@link answerOffer}. */
export type AnswerResult =
  | {
    readonly ok: true;
    /** The answer body (CRLF line ends). */
    readonly sdp: string;
    readonly streams: readonly NegotiatedStream[];
    /** The offer's t= line, copied into the answer (Linphone puts schedule times there). */
    readonly timing: { readonly start: number; readonly stop: number };
  }
  | {
    readonly ok: false;
    /** 488 Not Acceptable Here (RFC 3261 §21.4.26), or 503 when the allocator had no port. */
    readonly status: 488 | 503;
    readonly reason: string;
    readonly warning: SdpWarning;
    /** Per-line analysis; lines the allocator gave a port to are `accepted` (free them). */
    readonly streams: readonly NegotiatedStream[];
  };

/** A stream of our own offer (dial-out INVITE, re-INVITE). */
export interface OfferStream {
  readonly type: "audio" | "video";
  /** Our RTP port; 0 offers the line disabled. */
  readonly port: number;
  readonly direction?: Direction;
  readonly label?: string;
  readonly content?: string;
  readonly mid?: string;
  readonly ssrc?: number;
  readonly cname?: string;
  /** Offer `a=rtcp-mux` (default true). */
  readonly rtcpMux?: boolean;
  /** Offer the RFC 6464 audio-level extension with this id (1-14). */
  readonly audioLevelExtId?: number;
}

/**
 * A disabled m= line of our offer (RFC 3264 §8: a re-offer keeps every earlier m= line, in
 * order; a stream we do not use stays with port 0 and its media, transport and formats).
 */
export interface DisabledOfferStream {
  readonly type: "disabled";
  /** The m= media token ("video", "text", "application", ...). */
  readonly media: string;
  readonly protocol: string;
  /** The format list as written ("96 97"). */
  readonly formats: string;
}

/** One m= line of a session description, as {@link mediaLinesOf} reads it. */
export interface MediaLineSummary {
  readonly index: number;
  readonly type: MediaType;
  readonly media: string;
  readonly protocol: string;
  readonly port: number;
  readonly formats: string;
  /** Codecs of ours the line lists (even with port 0: an offerer lists what it supports). */
  readonly codecs: readonly (AudioCodecName | VideoCodecName)[];
}

/** Result of {@link parseAnswer}. */
export interface ParsedAnswer {
  readonly streams: readonly NegotiatedStream[];
  /** True when at least one stream is usable. */
  readonly ok: boolean;
}

/** An SDP body is malformed (RFC 4566) or breaks an offer/answer rule (RFC 3264). */
export class SdpError extends SyntaxError {
  /** Creates the error; `message` names the defect. */
  constructor(message: string) {
    super(message);
    this.name = "SdpError";
  }
}
