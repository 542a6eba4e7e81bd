/**
 * The dialog layer over real TCP sockets, composed as in lib/server.ts (TransportLayer →
 * TransactionLayer → UserAgent, with the same TransactionPort adaptation): a malformed request
 * on one connection gets 400 with a reason naming the defect, logged once at debug level,
 * while a dialog on another connection carries on undisturbed (issue 3, "Bad input").
 */

import assert from "node:assert/strict";
import { systemClock } from "../../lib/config/clock.ts";
import { createLogger } from "../../lib/config/log.ts";
import { InviteSession, type SessionEndReason } from "../../lib/dialog/invite_session.ts";
import { transactionPortOver } from "../../lib/dialog/transaction_port.ts";
import { UserAgent } from "../../lib/dialog/user_agent.ts";
import { SipResponse } from "../../lib/sip/message.ts";
import { parseUri } from "../../lib/sip/uri.ts";
import { TransactionLayer } from "../../lib/transaction/transaction_layer.ts";
import { TransportLayer } from "../../lib/transport/transport.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { captureLogs, RawStreamPeer } from "../_helpers/sip_transport.ts";

/** A UAS on 127.0.0.1 that accepts every INVITE, built like the composition root. */
async function startStack() {
  const transport = new TransportLayer({ clock: systemClock, tls: {} });
  const bound = await transport.listen({ transport: "TCP", host: "127.0.0.1", port: 0 });
  const ref: { ua?: UserAgent } = {};
  const transactions = new TransactionLayer({
    transport,
    clock: systemClock,
    user: {
      onRequest: (tx) => ref.ua?.receiveRequest(tx),
      onAck: (ack) => ref.ua?.receiveAck(ack),
      onCancel: (invite) => ref.ua?.receiveCancel(invite.request),
    },
  });
  const port = transactionPortOver(transactions, transport);
  const ua = new UserAgent({
    port,
    clock: systemClock,
    logger: createLogger("ua"),
    serverName: "Conclave/test",
    outboundProxy: undefined,
    t1Ms: 500,
    t2Ms: 4000,
    contactUri: (user) => parseUri(`sip:${user}@127.0.0.1:${bound.port};transport=tcp`),
  });
  ref.ua = ua;
  const ended: SessionEndReason[] = [];
  const sessions: InviteSession[] = [];
  ua.setHandler({
    onRequest: (sr) => {
      if (sr.request.method !== "INVITE") {
        sr.respond(sr.request.method === "OPTIONS" ? 200 : 405);
        return;
      }
      sessions.push(InviteSession.accept(ua, sr, {
        answer: pcmuOffer(40000),
        contact: `<sip:room@127.0.0.1:${bound.port};transport=tcp>`,
        events: {
          onOffer: () => ({ answer: pcmuOffer(40002) }),
          onEnded: (reason) => ended.push(reason),
        },
      }));
    },
  });
  return {
    port: bound.port,
    ua,
    ended,
    sessions,
    async stop() {
      for (const s of sessions) s.abandon();
      transactions.close();
      await transport.close();
    },
  };
}

Deno.test("sockets: a bad CSeq gets 400 naming it; a dialog on another connection is undisturbed", async () => {
  const logs = captureLogs("debug");
  const stack = await startStack();
  const alice = await SipClient.connect("alice", stack.port);
  const mallory = await RawStreamPeer.connect(stack.port);
  const uri = `sip:room@127.0.0.1:${stack.port}`;
  try {
    // Alice sets up a dialog on her connection.
    const inviteSeq = await alice.sendRequest("INVITE", uri, { body: pcmuOffer(30000) });
    const ok = await alice.response(inviteSeq, "INVITE");
    assert.equal(ok.status, 200);
    assert.match(textOf(ok), /m=audio 40000/);
    await alice.ack(ok, uri);
    const toTag = ok.toTag;
    assert.ok(toTag);
    assert.equal(stack.ua.dialogCount, 1);

    // Mallory, on another connection, sends a request whose CSeq is not a number.
    const bad = [
      `INVITE ${uri} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${mallory.port};branch=z9hG4bKbad1;rport`,
      "Max-Forwards: 70",
      "From: <sip:mallory@example.org>;tag=m1",
      "To: <sip:room@example.org>",
      "Call-ID: bad-cseq-1",
      "CSeq: one INVITE",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n");
    await mallory.write(bad);
    // The answer echoes the broken CSeq (RFC 3261 §8.2.6.2 copies it), so read it as text.
    const ev = await mallory.nextEvent();
    assert.equal(ev.kind, "message");
    const r400 = new TextDecoder().decode(ev.bytes);
    const statusLine = r400.slice(0, r400.indexOf("\r\n"));
    assert.match(statusLine, /^SIP\/2\.0 400 Bad Request \(.*CSeq.*\)$/);
    assert.match(r400, /\r\nCall-ID: bad-cseq-1\r\n/);
    assert.match(r400, /\r\nVia: SIP\/2\.0\/TCP 127\.0\.0\.1:\d+;branch=z9hG4bKbad1/);

    // Headers the parser accepts but the user-agent core refuses, on the same connection.
    await mallory.write(
      bad.replace("CSeq: one INVITE", "CSeq: 1 INVITE").replace("bad-cseq-1", "bad-req-2")
        .replace("z9hG4bKbad1", "z9hG4bKbad2")
        .replace("Max-Forwards: 70", "Max-Forwards: 70\r\nRequire: foo-ext"),
    );
    const r420 = await mallory.nextMessage();
    assert.ok(r420 instanceof SipResponse);
    assert.equal(r420.status, 420);
    assert.equal(r420.headers.get("Unsupported"), "foo-ext");
    // A BYE for a dialog that does not exist (Alice's Call-ID, a made-up tag).
    await mallory.write(
      bad.replace(`INVITE ${uri}`, `BYE ${uri}`).replace("CSeq: one INVITE", "CSeq: 2 BYE")
        .replace("bad-cseq-1", alice.callId).replace("z9hG4bKbad1", "z9hG4bKbad3")
        .replace("To: <sip:room@example.org>", "To: <sip:room@example.org>;tag=forged"),
    );
    const r481 = await mallory.nextMessage();
    assert.ok(r481 instanceof SipResponse);
    assert.equal(r481.status, 481);

    // Alice's dialog carries on: an in-dialog re-INVITE is answered, then her BYE.
    const reSeq = await alice.sendRequest("INVITE", uri, {
      toTag,
      body: pcmuOffer(30002),
    });
    const reOk = await alice.response(reSeq, "INVITE");
    assert.equal(reOk.status, 200);
    assert.match(textOf(reOk), /m=audio 40002/);
    await alice.ack(reOk, uri);
    assert.deepEqual(stack.ended, []);
    const byeSeq = await alice.sendRequest("BYE", uri, { toTag });
    assert.equal((await alice.response(byeSeq, "BYE")).status, 200);
    assert.deepEqual(stack.ended, ["remote-bye"]);
    assert.equal(stack.ua.dialogCount, 0);

    // One debug line named the defect; nothing was logged above debug.
    const cseqLines = logs.lines.filter((l) => /CSeq/.test(l) && /malformed/.test(l));
    assert.equal(cseqLines.length, 1, logs.lines.join("\n"));
    assert.match(cseqLines[0]!, / DEBUG /);
    const loud = logs.lines.filter((l) => / (WARN|ERROR) /.test(l));
    assert.deepEqual(loud, []);
  } finally {
    logs.restore();
    mallory.close();
    await alice.close();
    await stack.stop();
  }
});
