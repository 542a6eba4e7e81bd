/**
 * The focus (RFC 4353 §5): the transaction user above the user-agent core for everything
 * conference-related. It routes each request by its Request-URI: a conference factory URI
 * (INVITE creates a conference and answers 302 with the conference URI, RFC 4579 §5.1 /
 * Flexisip), a conference URI (`;conf-id=`: join, SUBSCRIBE conference, REFER), a dial-in room
 * declared in the configuration (RFC 4353 §3.1), or nothing we host (404). Unknown conference
 * ids answer 404 and ended ones 410; a storage outage answers 503 with Retry-After.
 * @module
 */

import { SingleFlight } from "./single_flight.ts";
import type { Clock, TimerHandle } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import type { RequestHandler, UserAgent } from "../dialog/user_agent.ts";
import type { MediaTicker } from "../media/media_ticker.ts";
import type { PortPool } from "../media/port_pool.ts";
import { parseUri, type SipUri } from "../sip/uri.ts";
import { formatUri } from "../sip/uri.ts";
import type { ConferenceRecord, Store } from "../storage/store.ts";
import { StoreUnavailableError } from "../storage/store.ts";
import type { Flow, TransportName } from "../transport/flow.ts";
import { Conference, type ConferenceServices } from "./conference.ts";
import { sdpBody } from "./join_request.ts";
import {
  conferenceUri,
  isPlausibleConferenceId,
  newConferenceId,
  sameUserHost,
} from "./conference_uri.ts";
import type { LocalMediaCaps, Negotiator, VideoCodecName } from "./media_negotiation.ts";
import type { DeviceDirectory } from "../registrar/device_directory.ts";
import { ChatRoomFactory, isChatRoomCreation } from "./chat_room_factory.ts";

/** A factory URI and the focus URI template of the conferences it creates. */
export interface FactoryBinding {
  readonly factory: SipUri;
  readonly focus: string;
}

/** Where we listen, for direct (proxy-less) Contacts. */
export interface LocalAddress {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
}

/** Settings of the focus. */
export interface FocusOptions {
  readonly ua: UserAgent;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly ports: PortPool;
  readonly ticker: MediaTicker;
  readonly negotiator: Negotiator;
  readonly factories: readonly FactoryBinding[];
  readonly dialInRooms: readonly SipUri[];
  readonly outboundProxy: SipUri | undefined;
  /** Our listening addresses; the first is the default for Contacts. */
  readonly localAddresses: readonly LocalAddress[];
  readonly mediaAddress: string;
  readonly audioCodecs: LocalMediaCaps["audioCodecs"];
  /** The `video-port` pool (default: the audio pool). */
  readonly videoPorts?: PortPool;
  /** Video codecs forwarded (config `supported-video-codec`); empty: no video. */
  readonly videoCodecs?: readonly VideoCodecName[];
  readonly mediaTypes: readonly string[];
  readonly callTimeoutMs: number;
  readonly noRtpTimeoutMs: number;
  readonly maxParticipants: number;
  readonly maxSpeakers: number;
  /** Join/leave/alone tones (config `announcements`). */
  readonly announcements: boolean;
  /** Ended conferences older than this are purged (0 = never). */
  readonly expiryMs: number;
  /** Group chat rooms (defaults: enabled, one-to-one allowed, 7 days retention). */
  readonly chat?: ChatSettings;
}

/** Settings of group chat rooms (config keys of `[conference-server]`). */
export interface ChatSettings {
  /** `text` is among `supported-media-types`. */
  readonly enabled: boolean;
  readonly oneToOneEnabled: boolean;
  readonly checkCapabilities: boolean;
  readonly emptyRoomDeletion: boolean;
  readonly retentionMs: number;
  /** The device directory, once started (undefined without Redis). */
  directory(): DeviceDirectory | undefined;
}

const PURGE_INTERVAL_MS = 3600_000;

/**
 * Writes a requester is waiting for: refused with 503 + Retry-After when storage is down
 * (issue 5, "what cannot be stored is refused rather than accepted and lost").
 */
const REFUSABLE_WRITES: ReadonlySet<string> = new Set(["join"]);
/** Backoff of writes that cannot be refused (the end of a conference, a dial-out). */
const DURABLE_RETRY_FIRST_MS = 1000;
const DURABLE_RETRY_MAX_MS = 30_000;

/** The conference focus. */
export class Focus implements RequestHandler {
  readonly #o: FocusOptions;
  readonly #live = new Map<string, Conference>();
  readonly #loading = new SingleFlight<Conference | number>();
  readonly #services: ConferenceServices;
  #purgeTimer: TimerHandle | undefined;
  readonly #durableWaits = new Set<() => void>();
  #stopping = false;
  readonly #chat: ChatRoomFactory;

  constructor(options: FocusOptions) {
    this.#o = options;
    const chat = options.chat;
    this.#chat = new ChatRoomFactory({
      ua: options.ua,
      store: options.store,
      clock: options.clock,
      logger: options.logger,
      maxParticipants: options.maxParticipants,
      enabled: chat?.enabled ?? true,
      oneToOneEnabled: chat?.oneToOneEnabled ?? true,
      checkCapabilities: chat?.checkCapabilities ?? true,
      emptyRoomDeletion: chat?.emptyRoomDeletion ?? true,
      retentionMs: chat?.retentionMs ?? 7 * 86_400_000,
      directory: () => chat?.directory(),
      contactFor: (record, flow) => this.contactFor(record, flow),
      persist: (what, op) => this.#persistDurably(what, op),
    });
    this.#services = {
      ua: options.ua,
      store: options.store,
      clock: options.clock,
      logger: options.logger,
      ports: options.ports,
      ticker: options.ticker,
      negotiator: options.negotiator,
      mediaAddress: options.mediaAddress,
      audioCodecs: options.audioCodecs,
      videoPorts: options.videoPorts ?? options.ports,
      videoCodecs: options.videoCodecs ?? [],
      callTimeoutMs: options.callTimeoutMs,
      noRtpTimeoutMs: options.noRtpTimeoutMs,
      maxParticipants: options.maxParticipants,
      maxSpeakers: options.maxSpeakers,
      announcements: options.announcements,
      contactFor: (record, flow) => this.contactFor(record, flow),
      persist: (what, op) => REFUSABLE_WRITES.has(what) ? op() : this.#persistDurably(what, op),
      onEnded: (conference) => {
        if (this.#live.get(conference.id) === conference) this.#live.delete(conference.id);
      },
    };
  }

  /** Live conferences, by id. */
  get conferences(): ReadonlyMap<string, Conference> {
    return this.#live;
  }

  /** Live chat rooms (group chat), by id. */
  get chatRooms(): ChatRoomFactory {
    return this.#chat;
  }

  /** Purges expired conferences now and then every hour; loads the chat rooms. */
  async start(): Promise<void> {
    await this.#purge();
    await this.#chat.start();
  }

  /** Ends every call (BYE) and subscription, without marking conferences ended. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#purgeTimer?.cancel();
    for (const abandon of [...this.#durableWaits]) abandon();
    this.#chat.stop();
    await Promise.all([...this.#live.values()].map((c) => c.shutdown()));
    this.#live.clear();
  }

  /**
   * The Contact of our dialogs in a conference (RFC 3840 `isfocus`, RFC 4579 §4): behind a
   * proxy the conference URI itself; without one a URI reaching this server directly, with the
   * conference id.
   */
  contactFor(record: ConferenceRecord, flow: Flow | undefined): string {
    if (this.#o.outboundProxy) return `<${record.uri}>;isfocus`;
    const uri = parseUri(record.uri);
    const local = this.#localFor(flow);
    const direct: SipUri = {
      scheme: "sip",
      user: uri.user,
      password: undefined,
      host: local.host.includes(":") ? `[${local.host}]` : local.host,
      port: local.port,
      params: new Map<string, string | null>([["transport", local.transport.toLowerCase()]]),
      headers: new Map(),
    };
    for (const [k, v] of uri.params) if (k !== "transport") direct.params.set(k, v);
    return `<${formatUri(direct)}>;isfocus`;
  }

  #localFor(flow: Flow | undefined): LocalAddress {
    const list = this.#o.localAddresses;
    if (flow) {
      const same = list.find((l) => l.transport === flow.transport);
      if (same) return same;
    }
    const first = list[0];
    if (!first) throw new Error("no listening address");
    return first;
  }

  // ------------------------------------------------------------------------------------

  /** @inheritdoc */
  onRequest(sr: ServerRequest): void {
    void this.#route(sr).catch((err) => {
      if (err instanceof StoreUnavailableError) {
        sr.respond(503, "Service Unavailable (storage)", {
          headers: [["Retry-After", String(err.retryAfterSeconds)]],
        });
        return;
      }
      this.#o.logger.error("request failed", { method: sr.request.method, error: err as Error });
      sr.respond(500, "Server Internal Error");
    });
  }

  async #route(sr: ServerRequest): Promise<void> {
    const req = sr.request;
    if (this.#stopping) {
      sr.respond(503, "Service Unavailable (shutting down)", { headers: [["Retry-After", "5"]] });
      return;
    }
    if (req.method === "OPTIONS") {
      this.#o.ua.answerOptions(sr);
      return;
    }
    const uri = req.uri;
    const factory = this.#o.factories.find((f) => sameUserHost(f.factory, uri));
    if (factory) {
      if (isChatRoomCreation(req)) await this.#chat.create(sr, factory.factory, factory.focus);
      else await this.#factoryRequest(sr, factory);
      return;
    }
    const confId = uri.params.get("conf-id");
    if (confId && isPlausibleConferenceId(confId) && !this.#live.has(confId)) {
      const room = await this.#chat.find(confId);
      if (room) {
        await room.onRequest(sr);
        return;
      }
    }
    let conference: Conference | number;
    if (confId !== undefined) {
      conference = confId !== null && isPlausibleConferenceId(confId)
        ? await this.#load(confId)
        : 404;
    } else {
      const room = this.#o.dialInRooms.find((r) => sameUserHost(r, uri));
      if (!room) {
        sr.respond(404, "Not Found (no such conference)");
        return;
      }
      conference = await this.#room(room);
    }
    if (typeof conference !== "number" && conference.ended) conference = 410;
    if (typeof conference === "number") {
      sr.respond(
        conference,
        conference === 410 ? "Gone (conference ended)" : "Not Found (no such conference)",
      );
      return;
    }
    switch (req.method) {
      case "INVITE":
        await conference.join(sr);
        return;
      case "SUBSCRIBE": {
        const event = req.headers.get("Event")?.split(";")[0]?.trim().toLowerCase();
        if (event !== "conference") {
          sr.respond(489, undefined, { headers: [["Allow-Events", "conference"]] });
          return;
        }
        conference.subscribe(sr);
        return;
      }
      case "REFER":
        conference.refer(sr, undefined);
        return;
      default:
        sr.respond(405, undefined, {
          headers: [["Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, SUBSCRIBE, REFER"]],
        });
    }
  }

  /** INVITE to a factory URI: create a conference and redirect to it (302, RFC 3261 §21.3.3). */
  async #factoryRequest(sr: ServerRequest, factory: FactoryBinding): Promise<void> {
    const req = sr.request;
    if (req.method !== "INVITE") {
      sr.respond(405, undefined, { headers: [["Allow", "INVITE, OPTIONS"]] });
      return;
    }
    const id = newConferenceId();
    const uri = conferenceUri(factory.focus, id);
    const invitees = this.#invitees(req);
    const record = await this.#o.store.createConference({
      id,
      uri: formatUri(uri),
      factoryUri: formatUri(factory.factory),
      kind: "audio-video",
      subject: req.headers.get("Subject") ?? "",
      createdAt: Date.now(),
      options: {
        mediaTypes: [...this.#o.mediaTypes],
        maxParticipants: this.#o.maxParticipants,
        ...(invitees.length > 0 ? { invitees } : {}),
      },
    });
    const conference = new Conference(record, this.#services);
    this.#live.set(id, conference);
    this.#o.logger.info("conference created", {
      conference: id,
      uri: record.uri,
      subject: record.subject,
    });
    sr.respond(302, "Moved Temporarily", {
      headers: [["Contact", this.contactFor(record, sr.flow)]],
    });
    if (invitees.length > 0) {
      // Flexisip: the focus dials out to the listed participants once the creator has joined
      // (or right away if nobody joins within a few seconds).
      const started = this.#o.clock.now();
      const poll = () => {
        if (conference.ended) return;
        if (conference.callCount > 0 || this.#o.clock.now() - started > 30_000) {
          for (const target of invitees) {
            try {
              void conference.dialOut(parseUri(target));
            } catch {
              // skip bad entries
            }
          }
          return;
        }
        this.#o.clock.setTimer(250, poll);
      };
      this.#o.clock.setTimer(250, poll);
    }
  }

  /** URIs of a resource list (RFC 4826) in the INVITE's body, if any. */
  #invitees(req: ServerRequest["request"]): string[] {
    const text = new TextDecoder().decode(req.body);
    if (!/resource-lists/i.test(req.contentType ?? "") && !/resource-lists/.test(text)) return [];
    const sdp = sdpBody(req);
    const xml = sdp !== undefined ? text.replace(sdp, "") : text;
    const out: string[] = [];
    for (const m of xml.matchAll(/<(?:\w+:)?entry[^>]*\suri="([^"]+)"/g)) {
      if (m[1]) out.push(m[1].replaceAll("&amp;", "&"));
    }
    return out;
  }

  /** A live conference by id, loading it from storage after a restart; 404/410 otherwise. */
  #load(id: string): Promise<Conference | number> {
    const live = this.#live.get(id);
    if (live) return Promise.resolve(live);
    return this.#loading.run(id, async () => {
      const record = await this.#o.store.getConference(id);
      if (!record) return 404;
      if (record.endedAt !== null) return 410;
      const again = this.#live.get(id);
      if (again) return again;
      const conference = new Conference(record, this.#services);
      this.#live.set(id, conference);
      this.#o.logger.info("conference restored from storage", { conference: id });
      return conference;
    });
  }

  /** The conference of a dial-in room, created on first use (RFC 4353 §3.1). */
  async #room(room: SipUri): Promise<Conference | number> {
    const id = `room-${(room.user ?? "room").replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const found = await this.#load(id);
    if (typeof found !== "number") return found;
    let record = await this.#o.store.getConference(id);
    if (!record) {
      record = await this.#o.store.createConference({
        id,
        uri: `${room.scheme}:${room.user ?? ""}@${room.host}`,
        kind: "dial-in",
        subject: room.user ?? "",
        createdAt: Date.now(),
        options: { mediaTypes: [...this.#o.mediaTypes], maxParticipants: this.#o.maxParticipants },
      });
    }
    const existing = this.#live.get(id);
    if (existing) return existing;
    const conference = new Conference(record, this.#services);
    this.#live.set(id, conference);
    return conference;
  }

  /**
   * Runs a write that cannot be refused (nobody is waiting for an answer: the end of a
   * conference, a dial-out that was answered) until it is stored: while storage is
   * unavailable it is retried with backoff (1 s doubling to 30 s, on the injected clock), so
   * an ended conference still answers 410 after the database comes back (issue 5). Gives up
   * only when the focus stops, rejecting with the last error.
   */
  async #persistDurably<T>(what: string, op: () => Promise<T>): Promise<T> {
    let delay = DURABLE_RETRY_FIRST_MS;
    for (let attempt = 1;; attempt++) {
      try {
        const result = await op();
        if (attempt > 1) this.#o.logger.info("stored after retrying", { what, attempts: attempt });
        return result;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || this.#stopping) throw err;
        if (attempt === 1) {
          this.#o.logger.warn("storage unavailable; retrying until stored", {
            what,
            error: err,
          });
        }
        const abandoned = await new Promise<boolean>((resolve) => {
          const abandon = () => {
            timer.cancel();
            this.#durableWaits.delete(abandon);
            resolve(true);
          };
          const timer = this.#o.clock.setTimer(delay, () => {
            this.#durableWaits.delete(abandon);
            resolve(false);
          });
          this.#durableWaits.add(abandon);
        });
        if (abandoned) throw err;
        delay = Math.min(delay * 2, DURABLE_RETRY_MAX_MS);
      }
    }
  }

  async #purge(): Promise<void> {
    if (this.#o.expiryMs > 0) {
      try {
        const n = await this.#o.store.purgeExpired(Date.now() - this.#o.expiryMs);
        if (n > 0) this.#o.logger.info("purged expired conferences", { count: n });
      } catch (err) {
        this.#o.logger.warn("purge failed", { error: err as Error });
      }
    }
    if (!this.#stopping) {
      this.#purgeTimer = this.#o.clock.setTimer(PURGE_INTERVAL_MS, () => void this.#purge());
    }
  }
}
