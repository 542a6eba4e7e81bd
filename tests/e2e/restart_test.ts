/**
 * Issue 5 acceptance, "restart": the real daemon (main.ts in a subprocess) is SIGKILLed in the
 * middle of activity — a participant in a call sending RTP, a conference subscription, a
 * client creating conferences back to back — then started again on the same state and port.
 * The conference it had created is joined again at the SAME URI (200), a conference that had
 * ended before the kill answers 410, every conference whose 302 had been received before the
 * kill still exists, and conference-info versions keep rising across the restart
 * (RFC 4575 §4.1). Runs on SQLite (the default) and on the shared MariaDB.
 */

import assert from "node:assert/strict";
import { RtpPeer } from "../_helpers/rtp_peer.ts";
import { SipClient } from "../_helpers/sip_client.ts";
import {
  createDatabase,
  dropDatabase,
  ignoreWithoutMariadb,
  sharedConnectionString,
  uniqueDatabaseName,
} from "../storage/_support.ts";
import { Daemon, freeTcpPort, writeConfig } from "./_daemon.ts";
import {
  confIdOf,
  createConference,
  FACTORY,
  inDialog,
  inviteConference,
  join,
  newCallId,
  subscribe,
} from "./_sip_steps.ts";
import { pcmuOffer } from "../_helpers/sip_client.ts";

/** Creations acknowledged (302 received) before the SIGKILL lands. */
const CREATIONS_BEFORE_KILL = 10;

async function restartScenario(label: string, backend: readonly string[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "conclave-e2e-restart-" });
  const configPath = `${dir}/conclave.conf`;
  const port = freeTcpPort();
  await writeConfig(configPath, port, `${dir}/state`, backend);
  const clients: SipClient[] = [];
  const rtp = new RtpPeer();
  const daemons: Daemon[] = [];
  const connect = async (user: string) => {
    const c = await SipClient.connect(user, port);
    clients.push(c);
    return c;
  };
  try {
    // ---- First life -------------------------------------------------------------------
    const first = await Daemon.start(configPath);
    daemons.push(first);
    const alice = await connect("alice");
    const bob = await connect("bob");
    const carol = await connect("carol");
    const dave = await connect("dave");

    const conf = await createConference(alice, "kept");
    const aliceCall = await join(alice, conf, rtp.port);
    const before = await subscribe(carol, conf);
    assert.equal(before.status, 200);
    assert.match(before.body, /entity="sip:alice@example.org"/);

    // A second conference ends before the kill: its only participant leaves.
    const gone = await createConference(bob, "ended");
    const bobCall = await join(bob, gone, rtp.port);
    assert.equal((await inDialog(bob, bobCall, gone, "BYE", 50)).status, 200);
    await first.waitForLog(`conference ended conference=${confIdOf(gone)}`);
    assert.equal(first.matching("could not record the end").length, 0, first.log.join("\n"));

    // Activity: alice's RTP flows, dave creates conferences back to back; the SIGKILL lands
    // while dave's next INVITE is on the wire.
    const acknowledged: string[] = [];
    let seq = 0;
    let killed: Deno.CommandStatus | undefined;
    const killStarted = { at: 0 };
    for (;;) {
      for (let i = 0; i < 5; i++) {
        await rtp.sendRtp(aliceCall.mediaPort, { sequenceNumber: seq, timestamp: seq * 160 });
        seq++;
      }
      const cseq = await dave.sendRequest("INVITE", FACTORY, {
        body: pcmuOffer(40000),
        callId: newCallId(dave),
      });
      if (acknowledged.length >= CREATIONS_BEFORE_KILL) {
        killStarted.at = performance.now();
        killed = await first.stop("SIGKILL");
        break;
      }
      const r = await dave.response(cseq, "INVITE");
      assert.equal(r.status, 302, `creation ${acknowledged.length}: ${r.status} ${r.reason}`);
      await dave.ack(r, FACTORY);
      acknowledged.push(/<([^>]+)>/.exec(r.headers.get("Contact") ?? "")?.[1] ?? "");
    }
    assert.equal(killed?.signal, "SIGKILL");
    assert.equal(killed?.success, false);
    for (const c of clients.splice(0)) await c.close();

    // ---- Second life on the same state and port -----------------------------------------
    const restartAt = performance.now();
    const second = await Daemon.start(configPath);
    daemons.push(second);
    const alice2 = await connect("alice");
    const again = await join(alice2, conf, rtp.port);
    const joinedMs = performance.now() - restartAt;
    assert.equal(again.response.status, 200);
    assert.equal(second.matching("conference restored from storage").length, 1);

    // The ended conference answers 410 Gone; an unknown id still 404.
    const bob2 = await connect("bob");
    const late = await inviteConference(bob2, gone, rtp.port);
    assert.equal(late.status, 410, `${late.status} ${late.reason}`);
    const unknown = await inviteConference(bob2, conf.replace(/conf-id=[^;>]+/, "conf-id=nope"), 1);
    assert.equal(unknown.status, 404);

    // Every creation acknowledged before the kill survived it.
    for (const uri of acknowledged) {
      const s = await subscribe(bob2, uri);
      assert.equal(s.status, 200, `${uri} after restart: ${s.status}`);
    }

    // Conference-info versions continue above what subscribers saw before the kill.
    const carol2 = await connect("carol");
    const after = await subscribe(carol2, conf);
    assert.equal(after.status, 200);
    assert.ok(
      after.version > before.version,
      `version after restart ${after.version} > before ${before.version}`,
    );
    assert.match(after.body, /entity="sip:alice@example.org"/);

    // A clean stop of the second life.
    for (const c of clients.splice(0)) await c.close();
    const t0 = performance.now();
    const stopped = await second.stop("SIGTERM");
    console.log("stop took", performance.now() - t0);
    assert.equal(stopped.code, 0, second.log.join("\n"));
    console.log(
      `restart (${label}): ready ${second.readyMs.toFixed(0)} ms after spawn ` +
        `(first start ${first.readyMs.toFixed(0)} ms), same-URI join answered ` +
        `${joinedMs.toFixed(0)} ms after the restart began; ${acknowledged.length} creations ` +
        `acknowledged before SIGKILL all present`,
    );
  } finally {
    for (const c of clients) await c.close();
    for (const d of daemons) await d.stop("SIGKILL");
    await rtp.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("restart (sqlite3): SIGKILL mid-activity, same conference URI joinable, ended one 410", async () => {
  await restartScenario("sqlite3", []);
});

Deno.test({
  name: "restart (mysql): SIGKILL mid-activity, same conference URI joinable, ended one 410",
  ignore: ignoreWithoutMariadb("tests/e2e/restart_test.ts"),
  async fn() {
    const database = uniqueDatabaseName("e2e_restart");
    await createDatabase(database);
    try {
      await restartScenario("mysql", [
        "database-backend=mysql",
        `database-connection-string=${sharedConnectionString(database)}`,
      ]);
    } finally {
      await dropDatabase(database);
    }
  },
});
