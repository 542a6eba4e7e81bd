/**
 * Message acceptance and delivery of a group chat room (liblinphone's server semantics): a
 * MESSAGE from a participant (RFC 3428) is stored for every other device BEFORE it is accepted
 * with 202, so nothing accepted is lost (503 + Retry-After while storage is down); each present
 * device's queue is then relayed in order as new MESSAGEs from the room, delivery recorded per
 * device; the sender's own other devices get it with `X-fs-message-type: chat-service`.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import { formatUri, parseUri, type SipUri } from "../sip/uri.ts";
import type { ChatMessageRecord, Store } from "../storage/store.ts";
import { StoreUnavailableError } from "../storage/store.ts";
import { type ChatDevice, chatDeviceOf } from "./chat_device.ts";
import { addressOfRecord } from "./conference_uri.ts";
import type { Roster } from "./roster.ts";

/** Services delivery uses (the chat room's services provide them). */
export interface ChatDeliveryServices {
  readonly ua: UserAgent;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Queued messages older than this are not delivered any more (config `chat-message-retention`). */
  readonly retentionMs: number;
  /** Runs a write that must not be lost, retrying through storage outages. */
  persist<T>(what: string, op: () => Promise<T>): Promise<T>;
}

/** The chat room as delivery sees it. */
export interface ChatDeliveryHost {
  /** The room's id (the key of its queues in the store). */
  readonly id: string;
  /** The room's URI: the From of relayed MESSAGEs. */
  readonly uri: string;
  readonly roster: Roster;
  /** The room's devices by GRUU. */
  readonly devices: ReadonlyMap<string, ChatDevice>;
  /** The room was deleted. */
  ended(): boolean;
  /** The server is shutting down. */
  stopping(): boolean;
}

/** Delay before a delivery that storage interrupted is tried again. */
const STORE_RETRY_MS = 5000;

/** The Retry-After (seconds, RFC 3261 §20.33) of a 503 answered because storage failed. */
export function retryAfterOf(err: unknown): string {
  return String(err instanceof StoreUnavailableError ? err.retryAfterSeconds : 5);
}

/** Accepts a chat room's MESSAGEs (RFC 3428) and delivers each device's queue (module docs). */
export class ChatDelivery {
  readonly #s: ChatDeliveryServices;
  readonly #host: ChatDeliveryHost;

  constructor(services: ChatDeliveryServices, host: ChatDeliveryHost) {
    this.#s = services;
    this.#host = host;
  }

  /**
   * MESSAGE to the room (liblinphone server semantics): a non-participant gets 403; the
   * message is stored for every other device before the 202, then relayed.
   */
  async onMessage(sr: ServerRequest): Promise<void> {
    const s = this.#s;
    const req = sr.request;
    const aor = addressOfRecord(req.from.uri);
    if (!this.#host.roster.user(aor)) {
      sr.respond(403, "Forbidden (not a participant of this chat room)");
      return;
    }
    const senderAddress = chatDeviceOf(req);
    const fromText = formatUri({ ...req.from.uri, params: new Map(), headers: new Map() });
    const sender = senderAddress?.gruu ??
      [...this.#host.devices.values()].find((d) => d.aor === aor && d.localAddress === fromText)
        ?.uri;
    if (senderAddress) {
      const known = this.#host.devices.get(senderAddress.gruu);
      if (known) known.target = senderAddress.target;
    }
    // A participant with no device known yet gets it queued under its AOR: its first device
    // takes that queue over (see adoptAorQueue).
    const recipients: string[] = [];
    for (const user of this.#host.roster.users) {
      if (user.devices.size === 0) recipients.push(user.aor);
      for (const uri of user.devices.keys()) if (uri !== sender) recipients.push(uri);
    }
    if (recipients.length > 0) {
      try {
        await s.store.enqueueMessage(this.#host.id, {
          senderAor: aor,
          senderDevice: sender ?? null,
          contentType: req.contentType ?? "text/plain",
          body: req.body,
          receivedAt: Date.now(),
          recipients,
        });
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        sr.respond(503, "Service Unavailable (storage)", {
          headers: [["Retry-After", retryAfterOf(err)]],
        });
        return;
      }
    }
    sr.respond(202, "Accepted");
    for (const uri of recipients) {
      const device = this.#host.devices.get(uri);
      if (device?.present) void this.pump(device);
    }
  }

  /** Delivers a device's queue in order while it is present; stops at the first failure. */
  async pump(device: ChatDevice): Promise<void> {
    if (device.pumping) {
      device.again = true;
      return;
    }
    device.pumping = true;
    device.retry?.cancel();
    device.retry = undefined;
    const s = this.#s;
    try {
      do {
        device.again = false;
        const pending = await s.store.pendingMessagesFor(this.#host.id, device.uri);
        for (const message of pending) {
          if (!device.present || this.#host.ended() || this.#host.stopping()) return;
          if (message.receivedAt < Date.now() - s.retentionMs) continue;
          const status = await this.#relay(device, message);
          if (status >= 200 && status < 300 || isPermanentRefusal(status)) {
            if (status >= 300) {
              s.logger.info("chat message refused by a device; dropped for it", {
                room: this.#host.id,
                device: device.uri,
                status,
              });
            }
            await s.persist("delivered", () => s.store.markDelivered(message.id, device.uri));
          } else {
            s.logger.info("chat device unreachable; messages kept until it is back", {
              room: this.#host.id,
              device: device.uri,
              status,
            });
            device.present = false;
            return;
          }
        }
      } while (device.again);
    } catch (err) {
      if (err instanceof StoreUnavailableError && !this.#host.stopping() && !this.#host.ended()) {
        device.retry = s.clock.setTimer(STORE_RETRY_MS, () => void this.pump(device));
      } else if (!this.#host.stopping()) {
        s.logger.warn("chat delivery failed", { room: this.#host.id, error: err as Error });
      }
    } finally {
      device.pumping = false;
    }
  }

  /** One relayed MESSAGE from the room to a device; resolves with the final status. */
  async #relay(device: ChatDevice, message: ChatMessageRecord): Promise<number> {
    const s = this.#s;
    let uri: SipUri;
    let to: SipUri;
    try {
      uri = parseUri(device.target);
      to = parseUri(device.localAddress ?? device.uri);
    } catch {
      return 400;
    }
    const request = s.ua.createRequest({
      method: "MESSAGE",
      uri,
      from: { display: undefined, uri: parseUri(this.#host.uri), params: new Map() },
      to: { display: undefined, uri: to, params: new Map() },
      headers: [
        ["Content-Type", message.contentType],
        ["Session-mode", "true"],
        ...(message.senderAor === device.aor
          ? [["X-fs-message-type", "chat-service"] as const]
          : []),
      ],
      body: message.body,
    });
    try {
      return (await s.ua.send(request).final).status;
    } catch {
      return 503;
    }
  }

  /**
   * The first device of a participant takes over what was queued under its AOR while no
   * device of it was known (copied for the device, oldest first, then released from the AOR).
   */
  async adoptAorQueue(aor: string, deviceUri: string): Promise<void> {
    const s = this.#s;
    try {
      await s.persist("chat-adopt", async () => {
        for (const m of await s.store.pendingMessagesFor(this.#host.id, aor)) {
          await s.store.enqueueMessage(this.#host.id, {
            senderAor: m.senderAor,
            senderDevice: m.senderDevice,
            contentType: m.contentType,
            body: m.body,
            receivedAt: m.receivedAt,
            recipients: [deviceUri],
          });
          await s.store.markDelivered(m.id, aor);
        }
      });
    } catch (err) {
      s.logger.warn("could not hand queued messages to a device", {
        room: this.#host.id,
        device: deviceUri,
        error: err as Error,
      });
      return;
    }
    const device = this.#host.devices.get(deviceUri);
    if (device?.present) void this.pump(device);
  }
}

/**
 * A refusal that retrying will not change (the device does not want this message, e.g. 488 or
 * 415): the message is dropped for that device instead of blocking its queue. Unreachability
 * (408, 480, 404 from a proxy, 5xx) keeps it queued.
 */
function isPermanentRefusal(status: number): boolean {
  return status >= 400 && status < 500 && ![404, 408, 480, 481, 491].includes(status) ||
    status >= 600 && status !== 600;
}
