/**
 * The chat room side of the conference factory (RFC 4579 §5.1 with RFC 5366 recipient lists,
 * as Linphone clients and liblinphone's server do it): an INVITE to a factory URI with
 * `Require: recipient-list-invite` and a resource list (no SDP) creates a chat room, stored
 * durably, and is redirected (302) to the room URI, which the client INVITEs again with the same
 * list. `One-To-One-Chat-Room: true` asks for a one-to-one room: exactly one other participant
 * (else 488), and an existing room of the same pair is reused (302 to it). Also keeps the live
 * rooms (loaded back from storage at start, so queued messages reach devices after a restart)
 * and drops queued messages past the retention time.
 * @module
 */

import { SingleFlight } from "./single_flight.ts";
import type { TimerHandle } from "../config/clock.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import { optionTags } from "../dialog/user_agent.ts";
import { parseNameAddr } from "../sip/headers.ts";
import type { SipRequest } from "../sip/message.ts";
import { formatUri, type SipUri } from "../sip/uri.ts";
import type { ConferenceRecord } from "../storage/store.ts";
import { ChatRoom, type ChatRoomServices } from "./chat_room.ts";
import { addressOfRecord, conferenceUri, newConferenceId } from "./conference_uri.ts";
import { otherParticipants, resourceListText, resourceListUris } from "./resource_list.ts";

/** Settings of the chat room factory. */
export interface ChatRoomFactoryOptions extends Omit<ChatRoomServices, "onEnded"> {
  /** `text` is among `supported-media-types`. */
  readonly enabled: boolean;
  /** Config `enable-one-to-one-chat-room`. */
  readonly oneToOneEnabled: boolean;
}

const PURGE_INTERVAL_MS = 3600_000;

/** True when an INVITE to a factory asks for a chat room (RFC 5366 list, no SDP). */
export function isChatRoomCreation(request: SipRequest): boolean {
  if (request.method !== "INVITE") return false;
  if (!optionTags(request.headers.getAll("Require")).includes("recipient-list-invite")) {
    return false;
  }
  const type = request.contentType?.toLowerCase() ?? "";
  if (type.startsWith("application/sdp")) return false;
  if (
    type.startsWith("multipart/") &&
    /application\/sdp/i.test(new TextDecoder().decode(request.body))
  ) {
    return false;
  }
  return true;
}

/** The `+org.linphone.specs` of a request's Contact, if it has one. */
function specsOf(request: SipRequest): string | undefined {
  const contact = request.headers.get("Contact");
  if (contact === undefined) return undefined;
  try {
    const value = parseNameAddr(contact, "Contact").params.get("+org.linphone.specs");
    return value === undefined || value === null ? undefined : value.replaceAll('"', "");
  } catch {
    return undefined;
  }
}

/** Creates chat rooms and keeps the live ones. */
export class ChatRoomFactory {
  readonly #o: ChatRoomFactoryOptions;
  readonly #services: ChatRoomServices;
  readonly #live = new Map<string, ChatRoom>();
  readonly #loading = new SingleFlight<ChatRoom | undefined>();
  #purgeTimer: TimerHandle | undefined;
  #stopping = false;

  constructor(options: ChatRoomFactoryOptions) {
    this.#o = options;
    this.#services = {
      ...options,
      directory: () => options.directory(),
      contactFor: (r, f) => options.contactFor(r, f),
      persist: (what, op) => options.persist(what, op),
      onEnded: (room) => {
        if (this.#live.get(room.id) === room) this.#live.delete(room.id);
      },
    };
  }

  /** Live chat rooms, by id. */
  get rooms(): ReadonlyMap<string, ChatRoom> {
    return this.#live;
  }

  /**
   * Loads every stored chat room that was not deleted (their present devices get what is
   * queued for them) and drops messages past the retention time, then every hour.
   */
  async start(): Promise<void> {
    await this.#purge();
    if (!this.#o.enabled) return;
    let records: readonly ConferenceRecord[] = [];
    try {
      records = await this.#o.store.listLiveConferences();
    } catch (err) {
      this.#o.logger.warn("could not load chat rooms; they load on first use", {
        error: err as Error,
      });
    }
    for (const record of records) {
      if (record.kind !== "chat") continue;
      const room = await this.find(record.id).catch(() => undefined);
      if (room) this.#o.logger.debug("chat room restored", { room: room.id });
    }
  }

  /** Stops the rooms quietly (they outlive the process). */
  stop(): void {
    this.#stopping = true;
    this.#purgeTimer?.cancel();
    for (const room of this.#live.values()) room.shutdown();
    this.#live.clear();
  }

  /**
   * The live chat room with this id, loading it from storage; undefined when there is no such
   * live chat room (not stored, deleted, or an audio/video conference).
   */
  find(id: string): Promise<ChatRoom | undefined> {
    const live = this.#live.get(id);
    if (live) return Promise.resolve(live);
    return this.#loading.run(id, async () => {
      const record = await this.#o.store.getConference(id);
      if (!record || record.kind !== "chat" || record.endedAt !== null) return undefined;
      const again = this.#live.get(id);
      if (again) return again;
      const room = await ChatRoom.load(record, this.#services);
      this.#live.set(id, room);
      room.resume();
      return room;
    });
  }

  /** INVITE to a factory asking for a chat room (see {@link isChatRoomCreation}). */
  async create(sr: ServerRequest, factory: SipUri, focusTemplate: string): Promise<void> {
    const o = this.#o;
    const req = sr.request;
    if (!o.enabled) {
      sr.respond(488, "Not Acceptable Here (chat rooms are not offered: text is not supported)");
      return;
    }
    const specs = specsOf(req);
    if (o.checkCapabilities && specs !== undefined && !/\bgroupchat\b/.test(specs)) {
      sr.respond(403, "Forbidden (the device does not support group chat)");
      return;
    }
    const creator = addressOfRecord(req.from.uri);
    let uris: string[];
    try {
      const list = resourceListText(req);
      if (list === undefined) {
        sr.respond(400, "Bad Request (a resource list of participants is required)");
        return;
      }
      uris = resourceListUris(list);
    } catch (err) {
      sr.respond(400, `Bad Request (${(err as Error).message})`);
      return;
    }
    const others = otherParticipants(uris, creator);
    const oneToOne = req.headers.get("One-To-One-Chat-Room")?.trim().toLowerCase() === "true";
    if (oneToOne && !o.oneToOneEnabled) {
      sr.respond(488, "Not Acceptable Here (one-to-one chat rooms are disabled)");
      return;
    }
    if (oneToOne && others.length !== 1) {
      sr.respond(488, "Not Acceptable Here (a one-to-one chat room needs exactly one participant)");
      return;
    }
    if (others.length === 0) {
      sr.respond(488, "Not Acceptable Here (no participant)");
      return;
    }
    if (others.length + 1 > o.maxParticipants) {
      sr.respond(486, "Busy Here (too many participants)");
      return;
    }
    const pair = oneToOne ? [creator, ...others].sort().join(" ") : undefined;
    if (pair !== undefined) {
      const existing = await this.#findPair(pair);
      if (existing) {
        o.logger.info("one-to-one chat room exists; redirecting", { room: existing.id });
        sr.respond(302, "Moved Temporarily", {
          headers: [["Contact", o.contactFor(existing, sr.flow)]],
        });
        return;
      }
    }
    const id = newConferenceId();
    const record = await o.store.createConference({
      id,
      uri: formatUri(conferenceUri(focusTemplate, id)),
      factoryUri: formatUri(factory),
      kind: "chat",
      subject: req.headers.get("Subject") ?? "",
      createdAt: Date.now(),
      options: {
        mediaTypes: ["text"],
        maxParticipants: o.maxParticipants,
        oneToOne,
        creator,
        invitees: others,
        ...(pair !== undefined ? { pair } : {}),
      },
    });
    const room = new ChatRoom(record, this.#services);
    this.#live.set(id, room);
    room.resume();
    o.logger.info("chat room created", {
      room: id,
      uri: record.uri,
      subject: record.subject,
      oneToOne,
    });
    sr.respond(302, "Moved Temporarily", {
      headers: [["Contact", o.contactFor(record, sr.flow)]],
    });
  }

  /** The live one-to-one room of a pair of AORs (sorted, space-separated), if any. */
  async #findPair(pair: string): Promise<ConferenceRecord | undefined> {
    for (const room of this.#live.values()) {
      if (!room.ended && room.record.options["pair"] === pair) return room.record;
    }
    const records = await this.#o.store.listLiveConferences();
    return records.find((r) => r.kind === "chat" && r.options["pair"] === pair);
  }

  async #purge(): Promise<void> {
    const o = this.#o;
    try {
      const n = await o.store.purgeMessagesOlderThan(Date.now() - o.retentionMs);
      if (n > 0) o.logger.info("dropped chat messages past retention", { count: n });
    } catch (err) {
      o.logger.warn("chat message purge failed", { error: err as Error });
    }
    if (!this.#stopping) {
      this.#purgeTimer = o.clock.setTimer(PURGE_INTERVAL_MS, () => void this.#purge());
    }
  }
}
