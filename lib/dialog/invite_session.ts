/**
 * An INVITE session (RFC 3261 §13–15) on either side: the UAS answers an INVITE with a 2xx and
 * retransmits it until the ACK (§13.3.1.4); the UAC sends an INVITE and ACKs its 2xx
 * (§13.2.2.4). Both handle re-INVITE and UPDATE (RFC 3311) with offer/answer (RFC 3264) and
 * 491 glare (§14.1, §14.2), BYE (§15), and accept session timers (RFC 4028) without acting as
 * refresher.
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import { bodyText, type SipRequest, type SipResponse } from "../sip/message.ts";
import type { Flow } from "../transport/flow.ts";
import { Dialog } from "./dialog.ts";
import type { ServerRequest } from "./server_request.ts";
import {
  type DialogUsage,
  optionTags,
  type OutgoingRequestSpec,
  type UserAgent,
} from "./user_agent.ts";

/** Why a session ended. */
export type SessionEndReason =
  | "remote-bye"
  | "local-bye"
  | "no-ack"
  | "rejected"
  | "cancelled"
  | "failed";

/** What the owner of a session (the focus) decides and hears. */
export interface InviteSessionEvents {
  /**
   * A re-INVITE or UPDATE carrying an SDP offer (RFC 3264 §8): return the answer, or a status
   * to refuse it (488 when nothing is acceptable).
   */
  onOffer(
    offer: string,
    request: SipRequest,
  ): { answer: string } | { status: number; reason?: string };
  /** The session ended (after BYE either way, a missing ACK, or a failure). */
  onEnded(reason: SessionEndReason): void;
  /** Other in-dialog requests (REFER, INFO, MESSAGE, NOTIFY, OPTIONS); unanswered ones get 200. */
  onRequest?(request: ServerRequest): void;
  /** The ACK confirmed the session. */
  onConfirmed?(): void;
}

const SDP = "application/sdp";
const encoder = new TextEncoder();

function sdpOf(message: SipRequest | SipResponse): string | undefined {
  const type = message.contentType?.split(";")[0]?.trim().toLowerCase();
  if (type !== SDP || message.body.length === 0) return undefined;
  return bodyText(message);
}

/** Session-timer headers for a 2xx (RFC 4028 §9): accept the interval, leave refreshing to the UAC. */
function sessionTimerHeaders(request: SipRequest): Array<readonly [string, string]> {
  const se = request.headers.get("Session-Expires");
  if (se === undefined) return [];
  const seconds = Number.parseInt(se, 10);
  if (!Number.isFinite(seconds) || seconds <= 0) return [];
  const supported = optionTags(request.headers.getAll("Supported")).includes("timer");
  const out: Array<readonly [string, string]> = [["Session-Expires", `${seconds};refresher=uac`]];
  if (supported) out.push(["Require", "timer"]);
  return out;
}

/** One INVITE-created dialog and its offer/answer state. */
export class InviteSession implements DialogUsage {
  readonly dialog: Dialog;
  readonly #ua: UserAgent;
  readonly #events: InviteSessionEvents;
  /** The flow the dialog started on (used for in-dialog requests without a route set). */
  readonly flow: Flow | undefined;
  #state: "early" | "confirmed" | "terminated" = "early";
  #localSdp: string | undefined;
  #remoteSdp: string | undefined;
  #retransmit: TimerHandle | undefined;
  #giveUp: TimerHandle | undefined;
  #pending2xx: SipResponse | undefined;
  #inviteCSeq = 0;
  /** Our own outstanding re-INVITE/UPDATE (for 491 glare, RFC 3261 §14.2). */
  #outgoingOffer = false;
  /** An incoming re-INVITE being processed (for 500 + Retry-After, RFC 3261 §14.2). */
  #incomingOffer = false;
  #last2xxForAck: { cseq: number; ack: SipRequest } | undefined;

  private constructor(
    ua: UserAgent,
    dialog: Dialog,
    events: InviteSessionEvents,
    flow: Flow | undefined,
  ) {
    this.#ua = ua;
    this.dialog = dialog;
    this.#events = events;
    this.flow = flow;
  }

  /** `early`, `confirmed` (ACK seen/sent) or `terminated`. */
  get state(): "early" | "confirmed" | "terminated" {
    return this.#state;
  }

  /** The last SDP we sent. */
  get localSdp(): string | undefined {
    return this.#localSdp;
  }

  /** The last SDP the peer sent. */
  get remoteSdp(): string | undefined {
    return this.#remoteSdp;
  }

  /**
   * UAS: answers an initial INVITE with 200 and the SDP answer, creates the dialog and starts
   * 2xx retransmission until the ACK (RFC 3261 §13.3.1.4).
   */
  static accept(
    ua: UserAgent,
    sr: ServerRequest,
    options: {
      answer: string;
      contact: string;
      headers?: Iterable<readonly [string, string]>;
      events: InviteSessionEvents;
    },
  ): InviteSession {
    const dialog = Dialog.fromIncomingRequest(sr.request, sr.toTag, options.contact);
    const session = new InviteSession(ua, dialog, options.events, sr.flow);
    session.#remoteSdp = sdpOf(sr.request);
    session.#localSdp = options.answer;
    session.#inviteCSeq = sr.request.cseq.seq;
    ua.addUsage(session);
    const response = sr.build(200, undefined, {
      headers: [
        ["Contact", options.contact],
        ...ua.capabilityHeaders().filter(([n]) => n === "Allow" || n === "Supported"),
        ...sessionTimerHeaders(sr.request),
        ...(options.headers ?? []),
      ],
      body: options.answer,
      contentType: SDP,
    });
    sr.send(response);
    session.#start2xxRetransmission(response);
    return session;
  }

  /**
   * UAC: sends an INVITE with an SDP offer (dial-out, RFC 3261 §13.2.1) and resolves with the
   * session once a 2xx arrived and was ACKed, or with the failure response.
   */
  static async dial(
    ua: UserAgent,
    spec: Omit<OutgoingRequestSpec, "method" | "body"> & { offer: string; contact: string },
    events: InviteSessionEvents & { onProvisional?(response: SipResponse): void },
  ): Promise<
    { session: InviteSession; response: SipResponse } | {
      session: undefined;
      response: SipResponse;
    }
  > {
    const request = ua.createRequest({
      ...spec,
      method: "INVITE",
      headers: [
        ["Content-Type", SDP],
        ["Allow", ua.capabilityHeaders()[0]?.[1] ?? ""],
        ["Supported", "timer"],
        ...(spec.headers ?? []),
      ],
      body: encoder.encode(spec.offer),
    });
    const holder: { session?: InviteSession } = {};
    const tx = ua.send(request, {
      onProvisional: (r) => events.onProvisional?.(r),
      onExtra2xx: (r) => holder.session?.reAck(r),
    });
    const response = await tx.final;
    if (response.status < 200 || response.status >= 300) return { session: undefined, response };
    const dialog = Dialog.fromResponse(request, response);
    const session = new InviteSession(ua, dialog, events, undefined);
    holder.session = session;
    session.#localSdp = spec.offer;
    session.#remoteSdp = sdpOf(response);
    session.#inviteCSeq = request.cseq.seq;
    ua.addUsage(session);
    await session.#ackFor(response);
    session.#state = "confirmed";
    return { session, response };
  }

  // ------------------------------------------------------------------------------------
  // Incoming in-dialog traffic

  /** @inheritdoc */
  onAck(ack: SipRequest): void {
    if (ack.cseq.seq !== this.#inviteCSeq) return;
    this.#stop2xxRetransmission();
    const sdp = sdpOf(ack);
    if (sdp !== undefined) this.#remoteSdp = sdp;
    if (this.#state === "early") {
      this.#state = "confirmed";
      this.#events.onConfirmed?.();
    }
  }

  /** @inheritdoc */
  onRequest(sr: ServerRequest): void {
    const req = sr.request;
    if (this.#state === "terminated") {
      sr.respond(481);
      return;
    }
    switch (req.method) {
      case "BYE":
        // RFC 3261 §15.1.2: terminate the session and answer 200.
        sr.respond(200);
        this.#end("remote-bye");
        return;
      case "INVITE":
      case "UPDATE":
        this.#onOfferRequest(sr);
        return;
      default:
        this.#events.onRequest?.(sr);
        if (!sr.answered) sr.respond(200);
    }
  }

  #onOfferRequest(sr: ServerRequest): void {
    const req = sr.request;
    // RFC 3261 §14.2: a re-INVITE while our own is pending → 491; while another incoming is
    // in progress → 500 with Retry-After.
    if (this.#outgoingOffer) {
      sr.respond(491);
      return;
    }
    if (this.#incomingOffer || (req.method === "INVITE" && this.#pending2xx !== undefined)) {
      sr.respond(500, "Server Internal Error (offer in progress)", {
        headers: [["Retry-After", String(Math.floor(Math.random() * 10))]],
      });
      return;
    }
    this.dialog.refreshTarget(req);
    const offer = sdpOf(req);
    let answer = this.#localSdp;
    if (offer !== undefined) {
      this.#incomingOffer = true;
      try {
        const result = this.#events.onOffer(offer, req);
        if ("status" in result) {
          sr.respond(result.status, result.reason);
          return;
        }
        answer = result.answer;
        this.#remoteSdp = offer;
        this.#localSdp = answer;
      } finally {
        this.#incomingOffer = false;
      }
    }
    const response = sr.build(200, undefined, {
      headers: [["Contact", this.dialog.localContact], ...sessionTimerHeaders(req)],
      ...(answer !== undefined ? { body: answer, contentType: SDP } : {}),
    });
    sr.send(response);
    if (req.method === "INVITE") {
      this.#inviteCSeq = req.cseq.seq;
      this.#start2xxRetransmission(response);
    }
  }

  // ------------------------------------------------------------------------------------
  // Outgoing in-dialog traffic

  /** Sends BYE (RFC 3261 §15.1.1) with optional extra headers (e.g. RFC 3326 Reason). */
  async bye(headers: Iterable<readonly [string, string]> = []): Promise<void> {
    if (this.#state === "terminated") return;
    const request = this.dialog.createRequest("BYE");
    for (const [n, v] of headers) request.headers.append(n, v);
    this.#end("local-bye");
    await this.#ua.sendInDialog(request, this.dialog, this.flow).final;
  }

  /**
   * Sends a re-INVITE with a new offer (RFC 3261 §14.1) and applies the answer; on 491 retries
   * once after the §14.1 random delay. Returns the final response.
   */
  async reinvite(offer: string): Promise<SipResponse> {
    for (let attempt = 0;; attempt++) {
      const request = this.dialog.createRequest("INVITE", { body: encoder.encode(offer) });
      request.headers.append("Content-Type", SDP);
      this.#outgoingOffer = true;
      let response: SipResponse;
      try {
        response = await this.#ua.sendInDialog(request, this.dialog, this.flow, {
          onExtra2xx: (r) => void this.reAck(r),
        }).final;
      } finally {
        this.#outgoingOffer = false;
      }
      if (response.status >= 200 && response.status < 300) {
        this.#localSdp = offer;
        const sdp = sdpOf(response);
        if (sdp !== undefined) this.#remoteSdp = sdp;
        this.dialog.refreshTarget(response);
        await this.#ackFor(response);
        return response;
      }
      if (response.status === 491 && attempt === 0 && this.#state !== "terminated") {
        // RFC 3261 §14.1: the owner of the Call-ID waits 2.1–4 s, the other 0–2 s.
        const owner = this.flow === undefined;
        const delay = owner ? 2100 + Math.random() * 1900 : Math.random() * 2000;
        await new Promise<void>((resolve) => this.#ua.clock.setTimer(delay, resolve));
        continue;
      }
      if (response.status === 481 || response.status === 408) this.#end("failed");
      return response;
    }
  }

  /** Sends another request in the dialog (NOTIFY, INFO, MESSAGE …) and returns the final response. */
  request(
    method: string,
    options: {
      headers?: Iterable<readonly [string, string]>;
      body?: Uint8Array;
      contentType?: string;
    } = {},
  ): Promise<SipResponse> {
    const request = this.dialog.createRequest(method, options.body ? { body: options.body } : {});
    if (options.contentType !== undefined) {
      request.headers.append("Content-Type", options.contentType);
    }
    for (const [n, v] of options.headers ?? []) request.headers.append(n, v);
    return this.#ua.sendInDialog(request, this.dialog, this.flow).final;
  }

  /** Ends the session locally without signalling (used when the transport is gone). */
  abandon(reason: SessionEndReason = "failed"): void {
    this.#end(reason);
  }

  // ------------------------------------------------------------------------------------

  #start2xxRetransmission(response: SipResponse): void {
    this.#stop2xxRetransmission();
    this.#pending2xx = response;
    const { t1Ms, t2Ms } = this.#ua.options;
    let interval = t1Ms;
    const tick = () => {
      if (this.#pending2xx !== response || !this.flow) return;
      void this.#ua.options.port.sendResponse(response, this.flow).catch(() => {});
      interval = Math.min(interval * 2, t2Ms);
      this.#retransmit = this.#ua.clock.setTimer(interval, tick);
    };
    // RFC 3261 §13.3.1.4: retransmit with T1 doubling up to T2 (also on reliable transports,
    // since the 2xx may be lost in a proxy), until ACK or 64*T1.
    this.#retransmit = this.#ua.clock.setTimer(interval, tick);
    this.#giveUp = this.#ua.clock.setTimer(64 * t1Ms, () => {
      if (this.#pending2xx !== response) return;
      this.#stop2xxRetransmission();
      // §13.3.1.4: "If the server retransmits the 2xx response for 64*T1 seconds without
      // receiving an ACK, the dialog is confirmed, but the session SHOULD be terminated."
      this.#ua.logger.debug("no ACK for 2xx, ending session", { callId: this.dialog.id.callId });
      void this.bye().catch(() => {});
      this.#events.onEnded("no-ack");
    });
  }

  #stop2xxRetransmission(): void {
    this.#pending2xx = undefined;
    this.#retransmit?.cancel();
    this.#giveUp?.cancel();
    this.#retransmit = undefined;
    this.#giveUp = undefined;
  }

  async #ackFor(response: SipResponse): Promise<void> {
    const cseq = response.cseq.seq;
    const ack = this.dialog.createRequest("ACK", { cseq });
    this.#last2xxForAck = { cseq, ack };
    await this.#ua.sendAck(ack, this.dialog, this.flow).catch(() => {});
  }

  /** A retransmitted 2xx gets the same ACK again (RFC 3261 §13.2.2.4). */
  reAck(response: SipResponse): void {
    const last = this.#last2xxForAck;
    if (last && response.cseq.seq === last.cseq) {
      void this.#ua.sendAck(last.ack, this.dialog, this.flow).catch(() => {});
    }
  }

  #end(reason: SessionEndReason): void {
    if (this.#state === "terminated") return;
    this.#state = "terminated";
    this.#stop2xxRetransmission();
    this.#ua.removeUsage(this);
    this.#events.onEnded(reason);
  }
}
