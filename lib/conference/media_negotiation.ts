/**
 * The focus's view of SDP offer/answer (RFC 3264): turns an offer into an answer plus the
 * plain values the media engine needs, and builds offers for dial-out. Wraps lib/sdp.
 * @module
 */

import type { AudioCodecName } from "../media/codecs/codec.ts";
import type { MediaDirection } from "../media/audio_conference.ts";

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

/** Outcome of answering an offer. */
export type AnswerOutcome =
  | { readonly ok: true; readonly answer: string; readonly audio: NegotiatedAudio | undefined }
  | { readonly ok: false; readonly status: number; readonly reason: string };

/** Local capabilities for negotiation. */
export interface LocalMediaCaps {
  /** Address written in `c=`/`o=`. */
  readonly address: string;
  readonly audioCodecs: readonly AudioCodecName[];
  /** Port of our audio socket. */
  readonly audioPort: number;
}
