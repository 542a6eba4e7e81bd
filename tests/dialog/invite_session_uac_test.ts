/**
 * INVITE sessions, UAC side (RFC 3261 §13.2): dial-out through the outbound proxy, ACK for the
 * 2xx, forked 2xx answers, re-INVITEs from the peer, glare retry timing when we own the Call-ID.
 */

import assert from "node:assert/strict";
import { bodyText } from "../../lib/sip/message.ts";
import { formatUri, parseUri } from "../../lib/sip/uri.ts";
import {
  defined,
  deliver,
  makeUa,
  peerResponse,
  sdp,
  settle,
  tcpFlow,
  wireRequest,
} from "./fake_transaction_port.ts";
import { acceptCall, ackFor, CONTACT, dial, inDialog } from "./invite_fixture.ts";

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
