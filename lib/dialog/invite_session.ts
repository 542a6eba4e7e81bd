/**
 * An INVITE session (RFC 3261 §13–15) on either side: the UAS answers an INVITE with a 2xx and
 * retransmits it until the ACK (§13.3.1.4); the UAC sends an INVITE and ACKs its 2xx
 * (§13.2.2.4). Both handle re-INVITE and UPDATE (RFC 3311) with offer/answer (RFC 3264) and
 * 491 glare (§14.1, §14.2), BYE (§15), and session timers (RFC 4028) in either role: as refresher
 * they send UPDATE (or a re-INVITE when the peer does not allow UPDATE) at half the interval;
 * otherwise they send BYE when the peer lets the session expire (§10).
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import { bodyText, type SipRequest, type SipResponse } from "../sip/message.ts";
import type { Flow } from "../transport/flow.ts";
import { Dialog } from "./dialog.ts";
import type { ServerRequest } from "./server_request.ts";
import {
  answerSessionTimer,
  expiryDelayMs,
  refreshDelayMs,
  type Refresher,
  type SessionTimer,
  timerFromResponse,
} from "./session_timer.ts";
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
  | "session-expired"
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
  /**
   * Other in-dialog requests (REFER, INFO, MESSAGE, NOTIFY, OPTIONS); those still unanswered
   * when it returns get 200, unless it returns true (it answers them later itself).
   */
  onRequest?(request: ServerRequest): void | boolean;
  /** The ACK confirmed the session. */
  onConfirmed?(): void;
  /**
   * A re-INVITE or UPDATE was accepted (with or without an offer), e.g. to read headers that
   * change session properties such as `Subject` (a chat room's subject, liblinphone).
   */
  onUpdated?(request: SipRequest): void;
}

const SDP = "application/sdp";
const encoder = new TextEncoder();

function sdpOf(message: SipRequest | SipResponse): string | undefined {
  const type = message.contentType?.split(";")[0]?.trim().toLowerCase();
  if (type !== SDP || message.body.length === 0) return undefined;
  return bodyText(message);
}

/** True when the peer's `Allow` lists UPDATE (RFC 3311 §5.1), so refreshes can use it. */
function allowsUpdate(message: SipRequest | SipResponse): boolean {
  return optionTags(message.headers.getAll("Allow")).includes("update");
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
  /** Our own outstanding re-INVITE (for 491 glare, RFC 3261 §14.2). */
  #outgoingOffer = false;
  /** We put an offer in the 2xx to an offerless re-INVITE; the ACK brings the answer. */
  #offerInResponse = false;
  #last2xxForAck: { cseq: number; ack: SipRequest } | undefined;
  /** The session timer in force (RFC 4028), if any, and whether we refresh it. */
  #timer: SessionTimer | undefined;
  #weRefresh = false;
  #timerHandle: TimerHandle | undefined;
  /** The peer listed UPDATE in its Allow (RFC 3311 §5.1). */
  #peerAllowsUpdate = false;
  /** A BYE asked for before the ACK of our 2xx arrived (RFC 3261 §15), and who waits for it. */
  #deferredBye:
    | {
      headers: Array<readonly [string, string]>;
      waiters: Array<{ resolve(): void; reject(e: unknown): void }>;
    }
    | undefined;

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
      /** The SDP answer; absent for a session without media (a chat room, RFC 4975-less IM). */
      answer?: string;
      contact: string;
      headers?: Iterable<readonly [string, string]>;
      events: InviteSessionEvents;
    },
  ): InviteSession {
    const dialog = Dialog.fromIncomingRequest(sr.request, sr.toTag, options.contact);
    const session = new InviteSession(ua, dialog, options.events, sr.flow);
    if (sr.cancelled || sr.answered) {
      // RFC 3261 §9.2: the CANCEL got there first and the transaction answered 487 (or some
      // other final response went out): there is no session. The owner hears it once it holds
      // the returned object.
      session.#state = "terminated";
      const reason: SessionEndReason = sr.cancelled ? "cancelled" : "failed";
      queueMicrotask(() => options.events.onEnded(reason));
      return session;
    }
    session.#remoteSdp = sdpOf(sr.request);
    session.#localSdp = options.answer;
    session.#inviteCSeq = sr.request.cseq.seq;
    session.#peerAllowsUpdate = allowsUpdate(sr.request);
    const timer = answerSessionTimer(sr.request);
    ua.addUsage(session);
    const response = sr.build(200, undefined, {
      headers: [
        ["Contact", options.contact],
        ...ua.capabilityHeaders().filter(([n]) => n === "Allow" || n === "Supported"),
        ...(timer?.headers ?? []),
        ...(options.headers ?? []),
      ],
      ...(options.answer !== undefined ? { body: options.answer, contentType: SDP } : {}),
    });
    sr.send(response);
    session.#start2xxRetransmission(response, sr.flow);
    session.#setTimer(timer?.timer, "uas");
    return session;
  }

  /**
   * UAC: sends an INVITE with an SDP offer (dial-out, RFC 3261 §13.2.1) and resolves with the
   * session once a 2xx arrived and was ACKed, or with the failure response. Without `offer`
   * the INVITE carries `content` instead (a session without media, e.g. a chat room's invitation
   * with its RFC 4826 resource list) or no body.
   */
  static async dial(
    ua: UserAgent,
    spec: Omit<OutgoingRequestSpec, "method" | "body"> & {
      offer: string | undefined;
      contact: string;
      content?: { readonly type: string; readonly body: Uint8Array };
    },
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
        ...(spec.offer !== undefined
          ? [["Content-Type", SDP] as const]
          : spec.content !== undefined
          ? [["Content-Type", spec.content.type] as const]
          : []),
        ["Allow", ua.capabilityHeaders()[0]?.[1] ?? ""],
        ["Supported", "timer"],
        ...(spec.headers ?? []),
      ],
      ...(spec.offer !== undefined
        ? { body: encoder.encode(spec.offer) }
        : spec.content !== undefined
        ? { body: spec.content.body }
        : {}),
    });
    const holder: { session?: InviteSession } = {};
    const tx = ua.send(request, {
      onProvisional: (r) => events.onProvisional?.(r),
      onExtra2xx: (r) => {
        const session = holder.session;
        if (session === undefined) return;
        let tag: string | undefined;
        try {
          tag = r.toTag;
        } catch {
          return;
        }
        if (tag === session.dialog.id.remoteTag) session.reAck(r);
        else endForkedDialog(ua, request, r);
      },
    });
    const response = await tx.final;
    if (response.status < 200 || response.status >= 300) return { session: undefined, response };
    const dialog = Dialog.fromResponse(request, response);
    const session = new InviteSession(ua, dialog, events, undefined);
    holder.session = session;
    session.#localSdp = spec.offer;
    session.#remoteSdp = sdpOf(response);
    session.#inviteCSeq = request.cseq.seq;
    session.#peerAllowsUpdate = allowsUpdate(response);
    ua.addUsage(session);
    await session.#ackFor(response);
    if (session.#state === "early") session.#state = "confirmed";
    session.#setTimer(timerFromResponse(response), "uac");
    return { session, response };
  }

  // ------------------------------------------------------------------------------------
  // Incoming in-dialog traffic

  /** @inheritdoc */
  onAck(ack: SipRequest): void {
    if (ack.cseq.seq !== this.#inviteCSeq) return;
    // The answer to an offer we put in the 2xx (RFC 3261 §14.2) comes in the ACK.
    const sdp = sdpOf(ack);
    if (sdp !== undefined && this.#offerInResponse) this.#remoteSdp = sdp;
    this.#stop2xxRetransmission();
    if (this.#state === "early") {
      this.#state = "confirmed";
      this.#events.onConfirmed?.();
    }
    this.#flushDeferredBye();
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
        if (this.#events.onRequest?.(sr) === true) return;
        if (!sr.answered) {
          // RFC 3261 §11.2: OPTIONS in a dialog is answered with our capabilities too.
          sr.respond(
            200,
            undefined,
            req.method === "OPTIONS" ? { headers: this.#ua.capabilityHeaders() } : {},
          );
        }
    }
  }

  #onOfferRequest(sr: ServerRequest): void {
    const req = sr.request;
    const offer = sdpOf(req);
    // RFC 3261 §14.2: "A UAS that receives an INVITE on a dialog while an INVITE it had sent
    // on that dialog is in progress MUST return a 491"; RFC 3311 §5.2: likewise an UPDATE
    // offer while an offer of ours awaits its answer.
    if (this.#outgoingOffer || (offer !== undefined && this.#offerInResponse)) {
      sr.respond(491);
      return;
    }
    // §14.2: a second INVITE while the first is still in progress (here: its 2xx awaits the
    // ACK) → 500 with "a Retry-After header field with a randomly chosen value of between 0
    // and 10 seconds". Offers are answered synchronously, so no other offer is ever pending.
    if (req.method === "INVITE" && this.#pending2xx !== undefined) {
      sr.respond(500, "Server Internal Error (INVITE in progress)", {
        headers: [["Retry-After", String(Math.floor(Math.random() * 11))]],
      });
      return;
    }
    let answer: string | undefined;
    let offerInResponse = false;
    if (offer !== undefined) {
      const result = this.#events.onOffer(offer, req);
      if ("status" in result) {
        sr.respond(result.status, result.reason);
        return;
      }
      answer = result.answer;
      this.#remoteSdp = offer;
      this.#localSdp = answer;
    } else if (req.method === "INVITE" && this.#localSdp !== undefined) {
      // §14.2: a re-INVITE without an offer gets our offer in the 2xx; the ACK answers it.
      // An UPDATE without an offer gets no body (RFC 3311 §5.2).
      answer = this.#localSdp;
      offerInResponse = true;
    }
    // Target refresh once the request is accepted (§12.2.2; RFC 6141 §3.3).
    this.dialog.refreshTarget(req);
    const timer = answerSessionTimer(req);
    const response = sr.build(200, undefined, {
      headers: [["Contact", this.dialog.localContact], ...(timer?.headers ?? [])],
      ...(answer !== undefined ? { body: answer, contentType: SDP } : {}),
    });
    sr.send(response);
    if (req.method === "INVITE") {
      this.#inviteCSeq = req.cseq.seq;
      this.#start2xxRetransmission(response, sr.flow);
      this.#offerInResponse = offerInResponse;
    }
    // RFC 4028 §9: every accepted re-INVITE/UPDATE sets the timer again (or ends it).
    this.#setTimer(timer?.timer, "uas");
    this.#events.onUpdated?.(req);
  }

  // ------------------------------------------------------------------------------------
  // Outgoing in-dialog traffic

  /**
   * Sends BYE (RFC 3261 §15.1.1) with optional extra headers (e.g. RFC 3326 Reason). Before the
   * ACK of our 2xx the BYE waits for it (or for the 64*T1 give-up): §15, "The callee's UA MUST
   * NOT send a BYE on a confirmed dialog until it has received an ACK for its 2xx response or
   * until the server transaction times out."
   */
  bye(headers: Iterable<readonly [string, string]> = []): Promise<void> {
    if (this.#state === "early" && this.#pending2xx !== undefined) {
      const deferred = this.#deferredBye ?? { headers: [...headers], waiters: [] };
      this.#deferredBye = deferred;
      return new Promise((resolve, reject) => deferred.waiters.push({ resolve, reject }));
    }
    return this.#sendBye("local-bye", headers);
  }

  /** Sends a BYE deferred by {@link bye}; false when there is none. */
  #flushDeferredBye(): boolean {
    const deferred = this.#deferredBye;
    if (deferred === undefined) return false;
    this.#deferredBye = undefined;
    const sent = this.#sendBye("local-bye", deferred.headers);
    for (const w of deferred.waiters) sent.then(w.resolve, w.reject);
    return true;
  }

  async #sendBye(reason: SessionEndReason, headers: Iterable<readonly [string, string]>) {
    if (this.#state === "terminated") return;
    const request = this.dialog.createRequest("BYE");
    for (const [n, v] of headers) request.headers.append(n, v);
    this.#end(reason);
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
      for (const [n, v] of this.#timerRequestHeaders()) request.headers.append(n, v);
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
        // RFC 4028 §7.2: the 2xx sets the session timer (none when it has no Session-Expires).
        this.#setTimer(timerFromResponse(response), "uac");
        return response;
      }
      if (response.status === 491 && attempt === 0 && this.#state !== "terminated") {
        // RFC 3261 §14.1: the owner of the Call-ID waits 2.1–4 s, the other 0–2 s.
        const owner = this.flow === undefined;
        const delay = owner ? 2100 + Math.random() * 1900 : Math.random() * 2000;
        await new Promise<void>((resolve) => this.#ua.clock.setTimer(delay, resolve));
        // The session may have ended while we waited (TypeScript cannot see that).
        if (this.state === "terminated") return response;
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

  /** Retransmits a 2xx to an INVITE on the flow that INVITE came on (RFC 3261 §13.3.1.4). */
  #start2xxRetransmission(response: SipResponse, flow: Flow): void {
    this.#stop2xxRetransmission();
    this.#pending2xx = response;
    const { t1Ms, t2Ms } = this.#ua.options;
    let interval = t1Ms;
    const tick = () => {
      if (this.#pending2xx !== response) return;
      void this.#ua.options.port.sendResponse(response, flow).catch(() => {});
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
      if (!this.#flushDeferredBye()) void this.#sendBye("no-ack", []).catch(() => {});
    });
  }

  #stop2xxRetransmission(): void {
    this.#pending2xx = undefined;
    this.#offerInResponse = false;
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

  // ------------------------------------------------------------------------------------
  // Session timers (RFC 4028)

  /**
   * Sets (or, with undefined, clears) the session timer agreed in a transaction where we were
   * `role`: we refresh when the refresher named is us (§7.2, §9).
   */
  #setTimer(timer: SessionTimer | undefined, role: Refresher): void {
    this.#timerHandle?.cancel();
    this.#timerHandle = undefined;
    this.#timer = timer;
    if (timer === undefined || this.#state === "terminated") return;
    this.#weRefresh = timer.refresher === role;
    const clock = this.#ua.clock;
    if (this.#weRefresh) {
      this.#timerHandle = clock.setTimer(refreshDelayMs(timer.seconds), () => {
        this.#timerHandle = undefined;
        void this.#refresh();
      });
    } else {
      this.#timerHandle = clock.setTimer(expiryDelayMs(timer.seconds), () => {
        this.#timerHandle = undefined;
        // §10: "the UA ... SHOULD send a BYE request to terminate the session".
        this.#ua.logger.debug("session expired", { callId: this.dialog.id.callId });
        void this.#sendBye("session-expired", []).catch(() => {});
      });
    }
  }

  /** Session-Expires and Supported for a request we send while a timer is in force (§7.4). */
  #timerRequestHeaders(): Array<readonly [string, string]> {
    const out: Array<readonly [string, string]> = [["Supported", "timer"]];
    const timer = this.#timer;
    if (timer !== undefined) {
      out.unshift([
        "Session-Expires",
        `${timer.seconds};refresher=${this.#weRefresh ? "uac" : "uas"}`,
      ]);
    }
    return out;
  }

  /** The refresher's refresh (§7.4, §9): UPDATE when the peer allows it, else a re-INVITE. */
  async #refresh(): Promise<void> {
    const timer = this.#timer;
    if (timer === undefined || this.#state === "terminated") return;
    if (this.#outgoingOffer || this.#pending2xx !== undefined) {
      // An INVITE transaction is in progress (RFC 3261 §14.1): try again a little later.
      this.#timerHandle = this.#ua.clock.setTimer(this.#ua.options.t2Ms, () => {
        this.#timerHandle = undefined;
        void this.#refresh();
      });
      return;
    }
    if (!this.#peerAllowsUpdate) {
      await this.reinvite(this.#localSdp ?? "").catch(() => undefined);
      return;
    }
    const request = this.dialog.createRequest("UPDATE");
    for (const [n, v] of this.#timerRequestHeaders()) request.headers.append(n, v);
    let response: SipResponse;
    try {
      response = await this.#ua.sendInDialog(request, this.dialog, this.flow).final;
    } catch {
      return;
    }
    if (this.state === "terminated") return;
    if (response.status >= 200 && response.status < 300) {
      this.#setTimer(timerFromResponse(response), "uac");
    } else if (response.status === 481 || response.status === 408) {
      // RFC 3261 §12.2.1.2: the dialog is gone.
      this.#end("failed");
    } else {
      // Refused for another reason: keep the timer and try again after another half-interval.
      this.#setTimer(timer, this.#weRefresh ? "uac" : "uas");
    }
  }

  #end(reason: SessionEndReason): void {
    if (this.#state === "terminated") return;
    this.#state = "terminated";
    this.#stop2xxRetransmission();
    this.#timerHandle?.cancel();
    this.#timerHandle = undefined;
    // Ended before a deferred BYE could go (e.g. the peer's own BYE): nothing left to send.
    const deferred = this.#deferredBye;
    this.#deferredBye = undefined;
    for (const w of deferred?.waiters ?? []) w.resolve();
    this.#ua.removeUsage(this);
    this.#events.onEnded(reason);
  }
}

/**
 * Another fork answered our INVITE with a 2xx after the first one (RFC 3261 §13.2.2.4): "the
 * UAC core MUST ... generate an ACK ... [and] SHOULD ... terminate the dialog with a BYE".
 */
function endForkedDialog(ua: UserAgent, invite: SipRequest, response: SipResponse): void {
  let dialog: Dialog;
  try {
    dialog = Dialog.fromResponse(invite, response);
  } catch {
    return;
  }
  void ua.sendAck(dialog.createRequest("ACK", { cseq: response.cseq.seq }), dialog, undefined)
    .catch(() => {});
  void ua.sendInDialog(dialog.createRequest("BYE"), dialog, undefined).final.catch(() => {});
}
