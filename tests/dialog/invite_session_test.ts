/**
 * INVITE sessions (RFC 3261 §13–15, RFC 3311, RFC 4028) over a fake transaction port and a fake
 * clock: UAS accept with 2xx retransmission and the 64*T1 give-up, UAC dial with ACK and forked
 * 2xx, re-INVITE/UPDATE offer/answer, 491 glare, 500 + Retry-After, BYE both ways, session
 * timers in both roles, CANCEL before the answer.
 */

import assert from "node:assert/strict";
import {
  InviteSession,
  type InviteSessionEvents,
  type SessionEndReason,
} from "../../lib/dialog/invite_session.ts";
import type { ServerRequest } from "../../lib/dialog/server_request.ts";
import type { SipRequest } from "../../lib/sip/message.ts";
import { bodyText } from "../../lib/sip/message.ts";
import { formatUri, parseUri } from "../../lib/sip/uri.ts";
import type { Flow } from "../../lib/transport/flow.ts";
import {
  defined,
  deliver,
  makeUa,
  peerResponse,
  sdp,
  settle,
  tcpFlow,
  type UaFixture,
  wireRequest,
} from "./fake_transaction_port.ts";

const CONTACT = "<sip:conf@192.0.2.1:5060;transport=tcp>";
const ALICE_CONTACT = "<sip:alice@198.51.100.7:5070;transport=tcp>";

/** Records what a session tells its owner; answers offers with `reply`. */
class Events implements InviteSessionEvents {
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

interface Accepted {
  readonly fx: UaFixture;
  readonly session: InviteSession;
  readonly events: Events;
  readonly invite: SipRequest;
  readonly tx: ReturnType<typeof deliver>;
  readonly start: number;
}

/** Alice calls; the handler accepts with {@link InviteSession.accept}. */
function acceptCall(
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

function ackFor(a: Accepted, cseq = 1, body?: string) {
  a.fx.ua.receiveAck(wireRequest({
    method: "ACK",
    cseq,
    fromTag: "a1",
    toTag: a.session.dialog.id.localTag,
    ...(body !== undefined ? { body } : {}),
  }));
}

function inDialog(
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

Deno.test("accept: 200 with the answer, Contact, Allow, Supported, To tag; dialog registered", () => {
  const a = acceptCall({
    headers: [["Record-Route", "<sip:p1.example.net;lr>"], ["Allow", "INVITE, ACK, BYE"]],
  });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.status, 200);
  assert.equal(bodyText(ok), sdp("conf"));
  assert.equal(ok.headers.get("Content-Type"), "application/sdp");
  assert.equal(ok.headers.get("Contact"), CONTACT);
  assert.ok(ok.headers.get("Allow")?.includes("UPDATE"));
  assert.equal(ok.headers.get("Supported"), "timer");
  assert.equal(ok.toTag, a.session.dialog.id.localTag);
  assert.deepEqual(ok.headers.getAll("Record-Route"), ["<sip:p1.example.net;lr>"]);
  assert.equal(ok.headers.has("Session-Expires"), false);
  assert.equal(a.session.state, "early");
  assert.equal(a.session.remoteSdp, sdp("alice"));
  assert.equal(a.session.localSdp, sdp("conf"));
  assert.equal(a.session.flow, a.tx.flow);
  assert.equal(a.fx.ua.dialogCount, 1);
  assert.deepEqual(a.session.dialog.routeSet, ["<sip:p1.example.net;lr>"]);
  assert.equal(
    formatUri(a.session.dialog.remoteTarget),
    "sip:alice@198.51.100.7:5070;transport=tcp",
  );
});

Deno.test("2xx retransmission: T1 doubling to the T2 cap, on the INVITE's flow, until ACK", () => {
  const a = acceptCall();
  a.fx.clock.advance(7_500);
  const times = a.fx.port.retransmissions.map((r) => r.at - a.start);
  assert.deepEqual(times, [500, 1_500, 3_500, 7_500]);
  a.fx.clock.advance(8_000);
  assert.deepEqual(
    a.fx.port.retransmissions.map((r) => r.at - a.start),
    [500, 1_500, 3_500, 7_500, 11_500, 15_500],
  );
  for (const r of a.fx.port.retransmissions) {
    assert.equal(r.response, a.tx.finalOrThrow);
    assert.equal(r.flow, a.tx.flow);
  }
  // An ACK for another CSeq does not stop it.
  ackFor(a, 99);
  a.fx.clock.advance(4_000);
  assert.equal(a.fx.port.retransmissions.length, 7);
  ackFor(a);
  assert.equal(a.session.state, "confirmed");
  assert.equal(a.events.confirmed, 1);
  a.fx.clock.advance(120_000);
  assert.equal(a.fx.port.retransmissions.length, 7);
  assert.equal(a.fx.port.sent.length, 0, "no BYE after the ACK");
  assert.deepEqual(a.events.ended, []);
  assert.equal(a.fx.clock.pendingTimers, 0);
  // A retransmitted ACK is harmless.
  ackFor(a);
  assert.equal(a.events.confirmed, 1);
});

Deno.test("no ACK within 64*T1: retransmissions stop, one BYE, onEnded('no-ack') once", async () => {
  const a = acceptCall();
  a.fx.clock.advance(64 * 500 - 1);
  assert.equal(a.fx.port.sent.length, 0);
  const before = a.fx.port.retransmissions.length;
  assert.equal(before, 10); // 0.5, 1.5, 3.5, 7.5, 11.5 … 31.5 s
  a.fx.clock.advance(1);
  const bye = a.fx.port.last("BYE");
  assert.equal(bye.request.toTag, "a1");
  assert.equal(bye.request.fromTag, a.session.dialog.id.localTag);
  assert.deepEqual(a.events.ended, ["no-ack"]);
  assert.equal(a.session.state, "terminated");
  assert.equal(a.fx.ua.dialogCount, 0);
  a.fx.port.answer(bye, 200);
  await settle();
  a.fx.clock.advance(60_000);
  assert.equal(a.fx.port.retransmissions.length, before);
  assert.deepEqual(a.events.ended, ["no-ack"]);
  assert.equal(a.fx.port.sent.length, 1);
});

Deno.test("re-INVITE with an offer: owner answers, target refreshed, 2xx repeated until ACK", () => {
  const a = acceptCall();
  ackFor(a);
  const tx = inDialog(a, "INVITE", 2, {
    body: sdp("alice", 2),
    contact: "<sip:alice@198.51.100.8:5070;transport=tcp>",
  });
  const ok = tx.finalOrThrow;
  assert.equal(ok.status, 200);
  assert.deepEqual(a.events.offers, [sdp("alice", 2)]);
  assert.equal(bodyText(ok), sdp("conf", 2));
  assert.equal(ok.headers.get("Contact"), CONTACT);
  assert.equal(a.session.remoteSdp, sdp("alice", 2));
  assert.equal(a.session.localSdp, sdp("conf", 2));
  assert.equal(
    formatUri(a.session.dialog.remoteTarget),
    "sip:alice@198.51.100.8:5070;transport=tcp",
  );
  a.fx.clock.advance(1_500);
  assert.equal(a.fx.port.retransmissions.length, 2);
  assert.equal(a.fx.port.retransmissions[0]?.response, ok);
  ackFor(a, 2);
  a.fx.clock.advance(60_000);
  assert.equal(a.fx.port.retransmissions.length, 2);
  assert.equal(a.session.state, "confirmed");
});

Deno.test("re-INVITE refused by the owner: its status, nothing changes", () => {
  const a = acceptCall();
  ackFor(a);
  a.events.reply = () => ({ status: 488, reason: "Not Acceptable Here (no common codec)" });
  const tx = inDialog(a, "INVITE", 2, {
    body: sdp("alice", 2),
    contact: "<sip:elsewhere@198.51.100.9>",
  });
  assert.equal(tx.finalOrThrow.status, 488);
  assert.equal(tx.finalOrThrow.reason, "Not Acceptable Here (no common codec)");
  assert.equal(a.session.remoteSdp, sdp("alice"));
  assert.equal(a.session.localSdp, sdp("conf"));
  // RFC 6141 §3.3: the target is refreshed only by an accepted target refresh request.
  assert.equal(
    formatUri(a.session.dialog.remoteTarget),
    "sip:alice@198.51.100.7:5070;transport=tcp",
  );
  // A later re-INVITE is not blocked by the refused one.
  a.events.reply = () => ({ answer: sdp("conf", 3) });
  assert.equal(inDialog(a, "INVITE", 3, { body: sdp("alice", 3) }).finalOrThrow.status, 200);
});

Deno.test("re-INVITE without an offer: our SDP goes in the 2xx, the ACK brings the answer", () => {
  const a = acceptCall();
  ackFor(a);
  const ok = inDialog(a, "INVITE", 2).finalOrThrow;
  assert.equal(ok.status, 200);
  assert.equal(bodyText(ok), sdp("conf"));
  assert.deepEqual(a.events.offers, []);
  // RFC 3311 §5.2: our offer awaits its answer, so an UPDATE offer meanwhile gets 491.
  assert.equal(inDialog(a, "UPDATE", 3, { body: sdp("alice", 4) }).finalOrThrow.status, 491);
  ackFor(a, 2, sdp("alice", 5));
  assert.equal(a.session.remoteSdp, sdp("alice", 5));
  assert.equal(inDialog(a, "UPDATE", 4, { body: sdp("alice", 6) }).finalOrThrow.status, 200);
});

Deno.test("UPDATE with an offer is answered without 2xx retransmission; without one, no body", () => {
  const a = acceptCall();
  ackFor(a);
  const withOffer = inDialog(a, "UPDATE", 2, { body: sdp("alice", 2) }).finalOrThrow;
  assert.equal(withOffer.status, 200);
  assert.equal(bodyText(withOffer), sdp("conf", 2));
  a.fx.clock.advance(60_000);
  assert.equal(a.fx.port.retransmissions.length, 0);
  // RFC 3311 §5.2: an UPDATE without an offer gets a 2xx without an answer.
  const plain = inDialog(a, "UPDATE", 3).finalOrThrow;
  assert.equal(plain.status, 200);
  assert.equal(plain.body.length, 0);
  assert.equal(plain.headers.has("Content-Type"), false);
  assert.equal(a.events.offers.length, 1);
});

Deno.test("491 glare: our re-INVITE pending refuses the peer's re-INVITE and UPDATE offers", async () => {
  const a = acceptCall();
  ackFor(a);
  const pending = a.session.reinvite(sdp("conf", 7));
  const ours = a.fx.port.last("INVITE");
  assert.deepEqual(ours.request.cseq, { seq: 1, method: "INVITE" });
  assert.equal(bodyText(ours.request), sdp("conf", 7));
  assert.equal(ours.request.headers.get("Content-Type"), "application/sdp");
  assert.equal(inDialog(a, "INVITE", 2, { body: sdp("alice", 2) }).finalOrThrow.status, 491);
  assert.equal(inDialog(a, "UPDATE", 3, { body: sdp("alice", 3) }).finalOrThrow.status, 491);
  assert.deepEqual(a.events.offers, []);
  a.fx.port.answer(ours, 200, { toTag: "a1", body: sdp("alice", 9) });
  const response = await pending;
  assert.equal(response.status, 200);
  assert.equal(a.session.localSdp, sdp("conf", 7));
  assert.equal(a.session.remoteSdp, sdp("alice", 9));
  const ack = defined(a.fx.port.acks[0], "ACK").ack;
  assert.deepEqual(ack.cseq, { seq: 1, method: "ACK" });
  assert.equal(ack.toTag, "a1");
  // Once it completed, the peer may offer again.
  assert.equal(inDialog(a, "INVITE", 4, { body: sdp("alice", 4) }).finalOrThrow.status, 200);
});

Deno.test("our re-INVITE answered 491 is retried once after 0–2 s (we do not own the Call-ID)", async () => {
  const a = acceptCall();
  ackFor(a);
  const pending = a.session.reinvite(sdp("conf", 7));
  a.fx.port.answer(a.fx.port.last("INVITE"), 491, { toTag: "a1" });
  await settle();
  assert.equal(a.fx.port.requests("INVITE").length, 1);
  a.fx.clock.advance(2_000);
  await settle();
  const retry = a.fx.port.requests("INVITE");
  assert.equal(retry.length, 2);
  assert.deepEqual(retry[1]?.request.cseq, { seq: 2, method: "INVITE" });
  a.fx.port.answer(defined(retry[1], "retry"), 491, { toTag: "a1" });
  // Only one retry: the second 491 is returned.
  assert.equal((await pending).status, 491);
  a.fx.clock.advance(10_000);
  await settle();
  assert.equal(a.fx.port.requests("INVITE").length, 2);
});

Deno.test("500 with Retry-After 0–10 s while an incoming re-INVITE awaits its ACK", () => {
  const a = acceptCall();
  ackFor(a);
  assert.equal(inDialog(a, "INVITE", 2, { body: sdp("alice", 2) }).finalOrThrow.status, 200);
  const busy = inDialog(a, "INVITE", 3, { body: sdp("alice", 3) }).finalOrThrow;
  assert.equal(busy.status, 500);
  const retryAfter = Number(busy.headers.get("Retry-After"));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 0 && retryAfter <= 10, `${retryAfter}`);
  assert.equal(a.events.offers.length, 1);
  ackFor(a, 2);
  assert.equal(inDialog(a, "INVITE", 4, { body: sdp("alice", 4) }).finalOrThrow.status, 200);
});

Deno.test("incoming BYE: 200, onEnded('remote-bye'), later requests get 481", () => {
  const a = acceptCall();
  ackFor(a);
  const bye = inDialog(a, "BYE", 2);
  assert.equal(bye.finalOrThrow.status, 200);
  assert.deepEqual(a.events.ended, ["remote-bye"]);
  assert.equal(a.session.state, "terminated");
  assert.equal(a.fx.ua.dialogCount, 0);
  assert.equal(inDialog(a, "INFO", 3).finalOrThrow.status, 481);
  assert.equal(a.fx.clock.pendingTimers, 0);
});

Deno.test("a BYE before the ACK also ends the session and stops the 2xx retransmissions", () => {
  const a = acceptCall();
  a.fx.clock.advance(600);
  assert.equal(inDialog(a, "BYE", 2).finalOrThrow.status, 200);
  assert.deepEqual(a.events.ended, ["remote-bye"]);
  a.fx.clock.advance(60_000);
  assert.equal(a.fx.port.retransmissions.length, 1);
  assert.equal(a.fx.port.sent.length, 0);
});

Deno.test("other in-dialog requests go to the owner; unanswered ones get 200, OPTIONS capabilities", () => {
  const a = acceptCall();
  ackFor(a);
  a.events.onRequest = (sr: ServerRequest) => {
    a.events.requests.push(sr);
    if (sr.request.method === "REFER") sr.respond(202);
  };
  assert.equal(inDialog(a, "REFER", 2).finalOrThrow.status, 202);
  assert.equal(inDialog(a, "INFO", 3).finalOrThrow.status, 200);
  const options = inDialog(a, "OPTIONS", 4).finalOrThrow;
  assert.equal(options.status, 200);
  assert.ok(options.headers.get("Allow")?.includes("INVITE"));
  assert.equal(a.events.requests.length, 3);
});

Deno.test("outgoing BYE: in the dialog with extra headers, onEnded('local-bye') once", async () => {
  const a = acceptCall({
    headers: [["Record-Route", "<sip:edge.example.net;lr;transport=tcp>"]],
  });
  ackFor(a);
  const done = a.session.bye([["Reason", 'SIP;cause=200;text="Removed"']]);
  assert.deepEqual(a.events.ended, ["local-bye"]);
  assert.equal(a.fx.ua.dialogCount, 0);
  const bye = a.fx.port.last("BYE");
  assert.equal(bye.request.headers.get("Reason"), 'SIP;cause=200;text="Removed"');
  assert.deepEqual(bye.request.cseq, { seq: 1, method: "BYE" });
  assert.deepEqual(bye.request.headers.getAll("Route"), [
    "<sip:edge.example.net;lr;transport=tcp>",
  ]);
  assert.equal(formatUri(bye.request.uri), "sip:alice@198.51.100.7:5070;transport=tcp");
  assert.deepEqual(bye.target, { transport: "TCP", host: "edge.example.net", port: 5060 });
  await a.session.bye();
  assert.equal(a.fx.port.requests("BYE").length, 1);
  a.fx.port.answer(bye, 200, { toTag: "a1" });
  await done;
  assert.deepEqual(a.events.ended, ["local-bye"]);
});

Deno.test("our BYE before the ACK waits for it (§15), then goes with its headers", async () => {
  const a = acceptCall();
  let done = false;
  const p = a.session.bye([["Reason", 'SIP;cause=200;text="Replaced"']]).then(() => (done = true));
  const second = a.session.bye();
  assert.equal(a.fx.port.sent.length, 0);
  assert.deepEqual(a.events.ended, []);
  a.fx.clock.advance(1_000);
  assert.equal(a.fx.port.retransmissions.length, 1, "the 2xx is still retransmitted");
  ackFor(a);
  assert.equal(a.events.confirmed, 1);
  const bye = a.fx.port.last("BYE");
  assert.equal(bye.request.headers.get("Reason"), 'SIP;cause=200;text="Replaced"');
  assert.deepEqual(a.events.ended, ["local-bye"]);
  await settle();
  assert.equal(done, false, "resolves with the BYE's answer");
  a.fx.port.answer(bye, 200, { toTag: "a1" });
  await p;
  await second;
  assert.equal(a.fx.port.requests("BYE").length, 1);
});

Deno.test("a deferred BYE goes at the 64*T1 give-up when no ACK comes; or not at all after theirs", async () => {
  const a = acceptCall();
  const p = a.session.bye();
  a.fx.clock.advance(64 * 500);
  const bye = a.fx.port.last("BYE");
  assert.deepEqual(a.events.ended, ["local-bye"]);
  a.fx.port.answer(bye, 200, { toTag: "a1" });
  await p;
  assert.equal(a.fx.port.requests("BYE").length, 1);

  const b = acceptCall();
  const q = b.session.bye();
  assert.equal(inDialog(b, "BYE", 2).finalOrThrow.status, 200);
  await q;
  assert.deepEqual(b.events.ended, ["remote-bye"]);
  b.fx.clock.advance(64 * 500);
  assert.equal(b.fx.port.sent.length, 0);
});

Deno.test("request(): INFO in the dialog with a body, returns the final response", async () => {
  const a = acceptCall();
  ackFor(a);
  const p = a.session.request("INFO", {
    body: new TextEncoder().encode("Signal=1"),
    contentType: "application/dtmf-relay",
    headers: [["X-Test", "1"]],
  });
  const info = a.fx.port.last("INFO");
  assert.equal(info.request.headers.get("Content-Type"), "application/dtmf-relay");
  assert.equal(info.request.headers.get("X-Test"), "1");
  assert.equal(bodyText(info.request), "Signal=1");
  // Direct on the caller's still-open TCP connection (no route set).
  assert.equal(info.target, a.tx.flow);
  a.fx.port.answer(info, 200, { toTag: "a1" });
  assert.equal((await p).status, 200);
});

Deno.test("re-INVITE answered 481 ends the session as failed", async () => {
  const a = acceptCall();
  ackFor(a);
  const p = a.session.reinvite(sdp("conf", 2));
  a.fx.port.answer(a.fx.port.last("INVITE"), 481, { toTag: "a1" });
  assert.equal((await p).status, 481);
  assert.deepEqual(a.events.ended, ["failed"]);
  assert.equal(a.fx.ua.dialogCount, 0);
});

Deno.test("CANCEL before the answer: accept sends nothing and the session ends as cancelled", async () => {
  const fx = makeUa();
  const events = new Events();
  let sr: ServerRequest | undefined;
  fx.ua.setHandler({ onRequest: (r) => (sr = r) });
  const invite = wireRequest({ method: "INVITE", fromTag: "a1", body: sdp("alice") });
  const tx = deliver(fx.ua, invite);
  fx.ua.receiveCancel(invite);
  const session = InviteSession.accept(fx.ua, defined(sr, "sr"), {
    answer: sdp("conf"),
    contact: CONTACT,
    events,
  });
  assert.equal(tx.responses.length, 0);
  assert.equal(fx.ua.dialogCount, 0);
  assert.equal(session.state, "terminated");
  await settle();
  assert.deepEqual(events.ended, ["cancelled"]);
  fx.clock.advance(60_000);
  assert.equal(fx.port.retransmissions.length, 0);
  assert.equal(fx.port.sent.length, 0);
  assert.equal(fx.clock.pendingTimers, 0);
});

Deno.test("abandon ends locally without signalling", () => {
  const a = acceptCall();
  ackFor(a);
  a.session.abandon();
  assert.deepEqual(a.events.ended, ["failed"]);
  assert.equal(a.fx.port.sent.length, 0);
  assert.equal(a.fx.ua.dialogCount, 0);
});

// ---------------------------------------------------------------------------------------------
// UAC side

async function dial(fx: UaFixture, events = new Events()) {
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

Deno.test("dial: INVITE through the outbound proxy, ACK for the 2xx in the new dialog", async () => {
  const fx = makeUa({ outboundProxy: parseUri("sip:proxy.example.net;transport=tcp") });
  const d = await dial(fx);
  const req = d.invite.request;
  assert.deepEqual(d.invite.target, { transport: "TCP", host: "proxy.example.net", port: 5060 });
  assert.deepEqual(req.headers.getAll("Route"), ["<sip:proxy.example.net;transport=tcp;lr>"]);
  assert.equal(req.headers.get("Content-Type"), "application/sdp");
  assert.equal(req.headers.get("Supported"), "timer");
  assert.ok(req.headers.get("Allow")?.includes("UPDATE"));
  assert.equal(req.headers.get("Subject"), "Weekly");
  assert.equal(req.headers.get("Contact"), CONTACT);
  assert.equal(bodyText(req), sdp("conf"));
  const ringing = peerResponse(req, 180, { toTag: "bob1" });
  d.invite.handlers?.onProvisional?.(ringing);
  assert.deepEqual(d.provisional, [180]);
  fx.port.answer(d.invite, 200, {
    toTag: "bob1",
    body: sdp("bob"),
    headers: [
      ["Contact", "<sip:bob@203.0.113.5:5080;transport=tcp>"],
      ["Record-Route", "<sip:proxy.example.net;transport=tcp;lr>"],
    ],
  });
  const { session, response } = await d.result;
  assert.equal(response.status, 200);
  assert.ok(session);
  assert.equal(session.state, "confirmed");
  assert.equal(session.remoteSdp, sdp("bob"));
  assert.equal(session.localSdp, sdp("conf"));
  assert.equal(session.flow, undefined);
  assert.equal(fx.ua.dialogCount, 1);
  const ack = defined(fx.port.acks[0], "ACK");
  assert.deepEqual(ack.ack.cseq, { seq: req.cseq.seq, method: "ACK" });
  assert.equal(ack.ack.toTag, "bob1");
  assert.equal(ack.ack.fromTag, req.fromTag);
  assert.equal(formatUri(ack.ack.uri), "sip:bob@203.0.113.5:5080;transport=tcp");
  assert.deepEqual(ack.ack.headers.getAll("Route"), ["<sip:proxy.example.net;transport=tcp;lr>"]);
  assert.deepEqual(ack.target, { transport: "TCP", host: "proxy.example.net", port: 5060 });
  // A retransmitted 2xx is ACKed again, with the same ACK.
  d.invite.handlers?.onExtra2xx?.(peerResponse(req, 200, { toTag: "bob1" }));
  await settle();
  assert.equal(fx.port.acks.length, 2);
  assert.equal(fx.port.acks[1]?.ack, ack.ack);
  // The session's requests follow the route set.
  void session.bye();
  assert.deepEqual(fx.port.last("BYE").target, {
    transport: "TCP",
    host: "proxy.example.net",
    port: 5060,
  });
  assert.deepEqual(fx.port.last("BYE").request.cseq, { seq: req.cseq.seq + 1, method: "BYE" });
});

Deno.test("dial: a failure response gives no session and no ACK from the dialog layer", async () => {
  const fx = makeUa();
  const d = await dial(fx);
  fx.port.answer(d.invite, 486, { toTag: "bob1" });
  const { session, response } = await d.result;
  assert.equal(session, undefined);
  assert.equal(response.status, 486);
  assert.equal(fx.port.acks.length, 0);
  assert.equal(fx.ua.dialogCount, 0);
});

Deno.test("dial: a 2xx from another fork is ACKed and then ended with BYE (§13.2.2.4)", async () => {
  const fx = makeUa();
  const d = await dial(fx);
  fx.port.answer(d.invite, 200, {
    toTag: "bob1",
    body: sdp("bob"),
    headers: [["Contact", "<sip:bob@203.0.113.5>"]],
  });
  const { session } = await d.result;
  assert.ok(session);
  d.invite.handlers?.onExtra2xx?.(peerResponse(d.invite.request, 200, {
    toTag: "bob2",
    body: sdp("bob-phone-2"),
    headers: [["Contact", "<sip:bob@203.0.113.6>"]],
  }));
  await settle();
  const acks = fx.port.acks.map((x) => x.ack);
  assert.equal(acks.length, 2);
  assert.equal(acks[1]?.toTag, "bob2");
  assert.equal(formatUri(defined(acks[1], "ack").uri), "sip:bob@203.0.113.6");
  const bye = fx.port.last("BYE");
  assert.equal(bye.request.toTag, "bob2");
  assert.equal(formatUri(bye.request.uri), "sip:bob@203.0.113.6");
  // The first dialog is untouched.
  assert.equal(session.state, "confirmed");
  assert.equal(fx.ua.dialogCount, 1);
  assert.deepEqual(d.events.ended, []);
});

Deno.test("dialled session: a re-INVITE from the peer gets its 2xx repeated on its flow", async () => {
  const fx = makeUa();
  {
    const d = await dial(fx);
    fx.port.answer(d.invite, 200, {
      toTag: "bob1",
      body: sdp("bob"),
      headers: [["Contact", "<sip:bob@203.0.113.5>"]],
    });
    const { session } = await d.result;
    assert.ok(session);
    const flow = tcpFlow(9);
    const reinvite = wireRequest({
      method: "INVITE",
      cseq: 1,
      callId: d.invite.request.callId,
      fromTag: "bob1",
      toTag: defined(d.invite.request.fromTag, "tag"),
      body: sdp("bob", 2),
    });
    const tx = deliver(fx.ua, reinvite, flow);
    assert.equal(tx.finalOrThrow.status, 200);
    fx.clock.advance(500);
    assert.equal(fx.port.retransmissions.length, 1);
    assert.equal(fx.port.retransmissions[0]?.flow, flow);
    fx.ua.receiveAck(wireRequest({
      method: "ACK",
      cseq: 1,
      callId: reinvite.callId,
      fromTag: "bob1",
      toTag: defined(d.invite.request.fromTag, "tag"),
    }));
    fx.clock.advance(60_000);
    assert.equal(fx.port.retransmissions.length, 1);
    assert.deepEqual(d.events.ended, []);
  }
});

Deno.test("dialled session: our re-INVITE glare retry waits 2.1–4 s (we own the Call-ID)", async () => {
  const fx = makeUa();
  const d = await dial(fx);
  fx.port.answer(d.invite, 200, { toTag: "bob1", body: sdp("bob") });
  const { session } = await d.result;
  assert.ok(session);
  const p = session.reinvite(sdp("conf", 2));
  fx.port.answer(fx.port.last("INVITE"), 491, { toTag: "bob1" });
  await settle();
  fx.clock.advance(2_099);
  await settle();
  assert.equal(fx.port.requests("INVITE").length, 2, "the dial-out INVITE and the first try");
  fx.clock.advance(1_901);
  await settle();
  const retry = fx.port.last("INVITE");
  assert.equal(fx.port.requests("INVITE").length, 3);
  fx.port.answer(retry, 200, { toTag: "bob1", body: sdp("bob", 3) });
  assert.equal((await p).status, 200);
  assert.equal(session.remoteSdp, sdp("bob", 3));
});

Deno.test("a glare retry is not sent once the session ended meanwhile", async () => {
  const a = acceptCall();
  ackFor(a);
  const p = a.session.reinvite(sdp("conf", 2));
  a.fx.port.answer(a.fx.port.last("INVITE"), 491, { toTag: "a1" });
  await settle();
  inDialog(a, "BYE", 2);
  a.fx.clock.advance(2_000);
  assert.equal((await p).status, 491);
  assert.equal(a.fx.port.requests("INVITE").length, 1);
});

// ---------------------------------------------------------------------------------------------
// Session timers (RFC 4028)

Deno.test("session timer, UAC supports and refreshes: refresher=uac, Require: timer", () => {
  const a = acceptCall({ headers: [["Session-Expires", "1800"], ["Supported", "timer, 100rel"]] });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.headers.get("Session-Expires"), "1800;refresher=uac");
  assert.equal(ok.headers.get("Require"), "timer");
  ackFor(a);
  // The peer refreshes at 900 s with an UPDATE; its 2xx repeats the interval.
  a.fx.clock.advance(900_000);
  const refresh = inDialog(a, "UPDATE", 2, {
    headers: [["Session-Expires", "1800;refresher=uac"], ["Supported", "timer"]],
  }).finalOrThrow;
  assert.equal(refresh.headers.get("Session-Expires"), "1800;refresher=uac");
  assert.equal(refresh.headers.get("Require"), "timer");
  // §10: without a further refresh, BYE at expiry minus min(32 s, interval/3).
  a.fx.clock.advance(1_768_000 - 1);
  assert.equal(a.fx.port.requests("BYE").length, 0);
  assert.equal(a.fx.port.requests("UPDATE").length, 0, "we are not the refresher");
  a.fx.clock.advance(1);
  assert.equal(a.fx.port.requests("BYE").length, 1);
  assert.deepEqual(a.events.ended, ["session-expired"]);
});

Deno.test("session timer, UAC asks the UAS to refresh: refresher=uas, we send UPDATE at half time", async () => {
  const a = acceptCall({
    headers: [
      ["Session-Expires", "600;refresher=uas"],
      ["Supported", "timer"],
      ["Allow", "INVITE, ACK, BYE, UPDATE"],
    ],
  });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.headers.get("Session-Expires"), "600;refresher=uas");
  assert.equal(ok.headers.get("Require"), "timer");
  ackFor(a);
  a.fx.clock.advance(300_000 - 1);
  assert.equal(a.fx.port.sent.length, 0);
  a.fx.clock.advance(1);
  const update = a.fx.port.last("UPDATE");
  assert.equal(update.request.headers.get("Session-Expires"), "600;refresher=uac");
  assert.ok(update.request.headers.get("Supported")?.includes("timer"));
  assert.equal(update.request.body.length, 0);
  a.fx.port.answer(update, 200, {
    toTag: "a1",
    headers: [["Session-Expires", "600;refresher=uac"], ["Require", "timer"]],
  });
  await settle();
  a.fx.clock.advance(300_000);
  assert.equal(a.fx.port.requests("UPDATE").length, 2);
  assert.deepEqual(a.events.ended, []);
});

Deno.test("session timer, UAC without timer support: refresher=uas, no Require, re-INVITE refresh", async () => {
  const a = acceptCall({
    headers: [["Session-Expires", "90"], ["Allow", "INVITE, ACK, BYE, CANCEL"]],
  });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.headers.get("Session-Expires"), "90;refresher=uas");
  assert.equal(ok.headers.has("Require"), false);
  ackFor(a);
  a.fx.clock.advance(45_000);
  const reinvite = a.fx.port.last("INVITE");
  assert.equal(bodyText(reinvite.request), sdp("conf"), "same session description");
  assert.equal(reinvite.request.headers.get("Session-Expires"), "90;refresher=uac");
  a.fx.port.answer(reinvite, 200, { toTag: "a1", body: sdp("alice") });
  await settle();
  assert.equal(a.fx.port.acks.length, 1);
  assert.deepEqual(a.fx.port.acks[0]?.ack.cseq, { seq: reinvite.request.cseq.seq, method: "ACK" });
});

Deno.test("no or malformed Session-Expires: no session-timer headers and no timers", () => {
  for (const se of [undefined, "soon", "-5", "0"]) {
    const a = acceptCall({
      headers: se === undefined ? [["Supported", "timer"]] : [["Session-Expires", se]],
    });
    const ok = a.tx.finalOrThrow;
    assert.equal(ok.headers.has("Session-Expires"), false, `${se}`);
    assert.equal(ok.headers.has("Require"), false, `${se}`);
    ackFor(a);
    assert.equal(a.fx.clock.pendingTimers, 0, `${se}`);
  }
});

Deno.test("dialled session: a 2xx naming us (uac) as refresher makes us refresh", async () => {
  const fx = makeUa();
  const d = await dial(fx);
  fx.port.answer(d.invite, 200, {
    toTag: "bob1",
    body: sdp("bob"),
    headers: [
      ["Session-Expires", "120;refresher=uac"],
      ["Require", "timer"],
      ["Allow", "INVITE, ACK, BYE, UPDATE"],
    ],
  });
  const { session } = await d.result;
  assert.ok(session);
  fx.clock.advance(60_000);
  const update = fx.port.last("UPDATE");
  assert.equal(update.request.headers.get("Session-Expires"), "120;refresher=uac");
  void session.bye();
  assert.equal(fx.clock.pendingTimers, 0);
});
