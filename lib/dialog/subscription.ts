/**
 * The notifier side of a subscription (RFC 6665 §4.2): a SUBSCRIBE creates a dialog (or, for
 * the implicit subscription of REFER, RFC 3515 §2.4.4, lives on an existing one); the notifier
 * answers 200 with the granted Expires (§4.2.1.1), sends NOTIFYs with `Subscription-State`
 * (§4.2.2), handles refreshes and unsubscribes (§4.2.1.2, §4.2.1.4), expires the subscription
 * (§4.2.2: `terminated;reason=timeout`), and ends it when a NOTIFY is answered 481 or times out
 * (§4.2.2 "…the notifier MUST remove the subscription").
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import type { SipRequest, SipResponse } from "../sip/message.ts";
import type { Flow } from "../transport/flow.ts";
import { Dialog } from "./dialog.ts";
import type { ServerRequest } from "./server_request.ts";
import type { DialogUsage, UserAgent } from "./user_agent.ts";

/** Reasons of a terminated subscription (RFC 6665 §4.1.3). */
export type TerminationReason =
  | "deactivated"
  | "probation"
  | "rejected"
  | "timeout"
  | "giveup"
  | "noresource"
  | "invariant";

/** What the owner (the focus's notifier) hears. */
export interface SubscriptionEvents {
  /** A refresh arrived (RFC 6665 §4.2.1.2); `expiresMs` 0 means unsubscribe (§4.2.1.4). The
   *  owner sends the NOTIFY that follows (a terminated one for an unsubscribe). */
  onRefresh(subscription: Subscription, request: SipRequest): void;
  /** The subscription ended (expired, unsubscribed, NOTIFY failed, or terminated by us). */
  onTerminated(subscription: Subscription, reason: TerminationReason | "notify-failed"): void;
}

/** Settings from the subscriber's request and the notifier's policy. */
export interface SubscriptionOptions {
  /** Event package, e.g. `conference` (RFC 6665 §7.2.1), with its `id` if present. */
  readonly event: string;
  readonly eventId?: string;
  /** Shortest and longest durations granted, in seconds. */
  readonly minExpires: number;
  readonly maxExpires: number;
  /** Used when the SUBSCRIBE has no Expires (package default; RFC 4575 §3.3: 3600). */
  readonly defaultExpires: number;
  readonly contact: string;
  readonly events: SubscriptionEvents;
}

/** The Expires a SUBSCRIBE asks for, in seconds (RFC 6665 §4.1.2.1). */
export function requestedExpires(request: SipRequest, fallback: number): number {
  const v = request.headers.get("Expires");
  if (v === undefined) return fallback;
  const n = Number.parseInt(v.trim(), 10);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

/** One subscription, notifier side. */
export class Subscription implements DialogUsage {
  readonly dialog: Dialog;
  readonly event: string;
  readonly eventId: string | undefined;
  readonly flow: Flow | undefined;
  /** Who subscribed (the From URI of the SUBSCRIBE, as text). */
  readonly subscriber: string;
  readonly #ua: UserAgent;
  readonly #options: SubscriptionOptions;
  #expiresAt: number;
  #expiryTimer: TimerHandle | undefined;
  #state: "active" | "terminated" = "active";
  /** A NOTIFY failed (RFC 6665 §4.2.2): NOTIFYs still queued are not sent. */
  #failed = false;
  #queue: Promise<unknown> = Promise.resolve();
  /** True when this subscription lives on a dialog owned by another usage (REFER). */
  readonly #shared: boolean;

  private constructor(
    ua: UserAgent,
    dialog: Dialog,
    options: SubscriptionOptions,
    flow: Flow | undefined,
    subscriber: string,
    expiresSeconds: number,
    shared: boolean,
  ) {
    this.#ua = ua;
    this.dialog = dialog;
    this.event = options.event;
    this.eventId = options.eventId;
    this.flow = flow;
    this.subscriber = subscriber;
    this.#options = options;
    this.#shared = shared;
    this.#expiresAt = ua.clock.now() + expiresSeconds * 1000;
    this.#armExpiry();
  }

  /**
   * Accepts a SUBSCRIBE (RFC 6665 §4.2.1.1): 200 with the granted Expires and a new dialog.
   * An Expires of 0 is a fetch (§4.4.3): the owner sends one NOTIFY, which terminates it.
   * The caller must send the first NOTIFY right away (§4.2.1.1).
   */
  static accept(ua: UserAgent, sr: ServerRequest, options: SubscriptionOptions): Subscription {
    const asked = requestedExpires(sr.request, options.defaultExpires);
    const dialog = Dialog.fromIncomingRequest(sr.request, sr.toTag, options.contact);
    const subscriber = sr.request.headers.get("From") ?? "";
    if (tooBrief(asked, options)) {
      // RFC 6665 §4.2.1.1: the notifier "MUST NOT lengthen" the duration; too brief → 423.
      rejectTooBrief(sr, options);
      const refused = new Subscription(ua, dialog, options, sr.flow, subscriber, 0, false);
      refused.#state = "terminated";
      return refused;
    }
    const granted = grant(asked, options);
    const sub = new Subscription(ua, dialog, options, sr.flow, subscriber, granted, false);
    ua.addUsage(sub);
    sr.respond(200, undefined, {
      headers: [["Expires", String(granted)], ["Contact", options.contact]],
    });
    return sub;
  }

  /**
   * The implicit subscription of a REFER (RFC 3515 §2.4.4) on an existing dialog: NOTIFYs go in
   * that dialog; it is not registered as the dialog's usage.
   */
  static implicit(
    ua: UserAgent,
    dialog: Dialog,
    flow: Flow | undefined,
    options: SubscriptionOptions,
  ): Subscription {
    return new Subscription(ua, dialog, options, flow, "", options.defaultExpires, true);
  }

  /**
   * The implicit subscription of an out-of-dialog REFER: the 2xx to the REFER creates a dialog
   * (RFC 3515 §2.4.4, RFC 6665 §4.2.1). The caller answers the REFER with 202 using `sr.toTag`.
   */
  static forRefer(ua: UserAgent, sr: ServerRequest, options: SubscriptionOptions): Subscription {
    const dialog = Dialog.fromIncomingRequest(sr.request, sr.toTag, options.contact);
    const sub = new Subscription(
      ua,
      dialog,
      options,
      sr.flow,
      sr.request.headers.get("From") ?? "",
      options.defaultExpires,
      false,
    );
    ua.addUsage(sub);
    return sub;
  }

  /** `active` or `terminated`. */
  get state(): "active" | "terminated" {
    return this.#state;
  }

  /** Seconds left before expiry (0 when expired or unsubscribed). */
  get remainingSeconds(): number {
    return Math.max(0, Math.ceil((this.#expiresAt - this.#ua.clock.now()) / 1000));
  }

  /** @inheritdoc */
  onRequest(sr: ServerRequest): void {
    const req = sr.request;
    if (req.method !== "SUBSCRIBE") {
      sr.respond(this.#state === "terminated" ? 481 : 200);
      return;
    }
    if (this.#state === "terminated") {
      sr.respond(481);
      return;
    }
    // RFC 6665 §4.2.1.2: a refresh updates the expiration; Expires 0 unsubscribes.
    const asked = requestedExpires(req, this.#options.defaultExpires);
    if (tooBrief(asked, this.#options)) {
      rejectTooBrief(sr, this.#options);
      return;
    }
    const granted = grant(asked, this.#options);
    this.dialog.refreshTarget(req);
    this.#expiresAt = this.#ua.clock.now() + granted * 1000;
    this.#armExpiry();
    sr.respond(200, undefined, {
      headers: [["Expires", String(granted)], ["Contact", this.dialog.localContact]],
    });
    this.#options.events.onRefresh(this, req);
  }

  /**
   * Sends a NOTIFY (RFC 6665 §4.2.2). When the subscription has no time left (a fetch or an
   * unsubscribe) or `terminate` is given, the NOTIFY says `terminated` and the subscription
   * ends. NOTIFYs are sent one after another, in order. Resolves true when the NOTIFY got a 2xx.
   */
  notify(
    content: {
      contentType: string;
      body: Uint8Array;
      headers?: Iterable<readonly [string, string]>;
    } | undefined,
    terminate?: TerminationReason,
  ): Promise<boolean> {
    if (this.#state === "terminated") return Promise.resolve(false);
    const remaining = this.remainingSeconds;
    const reason: TerminationReason | undefined = terminate ??
      (remaining === 0 ? "timeout" : undefined);
    const state = reason !== undefined
      ? `terminated;reason=${reason}`
      : `active;expires=${remaining}`;
    const request = this.dialog.createRequest("NOTIFY", content ? { body: content.body } : {});
    request.headers.append(
      "Event",
      this.eventId !== undefined ? `${this.event};id=${this.eventId}` : this.event,
    );
    request.headers.append("Subscription-State", state);
    if (content) {
      request.headers.append("Content-Type", content.contentType);
      for (const [n, v] of content.headers ?? []) request.headers.append(n, v);
    }
    if (reason !== undefined) this.#finish(reason);
    const send = async (): Promise<boolean> => {
      // The subscription was removed by an earlier NOTIFY's failure (§4.2.2).
      if (this.#failed) return false;
      let response: SipResponse;
      try {
        response = await this.#ua.sendInDialog(request, this.dialog, this.flow).final;
      } catch {
        this.#fail();
        return false;
      }
      if (response.status >= 200 && response.status < 300) return true;
      // RFC 6665 §4.2.2: 481, a timeout (408) or any other failure but 3xx-redirect-less
      // retry codes removes the subscription.
      if (
        response.status === 481 || response.status === 408 || response.status === 503 ||
        response.status >= 400
      ) {
        this.#fail();
      }
      return false;
    };
    const next = this.#queue.then(send, send);
    this.#queue = next;
    return next;
  }

  /** Ends the subscription with a final NOTIFY carrying `content` (may be undefined). */
  terminate(
    reason: TerminationReason,
    content?: { contentType: string; body: Uint8Array },
  ): Promise<boolean> {
    return this.notify(content, reason);
  }

  #armExpiry(): void {
    this.#expiryTimer?.cancel();
    const delay = this.#expiresAt - this.#ua.clock.now();
    if (delay <= 0) return;
    this.#expiryTimer = this.#ua.clock.setTimer(delay, () => {
      // RFC 6665 §4.2.2: on expiry the notifier sends a NOTIFY with "terminated;reason=timeout".
      void this.notify(undefined, "timeout");
    });
  }

  #fail(): void {
    this.#failed = true;
    this.#finish("notify-failed");
  }

  #finish(reason: TerminationReason | "notify-failed"): void {
    if (this.#state === "terminated") return;
    this.#state = "terminated";
    this.#expiryTimer?.cancel();
    if (!this.#shared) this.#ua.removeUsage(this);
    this.#options.events.onTerminated(this, reason);
  }
}

/** An Expires the notifier will not grant (RFC 6665 §4.2.1.1): above 0, below the minimum. */
function tooBrief(asked: number, options: SubscriptionOptions): boolean {
  return asked > 0 && asked < options.minExpires;
}

/** The duration granted (RFC 6665 §4.2.1.1): shortened to the maximum, never lengthened. */
function grant(asked: number, options: SubscriptionOptions): number {
  return Math.min(asked, options.maxExpires);
}

/** 423 (Interval Too Brief) with Min-Expires (RFC 6665 §4.2.1.1, RFC 3261 §21.4.17). */
function rejectTooBrief(sr: ServerRequest, options: SubscriptionOptions): void {
  sr.respond(423, undefined, { headers: [["Min-Expires", String(options.minExpires)]] });
}
