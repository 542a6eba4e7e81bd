/**
 * INVITE sessions, UAS side (RFC 3261 §13–15, RFC 3311) over a fake transaction port and a fake
 * clock: accept with 2xx retransmission and the 64*T1 give-up, re-INVITE/UPDATE offer/answer,
 * 491 glare, 500 + Retry-After, BYE both ways (and held until the ACK), CANCEL before the answer.
 */

import assert from "node:assert/strict";
import { InviteSession } from "../../lib/dialog/invite_session.ts";
import type { ServerRequest } from "../../lib/dialog/server_request.ts";
import { bodyText } from "../../lib/sip/message.ts";
import { formatUri } from "../../lib/sip/uri.ts";
import { defined, deliver, makeUa, sdp, settle, wireRequest } from "./fake_transaction_port.ts";
import { acceptCall, ackFor, CONTACT, Events, inDialog } from "./invite_fixture.ts";

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
  assert.equal(ok.headers.get("Supported"), "timer, recipient-list-invite");
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
