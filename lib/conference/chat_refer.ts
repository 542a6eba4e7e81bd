/**
 * REFER to a group chat room (liblinphone's server semantics, RFC 4579 §5.5 as Linphone uses
 * it): only admins may refer (403); `Refer-To: <uri>` adds a participant (its devices are
 * invited), `<uri;method=BYE>` removes one, `;admin=true|false` (in the URI or as a header
 * parameter) sets its role. A one-to-one room takes no one else (403), a full one 486, a
 * storage outage 503. Otherwise 202, and the REFER's implicit subscription (RFC 3515 §2.4.4:
 * in the referrer's INVITE dialog when it came inside it, else a dialog of its own) gets one
 * final `message/sipfrag` NOTIFY (RFC 3420) with the outcome.
 * @module
 */

import type { InviteSession } from "../dialog/invite_session.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import type { Flow } from "../transport/flow.ts";
import { retryAfterOf } from "./chat_delivery.ts";
import { addressOfRecord } from "./conference_uri.ts";
import { acceptRefer, notifyReferOutcome, readReferTo } from "./refer.ts";
import type { Roster } from "./roster.ts";

/** What a REFER may do to its chat room. */
export interface ChatReferHost {
  readonly ua: UserAgent;
  readonly roster: Roster;
  readonly oneToOne: boolean;
  /** The Contact (with `isfocus`) of the room's dialogs on `flow`. */
  contact(flow: Flow | undefined): string;
  /** Removes a participant (BYE to its devices); false when it was not one. */
  remove(aor: string, reason: string): boolean;
  /** The admin roles in the roster changed: they are stored and published. */
  adminsChanged(): void;
  /** Stores a new participant; rejects when storage is unavailable. */
  storeParticipant(aor: string, at: number): Promise<void>;
  /** A stored new participant joins the roster (published) and its devices are invited. */
  added(aor: string, at: number): void;
}

/**
 * Handles a REFER to the chat room; `session` is the referrer's session with the room, if the
 * REFER came inside it. See the module docs.
 */
export async function handleChatRefer(
  host: ChatReferHost,
  sr: ServerRequest,
  session: InviteSession | undefined,
): Promise<void> {
  const req = sr.request;
  const referrer = addressOfRecord(req.from.uri);
  if (!host.roster.user(referrer)?.admin) {
    sr.respond(403, "Forbidden (only chat room admins may do that)");
    return;
  }
  const refer = readReferTo(sr);
  if (refer === undefined) return;
  const { admin, method, aor } = refer;
  let status = 200;
  if (method === "BYE") {
    status = host.remove(aor, "Removed from chat room") ? 200 : 404;
  } else if (admin !== undefined && admin !== null) {
    if (!host.roster.user(aor)) status = 404;
    else if (host.roster.setAdmin(aor, admin === "true" || admin === "1")) {
      host.adminsChanged();
    }
  } else if (!host.roster.user(aor)) {
    if (host.oneToOne) {
      sr.respond(403, "Forbidden (a one-to-one chat room has two participants)");
      return;
    }
    if (host.roster.users.length >= host.roster.maxParticipants) {
      sr.respond(486, "Busy Here (chat room full)");
      return;
    }
    const now = Date.now();
    try {
      await host.storeParticipant(aor, now);
    } catch (err) {
      sr.respond(503, "Service Unavailable (storage)", {
        headers: [["Retry-After", retryAfterOf(err)]],
      });
      return;
    }
    host.added(aor, now);
  }
  const sub = acceptRefer(host.ua, sr, session, host.contact(sr.flow));
  void notifyReferOutcome(sub, status, status === 200 ? "OK" : "Not Found", true);
}
