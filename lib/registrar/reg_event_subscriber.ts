/**
 * Devices of users whose domain is not served by our Redis registrar: the registration event
 * package (RFC 3680). For each followed address of record, a `SUBSCRIBE` with `Event: reg` and
 * `Accept: application/reginfo+xml` goes through the outbound proxy (RFC 3680 §4); NOTIFYs
 * carry full or partial `reginfo` documents with rising versions (§5.3): a stale partial is
 * ignored, a gap triggers a refresh to obtain full state, a full document replaces the view.
 * The subscription is refreshed before it expires and, once terminated, made again with
 * exponential backoff (immediately after `deactivated`/`timeout`, RFC 6665 §4.1.3; never before
 * the notifier's `retry-after`).
 *
 * A NOTIFY without a body while the subscription is active (or the one ending a fetch with
 * `reason=timeout`) means the notifier knows no registration of the AOR: no devices. Kamailio
 * (`presence_reginfo`) sends exactly that for an AOR nothing was published for, instead of a
 * `reginfo` document with no `registration` (RFC 3680 §5.3 wants a full document).
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { ClientSubscription, type SubscriptionStateValue } from "../dialog/client_subscription.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import {
  applyRegInfo,
  contactDeviceUri,
  contactInstance,
  contactParam,
  parseRegInfo,
  type RegInfo,
  REGINFO_CONTENT_TYPE,
} from "../events/reg_event.ts";
import type { NameAddr } from "../sip/headers.ts";
import type { SipRequest } from "../sip/message.ts";
import { parseUri } from "../sip/uri.ts";
import {
  type Device,
  type DeviceDirectory,
  type DeviceListener,
  type DeviceWatch,
  diffDevices,
  DirectoryUnavailableError,
} from "./device_directory.ts";
import { aorKey } from "./flexisip_record.ts";
import { type Backoff, backoffDelay } from "./redis_link.ts";

/** Default re-subscription backoff: 2 s doubling up to 5 min. */
export const DEFAULT_RESUBSCRIBE_BACKOFF: Backoff = { initialMs: 2_000, maxMs: 300_000 };

/** Settings. */
export interface RegEventDirectoryOptions {
  readonly ua: UserAgent;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Our identity in From (e.g. the first factory URI). */
  readonly from: string;
  /** Our Contact header value. */
  readonly contact: string;
  /** Subscription duration asked for, seconds (`subscription-refresh-delay`). */
  readonly expires: number;
  readonly backoff?: Backoff;
}

interface Follow {
  readonly aor: string;
  readonly listeners: Set<DeviceListener>;
  view: RegInfo | undefined;
  devices: readonly Device[];
  subscription: ClientSubscription | undefined;
  retries: number;
  retryTimer: TimerHandle | undefined;
}

const decoder = new TextDecoder();

/**
 * The view an empty NOTIFY stands for: full state with no registration. Its version is below
 * any real one, so that whatever document comes next is applied (RFC 3680 §5.3).
 */
export const NO_REGISTRATIONS: RegInfo = { version: -1, state: "full", registrations: [] };

/**
 * Whether a NOTIFY without a body reports "no registrations" (see the module comment): the
 * subscription is active — not pending, where there is no state to report yet (RFC 6665
 * §4.1.3), nor ending — or, for a fetch (RFC 6665 §4.4.3), it ends the normal way
 * (`reason=timeout`).
 */
export function emptyNotifyMeansNone(state: SubscriptionStateValue, fetch: boolean): boolean {
  if (state.state === "active") return true;
  return fetch && state.state === "terminated" && (state.reason ?? "timeout") === "timeout";
}

function sameAor(a: string, b: string): boolean {
  try {
    return aorKey(a).toLowerCase() === aorKey(b).toLowerCase();
  } catch {
    return false;
  }
}

/** The active contacts of `aor` in a reginfo view, as devices. */
export function devicesFromRegInfo(aor: string, info: RegInfo | undefined): Device[] {
  const devices: Device[] = [];
  for (const registration of info?.registrations ?? []) {
    if (!sameAor(registration.aor, aor)) continue;
    for (const contact of registration.contacts) {
      if (contact.state !== "active") continue;
      const instance = contactInstance(contact);
      const specs = contactParam(contact, "+org.linphone.specs");
      devices.push({
        aor,
        id: instance ?? contact.uri,
        ...(instance === undefined ? {} : { instance }),
        uri: contactDeviceUri(contact),
        contact: contact.uri,
        ...(specs === undefined ? {} : { specs }),
      });
    }
  }
  return devices;
}

/** RFC 3680 subscriber for the devices of foreign domains. */
export class RegEventDirectory implements DeviceDirectory {
  readonly #options: RegEventDirectoryOptions;
  readonly #follows = new Map<string, Follow>();
  readonly #fetches = new Set<ClientSubscription>();
  readonly #backoff: Backoff;
  readonly #logger: Logger;
  #stopped = false;

  constructor(options: RegEventDirectoryOptions) {
    this.#options = options;
    this.#backoff = options.backoff ?? DEFAULT_RESUBSCRIBE_BACKOFF;
    this.#logger = options.logger;
  }

  /** @inheritdoc */
  start(): Promise<void> {
    return Promise.resolve();
  }

  /** Unsubscribes everything. */
  stop(): Promise<void> {
    this.#stopped = true;
    for (const follow of this.#follows.values()) {
      follow.retryTimer?.cancel();
      follow.subscription?.close();
    }
    this.#follows.clear();
    for (const fetch of this.#fetches) fetch.close();
    this.#fetches.clear();
    return Promise.resolve();
  }

  /** Number of subscriptions alive (for tests and monitoring). */
  get subscriptionCount(): number {
    let n = this.#fetches.size;
    for (const f of this.#follows.values()) if (f.subscription) n++;
    return n;
  }

  /**
   * The followed AOR's current devices, or a one-time fetch (RFC 6665 §4.4.3, `Expires: 0`):
   * rejects with {@link DirectoryUnavailableError} when no NOTIFY comes.
   */
  devicesOf(aor: string): Promise<readonly Device[]> {
    const normalized = normalize(aor);
    const follow = this.#follows.get(normalized.toLowerCase());
    if (follow?.view) return Promise.resolve(follow.devices);
    return new Promise((resolve, reject) => {
      let answered = false;
      const subscription = this.#subscription(normalized, 0, {
        onNotify: (request, state) => {
          const info = this.#parse(normalized, request, emptyNotifyMeansNone(state, true));
          if (info === undefined || answered) return;
          answered = true;
          resolve(devicesFromRegInfo(normalized, applyRegInfo(undefined, info)));
        },
        onTerminated: (end) => {
          this.#fetches.delete(subscription);
          if (answered) return;
          answered = true;
          reject(
            new DirectoryUnavailableError(
              `reg fetch of ${normalized} failed (${end.reason}${
                end.status ? ` ${end.status}` : ""
              })`,
            ),
          );
        },
      });
      this.#fetches.add(subscription);
      subscription.start();
    });
  }

  /** @inheritdoc */
  watch(aor: string, listener: DeviceListener): DeviceWatch {
    const normalized = normalize(aor);
    const key = normalized.toLowerCase();
    let follow = this.#follows.get(key);
    if (!follow) {
      follow = {
        aor: normalized,
        listeners: new Set(),
        view: undefined,
        devices: [],
        subscription: undefined,
        retries: 0,
        retryTimer: undefined,
      };
      this.#follows.set(key, follow);
      this.#subscribe(follow);
    }
    follow.listeners.add(listener);
    const f = follow;
    return {
      close: () => {
        f.listeners.delete(listener);
        if (f.listeners.size > 0 || this.#follows.get(key) !== f) return;
        this.#follows.delete(key);
        f.retryTimer?.cancel();
        f.subscription?.close();
        f.subscription = undefined;
      },
    };
  }

  #subscription(
    aor: string,
    expires: number,
    events: ConstructorParameters<typeof ClientSubscription>[1]["events"],
  ): ClientSubscription {
    const from: NameAddr = {
      display: undefined,
      uri: parseUri(this.#options.from),
      params: new Map(),
    };
    return new ClientSubscription(this.#options.ua, {
      target: parseUri(aor),
      from,
      event: "reg",
      accept: REGINFO_CONTENT_TYPE,
      expires,
      contact: this.#options.contact,
      events,
    });
  }

  #subscribe(follow: Follow): void {
    if (this.#stopped || this.#follows.get(follow.aor.toLowerCase()) !== follow) return;
    // A new subscription starts from full state again (RFC 3680 §5.3: versions restart).
    follow.view = undefined;
    const subscription = this.#subscription(follow.aor, this.#options.expires, {
      onNotify: (request, state) => {
        if (follow.subscription !== subscription) return;
        follow.retries = 0;
        this.#onNotify(follow, subscription, request, state);
      },
      onTerminated: (end) => {
        if (follow.subscription !== subscription) return;
        follow.subscription = undefined;
        if (end.reason === "unsubscribed" || this.#stopped) return;
        const immediate = (end.reason === "deactivated" || end.reason === "timeout") &&
          follow.retries === 0;
        const backoff = immediate ? 0 : backoffDelay(this.#backoff, follow.retries);
        const delay = Math.max(backoff, (end.retryAfter ?? 0) * 1000);
        follow.retries++;
        this.#logger.info("reg subscription ended; subscribing again", {
          aor: follow.aor,
          reason: end.reason,
          ...(end.status ? { status: end.status } : {}),
          inMs: delay,
        });
        follow.retryTimer = this.#options.clock.setTimer(delay, () => {
          follow.retryTimer = undefined;
          this.#subscribe(follow);
        });
      },
    });
    follow.subscription = subscription;
    subscription.start();
  }

  #parse(aor: string, request: SipRequest, emptyIsNone: boolean): RegInfo | undefined {
    if (request.body.length === 0) return emptyIsNone ? NO_REGISTRATIONS : undefined;
    const type = request.contentType?.split(";")[0]?.trim().toLowerCase();
    if (type !== REGINFO_CONTENT_TYPE) {
      this.#logger.debug("reg NOTIFY without reginfo body", { aor, type: type ?? "none" });
      return undefined;
    }
    try {
      return parseRegInfo(decoder.decode(request.body));
    } catch (error) {
      this.#logger.warn("bad reginfo NOTIFY ignored", { aor, error: error as Error });
      return undefined;
    }
  }

  #onNotify(
    follow: Follow,
    subscription: ClientSubscription,
    request: SipRequest,
    state: SubscriptionStateValue,
  ): void {
    const info = this.#parse(follow.aor, request, emptyNotifyMeansNone(state, false));
    if (info === undefined) return;
    const view = follow.view;
    if (info.state === "partial") {
      if (view === undefined) {
        // A partial without a base: ask for full state (RFC 3680 §5.3).
        subscription.refresh();
        return;
      }
      if (info.version <= view.version) return; // stale or repeated
      if (info.version > view.version + 1) subscription.refresh(); // missed some: refetch
    }
    follow.view = applyRegInfo(view, info);
    const devices = devicesFromRegInfo(follow.aor, follow.view);
    const changes = diffDevices(follow.devices, devices);
    follow.devices = devices;
    if (changes.length === 0) return;
    const event = { aor: follow.aor, changes, devices };
    for (const listener of [...follow.listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.#logger.warn("device listener failed", { aor: follow.aor, error: error as Error });
      }
    }
  }
}

function normalize(aor: string): string {
  return `sip:${aorKey(parseUri(aor.trim().replace(/^<|>$/g, "")))}`;
}
