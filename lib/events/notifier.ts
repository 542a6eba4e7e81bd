/**
 * The conference notification service of one conference (RFC 4575 §3 over RFC 6665): keeps
 * the subscribers, the published snapshot and its version, sends the full state on
 * subscription, a partial state with version+1 on every change (§4.6), replays missed
 * partials for `Last-Notify-Version` (the liblinphone extension; full state when too far
 * behind), honours `Accept-Encoding: deflate` (RFC 3261 §20.2), and terminates every
 * subscription with `reason=noresource` when the conference ends (RFC 6665 §4.1.3).
 * @module
 */

import { deflateSync } from "node:zlib";
import type { Logger } from "../config/log.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import { Subscription, type TerminationReason } from "../dialog/subscription.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import {
  buildFullState,
  buildPartialState,
  CONFERENCE_INFO_CONTENT_TYPE,
  type ConferenceSnapshot,
} from "./conference_info.ts";

/** How many partial documents are kept for `Last-Notify-Version` replay (liblinphone: 10). */
export const REPLAY_DEPTH = 10;

const encoder = new TextEncoder();

interface Subscriber {
  readonly subscription: Subscription;
  readonly deflate: boolean;
}

/** Settings of a notifier. */
export interface ConferenceNotifierOptions {
  readonly ua: UserAgent;
  /** Our Contact in subscription dialogs (the conference URI with `isfocus`). */
  readonly contact: string;
  /** Subscription durations, seconds (RFC 4575 §3.3 default 3600). */
  readonly defaultExpires?: number;
  readonly maxExpires?: number;
  readonly minExpires?: number;
  readonly logger: Logger;
  /** Version to continue from (after a restart). */
  readonly initialVersion?: number;
  /** Called when the version changes (to persist it). */
  onVersion?(version: number): void;
}

/** The `Last-Notify-Version` a SUBSCRIBE carries, if any. */
export function lastNotifyVersion(sr: ServerRequest): number | undefined {
  const v = sr.request.headers.get("Last-Notify-Version");
  if (v === undefined) return undefined;
  const n = Number.parseInt(v.trim(), 10);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Subscribers and versions of one conference's conference-info. */
export class ConferenceNotifier {
  readonly #options: ConferenceNotifierOptions;
  readonly #subscribers = new Map<Subscription, Subscriber>();
  #snapshot: ConferenceSnapshot | undefined;
  #version: number;
  #history: Array<{ version: number; xml: string }> = [];
  #closed = false;

  constructor(options: ConferenceNotifierOptions) {
    this.#options = options;
    this.#version = options.initialVersion ?? 0;
  }

  /** The version of the last published state (RFC 4575 §4.5). */
  get version(): number {
    return this.#version;
  }

  /** Number of live subscriptions. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** The snapshot last published. */
  get snapshot(): ConferenceSnapshot | undefined {
    return this.#snapshot;
  }

  /**
   * Publishes a new state: when it differs from the last one, the version goes up by one and
   * every subscriber gets the partial document (RFC 4575 §4.6). Returns the new version.
   */
  publish(next: ConferenceSnapshot): number {
    if (this.#closed) return this.#version;
    const previous = this.#snapshot;
    this.#snapshot = next;
    if (previous === undefined) {
      // First state: nothing to send, subscribers get full state when they arrive.
      if (this.#version === 0) this.#bump();
      return this.#version;
    }
    const partial = buildPartialState(previous, next, this.#version + 1);
    if (partial === null) return this.#version;
    this.#bump();
    this.#history.push({ version: this.#version, xml: partial });
    if (this.#history.length > REPLAY_DEPTH) this.#history.shift();
    for (const sub of this.#subscribers.values()) void this.#send(sub, partial);
    return this.#version;
  }

  /**
   * Accepts a SUBSCRIBE (RFC 4575 §3, RFC 6665 §4.2.1) and sends the immediate NOTIFY: full
   * state, or only the partials missed since `Last-Notify-Version`, or nothing new (an empty
   * NOTIFY) when the subscriber is up to date. `Expires: 0` is a fetch: one NOTIFY, then
   * terminated. `onFirstNotify` hears whether that first NOTIFY got a 2xx (a chat room device
   * is present from then on, as liblinphone's server has it).
   */
  subscribe(sr: ServerRequest, onFirstNotify?: (delivered: boolean) => void): Subscription {
    const ua = this.#options.ua;
    const sub = Subscription.accept(ua, sr, {
      event: "conference",
      minExpires: this.#options.minExpires ?? 60,
      maxExpires: this.#options.maxExpires ?? 86400,
      defaultExpires: this.#options.defaultExpires ?? 3600,
      contact: this.#options.contact,
      events: {
        onRefresh: (s) => {
          const entry = this.#subscribers.get(s);
          // RFC 6665 §4.2.1.2: a refresh is followed by a NOTIFY with the current state.
          if (entry) void this.#send(entry, this.#fullXml());
          else void s.notify(undefined);
        },
        onTerminated: (s, reason) => {
          this.#subscribers.delete(s);
          this.#options.logger.debug("conference subscription ended", { reason });
        },
      },
    });
    if (sub.state === "terminated") return sub;
    const acceptEncoding = sr.request.headers.getAll("Accept-Encoding").join(",").toLowerCase();
    const entry: Subscriber = {
      subscription: sub,
      deflate: acceptEncoding.split(",").map((s) => s.trim().split(";")[0]).includes("deflate"),
    };
    const fetch = sub.remainingSeconds === 0;
    if (!fetch) this.#subscribers.set(sub, entry);
    const known = lastNotifyVersion(sr);
    const missed = known !== undefined && known > 0 && known <= this.#version
      ? this.#history.filter((h) => h.version > known)
      : undefined;
    const complete = missed !== undefined &&
      (missed.length === this.#version - (known ?? 0));
    let first: Promise<boolean>;
    if (known !== undefined && known === this.#version && known > 0) {
      first = this.#send(entry, undefined);
    } else if (complete && missed.length > 0) {
      const sent = missed.map((h) => this.#send(entry, h.xml));
      first = sent[0] ?? Promise.resolve(false);
    } else {
      first = this.#send(entry, this.#fullXml());
    }
    if (onFirstNotify) void first.then(onFirstNotify, () => onFirstNotify(false));
    return sub;
  }

  /** Ends every subscription with a final NOTIFY (RFC 6665 §4.2.2), e.g. `noresource`. */
  async close(reason: TerminationReason = "noresource"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const subs = [...this.#subscribers.values()];
    this.#subscribers.clear();
    await Promise.all(subs.map((s) => s.subscription.terminate(reason).catch(() => false)));
  }

  #bump(): void {
    this.#version += 1;
    this.#options.onVersion?.(this.#version);
  }

  #fullXml(): string {
    if (!this.#snapshot) throw new Error("notifier has no state yet");
    return buildFullState(this.#snapshot, this.#version);
  }

  #send(sub: Subscriber, xml: string | undefined): Promise<boolean> {
    if (xml === undefined) return sub.subscription.notify(undefined);
    let body = encoder.encode(xml);
    const headers: Array<readonly [string, string]> = [];
    if (sub.deflate) {
      body = new Uint8Array(deflateSync(body));
      headers.push(["Content-Encoding", "deflate"]);
    }
    return sub.subscription.notify({ contentType: CONFERENCE_INFO_CONTENT_TYPE, body, headers });
  }
}
