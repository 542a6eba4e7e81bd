/**
 * Conference policy over real sockets: capacity (`max-participants`: a new user gets 486 with
 * a reason, another device of a present user is still admitted, RFC 4353 §5.1 membership),
 * and the focus hanging up calls with an RFC 3326 Reason header when `call-timeout` or
 * `no-rtp-timeout` expires — both on a stepped clock, no sleeping.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { setLogLevel } from "../../lib/config/log.ts";
import {
  byeOf,
  conferenceInfoOf,
  createConference,
  type FocusCall,
  inCall,
  invite,
  joinConference,
  notifyOf,
  roundTrip,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { SipClient } from "../_helpers/sip_client.ts";
import { startTestServer, type TestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

Deno.test("policy: max-participants=2 refuses a third user with 486 and a reason, admits a second device of a present user, admits again once someone left", async () => {
  const srv = await startTestServer(["max-participants=2"]);
  const alice = await SipClient.connect("alice", srv.port);
  const alicePhone = await SipClient.connect("alice", srv.port);
  const bob = await SipClient.connect("bob", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  try {
    const conference = await createConference(alice);
    await joinConference(alice, conference, 41000);
    const bobCall = await joinConference(bob, conference, 42000);

    const refused = await invite(carol, conference, 43000);
    assert.equal(refused.status, 486);
    assert.match(refused.reason, /full/i, `reason phrase says why: "${refused.reason}"`);

    // Alice's second device (another contact, same AOR) is not a new participant.
    await joinConference(alicePhone, conference, 44000);
    const watch = await subscribeConference(carol, conference);
    assert.equal(watch.response.status, 200);
    const full = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId)).info;
    const s = full.snapshot!;
    assert.equal(s.userCount, 2);
    assert.equal(s.maximumUserCount, 2);
    const aliceUser = s.users.find((u) => u.entity === "sip:alice@example.org")!;
    assert.deepEqual(
      aliceUser.endpoints.map((e) => e.entity).sort(),
      [alice.contact, alicePhone.contact].map((c) => c.slice(1, -1)).sort(),
    );
    assert.equal((await invite(carol, conference, 43000)).status, 486, "still full");

    // Bob leaves: there is room again.
    assert.equal((await inCall(bob, bobCall, "BYE")).status, 200);
    await notifyOf(carol, watch.subscription.callId);
    await joinConference(carol, conference, 43000);
  } finally {
    for (const c of [alice, alicePhone, bob, carol]) await c.close();
    await srv.stop();
  }
});

/** Stops a server driven by a stepped clock (shutdown waits on that clock). */
async function stopStepped(srv: TestServer, clock: FakeClock): Promise<void> {
  const stopping = srv.stop();
  for (let i = 0; i < 20; i++) {
    clock.advance(100);
    await new Promise((r) => setTimeout(r, 0));
  }
  await stopping;
}

Deno.test("policy: call-timeout hangs up with BYE carrying a Reason header (stepped clock)", async () => {
  const clock = new FakeClock(5_000_000);
  const srv = await startTestServer(["call-timeout=10s"], undefined, { clock });
  const alice = await SipClient.connect("alice", srv.port);
  const bob = await SipClient.connect("bob", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  try {
    const conference = await createConference(alice);
    const aliceCall = await joinConference(alice, conference, 41000);
    const watch = await subscribeConference(carol, conference);
    await notifyOf(carol, watch.subscription.callId);
    await Promise.all([alice, carol].map(roundTrip));

    clock.advance(6_000);
    const bobCall = await joinConference(bob, conference, 42000);
    await notifyOf(carol, watch.subscription.callId);
    await Promise.all([alice, bob, carol].map(roundTrip));

    // 10 s after alice joined: only her call ends, with a Reason (RFC 3326).
    clock.advance(4_000);
    const bye = await byeOf(alice, aliceCall);
    assert.match(bye.headers.get("Reason") ?? "", /^SIP;cause=\d{3};text="[^"]*timeout[^"]*"/i);
    const left = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId)).xml;
    assert.match(left, /<user entity="sip:alice@example.org" state="deleted"/);
    await assertCallUp(bob, bobCall);

    // 10 s after bob joined: his call ends too, and with it the ad-hoc conference.
    clock.advance(6_000);
    const bobBye = await byeOf(bob, bobCall);
    assert.match(bobBye.headers.get("Reason") ?? "", /timeout/i);
    let subState = "";
    while (!subState.startsWith("terminated")) {
      subState = (await notifyOf(carol, watch.subscription.callId)).headers.get(
        "Subscription-State",
      ) ?? "";
    }
    assert.equal(subState, "terminated;reason=noresource");
  } finally {
    for (const c of [alice, bob, carol]) await c.close();
    await stopStepped(srv, clock);
  }
});

/** The focus still has the call: an in-dialog OPTIONS gets 200, not 481 (RFC 3261 §12.2.2). */
async function assertCallUp(client: SipClient, call: FocusCall): Promise<void> {
  const r = await inCall(client, call, "OPTIONS");
  assert.equal(r.status, 200, "the call is still up");
}

/** An RFC 4733 telephone-event packet (PT 101): RTP from the participant the focus can see. */
function dtmf(seq: number, event: number, end: boolean): Uint8Array {
  const p = new Uint8Array(16);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 101 | (seq % 4 === 0 ? 0x80 : 0);
  v.setUint16(2, seq);
  v.setUint32(4, 1000 * (Math.floor(seq / 4) + 1));
  v.setUint32(8, 0x0badcafe);
  p[12] = event;
  p[13] = (end ? 0x80 : 0) | 10;
  v.setUint16(14, 160 * ((seq % 4) + 1));
  return p;
}

Deno.test("policy: no-rtp-timeout hangs up a silent call with BYE + Reason and keeps one that sends RTP (stepped clock)", async () => {
  const clock = new FakeClock(9_000_000);
  const srv = await startTestServer(["no-rtp-timeout=2s"], undefined, { clock });
  const alice = await SipClient.connect("alice", srv.port);
  const bob = await SipClient.connect("bob", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  const bobRtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const aliceRtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const conference = await createConference(alice);
    const aliceCall = await joinConference(
      alice,
      conference,
      (aliceRtp.addr as Deno.NetAddr).port,
    );
    const bobCall = await joinConference(bob, conference, (bobRtp.addr as Deno.NetAddr).port);
    const watch = await subscribeConference(carol, conference);
    await notifyOf(carol, watch.subscription.callId);
    await Promise.all([alice, bob, carol].map(roundTrip));

    // Bob sends RTP at t=1.5 s: DTMF *6, which the focus shows as muted-via-focus, so we
    // know the packets were received before time moves on.
    clock.advance(1_500);
    let seq = 0;
    for (const digit of [10, 6]) {
      for (let i = 0; i < 4; i++) {
        await bobRtp.send(dtmf(seq++, digit, i >= 2), {
          transport: "udp",
          hostname: "127.0.0.1",
          port: bobCall.mediaPort,
        });
      }
    }
    // The first RTP also publishes bob's src-id: a partial that only carries media.
    let muted = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId)).xml;
    if (/<src-id>/.test(muted) && !/<status>muted/.test(muted)) {
      muted = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId)).xml;
    }
    assert.match(muted, /muted-via-focus/);
    await roundTrip(carol);

    // t=3 s: alice sent nothing for 3 s > 2 s → BYE with a Reason; bob (1.5 s) stays.
    clock.advance(1_500);
    const bye = await byeOf(alice, aliceCall);
    assert.match(bye.headers.get("Reason") ?? "", /^SIP;cause=\d{3};text="[^"]*RTP[^"]*"/i);
    const left = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId)).xml;
    assert.match(left, /<user entity="sip:alice@example.org" state="deleted"/);
    await assertCallUp(bob, bobCall);

    // Bob goes silent too: by t=4 s (2.5 s since his RTP) he is hung up.
    clock.advance(1_000);
    const bobBye = await byeOf(bob, bobCall);
    assert.match(bobBye.headers.get("Reason") ?? "", /RTP/);
  } finally {
    for (const c of [alice, bob, carol]) await c.close();
    bobRtp.close();
    aliceRtp.close();
    await stopStepped(srv, clock);
  }
});
