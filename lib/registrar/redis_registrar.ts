/**
 * Flexisip's Redis registrar, from the conference server's side:
 *
 * - **Bindings** (what Flexisip's conference server does in `bindFactoryUris`/`bindFocusUris`):
 *   each URI of ours (factory, focus, dial-in room) is bound to our transport URI with
 *   `+sip.instance="<urn:uuid:…>"` (our instance id), `callid=CONFERENCE`, `expires=2147483647`,
 *   the Path of the proxy in front, and `pub-gruu="<aor>;gr=<uuid>"`, so a Flexisip proxy routes
 *   those URIs to us. Written with `MULTI / HSET fs:<aor> / EXPIREAT / EXEC` on every
 *   (re)connection and checked again every `refreshMs`. Like Flexisip, a clean shutdown leaves
 *   them in place (they never expire; a restart rewrites them).
 * - **Devices** (RFC 3261 §10 bindings of participants): `HGETALL fs:<aor>`, expired bindings
 *   dropped; a bad field is skipped with one warning.
 * - **Change feed**: the Redis channel `<user>@<domain>` (Flexisip's proxy PUBLISHes the
 *   device's unique id there on REGISTER), `__keyevent@<db>__:expired` (the record expired;
 *   needs `notify-keyspace-events` with `Ex` on the Redis server), a timer at the next binding
 *   expiry, and a re-read after each reconnection. Each source triggers a re-read; listeners hear
 *   the differences.
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { parseUri } from "../sip/uri.ts";
import {
  type Device,
  type DeviceDirectory,
  type DeviceListener,
  type DeviceWatch,
  diffDevices,
  DirectoryUnavailableError,
} from "./device_directory.ts";
import {
  aorKey,
  contactParameter,
  contactUriText,
  expiryOf,
  type FlexisipContact,
  instanceOf,
  parseFlexisipRecord,
  pubGruuOf,
  RECORD_KEY_PREFIX,
  recordKey,
  serializeFlexisipContact,
  uniqueIdOf,
} from "./flexisip_record.ts";
import { type Backoff, type RedisEndpoint, RedisLink } from "./redis_link.ts";

/** Flexisip's "never expires" (`numeric_limits<int>::max()` seconds). */
export const NEVER_EXPIRES = 2_147_483_647;
/** The Call-ID Flexisip's conference server binds with. */
export const CONFERENCE_CALL_ID = "CONFERENCE";
/** Longest wait before re-reading a watched record for expired bindings (1 day). */
const MAX_EXPIRY_TIMER_MS = 86_400_000;

/** One URI of ours to keep bound. */
export interface ServerBinding {
  /** Our URI, e.g. `sip:conference-factory@example.org`. */
  readonly aor: string;
  /** Where the proxy sends requests for it: our transport URI, e.g. `sip:10.0.0.5:6064;transport=tcp`. */
  readonly contact: string;
  /** Our instance id, `urn:uuid:…`. */
  readonly instance: string;
  /** Path URIs (RFC 3327): the proxy in front, or none. */
  readonly path: readonly string[];
  readonly userAgent: string;
}

/** Settings. */
export interface RedisRegistrarOptions {
  readonly endpoint: RedisEndpoint;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Wall-clock time, ms since 1970 (binding timestamps and expiry); default `Date.now`. */
  readonly wallClock?: () => number;
  readonly backoff?: Backoff;
  /** How often the bindings are checked and rewritten if missing (default 10 min). */
  readonly refreshMs?: number;
  /** URIs to keep bound. */
  readonly bindings?: readonly ServerBinding[];
}

interface WatchState {
  readonly aor: string;
  readonly key: string;
  readonly listeners: Set<DeviceListener>;
  devices: readonly Device[];
  queue: Promise<void>;
  timer: TimerHandle | undefined;
}

/** The Flexisip record of one of our bindings (exported for tests and tools). */
export function serverContact(binding: ServerBinding, updatedAt: number): FlexisipContact {
  const aor = parseUri(binding.aor);
  const gruu = `sip:${aorKey(aor)};gr=${binding.instance}`;
  return {
    key: uniqueIdOf(binding.instance),
    uri: parseUri(binding.contact),
    params: new Map([
      ["+sip.instance", uniqueIdOf(binding.instance)],
      ["pub-gruu", `"${gruu}"`],
    ]),
    callId: CONFERENCE_CALL_ID,
    expires: NEVER_EXPIRES,
    cseq: 0,
    updatedAt,
    alias: false,
    usedAsRoute: false,
    path: [...binding.path],
    accept: [],
    userAgent: binding.userAgent,
  };
}

/** A binding as a {@link Device} of `aor` (`sip:user@domain`). */
export function deviceOf(aor: string, contact: FlexisipContact): Device {
  const instance = instanceOf(contact);
  const contactText = contactUriText(contact);
  let uri = pubGruuOf(contact);
  if (uri === undefined) {
    const gr = contact.uri.params.get("gr");
    uri = gr ? `${aor};gr=${gr}` : contactText;
  }
  const specs = contactParameter(contact, "+org.linphone.specs");
  return {
    aor,
    id: instance ?? contactText,
    ...(instance === undefined ? {} : { instance }),
    uri,
    contact: contactText,
    ...(contact.userAgent === "" ? {} : { userAgent: contact.userAgent }),
    ...(specs === undefined ? {} : { specs }),
  };
}

/** Flexisip's Redis registrar: our bindings, participants' devices, and their changes. */
export class RedisRegistrar implements DeviceDirectory {
  readonly #options: RedisRegistrarOptions;
  readonly #link: RedisLink;
  readonly #logger: Logger;
  readonly #wallClock: () => number;
  readonly #watches = new Map<string, WatchState>();
  readonly #warned = new Set<string>();
  #bindings: readonly ServerBinding[];
  #refreshTimer: TimerHandle | undefined;
  #stopped = false;
  #bindRuns = 0;

  constructor(options: RedisRegistrarOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#wallClock = options.wallClock ?? Date.now;
    this.#bindings = options.bindings ?? [];
    this.#link = new RedisLink({
      endpoint: options.endpoint,
      logger: options.logger,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      onReady: () => this.#onReady(),
    });
  }

  /** True while Redis answers. */
  get connected(): boolean {
    return this.#link.ready;
  }

  /** Number of times the bindings were written (for tests and monitoring). */
  get bindRuns(): number {
    return this.#bindRuns;
  }

  /** The keyspace channel of expired keys in our database. */
  get expiredChannel(): string {
    return `__keyevent@${this.#options.endpoint.database}__:expired`;
  }

  /** Starts connecting in the background; never fails because Redis is down. */
  start(): Promise<void> {
    this.#link.start();
    void this.#link.subscribe(this.expiredChannel, (key) => this.#onExpired(key));
    this.#armRefresh();
    return Promise.resolve();
  }

  /** Closes the connections (bindings stay, as Flexisip's conference server leaves them). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#refreshTimer?.cancel();
    for (const state of this.#watches.values()) state.timer?.cancel();
    this.#watches.clear();
    await this.#link.stop();
  }

  /** Replaces the set of URIs kept bound and writes them when connected. */
  setBindings(bindings: readonly ServerBinding[]): Promise<void> {
    this.#bindings = bindings;
    return this.#link.ready ? this.#writeBindings() : Promise.resolve();
  }

  #onReady(): void {
    void this.#writeBindings();
    for (const state of this.#watches.values()) this.#refresh(state);
  }

  #armRefresh(): void {
    if (this.#stopped) return;
    this.#refreshTimer = this.#options.clock.setTimer(this.#options.refreshMs ?? 600_000, () => {
      if (this.#link.ready) void this.#checkBindings();
      this.#armRefresh();
    });
  }

  /** Rewrites the bindings whose field disappeared (a FLUSHDB, a DEL by an operator). */
  async #checkBindings(): Promise<void> {
    try {
      const client = this.#link.commands();
      for (const binding of this.#bindings) {
        const present = await client.hExists(recordKey(binding.aor), uniqueIdOf(binding.instance));
        if (!present) {
          await this.#writeBindings();
          return;
        }
      }
    } catch (error) {
      this.#logger.debug("binding check failed", { error: error as Error });
    }
  }

  async #writeBindings(): Promise<void> {
    if (this.#bindings.length === 0) return;
    const updatedAt = Math.floor(this.#wallClock() / 1000);
    try {
      const multi = this.#link.commands().multi();
      for (const binding of this.#bindings) {
        const contact = serverContact(binding, updatedAt);
        const key = recordKey(binding.aor);
        multi.hSet(key, contact.key, serializeFlexisipContact(contact));
        multi.expireAt(key, updatedAt + NEVER_EXPIRES);
      }
      await multi.exec();
      this.#bindRuns++;
      this.#logger.info("bound in the Redis registrar", {
        uris: this.#bindings.map((b) => b.aor).join(" "),
      });
    } catch (error) {
      // Lost meanwhile: the next ready writes them again.
      this.#logger.debug("binding failed", { error: error as Error });
    }
  }

  /** @inheritdoc */
  async devicesOf(aor: string): Promise<readonly Device[]> {
    return (await this.#load(normalizeAor(aor))).devices;
  }

  async #load(aor: string): Promise<{ contacts: FlexisipContact[]; devices: Device[] }> {
    let fields: Record<string, string>;
    try {
      fields = await this.#link.commands().hGetAll(recordKey(aor)) as Record<string, string>;
    } catch (error) {
      throw new DirectoryUnavailableError(
        `Redis registrar unavailable: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const now = Math.floor(this.#wallClock() / 1000);
    const key = recordKey(aor);
    const contacts = parseFlexisipRecord(fields, (field, error) => {
      const id = `${key}\u0000${field}\u0000${fields[field]}`;
      if (this.#warned.has(id)) return;
      if (this.#warned.size > 10_000) this.#warned.clear();
      this.#warned.add(id);
      this.#logger.warn("bad registrar record field skipped", {
        key,
        field,
        error: error.message,
      });
    });
    const live = contacts.filter((c) => expiryOf(c) > now);
    return { contacts: live, devices: live.map((c) => deviceOf(aor, c)) };
  }

  /** @inheritdoc */
  watch(aor: string, listener: DeviceListener): DeviceWatch {
    const normalized = normalizeAor(aor);
    const key = aorKey(normalized);
    let state = this.#watches.get(key);
    if (!state) {
      state = {
        aor: normalized,
        key,
        listeners: new Set(),
        devices: [],
        queue: Promise.resolve(),
        timer: undefined,
      };
      this.#watches.set(key, state);
      const s = state;
      void this.#link.subscribe(key, () => this.#refresh(s));
      this.#refresh(state);
    }
    state.listeners.add(listener);
    const s = state;
    return {
      close: () => {
        s.listeners.delete(listener);
        if (s.listeners.size > 0 || this.#watches.get(key) !== s) return;
        this.#watches.delete(key);
        s.timer?.cancel();
        void this.#link.unsubscribe(key);
      },
    };
  }

  #onExpired(redisKey: string): void {
    if (!redisKey.startsWith(RECORD_KEY_PREFIX)) return;
    const state = this.#watches.get(redisKey.slice(RECORD_KEY_PREFIX.length));
    if (state) this.#refresh(state);
    const bound = this.#bindings.some((b) => recordKey(b.aor) === redisKey);
    if (bound) void this.#writeBindings();
  }

  /** Re-reads a watched record (one read at a time per AOR) and reports the differences. */
  #refresh(state: WatchState): void {
    state.queue = state.queue.then(async () => {
      if (this.#stopped || this.#watches.get(state.key) !== state || !this.#link.ready) return;
      let devices: Device[];
      let contacts: readonly FlexisipContact[];
      try {
        ({ contacts, devices } = await this.#load(state.aor));
      } catch (error) {
        this.#logger.debug("registrar refresh failed", { aor: state.aor, error: error as Error });
        return;
      }
      this.#armExpiryTimer(state, contacts);
      const changes = diffDevices(state.devices, devices);
      state.devices = devices;
      if (changes.length === 0) return;
      const event = { aor: state.aor, changes, devices };
      for (const listener of [...state.listeners]) {
        try {
          listener(event);
        } catch (error) {
          this.#logger.warn("device listener failed", { aor: state.aor, error: error as Error });
        }
      }
    });
  }

  /** A bindings expires without any Redis event: re-read at the earliest expiry. */
  #armExpiryTimer(state: WatchState, contacts: readonly FlexisipContact[]): void {
    state.timer?.cancel();
    state.timer = undefined;
    const nowMs = this.#wallClock();
    const upcoming = contacts.map((c) => expiryOf(c) * 1000).filter((t) => t > nowMs);
    if (upcoming.length === 0) return;
    const delay = Math.min(MAX_EXPIRY_TIMER_MS, Math.min(...upcoming) - nowMs + 1);
    state.timer = this.#options.clock.setTimer(delay, () => this.#refresh(state));
  }
}

/** `sip:user@domain` of any SIP URI text (parameters and port dropped). */
export function normalizeAor(aor: string): string {
  return `sip:${aorKey(parseUri(aor.trim().replace(/^<|>$/g, "")))}`;
}
