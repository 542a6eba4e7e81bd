import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import type { SipResponse } from "../../lib/sip/message.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

const FACTORY = "sip:conference-factory@127.0.0.1";

function contactUri(r: SipResponse): string {
  const c = r.headers.get("Contact");
  assert.ok(c, "Contact present");
  return /<([^>]+)>/.exec(c)![1]!;
}

async function createConference(a: SipClient, subject = "Standup"): Promise<string> {
  const cseq = await a.sendRequest("INVITE", FACTORY, {
    body: pcmuOffer(40000),
    headers: [["Subject", subject]],
  });
  const r = await a.response(cseq, "INVITE");
  assert.equal(r.status, 302);
  await a.ack(r, FACTORY);
  const contact = r.headers.get("Contact")!;
  assert.match(contact, /;isfocus/);
  assert.match(contact, /conf-id=[A-Za-z0-9_-]{22}/);
  return contactUri(r);
}

async function join(c: SipClient, uri: string, rtpPort: number): Promise<SipResponse> {
  const cseq = await c.sendRequest("INVITE", uri, {
    body: pcmuOffer(rtpPort),
    callId: `${c.callId}-j`,
  });
  const r = await c.response(cseq, "INVITE");
  assert.equal(r.status, 200, `join answered ${r.status} ${r.reason}`);
  assert.match(r.headers.get("Contact") ?? "", /isfocus/);
  assert.match(textOf(r), /m=audio [1-9][0-9]* RTP\/AVP 0/);
  await c.ack(r, uri);
  return r;
}

function version(xml: string): number {
  return Number(/version="(\d+)"/.exec(xml)?.[1]);
}

Deno.test("focus: OPTIONS, factory 302, joins, conference-info full then partial, REFER remove, end → 410", async () => {
  const srv = await startTestServer();
  const a = await SipClient.connect("alice", srv.port);
  const b = await SipClient.connect("bob", srv.port);
  const c = await SipClient.connect("carol", srv.port);
  try {
    const ocseq = await a.sendRequest("OPTIONS", FACTORY);
    const opt = await a.response(ocseq, "OPTIONS");
    assert.equal(opt.status, 200);
    assert.match(opt.headers.getAll("Allow").join(","), /SUBSCRIBE/);
    assert.match(opt.headers.get("Server") ?? "", /^Conclave\//);

    const conf = await createConference(a);
    const aJoin = await join(a, conf, 41000);

    // Carol subscribes and gets the full state with alice as organizer/admin.
    const scseq = await c.sendRequest("SUBSCRIBE", conf, {
      headers: [["Event", "conference"], ["Accept", "application/conference-info+xml"], [
        "Expires",
        "600",
      ]],
    });
    assert.equal((await c.response(scseq, "SUBSCRIBE")).status, 200);
    const n1 = await c.request("NOTIFY");
    await c.answer(n1);
    const full = textOf(n1);
    assert.match(full, /state="full"/);
    assert.match(full, /entity="sip:alice@example.org"/);
    assert.match(full, /<entry>admin<\/entry>/);
    assert.match(n1.headers.get("Subscription-State") ?? "", /^active/);
    const v1 = version(full);

    // Bob joins: carol gets a partial with version + 1.
    await join(b, conf, 42000);
    const n2 = await c.request("NOTIFY");
    await c.answer(n2);
    assert.match(textOf(n2), /state="partial"/);
    assert.match(textOf(n2), /entity="sip:bob@example.org"/);
    assert.equal(version(textOf(n2)), v1 + 1);

    // Bob (not admin) may not remove alice.
    const refused = await b.sendRequest("REFER", conf, {
      headers: [["Refer-To", "<sip:alice@example.org;method=BYE>"]],
    });
    assert.equal((await b.response(refused, "REFER")).status, 403);

    // Alice (admin) removes bob: 202, bob gets BYE, carol sees bob deleted.
    const rcseq = await a.sendRequest("REFER", conf, {
      headers: [["Refer-To", "<sip:bob@example.org;method=BYE>"]],
    });
    assert.equal((await a.response(rcseq, "REFER")).status, 202);
    const bye = await b.request("BYE");
    await b.answer(bye);
    const n3 = await c.request("NOTIFY");
    await c.answer(n3);
    assert.match(textOf(n3), /entity="sip:bob@example.org" state="deleted"/);
    assert.equal(version(textOf(n3)), v1 + 2);
    const frag = await a.request("NOTIFY");
    await a.answer(frag);
    assert.match(textOf(frag), /^SIP\/2.0 200/);

    // Unknown conference id: 404.
    const bad = conf.replace(/conf-id=[^;>]+/, "conf-id=doesnotexist");
    const x = await b.sendRequest("INVITE", bad, { body: pcmuOffer(43000), callId: "x404" });
    assert.equal((await b.response(x, "INVITE")).status, 404);

    // Alice leaves: the conference ends, carol's subscription is terminated (noresource).
    const byeCseq = await a.sendRequest("BYE", contactUri(aJoin), {
      callId: `${a.callId}-j`,
      to: conf,
      toTag: aJoin.toTag!,
      cseq: 100,
    });
    assert.equal((await a.response(byeCseq, "BYE")).status, 200);
    let state = "";
    for (let i = 0; i < 3 && !state.startsWith("terminated"); i++) {
      const n = await c.request("NOTIFY");
      await c.answer(n);
      state = n.headers.get("Subscription-State") ?? "";
    }
    assert.match(state, /terminated;reason=noresource/);

    // The ended conference answers 410 Gone.
    const late = await b.sendRequest("INVITE", conf, { body: pcmuOffer(44000), callId: "x410" });
    assert.equal((await b.response(late, "INVITE")).status, 410);
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await srv.stop();
  }
});
