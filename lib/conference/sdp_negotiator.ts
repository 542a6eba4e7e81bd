/**
 * The focus's {@link Negotiator} over lib/sdp (RFC 3264): one audio stream per participant on
 * the port the focus allocated; other streams are refused (port 0) until the video router
 * takes them.
 * @module
 */

import { answerOffer, createOffer, parseAnswer } from "../sdp/negotiate.ts";
import type { NegotiatedStream } from "../sdp/sdp_types.ts";
import type { Negotiator } from "./conference.ts";
import type { AnswerOutcome, LocalMediaCaps, NegotiatedAudio } from "./media_negotiation.ts";

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

function local(caps: LocalMediaCaps) {
  return {
    address: caps.address,
    audioCodecs: caps.audioCodecs,
    telephoneEvent: true,
    mediaTypes: ["audio"] as const,
    sessionId: SESSION_ID,
    sessionVersion: sessionVersion++,
  };
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
          if (stream.type !== "audio" || used) return undefined;
          used = true;
          return { port: caps.audioPort };
        },
      });
    } catch (err) {
      return { ok: false, status: 400, reason: `Bad Request (${(err as Error).message})` };
    }
    if (!result.ok) return { ok: false, status: result.status, reason: result.reason };
    return { ok: true, answer: result.sdp, audio: audioOf(result.streams) };
  },
  offer(caps: LocalMediaCaps): string {
    return createOffer(local(caps), [{ type: "audio", port: caps.audioPort, rtcpMux: true }]);
  },
  parseAnswer(offer: string, answer: string): NegotiatedAudio | undefined {
    try {
      return audioOf(parseAnswer(offer, answer).streams);
    } catch {
      return undefined;
    }
  },
  offersRtcpMux(offer: string): boolean {
    return /^a=rtcp-mux\s*$/m.test(offer);
  },
};
