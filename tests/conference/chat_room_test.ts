/**
 * Group chat rooms against a real server over TCP (liblinphone's server semantics as the
 * Linphone clients expect them): creation through the factory (302, then 200 without SDP),
 * joins, presence by the first answered NOTIFY, MESSAGE stored then relayed from the room to
 * every other present device (CPIM untouched, the sender's other devices marked
 * `X-fs-message-type: chat-service`), delivery recorded, 403 for non-participants, leave by
 * BYE, admin REFERs, one-to-one rules, delivery to a device that comes back.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { SipRequest } from "../../lib/sip/message.ts";
import {
  assertNoChat,
  becomePresent,
  chatClient,
  cpim,
  createRoom,
  factoryChatInvite,
  gruuOf,
  inRoomSession,
  inviteRoom,
  joinRoom,
  receiveChat,
  sendChat,
} from "../_helpers/chat_steps.ts";
import { conferenceInfoOf, contactOf, subscribeConference } from "../_helpers/conference_steps.ts";
import { SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

async function eventually(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

function confIdOf(room: string): string {
  const id = /conf-id=([^;>]+)/.exec(room)?.[1];
  assert.ok(id, room);
  return id;
}

Deno.test("chat room: create, join, relay to two others, 403 outsider, leave by BYE", async () => {
  const t = await startTestServer();
  const clients: SipClient[] = [];
  try {
    const [alice, bob, carol, dave] = await Promise.all(
      ["alice", "bob", "carol", "dave"].map((u) => chatClient(u, t.port)),
    ) as [SipClient, SipClient, SipClient, SipClient];
    clients.push(alice, bob, carol, dave);
    const { room, session: aliceSession } = await createRoom(alice, [bob.aor, carol.aor], {
      subject: "Team",
    });
    const id = confIdOf(room);
    const store = t.server.store;
    const record = await store.getConference(id);
    assert.equal(record?.kind, "chat");
    assert.equal(record?.subject, "Team");
    const stored = await store.listParticipants(id);
    assert.deepEqual(
      stored.map((p) => [p.aor, p.isAdmin]).sort(),
      [[alice.aor, true], [bob.aor, false], [carol.aor, false]],
    );

    await joinRoom(bob, room);
    const carolSession = await joinRoom(carol, room);
    // The creator's device is present after its first NOTIFY; the document lists everyone.
    const first = conferenceInfoOf(await becomePresent(alice, room));
    assert.match(first.xml, /sip:bob@example\.org/);
    assert.match(first.xml, /sip:carol@example\.org/);
    assert.match(first.xml, /<(?:\w+:)?subject>Team</);
    await becomePresent(bob, room);
    await becomePresent(carol, room);

    // A MESSAGE from alice: 202, relayed to bob and carol (from the room, CPIM untouched).
    const body = cpim(alice.aor, room, "hello team");
    const accepted = await sendChat(alice, room, body);
    assert.equal(accepted.status, 202);
    for (const c of [bob, carol]) {
      const m = await receiveChat(c);
      assert.equal(m.uri.params.get("gr"), c.gr, "sent to the device itself");
      assert.match(m.headers.get("From") ?? "", new RegExp(`conf-id=${id}`));
      assert.match(m.headers.get("To") ?? "", new RegExp(`gr=${c.gr}`));
      assert.equal(m.contentType, "message/cpim");
      assert.equal(textOf(m), body);
      assert.equal(m.headers.get("X-fs-message-type"), undefined);
    }
    await assertNoChat(alice);
    await eventually(
      "deliveries recorded",
      async () =>
        (await store.pendingMessagesFor(id, gruuOf(bob))).length === 0 &&
        (await store.pendingMessagesFor(id, gruuOf(carol))).length === 0,
    );

    // Outsiders are refused everything.
    assert.equal((await sendChat(dave, room, cpim(dave.aor, room, "let me in"))).status, 403);
    assert.equal((await inviteRoom(dave, room)).response.status, 403);
    assert.equal((await subscribeConference(dave, room)).response.status, 403);
    await assertNoChat(bob);

    // The admin renames the room with a re-INVITE carrying Subject; a non-admin cannot.
    const rename = await inRoomSession(alice, aliceSession, "INVITE", [["Subject", "Renamed"]]);
    assert.equal(rename.status, 200);
    await alice.ack(rename, contactOf(rename));
    await eventually(
      "subject stored",
      async () => (await store.getConference(id))?.subject === "Renamed",
    );
    const refused = await inRoomSession(carol, carolSession, "INVITE", [["Subject", "Mine"]]);
    assert.equal(refused.status, 200, "the re-INVITE itself is fine");
    await carol.ack(refused, contactOf(refused));
    assert.equal((await store.getConference(id))?.subject, "Renamed");

    // A non-admin cannot add anyone.
    const refer = await inRoomSession(carol, carolSession, "REFER", [
      ["Refer-To", `<${dave.aor}>;text`],
    ]);
    assert.equal(refer.status, 403);

    // carol leaves with BYE: she is removed, the others are told, her messages stop.
    assert.equal((await inRoomSession(carol, carolSession, "BYE")).status, 200);
    await eventually(
      "carol removed",
      async () => (await store.getParticipant(id, carol.aor)) === null,
    );
    assert.equal((await sendChat(carol, room, cpim(carol.aor, room, "still here?"))).status, 403);
    assert.equal((await sendChat(bob, room, cpim(bob.aor, room, "bye carol"))).status, 202);
    assert.equal(textOf(await receiveChat(alice)), cpim(bob.aor, room, "bye carol"));
    await assertNoChat(carol);

    // The admin adds dave back in by REFER (out of the INVITE dialog is fine too).
    const add = await inRoomSession(alice, aliceSession, "REFER", [
      ["Refer-To", `<${dave.aor}>;text`],
    ]);
    assert.equal(add.status, 202);
    await eventually("dave added", async () => (await store.getParticipant(id, dave.aor)) !== null);
    await joinRoom(dave, room);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await t.stop();
  }
});

Deno.test("chat room: the sender's other devices get its message as chat-service", async () => {
  const t = await startTestServer();
  const clients: SipClient[] = [];
  try {
    const alice = await chatClient("alice", t.port);
    const alice2 = await chatClient("alice", t.port);
    const bob = await chatClient("bob", t.port);
    clients.push(alice, alice2, bob);
    const { room } = await createRoom(alice, [bob.aor]);
    await joinRoom(alice2, room);
    await joinRoom(bob, room);
    for (const c of clients) await becomePresent(c, room);
    const body = cpim(alice.aor, room, "from my phone");
    assert.equal((await sendChat(alice, room, body)).status, 202);
    const mine = await receiveChat(alice2);
    assert.equal(mine.headers.get("X-fs-message-type"), "chat-service");
    assert.equal(textOf(mine), body);
    const theirs = await receiveChat(bob);
    assert.equal(theirs.headers.get("X-fs-message-type"), undefined);
    await assertNoChat(alice);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await t.stop();
  }
});

Deno.test("chat room: one-to-one needs exactly one other; an existing pair is reused", async () => {
  const t = await startTestServer();
  const clients: SipClient[] = [];
  try {
    const [alice, bob, carol] = await Promise.all(
      ["alice", "bob", "carol"].map((u) => chatClient(u, t.port)),
    ) as [SipClient, SipClient, SipClient];
    clients.push(alice, bob, carol);
    assert.equal(
      (await factoryChatInvite(alice, [bob.aor, carol.aor], { oneToOne: true })).status,
      488,
    );
    assert.equal((await factoryChatInvite(alice, [], { oneToOne: true })).status, 488);
    assert.equal((await factoryChatInvite(alice, [alice.aor], { oneToOne: true })).status, 488);
    const { room } = await createRoom(alice, [bob.aor], { oneToOne: true });
    const again = await factoryChatInvite(alice, [bob.aor], { oneToOne: true });
    assert.equal(again.status, 302);
    assert.equal(contactOf(again), room, "same pair, same room");
    const reverse = await factoryChatInvite(bob, [alice.aor], { oneToOne: true });
    assert.equal(contactOf(reverse), room, "either side finds it");
    const other = await factoryChatInvite(alice, [carol.aor], { oneToOne: true });
    assert.equal(other.status, 302);
    assert.notEqual(contactOf(other), room);
    // A group room with the same people is another room.
    const group = await factoryChatInvite(alice, [bob.aor]);
    assert.notEqual(contactOf(group), room);
    const info = conferenceInfoOf(await becomePresent(alice, room));
    assert.match(info.xml, /one-to-one/);

    // BYE in a one-to-one room deletes it (and the pair gets a new one next time).
    const bobSession = await joinRoom(bob, room);
    assert.equal((await inRoomSession(bob, bobSession, "BYE")).status, 200);
    const id = confIdOf(room);
    await eventually("room deleted", async () => await t.server.store.isEnded(id));
    const fresh = await factoryChatInvite(alice, [bob.aor], { oneToOne: true });
    assert.notEqual(contactOf(fresh), room);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await t.stop();
  }
});

Deno.test("chat room: creation errors — no list, not the creator, no GRUU", async () => {
  const t = await startTestServer();
  const clients: SipClient[] = [];
  try {
    const alice = await chatClient("alice", t.port);
    const bob = await chatClient("bob", t.port);
    const plain = await SipClient.connect("carol", t.port);
    clients.push(alice, bob, plain);
    // Require: recipient-list-invite without a list.
    const cseq = await alice.sendRequest("INVITE", "sip:conference-factory@127.0.0.1", {
      headers: [["Require", "recipient-list-invite"], ["Subject", "x"]],
    });
    const noList = await alice.response(cseq, "INVITE");
    assert.equal(noList.status, 400);
    await alice.ack(noList, "sip:conference-factory@127.0.0.1");
    const r = await factoryChatInvite(alice, [bob.aor]);
    assert.equal(r.status, 302);
    const room = contactOf(r);
    // Only the creator opens the room; a device without GRUU is declined.
    assert.equal((await inviteRoom(bob, room, [alice.aor])).response.status, 403);
    assert.equal((await inviteRoom(plain, room)).response.status, 603);
    const opened = await inviteRoom(alice, room, [bob.aor]);
    assert.equal(opened.response.status, 200);
    // After creation, a group room's participant list is not set by INVITE.
    assert.equal((await inviteRoom(bob, room, [plain.aor])).response.status, 488);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await t.stop();
  }
});

Deno.test("chat room: a device that was away gets its queue when it subscribes again", async () => {
  const t = await startTestServer();
  const clients: SipClient[] = [];
  try {
    const alice = await chatClient("alice", t.port);
    let bob = await chatClient("bob", t.port);
    clients.push(alice);
    const { room } = await createRoom(alice, [bob.aor]);
    const id = confIdOf(room);
    await joinRoom(bob, room);
    await becomePresent(alice, room);
    await becomePresent(bob, room);
    const gr = bob.gr;
    const bobGruu = gruuOf(bob);
    // bob's connection goes away; alice's messages are accepted and kept for him.
    await bob.close();
    const bodies = ["one", "two", "three"].map((x) => cpim(alice.aor, room, x));
    for (const body of bodies) assert.equal((await sendChat(alice, room, body)).status, 202);
    await eventually(
      "queued for bob",
      async () => (await t.server.store.pendingMessagesFor(id, bobGruu)).length === 3,
    );
    // The same device (same GRUU) is back on a new connection: it subscribes and gets all
    // three, in order.
    bob = await chatClient("bob", t.port);
    bob.gr = gr;
    clients.push(bob);
    await becomePresent(bob, room);
    for (const body of bodies) assert.equal(textOf(await receiveChat(bob)), body);
    await eventually(
      "all delivered",
      async () => (await t.server.store.pendingMessagesFor(id, bobGruu)).length === 0,
    );
    // A message the device refuses for good (488, Linphone's January quirk) is not retried
    // forever: it is dropped for that device and the queue goes on.
    assert.equal((await sendChat(alice, room, cpim(alice.aor, room, "jan"))).status, 202);
    const refused = await bob.request("MESSAGE");
    await bob.answer(refused, 488);
    assert.equal((await sendChat(alice, room, cpim(alice.aor, room, "next"))).status, 202);
    assert.equal(textOf(await receiveChat(bob)), cpim(alice.aor, room, "next"));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await t.stop();
  }
});

Deno.test("chat room: a participant with no device yet gets what was said once it joins", async () => {
  const t = await startTestServer();
  const clients: SipClient[] = [];
  try {
    const alice = await chatClient("alice", t.port);
    const bob = await chatClient("bob", t.port);
    clients.push(alice, bob);
    const { room } = await createRoom(alice, [bob.aor]);
    await becomePresent(alice, room);
    const early = cpim(alice.aor, room, "before you came");
    assert.equal((await sendChat(alice, room, early)).status, 202);
    const id = confIdOf(room);
    assert.equal((await t.server.store.pendingMessagesFor(id, bob.aor)).length, 1);
    await joinRoom(bob, room);
    await becomePresent(bob, room);
    assert.equal(textOf(await receiveChat(bob)), early);
    await eventually(
      "queue handed over",
      async () =>
        (await t.server.store.pendingMessagesFor(id, bob.aor)).length === 0 &&
        (await t.server.store.pendingMessagesFor(id, gruuOf(bob))).length === 0,
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await t.stop();
  }
});

Deno.test("chat room: rooms and queued messages survive a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave-chat-restart-" });
  const clients: SipClient[] = [];
  try {
    let t = await startTestServer([], dir);
    const alice = await chatClient("alice", t.port);
    const bob = await chatClient("bob", t.port);
    clients.push(alice, bob);
    const { room } = await createRoom(alice, [bob.aor], { subject: "Years" });
    await joinRoom(bob, room);
    await becomePresent(alice, room);
    await bob.close();
    const body = cpim(alice.aor, room, "while you were away");
    assert.equal((await sendChat(alice, room, body)).status, 202);
    const gr = bob.gr;
    await alice.close();
    await t.stop();

    t = await startTestServer([], dir);
    try {
      const id = confIdOf(room);
      assert.ok(t.server.focus.chatRooms.rooms.has(id), "room loaded at start");
      const bob2 = await chatClient("bob", t.port);
      bob2.gr = gr;
      clients.push(bob2);
      const notify = conferenceInfoOf(await becomePresent(bob2, room));
      assert.match(notify.xml, /Years/);
      const m = await receiveChat(bob2);
      assert.ok(m instanceof SipRequest);
      assert.equal(textOf(m), body);
      const alice2 = await chatClient("alice", t.port);
      clients.push(alice2);
      assert.equal((await sendChat(alice2, room, cpim(alice.aor, room, "hi again"))).status, 202);
      assert.equal(textOf(await receiveChat(bob2)), cpim(alice.aor, room, "hi again"));
    } finally {
      await t.stop();
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat room: queued messages past chat-message-retention are not delivered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave-chat-retention-" });
  const clients: SipClient[] = [];
  try {
    let t = await startTestServer(["chat-message-retention=7d"], dir);
    const alice = await chatClient("alice", t.port);
    const bob = await chatClient("bob", t.port);
    clients.push(alice, bob);
    const { room } = await createRoom(alice, [bob.aor]);
    await joinRoom(bob, room);
    await becomePresent(bob, room);
    const id = confIdOf(room);
    await bob.close();
    // One message received eight days ago (as if bob had been away since), one just now.
    const old = cpim(alice.aor, room, "eight days old");
    await t.server.store.enqueueMessage(id, {
      senderAor: alice.aor,
      senderDevice: null,
      contentType: "message/cpim",
      body: new TextEncoder().encode(old),
      receivedAt: Date.now() - 8 * 86_400_000,
      recipients: [gruuOf(bob)],
    });
    const fresh = cpim(alice.aor, room, "fresh");
    assert.equal((await sendChat(alice, room, fresh)).status, 202);
    await alice.close();
    await t.stop();
    // The purge at start drops it from storage; the fresh one is still there.
    t = await startTestServer(["chat-message-retention=7d"], dir);
    try {
      const pending = await t.server.store.pendingMessagesFor(id, gruuOf(bob));
      assert.deepEqual(pending.map((m) => new TextDecoder().decode(m.body)), [fresh]);
      const bob2 = await chatClient("bob", t.port);
      bob2.gr = bob.gr;
      clients.push(bob2);
      await becomePresent(bob2, room);
      assert.equal(textOf(await receiveChat(bob2)), fresh);
      await assertNoChat(bob2);
    } finally {
      await t.stop();
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat room: refused when text is not among supported-media-types", async () => {
  const t = await startTestServer(["supported-media-types=audio"]);
  const alice = await chatClient("alice", t.port);
  try {
    assert.equal((await factoryChatInvite(alice, ["sip:bob@example.org"])).status, 488);
  } finally {
    await alice.close();
    await t.stop();
  }
});
