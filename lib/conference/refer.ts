/**
 * REFER sent to the focus (RFC 4579 §5.5, with the semantics Flexisip and liblinphone use):
 * `Refer-To: <uri>` makes the focus dial the target out (RFC 4353 §5.3), `<uri;method=BYE>`
 * removes it, and `;admin=true|false` (in the URI or as a header parameter) sets its role.
 * Only admins may refer (403). The REFER's implicit subscription (RFC 3515 §2.4.4) — in the
 * referrer's INVITE dialog when it has one, else in a dialog of its own — reports the outcome
 * in `message/sipfrag` NOTIFYs (RFC 3420; RFC 3515 §2.4.5), the last one terminating it.
 * @module
 */

import type { InviteSession } from "../dialog/invite_session.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import { Subscription } from "../dialog/subscription.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import { parseNameAddr } from "../sip/headers.ts";
import { formatUri, type SipUri } from "../sip/uri.ts";
import type { Flow } from "../transport/flow.ts";
import { addressOfRecord } from "./conference_uri.ts";

/** What a REFER may do to its conference. */
export interface ReferHost {
  readonly ua: UserAgent;
  /** The Contact (with `isfocus`) of our dialogs on `flow`. */
  contact(flow: Flow): string;
  isAdmin(aor: string): boolean;
  /** Sets a user's admin role; false when the user is not in the conference. */
  setAdmin(aor: string, admin: boolean): boolean;
  /** Removes every device of a user (BYE); false when the user is not in the conference. */
  eject(aor: string): boolean;
  /** Invites `target` on behalf of `invitedBy`; resolves with the final status. */
  dialOut(target: SipUri, invitedBy: string): Promise<number>;
}

/**
 * Handles a REFER to the focus; `session` is the referrer's call with the focus, if the REFER
 * came inside it. See the module docs.
 */
export function handleRefer(
  host: ReferHost,
  sr: ServerRequest,
  session: InviteSession | undefined,
): void {
  const req = sr.request;
  const referrer = addressOfRecord(req.from.uri);
  if (!host.isAdmin(referrer)) {
    sr.respond(403, "Forbidden (only conference admins may do that)");
    return;
  }
  const refer = readReferTo(sr);
  if (refer === undefined) return;
  const { target, admin, method, aor } = refer;
  const sub = acceptRefer(host.ua, sr, session, host.contact(sr.flow));
  const frag = (status: number, reason: string, final: boolean) =>
    notifyReferOutcome(sub, status, reason, final);

  if (admin !== undefined && admin !== null && method !== "BYE") {
    const known = host.setAdmin(aor, admin === "true" || admin === "1");
    void frag(known ? 200 : 404, known ? "OK" : "Not Found", true);
    return;
  }
  if (method === "BYE") {
    const ejected = host.eject(aor);
    void frag(ejected ? 200 : 404, ejected ? "OK" : "Not Found", true);
    return;
  }
  void frag(100, "Trying", false);
  const cleanTarget: SipUri = { ...target, params: new Map(target.params), headers: new Map() };
  cleanTarget.params.delete("method");
  cleanTarget.params.delete("admin");
  void host.dialOut(cleanTarget, formatUri(req.from.uri)).then((status) => {
    void frag(status, status >= 200 && status < 300 ? "OK" : "Failed", true);
  }).catch(() => void frag(500, "Server Internal Error", true));
}

/**
 * Answers a REFER with 202 and opens its implicit subscription (RFC 3515 §2.4.4): in the
 * referrer's INVITE dialog when the REFER came inside `session`, else in a dialog of its own
 * (whose 202 carries our `contact`).
 */
export function acceptRefer(
  ua: UserAgent,
  sr: ServerRequest,
  session: InviteSession | undefined,
  contact: string,
): Subscription {
  const options = {
    event: "refer",
    minExpires: 60,
    maxExpires: 600,
    defaultExpires: 60,
    contact,
    events: { onRefresh: () => {}, onTerminated: () => {} },
  };
  if (session) {
    const sub = Subscription.implicit(ua, session.dialog, session.flow, options);
    sr.respond(202);
    return sub;
  }
  const sub = Subscription.forRefer(ua, sr, options);
  sr.respond(202, undefined, { headers: [["Contact", contact]] });
  return sub;
}

/**
 * A `message/sipfrag` NOTIFY of a REFER's outcome (RFC 3515 §2.4.5, RFC 3420); `final` ends the
 * subscription (`noresource`).
 */
export function notifyReferOutcome(
  sub: Subscription,
  status: number,
  reason: string,
  final: boolean,
): ReturnType<Subscription["notify"]> {
  return sub.notify(
    {
      contentType: "message/sipfrag;version=2.0",
      body: new TextEncoder().encode(`SIP/2.0 ${status} ${reason}\r\n`),
    },
    final ? "noresource" : undefined,
  );
}

/** What a REFER asks of the focus (RFC 4579 §5.5): its `Refer-To`, read. */
export interface ReferTo {
  /** The Refer-To URI. */
  readonly target: SipUri;
  /** Its address of record. */
  readonly aor: string;
  /** Its `method` parameter, upper case (`INVITE` when absent). */
  readonly method: string;
  /** Its `admin` parameter (in the URI or as a header parameter), if any. */
  readonly admin: string | null | undefined;
}

/** Reads a REFER's `Refer-To` (RFC 3515 §2.1); answers 400 and returns undefined when bad. */
export function readReferTo(sr: ServerRequest): ReferTo | undefined {
  let target: SipUri;
  let admin: string | null | undefined;
  try {
    const referTo = sr.request.headers.get("Refer-To");
    if (referTo === undefined) throw new SyntaxError("missing Refer-To");
    const na = parseNameAddr(referTo, "Refer-To");
    target = na.uri;
    admin = target.params.get("admin") ?? na.params.get("admin");
  } catch (err) {
    sr.respond(400, `Bad Request (${(err as Error).message})`);
    return undefined;
  }
  const method = (target.params.get("method") ?? "INVITE").toUpperCase();
  return { target, aor: addressOfRecord(target), method, admin };
}
