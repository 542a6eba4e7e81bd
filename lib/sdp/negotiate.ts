/**
 * SDP offer/answer for the focus (RFC 3264 on RFC 4566 bodies): answers a remote offer with
 * the codecs and streams the focus supports, builds offers for dial-out, and reads the
 * answers to them. The only importer of npm:sdp-transform.
 *
 * Rules applied (RFC 3264 §6): the answer has the offer's m= lines, same count and order;
 * rejected streams get port 0 and keep the offered formats; payload type numbers are the
 * offerer's; directions are inverted and intersected with ours (sendonly → recvonly,
 * inactive → inactive; `c=0.0.0.0` is RFC 2543 hold, §8.4); one audio codec is chosen in our
 * preference order, plus telephone-event (RFC 4733), at that codec's clock rate when offered;
 * `a=rtcp-mux` (RFC 5761), `a=mid` (RFC 5888), `a=label` (RFC 4574) and `a=content`
 * (RFC 4796) are echoed; `t=` is copied. A session whose audio cannot be accepted is refused
 * with 488. Not done here: SRTP/DTLS (such lines are refused), ICE, BUNDLE grouping.
 * @module
 */

// @ts-types="@types/sdp-transform"
import * as sdpTransform from "sdp-transform";
import {
  type AnswerOptions,
  type AnswerResult,
  type AudioCodecName,
  CODEC_RTPMAP,
  type CodecChoice,
  CSRC_AUDIO_LEVEL_URI,
  type Direction,
  type DisabledOfferStream,
  intersectDirections,
  type LocalMedia,
  type MediaLineSummary,
  type NegotiatedStream,
  type OfferedStream,
  type OfferStream,
  type ParsedAnswer,
  type PortAllocator,
  reverseDirection,
  type RtcpFeedback,
  SdpError,
  type SdpWarning,
  SSRC_AUDIO_LEVEL_URI,
  type StreamAllocation,
  SUPPORTED_VIDEO_FEEDBACK,
  type TelephoneEventChoice,
  type VideoCodecName,
} from "./sdp_types.ts";
import {
  chooseCodec,
  chooseTelephoneEvent,
  codecChoice,
  extId,
  feedbackFor,
  formatsOf,
  isRtpProfile,
  matchesCodec,
  readLine,
  rejected,
  type RemoteLine,
} from "./media_line.ts";

export type {
  AnswerOptions,
  AnswerResult,
  DisabledOfferStream,
  LocalMedia,
  MediaLineSummary,
  OfferedStream,
  OfferStream,
  ParsedAnswer,
  PortAllocator,
  SdpWarning,
  StreamAllocation,
} from "./sdp_types.ts";

type Session = sdpTransform.SessionDescription;
type Media = sdpTransform.MediaDescription & { content?: string | number };

// ---------------------------------------------------------------------------------------------
// Reading.

function parseSdp(text: string, what: string): Session {
  if (!/^v=0\s*$/m.test(text.split(/\r?\n/, 1)[0] ?? "")) {
    throw new SdpError(`${what} does not start with v=0 (RFC 4566 §5.1)`);
  }
  const session = sdpTransform.parse(text);
  if (session.origin === undefined) throw new SdpError(`${what} has no o= line`);
  if (session.timing === undefined) throw new SdpError(`${what} has no t= line`);
  for (const [index, media] of session.media.entries()) {
    if (
      typeof media.port !== "number" || Number.isNaN(media.port) || media.protocol === undefined
    ) {
      throw new SdpError(`${what}: malformed m= line ${index}`);
    }
    if (media.connection === undefined && session.connection === undefined) {
      throw new SdpError(`${what}: m= line ${index} has no c= line (RFC 4566 §5.7)`);
    }
  }
  return session;
}

// ---------------------------------------------------------------------------------------------
// Writing.

function ipVersion(address: string): 4 | 6 {
  return address.includes(":") ? 6 : 4;
}

function sessionHeader(local: LocalMedia, timing: { start: number; stop: number }): Session {
  return {
    version: 0,
    origin: {
      username: local.username ?? "conclave",
      sessionId: local.sessionId,
      sessionVersion: local.sessionVersion,
      netType: "IN",
      ipVer: ipVersion(local.address),
      address: local.address,
    },
    name: local.sessionName ?? "Conclave",
    connection: { version: ipVersion(local.address), ip: local.address },
    timing,
    media: [],
  };
}

function rtpEntry(pt: number, name: AudioCodecName | VideoCodecName): Media["rtp"][number] {
  const map = CODEC_RTPMAP[name];
  return {
    payload: pt,
    codec: map.encoding,
    rate: map.clockRate,
    ...(name === "opus" ? { encoding: 2 } : {}),
  };
}

function ssrcLines(ssrc: number | undefined, cname: string | undefined): Media["ssrcs"] {
  return ssrc === undefined
    ? undefined
    : [{ id: ssrc, attribute: "cname", value: cname ?? "conclave" }];
}

function writeSdp(session: Session): string {
  return sdpTransform.write(session);
}

// ---------------------------------------------------------------------------------------------
// Answering.

function allocationFor(
  allocate: PortAllocator,
  offered: OfferedStream,
): StreamAllocation | undefined {
  const raw = typeof allocate === "function" ? allocate(offered) : allocate[offered.index];
  if (raw === undefined) return undefined;
  const allocation = typeof raw === "number" ? { port: raw } : raw;
  if (!Number.isInteger(allocation.port) || allocation.port < 0 || allocation.port > 65535) {
    throw new RangeError(`allocator gave port ${allocation.port} to m= line ${offered.index}`);
  }
  return allocation.port === 0 ? undefined : allocation;
}

/**
 * Answers a remote offer (RFC 3264 §6). Throws {@link SdpError} when the offer is not valid
 * SDP (answer 400); returns `ok: false` with 488 when no audio stream (or no stream at all)
 * can be accepted — no common codec, unsupported transport or media type.
 */
export function answerOffer(offer: string, options: AnswerOptions): AnswerResult {
  const session = parseSdp(offer, "offer");
  const mediaTypes = options.mediaTypes ??
    ((options.videoCodecs?.length ?? 0) > 0 ? ["audio", "video"] : ["audio"]);
  type Candidate = {
    media: Media;
    line: RemoteLine;
    offered: OfferedStream;
    te?: TelephoneEventChoice;
  };
  const streams: NegotiatedStream[] = [];
  const candidates: Candidate[] = [];
  let warning: SdpWarning | undefined;
  for (const [index, m] of session.media.entries()) {
    const media = m as Media;
    const line = readLine(session, media);
    const refuse = (reason: string, code?: SdpWarning["code"]) => {
      streams[index] = rejected(index, media, line, reason);
      if (code !== undefined && (warning === undefined || line.type === "audio")) {
        warning = { code, text: reason };
      }
    };
    if (media.port === 0) {
      refuse("disabled by the offerer");
    } else if (line.type !== "audio" && line.type !== "video") {
      refuse(`media type ${media.type} not supported`, 304);
    } else if (!mediaTypes.includes(line.type)) {
      refuse(`${line.type} not enabled`, 304);
    } else if (!isRtpProfile(media.protocol)) {
      refuse(`transport ${media.protocol} not supported`, 300);
    } else {
      const preferences = line.type === "audio" ? options.audioCodecs : (options.videoCodecs ?? []);
      const codec = chooseCodec(media, preferences);
      if (codec === undefined) {
        refuse(`no common ${line.type} codec`, 305);
      } else {
        const te = line.type === "audio" && options.telephoneEvent
          ? chooseTelephoneEvent(media, codec.clockRate)
          : undefined;
        const offered: OfferedStream = {
          index,
          type: line.type,
          ...(line.label === undefined ? {} : { label: line.label }),
          ...(line.content === undefined ? {} : { content: line.content }),
          ...(line.mid === undefined ? {} : { mid: line.mid }),
          remoteDirection: line.remoteDirection,
          hold: line.hold,
          codec,
        };
        candidates.push({ media, line, offered, ...(te === undefined ? {} : { te }) });
      }
    }
  }
  const audioOffered = session.media.some((m) => m.type === "audio" && m.port !== 0);
  const audioAcceptable = candidates.some((c) => c.offered.type === "audio");
  if (candidates.length === 0 || (audioOffered && !audioAcceptable)) {
    const text = warning?.text ?? "no acceptable media stream";
    return {
      ok: false,
      status: 488,
      reason: "Not Acceptable Here",
      warning: warning ?? { code: 304, text },
      streams: fillRejected(session, streams, `session refused: ${text}`),
    };
  }

  const answer = sessionHeader(options, session.timing);
  const answerMedia: Media[] = session.media.map((m) => {
    const media = m as Media;
    return {
      type: media.type,
      port: 0,
      protocol: media.protocol,
      payloads: String(media.payloads ?? "").trim() || "0",
      rtp: [],
      fmtp: [],
      ...(media.mid === undefined ? {} : { mid: String(media.mid) }),
    };
  });
  for (const candidate of candidates) {
    const { media, line, offered, te } = candidate;
    const allocation = allocationFor(options.allocate, offered);
    if (allocation === undefined) {
      streams[offered.index] = rejected(offered.index, media, line, "no media port available");
      continue;
    }
    const direction = intersectDirections(
      allocation.direction ?? "sendrecv",
      reverseDirection(line.effective),
    );
    const label = line.label ?? allocation.label;
    const content = allocation.content ?? line.content;
    const feedback = line.type === "video" ? feedbackFor(media, offered.codec.payloadType) : [];
    const levelId = line.type === "audio" ? extId(media, SSRC_AUDIO_LEVEL_URI) : undefined;
    const csrcLevelId = line.type === "audio" ? extId(media, CSRC_AUDIO_LEVEL_URI) : undefined;
    streams[offered.index] = {
      index: offered.index,
      type: line.type,
      media: media.type,
      protocol: media.protocol,
      accepted: true,
      port: allocation.port,
      remote: line.remote,
      codec: offered.codec,
      ...(te === undefined ? {} : { telephoneEvent: te }),
      direction,
      remoteDirection: line.remoteDirection,
      hold: line.hold,
      ...(label === undefined ? {} : { label }),
      ...(content === undefined ? {} : { content }),
      ...(levelId === undefined ? {} : { audioLevelExtId: levelId }),
      ...(csrcLevelId === undefined ? {} : { csrcAudioLevelExtId: csrcLevelId }),
      ...(line.mid === undefined ? {} : { mid: line.mid }),
      ssrcs: line.ssrcs,
      ...(line.ptime === undefined ? {} : { ptime: line.ptime }),
      rtcpFeedback: feedback,
    };
    answerMedia[offered.index] = answerLine(media, options, {
      port: allocation.port,
      codec: offered.codec,
      te,
      direction,
      label,
      content,
      feedback,
      levelId,
      csrcLevelId,
      ssrc: allocation.ssrc,
      cname: allocation.cname,
    });
  }
  if (!streams.some((s) => s?.accepted === true && s.type === "audio") && audioOffered) {
    return {
      ok: false,
      status: 503,
      reason: "Service Unavailable",
      warning: { code: 304, text: "no media port available" },
      streams: fillRejected(session, streams, "no media port available"),
    };
  }
  answer.media = answerMedia;
  return { ok: true, sdp: writeSdp(answer), streams, timing: session.timing };
}

function fillRejected(
  session: Session,
  streams: NegotiatedStream[],
  reason: string,
): NegotiatedStream[] {
  return session.media.map((m, index) =>
    streams[index] ?? rejected(index, m as Media, readLine(session, m as Media), reason)
  );
}

interface LineChoice {
  port: number;
  codec: CodecChoice;
  te: TelephoneEventChoice | undefined;
  direction: Direction;
  label: string | undefined;
  content: string | undefined;
  feedback: readonly RtcpFeedback[];
  levelId: number | undefined;
  csrcLevelId: number | undefined;
  ssrc: number | undefined;
  cname: string | undefined;
}

function answerLine(offered: Media, local: LocalMedia, c: LineChoice): Media {
  const pt = c.codec.payloadType;
  const payloads = c.te === undefined ? `${pt}` : `${pt} ${c.te.payloadType}`;
  const rtp: Media["rtp"] = [rtpEntry(pt, c.codec.name)];
  const fmtp: Media["fmtp"] = [];
  if (c.codec.name === "opus") {
    fmtp.push({ payload: pt, config: local.opusFmtp ?? "useinbandfec=1" });
  }
  if (c.te !== undefined) {
    rtp.push({ payload: c.te.payloadType, codec: "telephone-event", rate: c.te.clockRate });
    fmtp.push({ payload: c.te.payloadType, config: "0-15" });
  }
  const ext = [
    ...(c.levelId === undefined ? [] : [{ value: c.levelId, uri: SSRC_AUDIO_LEVEL_URI }]),
    ...(c.csrcLevelId === undefined ? [] : [{ value: c.csrcLevelId, uri: CSRC_AUDIO_LEVEL_URI }]),
  ];
  const ssrcs = ssrcLines(c.ssrc, c.cname);
  return {
    type: offered.type,
    port: c.port,
    protocol: offered.protocol,
    payloads,
    rtp,
    fmtp,
    ...(c.feedback.length === 0 ? {} : {
      rtcpFb: c.feedback.map((f) => ({
        payload: pt,
        type: f.type,
        ...(f.subtype === undefined ? {} : { subtype: f.subtype }),
      })),
    }),
    ...(ext.length === 0 ? {} : { ext }),
    ...(offered.mid === undefined ? {} : { mid: String(offered.mid) }),
    ...(offered.type === "audio" ? { ptime: local.ptime ?? 20 } : {}),
    direction: c.direction,
    ...(offered.rtcpMux === "rtcp-mux" ? { rtcpMux: "rtcp-mux" as const } : {}),
    ...(ssrcs === undefined ? {} : { ssrcs }),
    ...(c.label === undefined ? {} : { label: c.label }),
    ...(c.content === undefined ? {} : { content: c.content }),
  };
}

// ---------------------------------------------------------------------------------------------
// Offering.

/**
 * Builds an offer (RFC 3264 §5) for a dial-out INVITE or re-INVITE: audio lines list our
 * codecs in preference order (Opus on dynamic payload 96 and up, PCMU 0, PCMA 8) and one
 * telephone-event per codec clock rate; video lines list VP8 with NACK/PLI/FIR feedback.
 */
export function createOffer(
  local: LocalMedia,
  streams: readonly (OfferStream | DisabledOfferStream)[],
  timing: { readonly start: number; readonly stop: number } = { start: 0, stop: 0 },
): string {
  const session = sessionHeader(local, { start: timing.start, stop: timing.stop });
  session.media = streams.map((stream) => {
    if (stream.type === "disabled") {
      return {
        type: stream.media,
        port: 0,
        protocol: stream.protocol,
        payloads: stream.formats.trim() || "0",
        rtp: [],
        fmtp: [],
      };
    }
    const names: (AudioCodecName | VideoCodecName)[] = stream.type === "audio"
      ? [...local.audioCodecs]
      : [...(local.videoCodecs ?? [])];
    if (names.length === 0) throw new RangeError(`no ${stream.type} codec to offer`);
    let dynamic = 96;
    const rtp: Media["rtp"] = [];
    const fmtp: Media["fmtp"] = [];
    for (const name of names) {
      const pt = CODEC_RTPMAP[name].staticPayloadType ?? dynamic++;
      rtp.push(rtpEntry(pt, name));
      if (name === "opus") fmtp.push({ payload: pt, config: local.opusFmtp ?? "useinbandfec=1" });
    }
    if (stream.type === "audio" && local.telephoneEvent) {
      const rates = [...new Set(names.map((n) => CODEC_RTPMAP[n].clockRate))];
      for (const rate of rates) {
        const pt = dynamic++;
        rtp.push({ payload: pt, codec: "telephone-event", rate });
        fmtp.push({ payload: pt, config: "0-15" });
      }
    }
    const ssrcs = ssrcLines(stream.ssrc, stream.cname);
    const media: Media = {
      type: stream.type,
      port: stream.port,
      protocol: "RTP/AVP",
      payloads: rtp.map((r) => r.payload).join(" "),
      rtp,
      fmtp,
      ...(stream.type === "video"
        ? {
          rtcpFb: SUPPORTED_VIDEO_FEEDBACK.map((f) => ({
            payload: "*",
            type: f.type,
            ...(f.subtype === undefined ? {} : { subtype: f.subtype }),
          })),
        }
        : {}),
      ...(stream.audioLevelExtId === undefined || stream.type !== "audio"
        ? {}
        : { ext: [{ value: stream.audioLevelExtId, uri: SSRC_AUDIO_LEVEL_URI }] }),
      ...(stream.mid === undefined ? {} : { mid: stream.mid }),
      ...(stream.type === "audio" ? { ptime: local.ptime ?? 20 } : {}),
      direction: stream.direction ?? "sendrecv",
      ...(stream.rtcpMux === false ? {} : { rtcpMux: "rtcp-mux" as const }),
      ...(ssrcs === undefined ? {} : { ssrcs }),
      ...(stream.label === undefined ? {} : { label: stream.label }),
      ...(stream.content === undefined ? {} : { content: stream.content }),
    };
    return media;
  });
  return writeSdp(session);
}

/**
 * Reads the answer to an offer we sent (RFC 3264 §6, §7): per m= line, the codec the
 * answerer kept (the first of its formats that we offered), telephone-event at that clock
 * rate, our resulting direction, and where to send. Throws {@link SdpError} when the answer
 * is malformed or does not mirror the offer's m= lines.
 */
export function parseAnswer(offerWeSent: string, answer: string): ParsedAnswer {
  const offer = parseSdp(offerWeSent, "our offer");
  const reply = parseSdp(answer, "answer");
  if (offer.media.length !== reply.media.length) {
    throw new SdpError(
      `answer has ${reply.media.length} m= lines, the offer had ${offer.media.length} (RFC 3264 §6)`,
    );
  }
  const streams = offer.media.map((m, index): NegotiatedStream => {
    const ours = m as Media;
    const theirs = reply.media[index] as Media;
    if (theirs.type !== ours.type) {
      throw new SdpError(`answer m= line ${index} is ${theirs.type}, offered ${ours.type}`);
    }
    const line = readLine(reply, theirs);
    if (ours.port === 0) return rejected(index, theirs, line, "disabled in our offer");
    if (theirs.port === 0) return rejected(index, theirs, line, "rejected by the answerer");
    const offeredFormats = formatsOf(ours);
    const names: (AudioCodecName | VideoCodecName)[] = ["opus", "pcmu", "pcma", "vp8"];
    let codec: CodecChoice | undefined;
    for (const pt of formatsOf(theirs)) {
      const name = names.find((n) =>
        matchesCodec(theirs, pt, n) &&
        offeredFormats.some((o) => matchesCodec(ours, o, n))
      );
      if (name !== undefined) {
        codec = codecChoice(theirs, pt, name);
        break;
      }
    }
    if (codec === undefined) return rejected(index, theirs, line, "no codec we offered");
    const te = line.type === "audio" ? chooseTelephoneEvent(theirs, codec.clockRate) : undefined;
    const ourDirection = ours.direction ?? offer.direction ?? "sendrecv";
    const direction = intersectDirections(ourDirection, reverseDirection(line.effective));
    const levelId = line.type === "audio" ? extId(theirs, SSRC_AUDIO_LEVEL_URI) : undefined;
    const csrcLevelId = line.type === "audio" ? extId(theirs, CSRC_AUDIO_LEVEL_URI) : undefined;
    const rtcpMux = line.remote.rtcpMux && ours.rtcpMux === "rtcp-mux";
    const label = line.label ?? (ours.label === undefined ? undefined : String(ours.label));
    const content = line.content ?? (ours.content === undefined ? undefined : String(ours.content));
    const mid = line.mid ?? (ours.mid === undefined ? undefined : String(ours.mid));
    return {
      index,
      type: line.type,
      media: theirs.type,
      protocol: theirs.protocol,
      accepted: true,
      port: ours.port,
      remote: rtcpMux ? line.remote : {
        ...line.remote,
        rtcpMux: false,
        rtcpPort: theirs.rtcp?.port ?? theirs.port + 1,
      },
      codec,
      ...(te === undefined ? {} : { telephoneEvent: te }),
      direction,
      remoteDirection: line.remoteDirection,
      hold: line.hold,
      ...(label === undefined ? {} : { label }),
      ...(content === undefined ? {} : { content }),
      ...(levelId === undefined ? {} : { audioLevelExtId: levelId }),
      ...(csrcLevelId === undefined ? {} : { csrcAudioLevelExtId: csrcLevelId }),
      ...(mid === undefined ? {} : { mid }),
      ssrcs: line.ssrcs,
      ...(line.ptime === undefined ? {} : { ptime: line.ptime }),
      rtcpFeedback: line.type === "video" ? feedbackFor(theirs, codec.payloadType) : [],
    };
  });
  return { streams, ok: streams.some((s) => s.accepted) };
}

const KNOWN_CODECS: readonly (AudioCodecName | VideoCodecName)[] = ["opus", "pcmu", "pcma", "vp8"];

/**
 * The m= lines of a session description, in order, with the codecs of ours each lists: the
 * layout a re-offer must keep (RFC 3264 §8), and what a peer said it supports. Throws
 * {@link SdpError} for malformed SDP.
 */
export function mediaLinesOf(sdp: string): MediaLineSummary[] {
  const session = parseSdp(sdp, "session description");
  return session.media.map((m, index) => {
    const media = m as Media;
    const line = readLine(session, media);
    const formats = formatsOf(media);
    return {
      index,
      type: line.type,
      media: media.type,
      protocol: media.protocol,
      port: media.port,
      formats: String(media.payloads ?? "").trim(),
      codecs: KNOWN_CODECS.filter((name) => formats.some((pt) => matchesCodec(media, pt, name))),
    };
  });
}
