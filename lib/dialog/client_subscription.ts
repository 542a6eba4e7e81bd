/**
 * The subscriber side of a subscription (RFC 6665 §4.1): sends the SUBSCRIBE (§4.1.2.1) through
 * the user agent (and so the outbound proxy), creates the dialog from the 2xx or from a NOTIFY
 * that arrives first (§4.1.2.4), answers NOTIFYs and reads `Subscription-State` (§4.1.3),
 * refreshes before expiry (§4.1.2.2), retries once with `Min-Expires` after a 423 (§4.1.2.1),
 * and unsubscribes with `Expires: 0` (§4.1.2.3). Re-subscribing after termination is the
 * owner's policy: it hears why the subscription ended and the notifier's `retry-after`.
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import type { NameAddr } from "../sip/headers.ts";
import type { SipRequest, SipResponse } from "../sip/message.ts";
import type { SipUri } from "../sip/uri.ts";
import { Dialog } from "./dialog.ts";
import type { ServerRequest } from "./server_request.ts";
import type { DialogUsage, UserAgent } from "./user_agent.ts";

/** A parsed `Subscription-State` (RFC 6665 §8.2.3). */
export interface SubscriptionStateValue {
  /** `active`, `pending`, `terminated` (others are extension values, read as active). */
  readonly state: string;
  readonly expires?: number;
  readonly reason?: string;
  readonly retryAfter?: number;
}

/** Parses a `Subscription-State` value; undefined when it is not one. */
export function parseSubscriptionState(
  text: string | undefined,
): SubscriptionStateValue | undefined {
  if (text === undefined) return undefined;
  const [head, ...params] = text.split(";");
  const state = head?.trim().toLowerCase() ?? "";
  if (!/^[a-z0-9.!%*_+`'~-]+$/.test(state)) return undefined;
  let expires: number | undefined;
  let reason: string | undefined;
  let retryAfter: number | undefined;
  for (const param of params) {
    const [name, value] = param.split("=").map((s) => s.trim());
    const n = value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
    switch (name?.toLowerCase()) {
      case "expires":
        expires = n;
        break;
      case "reason":
        reason = value?.toLowerCase();
        break;
      case "retry-after":
        retryAfter = n;
        break;
    }
  }
  return {
    state,
    ...(expires === undefined ? {} : { expires }),
    ...(reason === undefined ? {} : { reason }),
    ...(retryAfter === undefined ? {} : { retryAfter }),
  };
}

/** Why a subscription ended, for the owner's re-subscription policy (RFC 6665 §4.1.3). */
export interface SubscriptionEnd {
  /** A `reason` of a terminated NOTIFY, or `rejected` (non-2xx), `timeout`, `unsubscribed`,
   *  `481` (the notifier forgot it). */
  readonly reason: string;
  /** Status of the failed SUBSCRIBE, when that is what ended it. */
  readonly status?: number;
  /** Seconds the notifier asked us to wait (`retry-after` or `Retry-After`). */
  readonly retryAfter?: number;
}

/** What the owner hears. */
export interface ClientSubscriptionEvents {
  /** A NOTIFY was accepted (answered 200); a terminated one is followed by `onTerminated`. */
  onNotify(request: SipRequest, state: SubscriptionStateValue): void;
  /** The subscription ended; it is not used again. */
  onTerminated(end: SubscriptionEnd): void;
}

/** Settings. */
export interface ClientSubscriptionOptions {
  /** Request-URI and To (the resource, e.g. the AOR for `reg`). */
  readonly target: SipUri;
  readonly from: NameAddr;
  readonly event: string;
  readonly accept: string;
  /** Duration asked for, seconds. */
  readonly expires: number;
  readonly contact: string;
  readonly events: ClientSubscriptionEvents;
}

function retryAfterOf(response: SipResponse): number | undefined {
  const text = response.headers.get("Retry-After")?.trim();
  const m = text === undefined ? null : /^(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** One subscription, subscriber side. */
export class ClientSubscription implements DialogUsage {
  readonly #ua: UserAgent;
  readonly #options: ClientSubscriptionOptions;
  #dialog: Dialog | undefined;
  #request: SipRequest | undefined;
  #state: "sending" | "established" | "closing" | "terminated" = "sending";
  #refreshTimer: TimerHandle | undefined;
  #expiryTimer: TimerHandle | undefined;
  #retriedTooBrief = false;

  constructor(ua: UserAgent, options: ClientSubscriptionOptions) {
    this.#ua = ua;
    this.#options = options;
  }

  /** The dialog (once the 2xx or the first NOTIFY arrived). */
  get dialog(): Dialog {
    if (!this.#dialog) throw new Error("subscription dialog not established");
    return this.#dialog;
  }

  /** `sending`, `established`, `closing` (unsubscribing) or `terminated`. */
  get state(): string {
    return this.#state;
  }

  /** Sends the initial SUBSCRIBE (RFC 6665 §4.1.2.1). */
  start(expires = this.#options.expires): void {
    const o = this.#options;
    const request = this.#ua.createRequest({
      method: "SUBSCRIBE",
      uri: o.target,
      from: o.from,
      to: { display: undefined, uri: o.target, params: new Map() },
      contact: o.contact,
      headers: [["Event", o.event], ["Accept", o.accept], ["Expires", String(expires)]],
      ...(this.#request ? { callId: this.#request.callId } : {}),
      ...(this.#request ? { cseq: this.#request.cseq.seq + 1 } : {}),
    });
    if (this.#request) {
      // A retry after 423 keeps the Call-ID and From tag (RFC 3261 §8.1.3.5).
      request.headers.set("From", this.#request.headers.get("From") ?? "");
    }
    this.#request = request;
    const tag = request.fromTag ?? "";
    this.#ua.expectNotify(request.callId, tag, (sr) => this.#earlyNotify(sr));
    const tx = this.#ua.send(request);
    tx.final.then((response) => this.#onInitialResponse(request, response), () => {
      this.#finish({ reason: "rejected", status: 408 });
    });
  }

  #onInitialResponse(request: SipRequest, response: SipResponse): void {
    if (this.#request !== request) return;
    if (this.#state === "terminated") return;
    if (response.status >= 200 && response.status < 300) {
      this.#ua.forgetNotify(request.callId, request.fromTag ?? "");
      if (!this.#dialog) {
        this.#dialog = Dialog.fromResponse(request, response);
        this.#ua.addUsage(this);
      }
      const granted = Number.parseInt(response.headers.get("Expires") ?? "", 10);
      this.#armTimers(Number.isFinite(granted) ? granted : this.#options.expires);
      if (this.#state === "closing") {
        this.#sendUnsubscribe();
        return;
      }
      this.#state = "established";
      return;
    }
    if (response.status === 423 && !this.#retriedTooBrief && this.#state === "sending") {
      // RFC 6665 §4.1.2.1: retry with at least Min-Expires.
      const min = Number.parseInt(response.headers.get("Min-Expires") ?? "", 10);
      if (Number.isFinite(min) && min > 0) {
        this.#retriedTooBrief = true;
        this.start(min);
        return;
      }
    }
    this.#ua.forgetNotify(request.callId, request.fromTag ?? "");
    const retryAfter = retryAfterOf(response);
    this.#finish({
      reason: "rejected",
      status: response.status,
      ...(retryAfter === undefined ? {} : { retryAfter }),
    });
  }

  /** A NOTIFY before the 2xx creates the dialog (RFC 6665 §4.1.2.4). */
  #earlyNotify(sr: ServerRequest): boolean {
    if (this.#dialog || this.#state === "terminated" || !this.#request) return false;
    const dialog = Dialog.fromIncomingRequest(
      sr.request,
      this.#request.fromTag ?? "",
      this.#options.contact,
    );
    dialog.localSeq = this.#request.cseq.seq;
    this.#dialog = dialog;
    this.#ua.addUsage(this);
    if (this.#state === "sending") this.#state = "established";
    this.#armTimers(this.#options.expires);
    this.onRequest(sr);
    return true;
  }

  /** @inheritdoc */
  onRequest(sr: ServerRequest): void {
    const request = sr.request;
    if (request.method !== "NOTIFY") {
      sr.respond(405, undefined, { headers: [["Allow", "NOTIFY"]] });
      return;
    }
    if (this.#state === "terminated") {
      sr.respond(481);
      return;
    }
    const event = request.headers.get("Event")?.split(";")[0]?.trim().toLowerCase();
    if (event !== this.#options.event.toLowerCase()) {
      sr.respond(489);
      return;
    }
    const state = parseSubscriptionState(request.headers.get("Subscription-State"));
    if (!state) {
      sr.respond(400, "Bad Request (Subscription-State missing or malformed)");
      return;
    }
    this.#dialog?.refreshTarget(request);
    sr.respond(200);
    if (this.#state === "closing") return;
    if (state.state !== "terminated" && state.expires !== undefined) {
      this.#armTimers(state.expires);
    }
    this.#options.events.onNotify(request, state);
    if (state.state === "terminated") {
      this.#finish({
        reason: state.reason ?? "noresource",
        ...(state.retryAfter === undefined ? {} : { retryAfter: state.retryAfter }),
      });
    }
  }

  /** Refreshes now (RFC 6665 §4.1.2.2); also used to ask for full state. */
  refresh(): void {
    if (this.#state !== "established" || !this.#dialog) return;
    const request = this.#inDialogSubscribe(this.#options.expires);
    this.#ua.sendInDialog(request, this.#dialog, undefined).final.then((response) => {
      if (this.#state !== "established") return;
      if (response.status >= 200 && response.status < 300) {
        const granted = Number.parseInt(response.headers.get("Expires") ?? "", 10);
        this.#armTimers(Number.isFinite(granted) ? granted : this.#options.expires);
      } else if (response.status === 481) {
        this.#finish({ reason: "481", status: 481 });
      }
      // Other failures: still valid until it expires (RFC 6665 §4.1.2.2); the expiry timer ends it.
    }, () => {});
  }

  /** Unsubscribes (RFC 6665 §4.1.2.3); the owner hears `unsubscribed`. */
  close(): void {
    if (this.#state === "terminated" || this.#state === "closing") return;
    const wasEstablished = this.#state === "established";
    this.#state = "closing";
    this.#options.events.onTerminated({ reason: "unsubscribed" });
    if (wasEstablished) this.#sendUnsubscribe();
  }

  #sendUnsubscribe(): void {
    const dialog = this.#dialog;
    this.#clearTimers();
    if (!dialog) return this.#finish({ reason: "unsubscribed" }, true);
    const request = this.#inDialogSubscribe(0);
    const done = () => this.#finish({ reason: "unsubscribed" }, true);
    this.#ua.sendInDialog(request, dialog, undefined).final.then(done, done);
  }

  #inDialogSubscribe(expires: number): SipRequest {
    const request = this.dialog.createRequest("SUBSCRIBE");
    request.headers.append("Event", this.#options.event);
    request.headers.append("Accept", this.#options.accept);
    request.headers.append("Expires", String(expires));
    return request;
  }

  #armTimers(grantedSeconds: number): void {
    this.#clearTimers();
    if (this.#state === "closing" || this.#state === "terminated") return;
    const clock = this.#ua.clock;
    const ms = Math.max(0, grantedSeconds) * 1000;
    if (ms === 0) {
      // A fetch (RFC 6665 §4.4.3): wait for the one NOTIFY, at most 64*T1 (32 s).
      this.#expiryTimer = clock.setTimer(32_000, () => this.#finish({ reason: "timeout" }));
      return;
    }
    // Refresh well before expiry: a minute early, at least at half time.
    const refreshIn = Math.max(ms / 2, ms - 60_000);
    this.#refreshTimer = clock.setTimer(refreshIn, () => this.refresh());
    this.#expiryTimer = clock.setTimer(ms, () => this.#finish({ reason: "timeout" }));
  }

  #clearTimers(): void {
    this.#refreshTimer?.cancel();
    this.#expiryTimer?.cancel();
    this.#refreshTimer = undefined;
    this.#expiryTimer = undefined;
  }

  #finish(end: SubscriptionEnd, silent = false): void {
    if (this.#state === "terminated") return;
    const wasClosing = this.#state === "closing";
    this.#state = "terminated";
    this.#clearTimers();
    if (this.#request) this.#ua.forgetNotify(this.#request.callId, this.#request.fromTag ?? "");
    if (this.#dialog) this.#ua.removeUsage(this);
    if (!silent && !wasClosing) this.#options.events.onTerminated(end);
  }
}
