/**
 * The devices a group chat room invites (RFC 4353 §5.3: the focus dials out), as liblinphone's
 * server does: every registered device of a participant that the device directory knows
 * (Flexisip Redis / reg-event; with `groupchat` in its specs when `check-capabilities`), else
 * the participant's AOR through the outbound proxy; each gets a media-less INVITE from the room
 * carrying the other participants as an RFC 4826 list (`Content-Disposition:
 * recipient-list-history`, RFC 5364 §9). The registrations of participants are followed so
 * that a device registered later is invited too.
 * @module
 */

import type { Logger } from "../config/log.ts";
import { InviteSession, type SessionEndReason } from "../dialog/invite_session.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import type { Device, DeviceDirectory, DeviceWatch } from "../registrar/device_directory.ts";
import type { SipRequest } from "../sip/message.ts";
import { formatUri, parseUri, type SipUri } from "../sip/uri.ts";
import { type ChatDevice, contactUri, gruuOf } from "./chat_device.ts";
import { buildResourceList, RESOURCE_LISTS_TYPE } from "./resource_list.ts";
import type { Roster } from "./roster.ts";

/** Services invitations use (the chat room's services provide them). */
export interface ChatInvitationServices {
  readonly ua: UserAgent;
  readonly logger: Logger;
  /** Config `check-capabilities`: only devices announcing `groupchat` are invited. */
  readonly checkCapabilities: boolean;
  /** Where devices of participants are found (Flexisip Redis / reg-event), if configured. */
  directory(): DeviceDirectory | undefined;
}

/** The chat room as its invitations see it. */
export interface ChatInvitationHost {
  /** The room's id (for logs). */
  readonly id: string;
  /** The room's URI: the From of the INVITEs. */
  readonly uri: string;
  readonly roster: Roster;
  readonly oneToOne: boolean;
  /** The room's devices by GRUU. */
  readonly devices: ReadonlyMap<string, ChatDevice>;
  /** The room was deleted. */
  ended(): boolean;
  /** The server is shutting down. */
  stopping(): boolean;
  /** Contact (with `isfocus`) of the room's dialogs. */
  contact(): string;
  /** The device with this GRUU (created if new); `target` updates where it is reached. */
  device(uri: string, aor: string, target: string | undefined): ChatDevice;
  /** An invited device answered: it is in the roster, published and stored (dialed-out). */
  dialedOut(aor: string, deviceUri: string): void;
  /** The session of an invited device ended. */
  sessionEnded(device: ChatDevice, reason: SessionEndReason): void;
  /** A request inside the session of an invited device; false when not handled. */
  inDialogRequest(device: ChatDevice, sr: ServerRequest): boolean;
  /** A re-INVITE or UPDATE the session of an invited device accepted. */
  sessionUpdated(device: ChatDevice, request: SipRequest): void;
}

/** Invites the devices of a chat room's participants; see the module docs. */
export class ChatInvitations {
  readonly #s: ChatInvitationServices;
  readonly #host: ChatInvitationHost;
  readonly #watches = new Map<string, DeviceWatch>();
  /** Targets being invited right now. */
  readonly #inviting = new Set<string>();

  constructor(services: ChatInvitationServices, host: ChatInvitationHost) {
    this.#s = services;
    this.#host = host;
  }

  /**
   * Invites every device of `aor` (except `skip`): those the directory knows (liblinphone's
   * server: each registered device with `groupchat` in its specs when `check-capabilities`),
   * else the AOR itself through the outbound proxy (which forks it to the registered devices).
   * Without either, nothing can reach the devices: they join by INVITE to the room themselves.
   */
  async inviteParticipant(aor: string, skip?: string): Promise<void> {
    const directory = this.#s.directory();
    const proxied = this.#s.ua.options.outboundProxy !== undefined;
    // The AOR reaches every device of the user, the creator's own one included: only the
    // directory can tell the creator's other devices apart.
    const own = skip !== undefined && this.#host.devices.get(skip)?.aor === aor;
    let targets: Array<{ target: string; gruu: string | undefined }> = proxied && !own
      ? [{ target: aor, gruu: undefined }]
      : [];
    if (directory) {
      try {
        targets = (await directory.devicesOf(aor)).filter((d) => this.#capable(d)).map((d) =>
          this.#targetOf(aor, d)
        );
      } catch (err) {
        this.#s.logger.warn("device directory unavailable", {
          room: this.#host.id,
          aor,
          error: err as Error,
        });
      }
    }
    for (const { target, gruu } of targets) {
      if (gruu !== undefined && gruu === skip) continue;
      const known = [...this.#host.devices.values()].find((d) =>
        d.uri === gruu || d.target === target
      );
      if (known?.uri !== skip && !known?.session) void this.#inviteDevice(aor, target, gruu);
    }
  }

  /**
   * Where a directory device is reached: its GRUU through the outbound proxy, else straight
   * at its registered contact; and its GRUU (from its instance id when it has no `gr`).
   */
  #targetOf(aor: string, d: Device): { target: string; gruu: string | undefined } {
    const proxied = this.#s.ua.options.outboundProxy !== undefined;
    let gruu: string | undefined;
    try {
      gruu = gruuOf(aor, parseUri(d.uri));
    } catch {
      gruu = undefined;
    }
    if (gruu === undefined && d.instance !== undefined) gruu = `${aor};gr=${d.instance}`;
    return { target: proxied ? d.uri : d.contact, gruu };
  }

  /** Config `check-capabilities`: a device that announces specs without groupchat is skipped. */
  #capable(d: Device): boolean {
    return !this.#s.checkCapabilities || d.specs === undefined || /\bgroupchat\b/.test(d.specs);
  }

  /** INVITE from the room to one device (or AOR), with the others as a resource list. */
  async #inviteDevice(aor: string, target: string, gruu?: string): Promise<void> {
    const s = this.#s;
    let uri: SipUri;
    try {
      uri = parseUri(target);
    } catch {
      return;
    }
    if (this.#inviting.has(target)) return;
    this.#inviting.add(target);
    const others = this.#host.roster.users.map((u) => u.aor).filter((a) => a !== aor);
    const room = parseUri(this.#host.uri);
    const holder: { device?: ChatDevice } = {};
    let result;
    try {
      result = await InviteSession.dial(s.ua, {
        uri,
        from: { display: undefined, uri: room, params: new Map() },
        to: { display: undefined, uri, params: new Map() },
        contact: `${this.#host.contact()};text`,
        offer: undefined,
        content: {
          type: RESOURCE_LISTS_TYPE,
          body: new TextEncoder().encode(buildResourceList(others)),
        },
        headers: [
          ["Subject", this.#host.roster.subject],
          ["Content-Disposition", "recipient-list-history; handling=optional"],
          ...(this.#host.oneToOne ? [["One-To-One-Chat-Room", "true"] as const] : []),
        ],
      }, {
        onOffer: () => ({ status: 488, reason: "Not Acceptable Here (chat rooms have no media)" }),
        onEnded: (reason) => {
          const d = holder.device;
          if (d) this.#host.sessionEnded(d, reason);
        },
        onRequest: (sr) => {
          const d = holder.device;
          return d ? this.#host.inDialogRequest(d, sr) : false;
        },
        onUpdated: (request) => {
          const d = holder.device;
          if (d) this.#host.sessionUpdated(d, request);
        },
      });
    } finally {
      this.#inviting.delete(target);
    }
    if (!result.session) {
      s.logger.info("chat room invitation failed", {
        room: this.#host.id,
        target,
        status: result.response.status,
      });
      return;
    }
    if (this.#host.ended() || !this.#host.roster.user(aor)) {
      void result.session.bye().catch(() => {});
      return;
    }
    const answered = contactUri(result.response);
    const deviceUri = gruu ?? (answered ? gruuOf(aor, answered) : undefined) ??
      gruuOf(aor, uri) ?? (answered ? formatUri(answered) : target);
    const device = this.#host.device(deviceUri, aor, answered ? formatUri(answered) : target);
    if (gruuOf(aor, uri) === undefined) device.localAddress = formatUri(uri);
    holder.device = device;
    device.session?.abandon();
    device.session = result.session;
    this.#host.dialedOut(aor, deviceUri);
  }

  /** Follows the registrations of a participant: a new device is invited (Flexisip). */
  watch(aor: string): void {
    const directory = this.#s.directory();
    if (!directory || this.#watches.has(aor)) return;
    this.#watches.set(
      aor,
      directory.watch(aor, (event) => {
        if (this.#host.ended() || this.#host.stopping() || !this.#host.roster.user(aor)) return;
        for (const change of event.changes) {
          if (change.kind !== "added" || !this.#capable(change.device)) continue;
          const { target, gruu } = this.#targetOf(aor, change.device);
          const known = [...this.#host.devices.values()].find((d) =>
            d.uri === gruu || d.target === target
          );
          if (!known?.session) void this.#inviteDevice(aor, target, gruu);
        }
      }),
    );
  }

  /** Stops following the registrations of every participant. */
  closeWatches(): void {
    for (const w of this.#watches.values()) w.close();
    this.#watches.clear();
  }

  /** Stops following the registrations of `aor` (it left the room). */
  unwatch(aor: string): void {
    this.#watches.get(aor)?.close();
    this.#watches.delete(aor);
  }
}
