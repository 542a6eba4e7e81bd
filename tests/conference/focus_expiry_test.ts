/**
 * `conferences-expiry-time` (issue 5): when the focus starts it purges conferences that ended
 * longer ago than the expiry; their URIs then answer 404 (RFC 3261 §21.4.5) instead of 410
 * (§21.4.11). Conferences that ended more recently still answer 410, and old conferences that
 * never ended are kept and can be joined. With `cleanup-expired-conferences=false` nothing is
 * purged (the control that shows the 404 comes from the purge). Runs on SQLite and on the
 * shared MariaDB.
 */

import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { conferenceUri } from "../../lib/conference/conference_uri.ts";
import { formatUri } from "../../lib/sip/uri.ts";
import { openStore } from "../../lib/storage/open_store.ts";
import { pcmuOffer, SipClient } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";
import {
  createDatabase,
  dropDatabase,
  ignoreWithoutMariadb,
  sharedConnectionString,
  uniqueDatabaseName,
} from "../storage/_support.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

const DAY = 86_400_000;
const FOCUS = "sip:conference-focus@127.0.0.1";

/** Status of an INVITE to `uri` (ACKed when non-2xx, hung up when 2xx). */
async function inviteStatus(client: SipClient, uri: string, rtpPort: number): Promise<number> {
  const callId = `${client.callId}-${crypto.randomUUID().slice(0, 8)}`;
  const cseq = await client.sendRequest("INVITE", uri, { body: pcmuOffer(rtpPort), callId });
  const r = await client.response(cseq, "INVITE");
  const ack = [
    `ACK ${uri} SIP/2.0`,
    `Via: ${r.headers.get("Via")}`,
    `From: ${r.headers.get("From")}`,
    `To: ${r.headers.get("To")}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ACK`,
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
  if (r.status >= 300) await client.peer.write(ack);
  else await client.ack(r, uri);
  return r.status;
}

async function expiryScenario(backend: string[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "conclave-expiry-" });
  const now = Date.now();
  const uri = (id: string) => formatUri(conferenceUri(FOCUS, id));
  const ids = {
    expired: `expired${crypto.randomUUID().slice(0, 8)}`,
    recent: `recent${crypto.randomUUID().slice(0, 8)}`,
    oldLive: `oldlive${crypto.randomUUID().slice(0, 8)}`,
  };
  try {
    // Seed the state as a previous run would have left it.
    const cs = backend.find((l) => l.startsWith("database-connection-string="))?.split("=")
      .slice(1).join("=") ?? "";
    const store = await openStore({
      backend: backend.length > 0 ? "mysql" : "sqlite3",
      connectionString: cs,
      stateDirectory: dir,
    });
    try {
      for (
        const [id, created, ended] of [
          [ids.expired, now - 40 * DAY, now - 31 * DAY],
          [ids.recent, now - 2 * DAY, now - DAY],
          [ids.oldLive, now - 90 * DAY, null],
        ] as const
      ) {
        await store.createConference({ id, uri: uri(id), kind: "audio-video", createdAt: created });
        await store.upsertParticipant({
          conferenceId: id,
          aor: "sip:alice@example.org",
          displayName: null,
          isAdmin: true,
          role: "participant",
          state: "left",
          joinedAt: created,
          leftAt: ended,
        });
        if (ended !== null) await store.endConference(id, ended);
      }
    } finally {
      await store.close();
    }

    // Control: cleanup disabled, the expired conference is still known (410).
    const kept = await startTestServer(
      [...backend, "conferences-expiry-time=30d", "cleanup-expired-conferences=false"],
      dir,
    );
    const c1 = await SipClient.connect("bob", kept.port);
    try {
      assert.equal(await inviteStatus(c1, uri(ids.expired), 47000), 410);
    } finally {
      await c1.close();
      await kept.stop();
    }

    // With cleanup on (the default), the start purges it: 404; the recent one stays 410 and
    // the old live one can be joined.
    const srv = await startTestServer([...backend, "conferences-expiry-time=30d"], dir);
    const c2 = await SipClient.connect("bob", srv.port);
    try {
      assert.equal(await srv.server.store.getConference(ids.expired), null);
      assert.deepEqual(await srv.server.store.listParticipants(ids.expired), []);
      assert.equal(await inviteStatus(c2, uri(ids.expired), 47002), 404);
      assert.equal(await inviteStatus(c2, uri(ids.recent), 47004), 410);
      assert.equal(await inviteStatus(c2, uri(ids.oldLive), 47006), 200);
    } finally {
      await c2.close();
      await srv.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("focus expiry (sqlite3): ended conferences older than conferences-expiry-time are purged at start → 404", async () => {
  await expiryScenario([]);
});

Deno.test({
  name:
    "focus expiry (mysql): ended conferences older than conferences-expiry-time are purged at start → 404",
  ignore: ignoreWithoutMariadb("tests/conference/focus_expiry_test.ts"),
  async fn() {
    const database = uniqueDatabaseName("expiry");
    await createDatabase(database);
    try {
      await expiryScenario([
        "database-backend=mysql",
        `database-connection-string=${sharedConnectionString(database)}`,
      ]);
    } finally {
      await dropDatabase(database);
    }
  },
});
