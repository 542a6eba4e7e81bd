/**
 * The focus's {@link Negotiator} over lib/sdp (RFC 3264): one audio stream per participant on
 * the port the focus allocated; video m-lines as the call's {@link VideoCaps} allocate them
 * (VP8 with the RTCP feedback both sides know, `a=label` per RFC 4574, `a=ssrc` per RFC 5576);
 * other streams are refused (port 0). Re-offers keep the previous m-line layout (RFC 3264 §8):
 * same lines in the same order, unused ones with port 0, new video reusing a port-0 video slot
 * or appended at the end.
 * @module
 */

import { answerOffer, createOffer, mediaLinesOf, parseAnswer } from "../sdp/negotiate.ts";
import type {
  DisabledOfferStream,
  MediaLineSummary,
  NegotiatedStream,
  OfferStream,
} from "../sdp/sdp_types.ts";
import type {
  AnswerOutcome,
  LocalMediaCaps,
  NegotiatedAudio,
  NegotiatedMedia,
  NegotiatedVideo,
  Negotiator,
  VideoAllocation,
} from "./media_negotiation.ts";

const SESSION_ID = Math.floor(Math.random() * 2 ** 31);
let sessionVersion = 1;

function audioOf(streams: readonly NegotiatedStream[]): NegotiatedAudio | undefined {
  const s = streams.find((x) => x.type === "audio" && x.accepted && x.codec !== undefined);
  if (!s || !s.codec || s.codec.name === "vp8") return undefined;
  const mux = s.remote.rtcpMux;
  return {
    payloadType: s.codec.payloadType,
    codec: s.codec.name,
    clockRate: s.codec.clockRate,
    ...(s.telephoneEvent ? { telephoneEventPt: s.telephoneEvent.payloadType } : {}),
    ...(s.audioLevelExtId !== undefined ? { audioLevelExtId: s.audioLevelExtId } : {}),
    remote: { address: s.remote.address, port: s.remote.port },
    ...(!mux && s.remote.rtcpPort > 0
      ? { remoteRtcp: { address: s.remote.rtcpAddress, port: s.remote.rtcpPort } }
      : {}),
    rtcpMux: mux,
    direction: s.direction,
    ...(s.label !== undefined ? { label: s.label } : {}),
  };
}

function videoOf(streams: readonly NegotiatedStream[]): NegotiatedVideo[] {
  const out: NegotiatedVideo[] = [];
  for (const s of streams) {
    if (s.type !== "video" || !s.accepted || s.codec?.name !== "vp8") continue;
    const mux = s.remote.rtcpMux;
    const has = (type: string, subtype?: string) =>
      s.rtcpFeedback.some((f) => f.type === type && f.subtype === subtype);
    out.push({
      index: s.index,
      port: s.port,
      payloadType: s.codec.payloadType,
      codec: "vp8",
      clockRate: s.codec.clockRate,
      remote: { address: s.remote.address, port: s.remote.port },
      ...(!mux && s.remote.rtcpPort > 0
        ? { remoteRtcp: { address: s.remote.rtcpAddress, port: s.remote.rtcpPort } }
        : {}),
      rtcpMux: mux,
      direction: s.direction,
      remoteDirection: s.remoteDirection,
      feedback: { nack: has("nack"), pli: has("nack", "pli"), fir: has("ccm", "fir") },
      ...(s.label !== undefined ? { label: s.label } : {}),
      ...(s.content !== undefined ? { content: s.content } : {}),
      ssrcs: s.ssrcs.map((x) => x.id),
    });
  }
  return out;
}

function local(caps: LocalMediaCaps) {
  const video = caps.video !== undefined && caps.video.codecs.length > 0;
  return {
    address: caps.address,
    audioCodecs: caps.audioCodecs,
    ...(video ? { videoCodecs: caps.video!.codecs } : {}),
    telephoneEvent: true,
    mediaTypes: video ? ["audio", "video"] as const : ["audio"] as const,
    sessionId: SESSION_ID,
    sessionVersion: sessionVersion++,
  };
}

function videoLine(a: VideoAllocation): OfferStream {
  return {
    type: "video",
    port: a.port,
    rtcpMux: true,
    ssrc: a.ssrc,
    ...(a.cname === undefined ? {} : { cname: a.cname }),
    ...(a.label === undefined ? {} : { label: a.label }),
    ...(a.content === undefined ? {} : { content: a.content }),
    ...(a.direction === undefined ? {} : { direction: a.direction }),
  };
}

function disabled(line: MediaLineSummary): DisabledOfferStream {
  return { type: "disabled", media: line.media, protocol: line.protocol, formats: line.formats };
}

/** Offer/answer for the focus. */
export const sdpNegotiator: Negotiator = {
  answer(offer: string, caps: LocalMediaCaps): AnswerOutcome {
    let used = false;
    let result;
    try {
      result = answerOffer(offer, {
        ...local(caps),
        allocate: (stream) => {
          if (stream.type === "video") {
            const a = caps.video?.allocate({
              index: stream.index,
              ...(stream.label === undefined ? {} : { label: stream.label }),
              ...(stream.content === undefined ? {} : { content: stream.content }),
              remoteDirection: stream.remoteDirection,
            });
            return a === undefined ? undefined : {
              port: a.port,
              ssrc: a.ssrc,
              ...(a.cname === undefined ? {} : { cname: a.cname }),
              ...(a.label === undefined ? {} : { label: a.label }),
              ...(a.direction === undefined ? {} : { direction: a.direction }),
            };
          }
          if (used) return undefined;
          used = true;
          return { port: caps.audioPort };
        },
      });
    } catch (err) {
      return { ok: false, status: 400, reason: `Bad Request (${(err as Error).message})` };
    }
    if (!result.ok) return { ok: false, status: result.status, reason: result.reason };
    return {
      ok: true,
      answer: result.sdp,
      audio: audioOf(result.streams),
      video: videoOf(result.streams),
    };
  },
  offer(caps: LocalMediaCaps, previous?: string): string {
    const video = caps.video?.offer ?? new Map<number, VideoAllocation>();
    const wanted = [...video.entries()].sort((a, b) => a[0] - b[0]);
    let layout: MediaLineSummary[] = [];
    if (previous !== undefined) {
      try {
        layout = mediaLinesOf(previous);
      } catch {
        layout = [];
      }
    }
    const streams: (OfferStream | DisabledOfferStream)[] = [];
    let audioDone = false;
    if (layout.length === 0) {
      streams.push({ type: "audio", port: caps.audioPort, rtcpMux: true });
      audioDone = true;
    } else {
      for (const line of layout) {
        const v = video.get(line.index);
        if (line.type === "audio" && !audioDone && line.port !== 0) {
          streams.push({ type: "audio", port: caps.audioPort, rtcpMux: true });
          audioDone = true;
        } else if (v !== undefined && line.type === "video") {
          streams.push(videoLine(v));
        } else {
          streams.push(disabled(line));
        }
      }
    }
    // RFC 3264 §8.1: new streams go after the existing ones.
    for (const [index, a] of wanted) if (index >= streams.length) streams.push(videoLine(a));
    return createOffer(local(caps), streams);
  },
  parseAnswer(offer: string, answer: string): NegotiatedAudio | undefined {
    return this.parseMedia(offer, answer)?.audio;
  },
  parseMedia(offer: string, answer: string): NegotiatedMedia | undefined {
    try {
      const streams = parseAnswer(offer, answer).streams;
      return { audio: audioOf(streams), video: videoOf(streams) };
    } catch {
      return undefined;
    }
  },
  mediaLines(sdp: string): MediaLineSummary[] {
    try {
      return mediaLinesOf(sdp);
    } catch {
      return [];
    }
  },
  offersRtcpMux(offer: string): boolean {
    return /^a=rtcp-mux\s*$/m.test(offer);
  },
};
