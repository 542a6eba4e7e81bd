/**
 * One group chat room (RFC 4353 §5 focus for instant messages, as liblinphone's server group
 * chat room implements it for Linphone clients): its participants (AORs, admins), their
 * devices (GRUUs, RFC 5627), one media-less INVITE session per joined device, the RFC 4575
 * conference-info notifier, and the message queue.
 *
 * - The creator's INVITE to the room (after the factory's 302) carries the RFC 4826 list of
 *   participants: the creator becomes admin, the others are stored, and once the creator's
 *   ACK arrived the focus INVITEs every device of every other participant (found in the device
 *   directory, else the AOR through the outbound proxy) with the list of the others
 *   (`Content-Disposition: recipient-list-history`).
 * - A device of a participant joins with an INVITE (no SDP); a BYE from it is the participant
 *   leaving (a one-to-one room is deleted instead). Admins add, remove and promote by REFER.
 * - A device is present once the first NOTIFY of its `conference` subscription got a 2xx; its
 *   queued messages are delivered then.
 * - A MESSAGE from a participant is stored for every other device BEFORE it is accepted (202),
 *   so nothing accepted is lost (503 + Retry-After while storage is down), then relayed as a new
 *   MESSAGE from the room to each present device, delivery recorded per device; the sender's
 *   own other devices get it with `X-fs-message-type: chat-service`.
 *
 * Its parts: device addresses (`chat_device.ts`), message acceptance and delivery
 * (`chat_delivery.ts`), invitations of devices (`chat_invitations.ts`), admins' REFERs
 * (`chat_refer.ts`).
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { InviteSession, type SessionEndReason } from "../dialog/invite_session.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import type { MediaSnapshot } from "../events/conference_info.ts";
import { ConferenceNotifier } from "../events/notifier.ts";
import type { DeviceDirectory } from "../registrar/device_directory.ts";
import type { SipRequest } from "../sip/message.ts";
import { formatUri } from "../sip/uri.ts";
import type { ConferenceRecord, Store } from "../storage/store.ts";
import type { Flow } from "../transport/flow.ts";
import {
  type ChatDevice,
  type ChatDeviceAddress,
  chatDeviceOf,
  contactUri,
  gruuOf,
} from "./chat_device.ts";
import { ChatDelivery, retryAfterOf } from "./chat_delivery.ts";
import { ChatInvitations } from "./chat_invitations.ts";
import { type ChatReferHost, handleChatRefer } from "./chat_refer.ts";
import { addressOfRecord } from "./conference_uri.ts";
import { otherParticipants, resourceListText, resourceListUris } from "./resource_list.ts";
import { Roster } from "./roster.ts";

export { type ChatDeviceAddress, chatDeviceOf } from "./chat_device.ts";

/** Services a chat room uses, provided by the focus. */
export interface ChatRoomServices {
  readonly ua: UserAgent;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly maxParticipants: number;
  /** Queued messages older than this are not delivered any more (config `chat-message-retention`). */
  readonly retentionMs: number;
  /** Delete a room when its last participant left (config `empty-chat-room-deletion`). */
  readonly emptyRoomDeletion: boolean;
  /** Config `check-capabilities`: only devices announcing `groupchat` are invited. */
  readonly checkCapabilities: boolean;
  /** Where devices of participants are found (Flexisip Redis / reg-event), if configured. */
  directory(): DeviceDirectory | undefined;
  /** Contact (with `isfocus`) of dialogs of this room. */
  contactFor(record: ConferenceRecord, flow: Flow | undefined): string;
  /** Runs a write that must not be lost, retrying through storage outages. */
  persist<T>(what: string, op: () => Promise<T>): Promise<T>;
  /** The room was deleted. */
  onEnded(room: ChatRoom): void;
}

/** The text stream of a chat room device (RFC 4575 media; liblinphone label 3 = text). */
const TEXT_MEDIA: MediaSnapshot[] = [{ id: "3", type: "text", status: "sendrecv" }];

/** A live chat room. */
export class ChatRoom {
  record: ConferenceRecord;
  readonly roster: Roster;
  readonly notifier: ConferenceNotifier;
  readonly #s: ChatRoomServices;
  readonly #delivery: ChatDelivery;
  readonly #invitations: ChatInvitations;
  readonly #refer: ChatReferHost;
  readonly #devices = new Map<string, ChatDevice>();
  #ended = false;
  #stopping = false;

  constructor(record: ConferenceRecord, services: ChatRoomServices) {
    this.record = record;
    this.#s = services;
    this.roster = new Roster({
      entity: record.uri,
      subject: record.subject,
      maxParticipants: record.options.maxParticipants ?? services.maxParticipants,
      availableMedia: [{ label: "3", type: "text", status: "sendrecv" }],
    });
    this.#delivery = new ChatDelivery(services, {
      id: record.id,
      uri: record.uri,
      roster: this.roster,
      devices: this.#devices,
      ended: () => this.#ended,
      stopping: () => this.#stopping,
    });
    this.#invitations = new ChatInvitations(services, {
      id: record.id,
      uri: record.uri,
      roster: this.roster,
      oneToOne: record.options.oneToOne === true,
      devices: this.#devices,
      ended: () => this.#ended,
      stopping: () => this.#stopping,
      contact: () => services.contactFor(this.record, undefined),
      device: (uri, aor, target) => this.#device(uri, aor, target),
      dialedOut: (aor, deviceUri) => {
        this.#setRosterDevice(aor, deviceUri, "dialed-out", undefined);
        this.#publish();
        void services.persist("chat-device", () => this.#storeDevice(aor, deviceUri, "dialed-out"))
          .catch(() => {});
      },
      sessionEnded: (device, reason) => this.#sessionEvents(device).onEnded(reason),
      inDialogRequest: (device, sr) => this.#sessionEvents(device).onRequest(sr),
      sessionUpdated: (device, request) => this.#onSubjectChange(device, request),
    });
    this.#refer = {
      ua: services.ua,
      roster: this.roster,
      oneToOne: record.options.oneToOne === true,
      contact: (flow) => services.contactFor(this.record, flow),
      remove: (aor, reason) => this.removeParticipant(aor, reason),
      adminsChanged: () => {
        this.#storeAdmins();
        this.#publish();
      },
      storeParticipant: (aor, at) =>
        services.store.upsertParticipant(this.#participantRecord(aor, false, at)),
      added: (aor, at) => {
        this.roster.addUser(aor, undefined, at);
        this.#publish();
        this.#invitations.watch(aor);
        void this.#invitations.inviteParticipant(aor);
      },
    };
    this.notifier = new ConferenceNotifier({
      ua: services.ua,
      contact: services.contactFor(record, undefined),
      logger: services.logger,
      initialVersion: record.lastNotifyVersion,
      onVersion: () => {
        void services.persist("notify-version", () =>
          services.store.updateConference(record.id, {
            lastNotifyVersion: this.notifier.version,
          })).catch(() => {});
      },
    });
  }

  /**
   * A room as stored (after a restart or on first use): participants, admins and devices come
   * back, devices that were present are present again and get what is queued for them.
   */
  static async load(record: ConferenceRecord, services: ChatRoomServices): Promise<ChatRoom> {
    const room = new ChatRoom(record, services);
    const participants = await services.store.listParticipants(record.id);
    const devices = await services.store.listDevices(record.id);
    for (const p of participants) {
      if (p.state === "left") continue;
      const user = room.roster.addUser(p.aor, p.displayName ?? undefined, p.joinedAt);
      user.admin = p.isAdmin;
      user.organizer = p.aor === record.options["creator"];
    }
    for (const d of devices) {
      const user = room.roster.user(d.aor);
      if (!user) continue;
      const present = d.state === "present";
      user.devices.set(d.deviceUri, {
        uri: d.deviceUri,
        status: present ? "connected" : "pending",
        joiningMethod: d.joiningMethod,
        joinedAt: d.joiningTime ?? record.createdAt,
        media: TEXT_MEDIA,
      });
      room.#device(d.deviceUri, d.aor, undefined).present = present;
    }
    room.#publish();
    return room;
  }

  get id(): string {
    return this.record.id;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get oneToOne(): boolean {
    return this.record.options.oneToOne === true;
  }

  /** Starts what a loaded room does on its own: delivering queues, following registrations. */
  resume(): void {
    this.#publish();
    for (const user of this.roster.users) this.#invitations.watch(user.aor);
    // Without an outbound proxy a GRUU is not routable: those devices get their queue once
    // they subscribe again (with a Contact to reach them).
    if (this.#s.ua.options.outboundProxy === undefined) return;
    for (const d of this.#devices.values()) if (d.present) void this.#delivery.pump(d);
  }

  /** Device URIs that are present (their subscription's first NOTIFY was answered). */
  get presentDevices(): string[] {
    return [...this.#devices.values()].filter((d) => d.present).map((d) => d.uri);
  }

  // ------------------------------------------------------------------------------------
  // Requests

  /** Routes an out-of-dialog request to the room URI. */
  async onRequest(sr: ServerRequest): Promise<void> {
    if (this.#ended) {
      sr.respond(410, "Gone (chat room deleted)");
      return;
    }
    switch (sr.request.method) {
      case "INVITE":
        await this.#onInvite(sr);
        return;
      case "MESSAGE":
        await this.#delivery.onMessage(sr);
        return;
      case "SUBSCRIBE":
        this.#onSubscribe(sr);
        return;
      case "REFER":
        await handleChatRefer(this.#refer, sr, undefined);
        return;
      default:
        sr.respond(405, undefined, {
          headers: [["Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, SUBSCRIBE, REFER, MESSAGE"]],
        });
    }
  }

  /**
   * INVITE to the room: the creator's first one creates the participant list; later ones are
   * devices of participants joining (liblinphone: a Contact without `gr` is declined).
   */
  async #onInvite(sr: ServerRequest): Promise<void> {
    const req = sr.request;
    const aor = addressOfRecord(req.from.uri);
    const contact = contactUri(req);
    const gruu = contact ? gruuOf(aor, contact) : undefined;
    if (!contact || gruu === undefined) {
      sr.respond(603, "Decline (the Contact must be a GRUU)");
      return;
    }
    const address = { gruu, target: formatUri(contact) };
    const creating = this.roster.users.length === 0;
    if (creating) {
      if (aor !== this.record.options["creator"]) {
        sr.respond(403, "Forbidden (only the creator may open this chat room)");
        return;
      }
      await this.#create(sr, aor, address);
      return;
    }
    if (!this.roster.user(aor)) {
      sr.respond(403, "Forbidden (not a participant of this chat room)");
      return;
    }
    if (!this.oneToOne && resourceListText(req) !== undefined) {
      sr.respond(488, "Not Acceptable Here (the participant list is set at creation)");
      return;
    }
    try {
      await this.#storeDevice(aor, gruu, "dialed-in");
    } catch (err) {
      sr.respond(503, "Service Unavailable (storage)", {
        headers: [["Retry-After", retryAfterOf(err)]],
      });
      return;
    }
    this.#accept(sr, aor, address, "dialed-in");
  }

  async #create(sr: ServerRequest, creator: string, device: ChatDeviceAddress): Promise<void> {
    const s = this.#s;
    const req = sr.request;
    let uris: string[];
    try {
      const list = resourceListText(req);
      uris = list !== undefined
        ? resourceListUris(list)
        : [...(this.record.options["invitees"] as string[] | undefined ?? [])];
    } catch (err) {
      sr.respond(400, `Bad Request (${(err as Error).message})`);
      return;
    }
    const others = otherParticipants(uris, creator);
    if (others.length === 0 || (this.oneToOne && others.length !== 1)) {
      sr.respond(488, "Not Acceptable Here (invalid participant list)");
      return;
    }
    if (others.length + 1 > this.roster.maxParticipants) {
      sr.respond(486, "Busy Here (too many participants)");
      return;
    }
    const now = Date.now();
    try {
      await s.store.upsertParticipant(this.#participantRecord(creator, true, now));
      for (const aor of others) {
        await s.store.upsertParticipant(this.#participantRecord(aor, false, now));
      }
    } catch (err) {
      sr.respond(503, "Service Unavailable (storage)", {
        headers: [["Retry-After", retryAfterOf(err)]],
      });
      return;
    }
    this.roster.addUser(creator, req.from.display, now);
    for (const aor of others) this.roster.addUser(aor, undefined, now);
    try {
      await this.#storeDevice(creator, device.gruu, "dialed-in");
    } catch (err) {
      sr.respond(503, "Service Unavailable (storage)", {
        headers: [["Retry-After", retryAfterOf(err)]],
      });
      return;
    }
    s.logger.info("chat room opened", {
      room: this.id,
      creator,
      participants: others.length + 1,
    });
    // liblinphone's server invites the devices once the creator's ACK arrived.
    this.#accept(sr, creator, device, "dialed-in", () => {
      for (const user of this.roster.users) {
        this.#invitations.watch(user.aor);
        void this.#invitations.inviteParticipant(user.aor, device.gruu);
      }
    });
  }

  /** Answers a device's INVITE with 200 (no SDP) and keeps its session. */
  #accept(
    sr: ServerRequest,
    aor: string,
    address: ChatDeviceAddress,
    method: "dialed-in" | "dialed-out",
    onConfirmed?: () => void,
  ): void {
    const device = this.#device(address.gruu, aor, address.target);
    const previous = device.session;
    device.session = InviteSession.accept(this.#s.ua, sr, {
      contact: this.#s.contactFor(this.record, sr.flow),
      events: this.#sessionEvents(device, onConfirmed),
    });
    previous?.abandon();
    this.#setRosterDevice(aor, address.gruu, method, sr.request.from.display);
    this.#publish();
  }

  #sessionEvents(device: ChatDevice, onConfirmed?: () => void) {
    return {
      onOffer: () => ({ status: 488, reason: "Not Acceptable Here (chat rooms have no media)" }),
      onEnded: (reason: SessionEndReason) => {
        if (this.#stopping || this.#ended) return;
        const session = device.session;
        if (session && session.state !== "terminated") return;
        device.session = undefined;
        if (reason !== "remote-bye") return;
        this.#s.logger.info("chat room device left", { room: this.id, device: device.uri });
        if (this.oneToOne) {
          void this.end("One-to-one chat room left");
        } else {
          this.removeParticipant(device.aor, "Left");
        }
      },
      onRequest: (sr: ServerRequest): boolean => {
        const answer = (work: Promise<void>) => {
          void work.catch((err) => {
            this.#s.logger.warn("chat room request failed", { room: this.id, error: err });
            sr.respond(500, "Server Internal Error");
          });
          return true;
        };
        if (sr.request.method === "REFER") {
          return answer(handleChatRefer(this.#refer, sr, device.session));
        }
        if (sr.request.method === "MESSAGE") return answer(this.#delivery.onMessage(sr));
        return false;
      },
      onUpdated: (request: SipRequest) => this.#onSubjectChange(device, request),
      ...(onConfirmed ? { onConfirmed } : {}),
    };
  }

  /**
   * A re-INVITE from an admin's device with another `Subject` changes the room's subject
   * (liblinphone's server: the only thing a re-INVITE changes); stored, then published.
   */
  #onSubjectChange(device: ChatDevice, request: SipRequest): void {
    const subject = request.headers.get("Subject");
    if (request.method !== "INVITE" || subject === undefined) return;
    if (subject === this.roster.subject || !this.roster.user(device.aor)?.admin) return;
    const s = this.#s;
    this.roster.subject = subject;
    void s.persist("subject", async () => {
      this.record = await s.store.updateConference(this.id, { subject: this.roster.subject });
    }).catch(() => {});
    s.logger.info("chat room subject changed", { room: this.id, by: device.aor });
    this.#publish();
  }

  // ------------------------------------------------------------------------------------
  // Subscriptions and presence

  /** SUBSCRIBE `Event: conference` from a participant's device (RFC 4575 §3). */
  #onSubscribe(sr: ServerRequest): void {
    const req = sr.request;
    const event = req.headers.get("Event")?.split(";")[0]?.trim().toLowerCase();
    if (event !== "conference") {
      sr.respond(489, undefined, { headers: [["Allow-Events", "conference"]] });
      return;
    }
    const aor = addressOfRecord(req.from.uri);
    if (!this.roster.user(aor)) {
      sr.respond(403, "Forbidden (not a participant of this chat room)");
      return;
    }
    const address = chatDeviceOf(req);
    if (address === undefined) {
      // Without a GRUU the subscriber cannot be told apart from other devices: it gets the
      // conference state but no messages.
      this.notifier.subscribe(sr);
      return;
    }
    if (!this.roster.device(address.gruu)) {
      this.#setRosterDevice(aor, address.gruu, "dialed-in", req.from.display);
      this.#publish();
    }
    this.#device(address.gruu, aor, address.target);
    this.notifier.subscribe(sr, (delivered) => {
      if (delivered) this.#markPresent(aor, address.gruu);
    });
  }

  #markPresent(aor: string, deviceUri: string): void {
    if (this.#ended || !this.roster.user(aor)) return;
    const device = this.#device(deviceUri, aor, undefined);
    const wasPresent = device.present;
    device.present = true;
    if (!wasPresent) {
      this.#s.logger.debug("chat room device present", { room: this.id, device: deviceUri });
      void this.#s.persist(
        "chat-device",
        () => this.#storeDevice(aor, deviceUri, undefined, "present"),
      ).catch(() => {});
    }
    void this.#delivery.pump(device);
  }

  /**
   * Removes a participant and BYEs its devices (RFC 4353 §5.3); when no admin is left another
   * participant is promoted; an emptied room is deleted. False when it was not a participant.
   */
  removeParticipant(aor: string, reason: string): boolean {
    const user = this.roster.user(aor);
    if (!user || this.#ended) return false;
    for (const uri of user.devices.keys()) {
      const device = this.#devices.get(uri);
      this.#devices.delete(uri);
      device?.retry?.cancel();
      void device?.session?.bye([["Reason", `SIP;cause=200;text="${reason}"`]]).catch(() => {});
    }
    const { promoted } = this.roster.removeUser(aor);
    this.#invitations.unwatch(aor);
    const s = this.#s;
    void s.persist("leave", () => s.store.removeParticipant(this.id, aor)).catch(() => {});
    if (promoted) this.#storeAdmins();
    s.logger.info("chat room participant removed", { room: this.id, aor, reason });
    this.#publish();
    if (this.roster.users.length === 0 && s.emptyRoomDeletion) void this.end("Chat room empty");
    return true;
  }

  // ------------------------------------------------------------------------------------
  // End

  /** Deletes the room: subscriptions end (`noresource`), every device gets BYE. */
  async end(reason = "Chat room deleted"): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    const s = this.#s;
    this.#invitations.closeWatches();
    // Devices are told without waiting for their answers (one that never answers must not
    // hold the deletion for a transaction timeout).
    void this.notifier.close("noresource");
    for (const device of this.#devices.values()) {
      device.retry?.cancel();
      const session = device.session;
      device.session = undefined;
      void session?.bye([["Reason", `SIP;cause=200;text="${reason}"`]]).catch(() => {});
    }
    try {
      this.record = await s.persist("end", () => s.store.endConference(this.id, Date.now()));
    } catch {
      s.logger.warn("could not record the deletion of a chat room", { room: this.id });
    }
    s.logger.info("chat room deleted", { room: this.id, reason });
    s.onEnded(this);
  }

  /**
   * Server shutdown: nothing is said to the devices (a chat room outlives the process; their
   * sessions and subscriptions are taken up again after the restart), timers stop.
   */
  shutdown(): void {
    this.#stopping = true;
    this.#invitations.closeWatches();
    for (const device of this.#devices.values()) {
      device.retry?.cancel();
      device.session?.abandon();
      device.session = undefined;
    }
    void this.notifier.close("deactivated");
  }

  // ------------------------------------------------------------------------------------

  /** The device with this GRUU (created if new); `target` updates where it is reached. */
  #device(uri: string, aor: string, target: string | undefined): ChatDevice {
    let device = this.#devices.get(uri);
    if (!device) {
      device = {
        uri,
        aor,
        target: target ?? uri,
        session: undefined,
        present: false,
        pumping: false,
        again: false,
        retry: undefined,
        localAddress: undefined,
      };
      this.#devices.set(uri, device);
    } else if (target !== undefined) {
      device.target = target;
    }
    return device;
  }

  #setRosterDevice(
    aor: string,
    deviceUri: string,
    method: "dialed-in" | "dialed-out",
    display: string | undefined,
  ): void {
    const existing = this.roster.device(deviceUri);
    if (existing) {
      existing.device.status = "connected";
      return;
    }
    const user = this.roster.addUser(aor, display, Date.now());
    if (user.devices.size === 0) void this.#delivery.adoptAorQueue(aor, deviceUri);
    user.devices.set(deviceUri, {
      uri: deviceUri,
      status: "connected",
      joiningMethod: method,
      joinedAt: Date.now(),
      media: TEXT_MEDIA,
    });
  }

  #participantRecord(aor: string, isAdmin: boolean, at: number) {
    return {
      conferenceId: this.id,
      aor,
      displayName: this.roster.user(aor)?.displayName ?? null,
      isAdmin,
      role: "participant",
      state: "present" as const,
      joinedAt: at,
      leftAt: null,
    };
  }

  /** Stores a device; `state` defaults to what it is (present, else joining). */
  async #storeDevice(
    aor: string,
    deviceUri: string,
    method: "dialed-in" | "dialed-out" | undefined,
    state?: "present",
  ): Promise<void> {
    const present = state === "present" || this.#devices.get(deviceUri)?.present === true;
    const existing = this.roster.device(deviceUri)?.device;
    await this.#s.store.upsertDevice({
      conferenceId: this.id,
      aor,
      deviceUri,
      name: null,
      state: present ? "present" : "joining",
      joiningMethod: method ?? existing?.joiningMethod ?? "dialed-in",
      joiningTime: existing?.joinedAt ?? Date.now(),
      lastNotifyVersion: this.notifier.version,
    });
  }

  #storeAdmins(): void {
    const s = this.#s;
    for (const user of this.roster.users) {
      void s.persist("admin", async () => {
        const p = await s.store.getParticipant(this.id, user.aor);
        if (p && p.isAdmin !== user.admin) {
          await s.store.upsertParticipant({ ...p, isAdmin: user.admin });
        }
      }).catch(() => {});
    }
  }

  #publish(): void {
    if (this.#ended) return;
    this.notifier.publish({ ...this.roster.snapshot(true), oneToOne: this.oneToOne });
  }
}
