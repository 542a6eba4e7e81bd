/**
 * Shared set-ups for the InviteSession tests: an owner that records what a session tells it,
 * Alice calling in (UAS side) and the focus dialling out (UAC side), over the fake port.
 * @module
 */

import {
  InviteSession,
  type InviteSessionEvents,
  type SessionEndReason,
} from "../../lib/dialog/invite_session.ts";
import type { ServerRequest } from "../../lib/dialog/server_request.ts";
import type { SipRequest } from "../../lib/sip/message.ts";
import { parseUri } from "../../lib/sip/uri.ts";
import type { Flow } from "../../lib/transport/flow.ts";
import {
  defined,
  deliver,
  makeUa,
  sdp,
  settle,
  tcpFlow,
  type UaFixture,
  wireRequest,
} from "./fake_transaction_port.ts";

export const CONTACT = "<sip:conf@192.0.2.1:5060;transport=tcp>";
export const ALICE_CONTACT = "<sip:alice@198.51.100.7:5070;transport=tcp>";

/** Records what a session tells its owner; answers offers with `reply`. */
export class Events implements InviteSessionEvents {
  readonly offers: string[] = [];
  readonly ended: SessionEndReason[] = [];
  readonly requests: ServerRequest[] = [];
  confirmed = 0;
  reply: (offer: string) => { answer: string } | { status: number; reason?: string } = () => ({
    answer: sdp("conf", 2),
  });
  onOffer(offer: string) {
    this.offers.push(offer);
    return this.reply(offer);
  }
  onEnded(reason: SessionEndReason) {
    this.ended.push(reason);
  }
  onConfirmed() {
    this.confirmed++;
  }
  onRequest(sr: ServerRequest) {
    this.requests.push(sr);
  }
}

export interface Accepted {
  readonly fx: UaFixture;
  readonly session: InviteSession;
  readonly events: Events;
  readonly invite: SipRequest;
  readonly tx: ReturnType<typeof deliver>;
  readonly start: number;
}

/** Alice calls; the handler accepts with {@link InviteSession.accept}. */
export function acceptCall(
  opts: { headers?: Array<[string, string]>; flow?: Flow; fx?: UaFixture } = {},
): Accepted {
  const fx = opts.fx ?? makeUa();
  const events = new Events();
  let session: InviteSession | undefined;
  fx.ua.setHandler({
    onRequest: (sr) => {
      session = InviteSession.accept(fx.ua, sr, { answer: sdp("conf"), contact: CONTACT, events });
    },
  });
  const invite = wireRequest({
    method: "INVITE",
    cseq: 1,
    fromTag: "a1",
    contact: ALICE_CONTACT,
    body: sdp("alice"),
    headers: opts.headers ?? [["Allow", "INVITE, ACK, BYE, CANCEL, UPDATE"]],
  });
  const tx = deliver(fx.ua, invite, opts.flow ?? tcpFlow());
  return { fx, session: defined(session, "session"), events, invite, tx, start: fx.clock.now() };
}

export function ackFor(a: Accepted, cseq = 1, body?: string) {
  a.fx.ua.receiveAck(wireRequest({
    method: "ACK",
    cseq,
    fromTag: "a1",
    toTag: a.session.dialog.id.localTag,
    ...(body !== undefined ? { body } : {}),
  }));
}

export function inDialog(
  a: Accepted,
  method: string,
  cseq: number,
  extra: { body?: string; contact?: string; headers?: Array<[string, string]> } = {},
) {
  return deliver(
    a.fx.ua,
    wireRequest({ method, cseq, fromTag: "a1", toTag: a.session.dialog.id.localTag, ...extra }),
  );
}

/** The focus dials Bob (UAC side); returns the pending result and the INVITE sent. */
export async function dial(fx: UaFixture, events = new Events()) {
  const provisional: number[] = [];
  const result = InviteSession.dial(fx.ua, {
    uri: parseUri("sip:bob@example.org"),
    from: { display: "Room", uri: parseUri("sip:room@example.org"), params: new Map() },
    to: { display: undefined, uri: parseUri("sip:bob@example.org"), params: new Map() },
    contact: CONTACT,
    offer: sdp("conf"),
    headers: [["Subject", "Weekly"]],
  }, {
    onOffer: (o) => events.onOffer(o),
    onEnded: (r) => events.onEnded(r),
    onProvisional: (r) => provisional.push(r.status),
  });
  await settle();
  return { result, invite: fx.port.last("INVITE"), provisional, events };
}
