/**
 * The conference notification service (RFC 4575 §3 over RFC 6665) driven over real TCP
 * against a real server: Last-Notify-Version replay (liblinphone), fetch, refresh,
 * unsubscribe, expiry and NOTIFY failure (481 and timeout) on the notifier side, deflated
 * bodies, 489 for a wrong event package and 404/410 for unknown/ended conferences.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { setLogLevel } from "../../lib/config/log.ts";
import {
  assertNoNotify,
  conferenceInfoOf,
  createConference,
  FACTORY,
  type FocusCall,
  inCall,
  joinConference,
  notifyOf,
  resubscribe,
  roundTrip,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { SipClient } from "../_helpers/sip_client.ts";
import { startTestServer, type TestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

/** A conference with alice joined and carol watching every change from the full state on. */
async function watchedConference(srv: TestServer) {
  const alice = await SipClient.connect("alice", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  const conference = await createConference(alice);
  const aliceCall = await joinConference(alice, conference, 41000);
  const { response, subscription } = await subscribeConference(carol, conference);
  assert.equal(response.status, 200);
  const full = conferenceInfoOf(await notifyOf(carol, subscription.callId));
  assert.equal(full.info.state, "full");
  let version = full.info.version!;
  /** Partial documents carol received, by version. */
  const partials = new Map<number, string>();
  return {
    alice,
    carol,
    conference,
    aliceCall,
    watch: subscription,
    get version() {
      return version;
    },
    partials,
    /** Carol's NOTIFY for the change just made: one partial, version + 1 (RFC 4575 §4.6). */
    async changed(): Promise<string> {
      const { xml, info } = conferenceInfoOf(await notifyOf(carol, subscription.callId));
      assert.equal(info.state, "partial");
      assert.equal(info.version, version + 1, "versions rise by exactly one per change");
      version += 1;
      partials.set(version, xml);
      return xml;
    },
    async close() {
      await alice.close();
      await carol.close();
    },
  };
}

Deno.test("notifier: Last-Notify-Version gets only the missed partials, full state when too far behind or unknown, an empty NOTIFY when up to date", async () => {
  const srv = await startTestServer();
  const w = await watchedConference(srv);
  const bob = await SipClient.connect("bob", srv.port);
  const v0 = w.version;
  let bobCall: FocusCall | undefined;
  const bobIn = async () => {
    bobCall = await joinConference(bob, w.conference, 42000);
    await w.changed();
  };
  const bobOut = async () => {
    assert.equal((await inCall(bob, bobCall!, "BYE")).status, 200);
    await w.changed();
  };
  /** A fresh subscriber with this Last-Notify-Version; returns its client and Call-ID. */
  const late = async (lastNotifyVersion: string) => {
    const dave = await SipClient.connect("dave", srv.port);
    const { response, subscription } = await subscribeConference(dave, w.conference, [[
      "Last-Notify-Version",
      lastNotifyVersion,
    ]]);
    assert.equal(response.status, 200);
    return { dave, callId: subscription.callId };
  };
  const expectFull = async (lastNotifyVersion: string) => {
    const { dave, callId } = await late(lastNotifyVersion);
    try {
      const n = await notifyOf(dave, callId);
      const { info } = conferenceInfoOf(n);
      assert.equal(info.state, "full", `Last-Notify-Version ${lastNotifyVersion} → full state`);
      assert.equal(info.version, w.version);
      assert.match(n.headers.get("Subscription-State") ?? "", /^active;expires=/);
      await assertNoNotify(dave, callId);
    } finally {
      await dave.close();
    }
  };
  const expectReplay = async (lastNotifyVersion: number) => {
    const { dave, callId } = await late(String(lastNotifyVersion));
    try {
      for (let v = lastNotifyVersion + 1; v <= w.version; v++) {
        const n = await notifyOf(dave, callId);
        assert.match(n.headers.get("Subscription-State") ?? "", /^active;expires=/);
        const { xml, info } = conferenceInfoOf(n);
        assert.equal(info.state, "partial");
        assert.equal(info.version, v);
        assert.equal(xml, w.partials.get(v), `replayed partial ${v} is the one sent live`);
      }
      await assertNoNotify(dave, callId);
    } finally {
      await dave.close();
    }
  };
  try {
    await bobIn();
    await bobOut();
    await bobIn();
    assert.equal(w.version, v0 + 3);

    // Three changes missed: exactly those three partials, in order.
    await expectReplay(v0);
    // One missed.
    await expectReplay(v0 + 2);

    // Up to date: one NOTIFY without a body (nothing new), subscription active.
    const upToDate = await late(String(w.version));
    try {
      const n = await notifyOf(upToDate.dave, upToDate.callId);
      assert.equal(n.body.length, 0, "no body when nothing was missed");
      assert.equal(n.headers.get("Content-Type"), undefined);
      assert.match(n.headers.get("Subscription-State") ?? "", /^active;expires=/);
      await assertNoNotify(upToDate.dave, upToDate.callId);
    } finally {
      await upToDate.dave.close();
    }

    // Unknown versions (ahead of ours, zero, garbage): full state.
    await expectFull(String(w.version + 1000));
    await expectFull("0");
    await expectFull("garbage");

    // Twelve more changes: ten behind is still replayed, eleven behind is full state.
    for (let i = 0; i < 6; i++) {
      await bobOut();
      await bobIn();
    }
    assert.equal(w.version, v0 + 15);
    await expectReplay(w.version - 10);
    await expectFull(String(w.version - 11));
    await expectFull(String(v0));
  } finally {
    await bob.close();
    await w.close();
    await srv.stop();
  }
});

Deno.test("notifier: Expires 0 is a fetch, refresh gets 200 + NOTIFY, unsubscribe ends it, a NOTIFY answered 481 ends that subscription", async () => {
  const srv = await startTestServer();
  const w = await watchedConference(srv);
  const bob = await SipClient.connect("bob", srv.port);
  const erin = await SipClient.connect("erin", srv.port);
  const confId = /conf-id=([^;>]+)/.exec(w.conference)![1]!;
  const live = () => srv.server.focus.conferences.get(confId)!.notifier.subscriberCount;
  try {
    // Fetch (RFC 6665 §4.4.3): 200 with Expires 0, one NOTIFY with the full state and
    // "terminated", nothing afterwards, and the dialog is gone (481).
    const fetch = await subscribeConference(erin, w.conference, [["Expires", "0"]]);
    assert.equal(fetch.response.status, 200);
    assert.equal(fetch.response.headers.get("Expires"), "0");
    const fetched = await notifyOf(erin, fetch.subscription.callId);
    assert.match(fetched.headers.get("Subscription-State") ?? "", /^terminated/);
    const fetchedInfo = conferenceInfoOf(fetched).info;
    assert.equal(fetchedInfo.state, "full");
    assert.equal(fetchedInfo.version, w.version);
    assert.equal(live(), 1, "only carol's subscription is kept");

    // A second subscription that will be refreshed and then unsubscribed.
    const sub = await subscribeConference(erin, w.conference, [["Expires", "600"]]);
    assert.equal(sub.response.status, 200);
    assert.equal(sub.response.headers.get("Expires"), "600");
    const first = await notifyOf(erin, sub.subscription.callId);
    assert.equal(conferenceInfoOf(first).info.state, "full");

    // A change reaches carol and erin's subscription, not the fetch.
    const bobCall = await joinConference(bob, w.conference, 42000);
    await w.changed();
    const toErin = conferenceInfoOf(await notifyOf(erin, sub.subscription.callId)).info;
    assert.equal(toErin.state, "partial");
    assert.equal(toErin.version, w.version);
    await assertNoNotify(erin, fetch.subscription.callId);
    assert.equal((await resubscribe(erin, fetch.subscription, 600)).status, 481);

    // Refresh (RFC 6665 §4.2.1.2): 200 with the new Expires, then a NOTIFY with the state.
    const refreshed = await resubscribe(erin, sub.subscription, 300);
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.headers.get("Expires"), "300");
    const afterRefresh = await notifyOf(erin, sub.subscription.callId);
    assert.match(
      afterRefresh.headers.get("Subscription-State") ?? "",
      /^active;expires=(300|299)$/,
    );
    const refreshedInfo = conferenceInfoOf(afterRefresh).info;
    assert.equal(refreshedInfo.version, w.version);
    assert.ok(refreshedInfo.snapshot?.users.some((u) => u.entity === "sip:bob@example.org"));

    // Unsubscribe (RFC 6665 §4.2.1.4): 200, a final "terminated" NOTIFY, nothing after.
    const unsubscribed = await resubscribe(erin, sub.subscription, 0);
    assert.equal(unsubscribed.status, 200);
    const last = await notifyOf(erin, sub.subscription.callId);
    assert.match(last.headers.get("Subscription-State") ?? "", /^terminated/);
    assert.equal(live(), 1);
    assert.equal((await inCall(bob, bobCall, "BYE")).status, 200);
    await w.changed();
    await assertNoNotify(erin, sub.subscription.callId);
    assert.equal((await resubscribe(erin, sub.subscription, 600)).status, 481);

    // A NOTIFY answered 481 removes the subscription (RFC 6665 §4.2.2).
    const doomed = await subscribeConference(erin, w.conference);
    await notifyOf(erin, doomed.subscription.callId);
    assert.equal(live(), 2);
    const bobAgain = await joinConference(bob, w.conference, 42000);
    await w.changed();
    await notifyOf(erin, doomed.subscription.callId, 481);
    assert.equal((await inCall(bob, bobAgain, "BYE")).status, 200);
    await w.changed();
    await assertNoNotify(erin, doomed.subscription.callId);
    assert.equal(live(), 1, "the subscription whose NOTIFY got 481 is gone");
  } finally {
    await bob.close();
    await erin.close();
    await w.close();
    await srv.stop();
  }
});

Deno.test("notifier: SUBSCRIBE with another event package → 489 with Allow-Events; unknown conference → 404; ended → 410", async () => {
  const srv = await startTestServer();
  const alice = await SipClient.connect("alice", srv.port);
  try {
    const conference = await createConference(alice);
    const call = await joinConference(alice, conference, 41000);
    const wrong = await subscribeConference(alice, conference, [], "presence");
    assert.equal(wrong.response.status, 489);
    assert.match(wrong.response.headers.get("Allow-Events") ?? "", /\bconference\b/);

    const unknown = conference.replace(/conf-id=[^;>]+/, "conf-id=AAAAAAAAAAAAAAAAAAAAAA");
    assert.equal((await subscribeConference(alice, unknown)).response.status, 404);
    assert.equal(
      (await subscribeConference(alice, "sip:nobody@127.0.0.1")).response.status,
      404,
    );
    // The factory itself takes no subscriptions.
    assert.equal((await subscribeConference(alice, FACTORY)).response.status, 405);

    // The last participant leaving ends the ad-hoc conference before the BYE is answered.
    assert.equal((await inCall(alice, call, "BYE")).status, 200);
    assert.equal((await subscribeConference(alice, conference)).response.status, 410);
  } finally {
    await alice.close();
    await srv.stop();
  }
});

Deno.test("notifier: Accept-Encoding deflate → NOTIFY bodies deflated (Content-Encoding: deflate), plain otherwise", async () => {
  const srv = await startTestServer();
  const w = await watchedConference(srv);
  const bob = await SipClient.connect("bob", srv.port);
  const erin = await SipClient.connect("erin", srv.port);
  try {
    const { response, subscription } = await subscribeConference(erin, w.conference, [[
      "Accept-Encoding",
      "gzip, deflate",
    ]]);
    assert.equal(response.status, 200);
    const full = await notifyOf(erin, subscription.callId);
    assert.equal(full.headers.get("Content-Encoding"), "deflate");
    assert.doesNotMatch(new TextDecoder().decode(full.body), /conference-info/);
    const fullInfo = conferenceInfoOf(full).info;
    assert.equal(fullInfo.state, "full");
    assert.ok(fullInfo.snapshot?.users.some((u) => u.entity === "sip:alice@example.org"));

    await joinConference(bob, w.conference, 42000);
    const plain = await w.changed();
    const partial = await notifyOf(erin, subscription.callId);
    assert.equal(partial.headers.get("Content-Encoding"), "deflate");
    const { xml, info } = conferenceInfoOf(partial);
    assert.equal(info.state, "partial");
    assert.equal(xml, plain, "the deflated body inflates to the document carol got in clear");
  } finally {
    await bob.close();
    await erin.close();
    await w.close();
    await srv.stop();
  }
});

Deno.test("notifier: subscriptions expire (terminated;reason=timeout) and an unanswered NOTIFY ends its subscription (stepped clock)", async () => {
  const clock = new FakeClock(1_000_000);
  const srv = await startTestServer([], undefined, { clock });
  const w = await watchedConference(srv);
  const bob = await SipClient.connect("bob", srv.port);
  const erin = await SipClient.connect("erin", srv.port);
  const confId = /conf-id=([^;>]+)/.exec(w.conference)![1]!;
  const live = () => srv.server.focus.conferences.get(confId)!.notifier.subscriberCount;
  // Before stepping the clock, the server must have read every answer and ACK already sent.
  const settle = () => Promise.all([w.alice, w.carol, bob, erin].map(roundTrip));
  try {
    // Erin asks for 60 s (carol's subscription has 600 s).
    const short = await subscribeConference(erin, w.conference, [["Expires", "60"]]);
    assert.equal(short.response.headers.get("Expires"), "60");
    await notifyOf(erin, short.subscription.callId);
    await settle();
    assert.equal(live(), 2);

    clock.advance(59_000);
    await assertNoNotify(erin, short.subscription.callId);
    clock.advance(1_000);
    const expired = await notifyOf(erin, short.subscription.callId);
    assert.equal(expired.headers.get("Subscription-State"), "terminated;reason=timeout");
    assert.equal(live(), 1);
    assert.equal((await resubscribe(erin, short.subscription, 600)).status, 481);

    // A NOTIFY that is never answered: Timer F (64*T1) ends the subscription (RFC 6665 §4.2.2).
    const silent = await subscribeConference(erin, w.conference);
    await notifyOf(erin, silent.subscription.callId);
    assert.equal(live(), 2);
    const bobCall = await joinConference(bob, w.conference, 42000);
    await w.changed();
    await settle();
    await erin.take((m) =>
      "method" in m && m.method === "NOTIFY" && m.callId === silent.subscription.callId
    );
    clock.advance(64 * 500);
    // The failure is handled on the next turns of the event loop.
    await assertNoNotify(erin, silent.subscription.callId);
    assert.equal(live(), 1, "a NOTIFY that timed out removed its subscription");
    assert.equal((await inCall(bob, bobCall, "BYE")).status, 200);
    await w.changed();
    await assertNoNotify(erin, silent.subscription.callId);
  } finally {
    await bob.close();
    await erin.close();
    await w.close();
    const stopping = srv.stop();
    // Shutdown waits (on the injected clock) for final answers from closed peers.
    for (let i = 0; i < 20; i++) {
      clock.advance(100);
      await new Promise((r) => setTimeout(r, 0));
    }
    await stopping;
  }
});
