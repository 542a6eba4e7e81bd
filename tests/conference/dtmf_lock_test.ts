import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { DtmfSender } from "../_helpers/dtmf.ts";
import type { SipResponse } from "../../lib/sip/message.ts";
import { contactOf } from "../_helpers/conference_steps.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer, type TestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

/** A test participant: SIP over TCP plus an RTP socket. */
interface Member {
  readonly sip: SipClient;
  readonly rtp: Deno.DatagramConn;
  readonly dtmf: DtmfSender;
  /** The focus's 200 to the join (dialog target and tags). */
  readonly ok: SipResponse;
}

async function join(srv: TestServer, name: string, conf: string): Promise<Member> {
  const sip = await SipClient.connect(name, srv.port);
  const rtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const j = await sip.sendRequest("INVITE", conf, {
    body: pcmuOffer((rtp.addr as Deno.NetAddr).port),
    callId: `${sip.callId}-j`,
  });
  const ok = await sip.response(j, "INVITE");
  assert.equal(ok.status, 200);
  await sip.ack(ok, conf);
  const focusPort = Number(/m=audio (\d+)/.exec(textOf(ok))![1]);
  return { sip, rtp, dtmf: new DtmfSender(rtp, focusPort, 0x1000 + name.length), ok };
}

Deno.test("DTMF *5 from an admin locks and unlocks the conference; a non-admin's *5 is ignored", async () => {
  const srv = await startTestServer();
  const members: Member[] = [];
  const creator = await SipClient.connect("alice", srv.port);
  try {
    const f = await creator.sendRequest("INVITE", "sip:conference-factory@127.0.0.1", {
      body: pcmuOffer(1),
    });
    const redirect = await creator.response(f, "INVITE");
    await creator.ack(redirect, "sip:conference-factory@127.0.0.1");
    const conf = /<([^>]+)>/.exec(redirect.headers.get("Contact")!)![1]!;
    const confId = /conf-id=([^;>]+)/.exec(conf)![1]!;
    await creator.close();

    const alice = await join(srv, "alice", conf);
    members.push(alice);
    const bob = await join(srv, "bob", conf);
    members.push(bob);

    const s = await alice.sip.sendRequest("SUBSCRIBE", conf, {
      callId: `${alice.sip.callId}-s`,
      headers: [["Event", "conference"], ["Expires", "600"]],
    });
    assert.equal((await alice.sip.response(s, "SUBSCRIBE")).status, 200);
    const first = await alice.sip.request("NOTIFY");
    await alice.sip.answer(first);
    assert.match(textOf(first), /<locked>false<\/locked>/);
    /** Reads NOTIFYs until one matches; returns the documents seen before it. */
    const waitFor = async (pattern: RegExp): Promise<string[]> => {
      const before: string[] = [];
      for (;;) {
        const n = await alice.sip.request("NOTIFY");
        await alice.sip.answer(n);
        if (pattern.test(textOf(n))) return before;
        before.push(textOf(n));
      }
    };
    const waitLocked = (locked: boolean) => waitFor(new RegExp(`<locked>${locked}</locked>`));
    const eventually = async (check: () => Promise<boolean>) => {
      while (!(await check())) await new Promise((r) => setTimeout(r, 10));
    };

    // Bob is not an admin: his *5 changes nothing. His *6 after it (same RTP stream, so
    // handled after it) mutes him; no document up to that one may say locked.
    await bob.dtmf.press("*5*6");
    const beforeMute = await waitFor(/muted-via-focus/);
    for (const doc of beforeMute) assert.doesNotMatch(doc, /<locked>true<\/locked>/);
    await alice.dtmf.press("*5");
    await waitLocked(true);

    const carol = await SipClient.connect("carol", srv.port);
    try {
      const c = await carol.sendRequest("INVITE", conf, { body: pcmuOffer(4000) });
      const refused = await carol.response(c, "INVITE");
      assert.equal(refused.status, 403);
      assert.equal(refused.reason, "Conference locked");
      await carol.ack(refused, conf);
    } finally {
      await carol.close();
    }
    // The lock is stored (it survives a restart).
    await eventually(async () =>
      (await srv.server.store.getConference(confId))?.options.locked === true
    );

    await alice.dtmf.press("*5");
    await waitLocked(false);
    const carolAgain = await join(srv, "carol", conf);
    members.push(carolAgain);
    await eventually(async () =>
      (await srv.server.store.getConference(confId))?.options.locked === false
    );
  } finally {
    for (const m of members) {
      m.rtp.close();
      await m.sip.close();
    }
    await srv.stop();
  }
});

Deno.test("a dial-in room's lock is lifted when its last participant leaves", async () => {
  const srv = await startTestServer(["dial-in-rooms=sip:standup@127.0.0.1"]);
  const room = "sip:standup@127.0.0.1";
  const members: Member[] = [];
  try {
    const alice = await join(srv, "alice", room);
    members.push(alice);
    const live = srv.server.focus.conferences.get("room-standup");
    assert.ok(live, "the room is live");
    assert.ok(live.roster.user("sip:alice@example.org")?.admin, "the first caller is admin");
    await alice.dtmf.press("*5");
    while (!live.roster.locked) await new Promise((r) => setTimeout(r, 10));

    // Alice hangs up: the room is empty, so it must not stay locked for the next caller.
    const bye = await alice.sip.sendRequest("BYE", contactOf(alice.ok), {
      callId: alice.ok.callId,
      to: room,
      toTag: alice.ok.toTag!,
      cseq: 5,
    });
    assert.equal((await alice.sip.response(bye, "BYE")).status, 200);
    assert.equal(live.roster.locked, false);
    const bob = await join(srv, "bob", room);
    members.push(bob);
  } finally {
    for (const m of members) {
      m.rtp.close();
      await m.sip.close();
    }
    await srv.stop();
  }
});
