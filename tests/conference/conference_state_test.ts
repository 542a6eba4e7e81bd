/**
 * The conference-info documents a real server sends (RFC 4575 §5) while people join and
 * leave over real TCP: every body is checked against the RFC 4575 schema structure; the full
 * state names users (AOR, display-text, roles), endpoints (device contact, status,
 * joining-method/info, media, call-info with the dialog's Call-ID and tags); partials carry
 * version+1 per change (§4.6), and applying them to the first full state gives exactly the
 * full state a new subscriber receives.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import type { ConferenceSnapshot, UserSnapshot } from "../../lib/events/conference_info.ts";
import { applyPartial } from "../../lib/events/conference_info_parser.ts";
import {
  conferenceInfoOf,
  createConference,
  type FocusCall,
  freshCallId,
  inCall,
  joinConference,
  notifyOf,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

/** Joins with a display name in From (SipClient's requests carry none). */
async function joinAs(client: SipClient, display: string, conference: string, rtpPort: number) {
  const callId = freshCallId(client);
  const body = pcmuOffer(rtpPort);
  await client.peer.write(
    [
      `INVITE ${conference} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${client.peer.port};branch=z9hG4bK${crypto.randomUUID()}`,
      `From: "${display}" <${client.aor}>;tag=${client.tag}`,
      `To: <${conference}>`,
      `Call-ID: ${callId}`,
      "CSeq: 1 INVITE",
      "Max-Forwards: 70",
      `Contact: ${client.contact}`,
      "Content-Type: application/sdp",
      `Content-Length: ${body.length}`,
      "",
      body,
    ].join("\r\n"),
  );
  const r = await client.response(1, "INVITE");
  assert.equal(r.status, 200);
  await client.ack(r, conference);
  const call: FocusCall = {
    conference,
    callId,
    response: r,
    mediaPort: Number(/m=audio (\d+)/.exec(textOf(r))![1]),
    cseq: 10,
  };
  return call;
}

function user(s: ConferenceSnapshot, aor: string): UserSnapshot {
  const u = s.users.find((x) => x.entity === aor);
  assert.ok(u, `user ${aor} in ${s.users.map((x) => x.entity).join(", ")}`);
  return u;
}

Deno.test("conference-info: full state content, schema-valid partials with version+1 per change that merge into the next full state", async () => {
  const srv = await startTestServer();
  const alice = await SipClient.connect("alice", srv.port);
  const bob = await SipClient.connect("bob", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  const dave = await SipClient.connect("dave", srv.port);
  try {
    const conference = await createConference(alice, "Design review");
    const aliceCall = await joinAs(alice, "Alice Liddell", conference, 41000);
    const bobCall = await joinConference(bob, conference, 42000);
    // The conference URI the focus advertises (without the direct host/port of the Contact).
    const focusEntity = `sip:conference-focus@127.0.0.1;${/conf-id=[^;>]+/.exec(conference)![0]}`;

    const { response, subscription } = await subscribeConference(carol, conference);
    assert.equal(response.status, 200);
    const first = await notifyOf(carol, subscription.callId);
    const { info } = conferenceInfoOf(first);
    assert.equal(info.state, "full");
    assert.equal(info.entity, focusEntity);
    const full = info.snapshot!;
    assert.equal(full.subject, "Design review");
    assert.equal(full.userCount, 2);
    assert.equal(full.active, true);
    assert.equal(full.locked, false);
    assert.ok(full.availableMedia.some((m) => m.type === "audio"));

    const a = user(full, "sip:alice@example.org");
    assert.equal(a.displayText, "Alice Liddell");
    assert.deepEqual(a.roles, ["organizer", "admin"]);
    assert.equal(a.endpoints.length, 1);
    const ae = a.endpoints[0]!;
    assert.equal(ae.entity, `sip:alice@127.0.0.1:${alice.peer.port};transport=tcp`);
    assert.equal(ae.status, "connected");
    assert.equal(ae.joiningMethod, "dialed-in");
    assert.ok(ae.joiningInfo?.when !== undefined && ae.joiningInfo.when > 0);
    assert.deepEqual(ae.media.map((m) => [m.type, m.status]), [["audio", "sendrecv"]]);
    assert.ok(ae.media[0]!.label !== undefined, "media carries its label");
    assert.deepEqual(ae.callInfo, {
      callId: aliceCall.callId,
      fromTag: alice.tag,
      toTag: aliceCall.response.toTag,
    });

    const b = user(full, "sip:bob@example.org");
    assert.equal(b.displayText, undefined);
    assert.deepEqual(b.roles, ["participant"]);
    assert.equal(b.endpoints[0]!.entity, `sip:bob@127.0.0.1:${bob.peer.port};transport=tcp`);
    assert.deepEqual(b.endpoints[0]!.callInfo, {
      callId: bobCall.callId,
      fromTag: bob.tag,
      toTag: bobCall.response.toTag,
    });

    let state = full;
    let version = info.version!;
    const change = async (check: (partial: string, merged: ConferenceSnapshot) => void) => {
      const n = await notifyOf(carol, subscription.callId);
      const { xml, info: p } = conferenceInfoOf(n);
      assert.equal(p.state, "partial");
      assert.equal(p.version, version + 1, "one change, one version");
      version += 1;
      const merged = applyPartial(state, xml);
      assert.equal(merged.version, version);
      state = merged.snapshot;
      check(xml, state);
    };

    // Dave joins: only dave's user element, user-count 3.
    await joinConference(dave, conference, 43000);
    await change((xml, s) => {
      assert.match(xml, /<user entity="sip:dave@example.org" state="full">/);
      assert.doesNotMatch(xml, /sip:bob@example.org/);
      assert.equal(s.userCount, 3);
      assert.deepEqual(user(s, "sip:dave@example.org").roles, ["participant"]);
    });

    // Bob leaves: his user is deleted.
    assert.equal((await inCall(bob, bobCall, "BYE")).status, 200);
    await change((xml, s) => {
      assert.match(xml, /<user entity="sip:bob@example.org" state="deleted"/);
      assert.equal(s.userCount, 2);
      assert.equal(s.users.some((u) => u.entity === "sip:bob@example.org"), false);
    });

    // Alice (the only admin) leaves: dave is promoted in the same change.
    assert.equal((await inCall(alice, aliceCall, "BYE")).status, 200);
    await change((xml, s) => {
      assert.match(xml, /<user entity="sip:alice@example.org" state="deleted"/);
      assert.equal(s.userCount, 1);
      assert.ok(user(s, "sip:dave@example.org").roles.includes("admin"));
    });

    // A new subscriber's full state equals what carol built from partials.
    const late = await subscribeConference(carol, conference);
    const fresh = conferenceInfoOf(await notifyOf(carol, late.subscription.callId)).info;
    assert.equal(fresh.state, "full");
    assert.equal(fresh.version, version);
    assert.deepEqual(fresh.snapshot, state);
  } finally {
    for (const c of [alice, bob, carol, dave]) await c.close();
    await srv.stop();
  }
});
