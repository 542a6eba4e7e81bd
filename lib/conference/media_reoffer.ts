/**
 * The focus's own re-INVITE when the conference's media change (RFC 3264 §8; issue #4: "the
 * focus re-INVITEs others when the conference's media change"). The policy of *who* is
 * re-INVITEd lives in `video_routing.ts`; this is the exchange itself: the offer keeps the
 * previous m-lines in order (video in its old slot, a port-0 video slot, or appended; o=
 * version increased), waits for the ACK of an INVITE still in progress (RFC 3261 §14.1), lets
 * the session retry once on 491 glare (§14.1), and hands the answer back to the conference.
 * One re-INVITE per call at a time; a change during one is checked again when it ends.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { InviteSession } from "../dialog/invite_session.ts";
import type { LineLayout, NegotiatedMedia } from "./media_negotiation.ts";

/** A call as the re-offer sees it (the conference's call record satisfies it). */
export interface ReofferCall {
  readonly id: string;
  readonly session: InviteSession | undefined;
  /** A re-INVITE of ours is in flight; `reofferAgain`: check once more when it ends. */
  reoffering?: boolean;
  reofferAgain?: boolean;
}

/** What the conference provides to a re-offer. */
export interface ReofferHost {
  readonly clock: Clock;
  readonly logger: Logger;
  /** True while the call is in the conference and still needs a re-INVITE. */
  needed(call: ReofferCall): boolean;
  /** Our offer for the call, keeping the layout of `previous` (our last SDP). */
  offer(call: ReofferCall, layout: readonly LineLayout[], previous: string | undefined): string;
  /** The m-lines of an SDP. */
  layout(sdp: string): readonly LineLayout[];
  /** Reads the answer to our offer. */
  parse(offer: string, answer: string): NegotiatedMedia | undefined;
  /** Applies the answered media; returns true when the conference's media changed again. */
  answered(call: ReofferCall, media: NegotiatedMedia): boolean;
  /** The offer did not go through: release what was reserved for it. */
  failed(call: ReofferCall): void;
  /** The conference's media changed because of this exchange: re-offer to the others. */
  changed(call: ReofferCall): void;
}

/** Waits between checks for the ACK of a call's initial INVITE; gives up after 10 s. */
const EARLY_RETRY_MS = 250;
const EARLY_RETRIES = 40;

/** Sends the call a re-INVITE with the conference's current media; see the module docs. */
export async function reofferCall(
  host: ReofferHost,
  call: ReofferCall,
  attempt = 0,
): Promise<void> {
  const session = call.session;
  if (!session || !host.needed(call)) return;
  if (call.reoffering) {
    call.reofferAgain = true;
    return;
  }
  if (session.state !== "confirmed") {
    if (session.state === "early" && attempt < EARLY_RETRIES) {
      host.clock.setTimer(EARLY_RETRY_MS, () => void reofferCall(host, call, attempt + 1));
    }
    return;
  }
  call.reoffering = true;
  let changed = false;
  try {
    const previous = session.localSdp;
    const offer = host.offer(call, previous === undefined ? [] : host.layout(previous), previous);
    const response = await session.reinvite(offer);
    const media = response.status >= 200 && response.status < 300 && host.needed(call)
      ? host.parse(offer, session.remoteSdp ?? "")
      : undefined;
    if (media) changed = host.answered(call, media);
    else {
      host.failed(call);
      host.logger.info("re-INVITE not accepted", { status: response.status });
    }
  } catch (err) {
    host.failed(call);
    host.logger.warn("re-INVITE failed", { error: err as Error });
  } finally {
    call.reoffering = false;
  }
  if (changed) host.changed(call);
  if (call.reofferAgain) {
    call.reofferAgain = false;
    void reofferCall(host, call);
  }
}
