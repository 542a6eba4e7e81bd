/**
 * One device's call with the focus (RFC 4353 §5.3: one INVITE session per device) and the
 * rules that turn it into what others see of it: its RFC 4575 §5.7 endpoint `status`
 * (`on-hold` from the direction of our answer, RFC 3264 §8.4; `muted-via-focus`; `connected`)
 * and `media` elements (audio with the `src-id` of its SSRC, RFC 3550 §8.2, then its video),
 * and the parameters of its audio stream in the conference mix.
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import type { InviteSession } from "../dialog/invite_session.ts";
import type { MediaSnapshot } from "../events/conference_info.ts";
import type { AudioParticipantParams, AudioParticipantUpdate } from "../media/audio_conference.ts";
import type { MediaPorts } from "../media/port_pool.ts";
import type { DtmfSequenceMatcher } from "../media/telephone_event.ts";
import type { NegotiatedAudio } from "./media_negotiation.ts";

/** One device's call with the focus. */
export interface Call {
  readonly id: string;
  readonly aor: string;
  readonly deviceUri: string;
  session: InviteSession | undefined;
  ports: MediaPorts | undefined;
  audio: NegotiatedAudio | undefined;
  readonly joinedAt: number;
  /** Since when RTP is expected from the device (join, or the end of a hold). */
  rtpExpectedSince: number;
  /** The call-timeout timer (`call_timers.ts`). */
  timeout: TimerHandle | undefined;
  /** Muted by the focus (DTMF `*6` toggles it; RFC 4575 `muted-via-focus`). */
  muted?: boolean;
  dtmf?: DtmfSequenceMatcher;
  /** SSRC of the device's audio as the focus receives it (RFC 4575 `src-id`), once seen. */
  audioSsrc?: number;
  /** See `ReofferCall` (media_reoffer.ts). */
  reoffering?: boolean;
  reofferAgain?: boolean;
}

/** A new call, not yet answered: no session and no negotiated audio. */
export function newCall(
  fields: { id: string; aor: string; deviceUri: string; ports?: MediaPorts; now: number },
): Call {
  return {
    id: fields.id,
    aor: fields.aor,
    deviceUri: fields.deviceUri,
    session: undefined,
    ports: fields.ports,
    audio: undefined,
    joinedAt: fields.now,
    rtpExpectedSince: fields.now,
    timeout: undefined,
  };
}

/**
 * RFC 4575 §5.7 endpoint status of a connected call: `on-hold` while the device holds
 * (our answer is recvonly or inactive, RFC 3264 §8.4), else `muted-via-focus` when the focus
 * mutes it, else `connected`. Hold and mute are independent and survive each other.
 */
export function endpointStatusOf(call: Call): "on-hold" | "muted-via-focus" | "connected" {
  const direction = call.audio?.direction;
  if (direction === "inactive" || direction === "recvonly") return "on-hold";
  return call.muted ? "muted-via-focus" : "connected";
}

/** The endpoint's media elements (RFC 4575 §5.7): its audio, then `video` (its video lines). */
export function endpointMediaOf(call: Call, video: MediaSnapshot[]): MediaSnapshot[] {
  if (!call.audio) return video;
  return [{
    id: "1",
    type: "audio",
    label: "1",
    ...(call.audioSsrc !== undefined ? { srcId: String(call.audioSsrc) } : {}),
    status: call.audio.direction,
  }, ...video];
}

/** The call's stream in the audio mix, on its ports with its negotiated audio. */
export function mixParticipantOf(
  ports: MediaPorts,
  audio: NegotiatedAudio,
): AudioParticipantParams {
  const a = audio;
  return {
    socket: ports.rtp,
    ...(ports.rtcp ? { rtcpSocket: ports.rtcp } : {}),
    rtcpMux: a.rtcpMux,
    remote: a.remote,
    ...(a.remoteRtcp ? { remoteRtcp: a.remoteRtcp } : {}),
    payloadType: a.payloadType,
    codec: a.codec,
    clockRate: a.clockRate,
    ...(a.telephoneEventPt !== undefined ? { telephoneEventPt: a.telephoneEventPt } : {}),
    ...(a.audioLevelExtId !== undefined ? { audioLevelExtId: a.audioLevelExtId } : {}),
    direction: a.direction,
  };
}

/** What a new offer/answer changes of the call's stream in the mix. */
export function mixUpdateOf(audio: NegotiatedAudio): AudioParticipantUpdate {
  const a = audio;
  return {
    remote: a.remote,
    direction: a.direction,
    payloadType: a.payloadType,
    codec: a.codec,
    clockRate: a.clockRate,
    ...(a.telephoneEventPt !== undefined ? { telephoneEventPt: a.telephoneEventPt } : {}),
  };
}
