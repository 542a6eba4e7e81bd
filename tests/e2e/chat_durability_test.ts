/**
 * Group chat durability against the real daemon (main.ts in a subprocess), as the product
 * promises: "group chat rooms lasting years ... kept across restarts" and "a database outage
 * never loses an accepted chat message".
 *
 * - Restart: the daemon is SIGKILLed with a message queued for a device that is away; after the
 *   restart the room is there (same URI, same participants), and the device gets the queued
 *   message, then the new ones, in order, when it subscribes again. On SQLite and MariaDB.
 * - Outage: on a private MariaDB that is SIGKILLed, a MESSAGE to the room is refused with 503 +
 *   Retry-After (never accepted and lost); what was accepted before is delivered after the
 *   database is back, together with what is accepted then.
 */

import assert from "node:assert/strict";
import type { SipClient } from "../_helpers/sip_client.ts";
import { textOf } from "../_helpers/sip_client.ts";
import {
  becomePresent,
  chatClient,
  cpim,
  createRoom,
  joinRoom,
  receiveChat,
  sendChat,
} from "../_helpers/chat_steps.ts";
import { PrivateMariadb, privateMariadbAvailable } from "../storage/_private_mariadb.ts";
import {
  createDatabase,
  dropDatabase,
  ignoreWithoutMariadb,
  REQUIRE_SERVICES,
  sharedConnectionString,
  uniqueDatabaseName,
} from "../storage/_support.ts";
import { Daemon, freeTcpPort, writeConfig } from "./_daemon.ts";

/**
 * Takes relayed MESSAGEs until `last`, dropping repeats of what the device had before the kill
 * or already took (by body, which carries the imdn.Message-ID); returns the new ones in order.
 */
async function receiveUntil(client: SipClient, last: string, seen = SEEN): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const body = textOf(await receiveChat(client));
    const key = `${client.user}\u0000${body}`;
    if (seen.has(key)) continue;
    seen.add(key);
    got.push(body);
    if (body === last) return got;
  }
}

/** Bodies each device received already (user + body). */
const SEEN = new Set<string>();

async function restartScenario(backend: readonly string[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "conclave-e2e-chat-" });
  const configPath = `${dir}/conclave.conf`;
  const port = freeTcpPort();
  await writeConfig(configPath, port, `${dir}/state`, backend);
  const clients: SipClient[] = [];
  const daemons: Daemon[] = [];
  const connect = async (user: string, gr?: string) => {
    const c = await chatClient(user, port);
    if (gr !== undefined) c.gr = gr;
    clients.push(c);
    return c;
  };
  try {
    const first = await Daemon.start(configPath);
    daemons.push(first);
    const alice = await connect("alice");
    const bob = await connect("bob");
    const carol = await connect("carol");
    const { room } = await createRoom(alice, [bob.aor, carol.aor], { subject: "Lasting" });
    await joinRoom(bob, room);
    await joinRoom(carol, room);
    for (const c of [alice, bob, carol]) await becomePresent(c, room);
    const m1 = cpim(alice.aor, room, "m1");
    assert.equal((await sendChat(alice, room, m1)).status, 202);
    assert.deepEqual(await receiveUntil(bob, m1), [m1]);
    assert.deepEqual(await receiveUntil(carol, m1), [m1]);

    // carol's device goes away; m2 is accepted for her and delivered to bob.
    await carol.close();
    const m2 = cpim(alice.aor, room, "m2");
    assert.equal((await sendChat(alice, room, m2)).status, 202);
    assert.deepEqual(await receiveUntil(bob, m2), [m2]);
    await first.waitForLog("chat device unreachable");

    const killed = await first.stop("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");

    const second = await Daemon.start(configPath);
    daemons.push(second);
    // Same devices (same GRUUs), new connections.
    const alice2 = await connect("alice", alice.gr);
    const bob2 = await connect("bob", bob.gr);
    const carol2 = await connect("carol", carol.gr);
    const m3 = cpim(alice.aor, room, "m3");
    assert.equal((await sendChat(alice2, room, m3)).status, 202, "the room is known again");
    const info = await becomePresent(bob2, room);
    assert.match(textOf(info), /Lasting/);
    // Delivery is at least once: a message relayed just before the kill whose 200 was not
    // recorded yet comes again (clients drop it by its imdn.Message-ID, as Linphone does).
    assert.deepEqual(await receiveUntil(bob2, m3), [m3]);
    await becomePresent(carol2, room);
    assert.deepEqual(await receiveUntil(carol2, m3), [m2, m3], "m2 was queued before the kill");
    const status = await second.stop("SIGTERM");
    assert.equal(status.code, 0, second.log.join("\n"));
    assert.equal(second.matching("ERROR").length, 0, second.log.join("\n"));
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const d of daemons) await d.stop("SIGKILL").catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("chat (sqlite3): SIGKILL with a message queued; room and queue survive", async () => {
  await restartScenario([]);
});

Deno.test({
  name: "chat (mysql): SIGKILL with a message queued; room and queue survive",
  ignore: ignoreWithoutMariadb("tests/e2e/chat_durability_test.ts"),
  async fn() {
    const database = uniqueDatabaseName("e2e_chat");
    await createDatabase(database);
    try {
      await restartScenario([
        "database-backend=mysql",
        `database-connection-string=${sharedConnectionString(database)}`,
      ]);
    } finally {
      await dropDatabase(database);
    }
  },
});

const mariadbInstalled = privateMariadbAvailable();

Deno.test({
  name: "chat: MariaDB killed → MESSAGE refused 503 + Retry-After; nothing accepted is lost",
  ignore: !mariadbInstalled && !REQUIRE_SERVICES,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "conclave-e2e-chat-outage-" });
    const db = await PrivateMariadb.install(freeTcpPort());
    const clients: SipClient[] = [];
    let daemon: Daemon | undefined;
    try {
      await db.start();
      await createDatabase("conclave", {
        host: "127.0.0.1",
        port: db.port,
        user: "root",
        password: "",
      });
      const port = freeTcpPort();
      const configPath = `${dir}/conclave.conf`;
      await writeConfig(configPath, port, `${dir}/state`, [
        "database-backend=mysql",
        `database-connection-string=mysql://root@127.0.0.1:${db.port}/conclave`,
      ]);
      daemon = await Daemon.start(configPath);
      const alice = await chatClient("alice", port);
      const bob = await chatClient("bob", port);
      clients.push(alice, bob);
      const { room } = await createRoom(alice, [bob.aor]);
      await joinRoom(bob, room);
      await becomePresent(alice, room);
      await becomePresent(bob, room);
      await bob.close();
      const before = cpim(alice.aor, room, "accepted before the outage");
      assert.equal((await sendChat(alice, room, before)).status, 202);

      await db.kill();
      const during = await sendChat(alice, room, cpim(alice.aor, room, "during"));
      assert.equal(during.status, 503, `${during.status} ${during.reason}`);
      assert.match(during.headers.get("Retry-After") ?? "", /^[1-9][0-9]*/);
      assert.equal(daemon.running, true);

      await db.start();
      const after = cpim(alice.aor, room, "accepted after the outage");
      assert.equal((await sendChat(alice, room, after)).status, 202);
      const bob2 = await chatClient("bob", port);
      bob2.gr = bob.gr;
      clients.push(bob2);
      await becomePresent(bob2, room);
      assert.equal(textOf(await receiveChat(bob2)), before);
      assert.equal(textOf(await receiveChat(bob2)), after);
      for (const c of clients.splice(0)) await c.close();
      const status = await daemon.stop("SIGTERM");
      assert.equal(status.code, 0, daemon.log.join("\n"));
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      await daemon?.stop("SIGKILL").catch(() => {});
      await db.dispose();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
