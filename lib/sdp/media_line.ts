/**
 * Reading one m= section of a parsed SDP body (RFC 4566 §5.14, §6): formats, rtpmaps (with
 * the RFC 3551 static table), fmtp, codec choice, telephone-event, feedback, header
 * extensions, and the remote transport and direction. Works on the structural shape of
 * npm:sdp-transform's parse output without importing it (`negotiate.ts` is its only
 * importer).
 * @module
 */

import {
  type AudioCodecName,
  canReceive,
  CODEC_RTPMAP,
  type CodecChoice,
  type Direction,
  intersectDirections,
  type MediaType,
  type NegotiatedStream,
  type RtcpFeedback,
  SUPPORTED_VIDEO_FEEDBACK,
  type TelephoneEventChoice,
  type VideoCodecName,
} from "./sdp_types.ts";

/** The session-level fields a media section inherits (RFC 4566 §5.7 c=, §6 direction). */
export interface SdpSessionLevel {
  readonly connection?: { readonly version: number; readonly ip: string };
  readonly direction?: Direction;
}

/** The fields of a parsed m= section that Conclave reads (sdp-transform's shape). */
export interface SdpMediaLine {
  readonly type: string;
  readonly port: number;
  readonly protocol: string;
  readonly payloads?: string | number;
  readonly rtp: ReadonlyArray<
    {
      readonly payload: number;
      readonly codec: string;
      readonly rate?: number;
      readonly encoding?: number;
    }
  >;
  readonly fmtp: ReadonlyArray<{ readonly payload: number; readonly config: string | number }>;
  readonly connection?: { readonly version: number; readonly ip: string };
  readonly direction?: Direction;
  readonly rtcp?: { readonly port: number; readonly address?: string };
  readonly rtcpMux?: string;
  readonly rtcpFb?: ReadonlyArray<
    { readonly payload: number | string; readonly type: string; readonly subtype?: string }
  >;
  readonly ext?: ReadonlyArray<{ readonly value: number; readonly uri: string }>;
  readonly ssrcs?: ReadonlyArray<
    { readonly id: number; readonly attribute: string; readonly value?: string | number }
  >;
  readonly mid?: string | number;
  readonly label?: string | number;
  readonly content?: string | number;
  readonly ptime?: number | string;
}

/** The focus's view of an m= media token (RFC 4566 §5.14). */
export function mediaType(media: SdpMediaLine): MediaType {
  return media.type === "audio" || media.type === "video" || media.type === "text"
    ? media.type
    : "other";
}

/** The RTP payload types of an m= line's format list (RFC 4566 §5.14). */
export function formatsOf(media: SdpMediaLine): number[] {
  return String(media.payloads ?? "").split(/\s+/).filter((f) => /^\d+$/.test(f)).map(Number);
}

/** The `a=fmtp` parameters of one payload type, as name → value (RFC 4566 §6). */
export function fmtpOf(media: SdpMediaLine, payloadType: number): Record<string, string> {
  const params: Record<string, string> = {};
  for (const f of media.fmtp) {
    if (f.payload !== payloadType) continue;
    for (const part of String(f.config).split(";")) {
      const eq = part.indexOf("=");
      const name = (eq < 0 ? part : part.slice(0, eq)).trim();
      if (name !== "") params[name] = eq < 0 ? "" : part.slice(eq + 1).trim();
    }
  }
  return params;
}

/** The rtpmap of a format, falling back to the RFC 3551 static table. */
export function rtpmapOf(
  media: SdpMediaLine,
  pt: number,
): { encoding: string; rate: number; channels: number } {
  const entry = media.rtp.find((r) => r.payload === pt);
  if (entry !== undefined) {
    return {
      encoding: entry.codec.toLowerCase(),
      rate: entry.rate ?? 0,
      channels: entry.encoding ?? 1,
    };
  }
  if (pt === 0) return { encoding: "pcmu", rate: 8000, channels: 1 };
  if (pt === 8) return { encoding: "pcma", rate: 8000, channels: 1 };
  return { encoding: "", rate: 0, channels: 0 };
}

/** True when payload type `pt` of the line is codec `name` (encoding and clock rate). */
export function matchesCodec(
  media: SdpMediaLine,
  pt: number,
  name: AudioCodecName | VideoCodecName,
): boolean {
  const want = CODEC_RTPMAP[name];
  const map = rtpmapOf(media, pt);
  return map.encoding === want.encoding.toLowerCase() && map.rate === want.clockRate;
}

/** The {@link CodecChoice} for payload type `pt` of the line. */
export function codecChoice(
  media: SdpMediaLine,
  pt: number,
  name: AudioCodecName | VideoCodecName,
): CodecChoice {
  const map = rtpmapOf(media, pt);
  return {
    name,
    payloadType: pt,
    clockRate: map.rate,
    channels: name === "opus" ? 2 : Math.max(1, map.channels),
    fmtp: fmtpOf(media, pt),
  };
}

/** Picks the first codec of `preferences` the line offers (RFC 3264 §6.1). */
export function chooseCodec(
  media: SdpMediaLine,
  preferences: readonly (AudioCodecName | VideoCodecName)[],
): CodecChoice | undefined {
  const formats = formatsOf(media);
  for (const name of preferences) {
    const pt = formats.find((f) => matchesCodec(media, f, name));
    if (pt !== undefined) return codecChoice(media, pt, name);
  }
  return undefined;
}

/**
 * telephone-event at the codec's clock rate (RFC 4733 §2.1); failing that, the first one
 * offered at another rate, whose clock rate the result reports (baresip 1.0 offers and
 * answers only telephone-event/8000 next to Opus).
 */
export function chooseTelephoneEvent(
  media: SdpMediaLine,
  clockRate: number,
): TelephoneEventChoice | undefined {
  let fallback: TelephoneEventChoice | undefined;
  for (const pt of formatsOf(media)) {
    const map = rtpmapOf(media, pt);
    if (map.encoding !== "telephone-event" || map.rate <= 0) continue;
    if (map.rate === clockRate) return { payloadType: pt, clockRate };
    fallback ??= { payloadType: pt, clockRate: map.rate };
  }
  return fallback;
}

/** The RTCP feedback the line offers for `pt` (or `*`) that we implement (RFC 4585 §4.2). */
export function feedbackFor(media: SdpMediaLine, pt: number): RtcpFeedback[] {
  const offered = (media.rtcpFb ?? []).filter((f) => f.payload === "*" || Number(f.payload) === pt);
  return SUPPORTED_VIDEO_FEEDBACK.filter((s) =>
    offered.some((o) => o.type === s.type && (o.subtype ?? undefined) === s.subtype)
  );
}

/** The id of an `a=extmap` header extension by URI (RFC 8285 §5). */
export function extId(media: SdpMediaLine, uri: string): number | undefined {
  return media.ext?.find((e) => e.uri === uri)?.value;
}

/** What both answer and answer-reading need about one remote m= line. */
export interface RemoteLine {
  readonly type: MediaType;
  readonly remote: NegotiatedStream["remote"];
  readonly remoteDirection: Direction;
  /** Direction the remote actually allows, hold by c=0.0.0.0 applied. */
  readonly effective: Direction;
  readonly hold: boolean;
  readonly label?: string;
  readonly content?: string;
  readonly mid?: string;
  readonly ssrcs: NegotiatedStream["ssrcs"];
  readonly ptime?: number;
}

/** Reads the remote side of an m= line: transport, direction, hold, labels, sources. */
export function readLine(session: SdpSessionLevel, media: SdpMediaLine): RemoteLine {
  const address = media.connection?.ip ?? session.connection?.ip ?? "";
  const remoteDirection = media.direction ?? session.direction ?? "sendrecv";
  // RFC 3264 §8.4: c=0.0.0.0 (RFC 2543 hold) means "do not send to me".
  const zeroAddress = address === "0.0.0.0";
  const effective = zeroAddress
    ? intersectDirections(remoteDirection, "sendonly")
    : remoteDirection;
  const rtcpMux = media.rtcpMux === "rtcp-mux";
  const ssrcs = new Map<number, { id: number; cname?: string }>();
  for (const s of media.ssrcs ?? []) {
    const entry = ssrcs.get(s.id) ?? { id: s.id };
    ssrcs.set(
      s.id,
      s.attribute === "cname" && s.value !== undefined
        ? { ...entry, cname: String(s.value) }
        : entry,
    );
  }
  return {
    type: mediaType(media),
    remote: {
      address,
      port: media.port,
      rtcpMux,
      rtcpPort: rtcpMux ? media.port : (media.rtcp?.port ?? media.port + 1),
      rtcpAddress: media.rtcp?.address ?? address,
    },
    remoteDirection,
    effective,
    hold: zeroAddress || !canReceive(remoteDirection),
    ...(media.label === undefined ? {} : { label: String(media.label) }),
    ...(media.content === undefined ? {} : { content: String(media.content) }),
    ...(media.mid === undefined ? {} : { mid: String(media.mid) }),
    ssrcs: [...ssrcs.values()],
    ...(media.ptime === undefined ? {} : { ptime: Number(media.ptime) }),
  };
}

/** The plain RTP profiles the media engine speaks (RFC 3551, RFC 4585); no SRTP. */
export function isRtpProfile(protocol: string): boolean {
  return protocol === "RTP/AVP" || protocol === "RTP/AVPF";
}

/** The result entry of a refused m= line (port 0, RFC 3264 §6). */
export function rejected(
  index: number,
  media: SdpMediaLine,
  line: RemoteLine,
  reason: string,
): NegotiatedStream {
  return {
    index,
    type: line.type,
    media: media.type,
    protocol: media.protocol,
    accepted: false,
    rejectReason: reason,
    port: 0,
    remote: line.remote,
    direction: "inactive",
    remoteDirection: line.remoteDirection,
    hold: line.hold,
    ...(line.label === undefined ? {} : { label: line.label }),
    ...(line.content === undefined ? {} : { content: line.content }),
    ...(line.mid === undefined ? {} : { mid: line.mid }),
    ssrcs: line.ssrcs,
    ...(line.ptime === undefined ? {} : { ptime: line.ptime }),
    rtcpFeedback: [],
  };
}
