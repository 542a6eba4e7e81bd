/**
 * MySQL outage: a private mariadbd is SIGKILLed under a running store and started again on
 * the same data directory and port. While it is gone every operation fails with
 * StoreUnavailableError (→ 503 + Retry-After) instead of crashing or hanging; when it is
 * back the pool reconnects by itself, and nothing acknowledged before was lost. Loss and
 * recovery are logged once each.
 */

import assert from "node:assert/strict";
import { openStore } from "../../lib/storage/open_store.ts";
import { type Store, StoreUnavailableError } from "../../lib/storage/store.ts";
import { PrivateMariadb, privateMariadbAvailable } from "./_private_mariadb.ts";
import {
  AutoAdvanceClock,
  createDatabase,
  freePort,
  LogCapture,
  rejectsWith,
  REQUIRE_SERVICES,
} from "./_support.ts";

const available = privateMariadbAvailable();
if (!available && !REQUIRE_SERVICES) {
  console.error(
    "\n!!!!! WARNING: mariadbd / mariadb-install-db are not installed; the MySQL outage test " +
      "is IGNORED. Set CONCLAVE_REQUIRE_SERVICES=1 to fail instead.\n",
  );
}

const T0 = 1_790_000_000_000;

function participant(conferenceId: string) {
  return {
    conferenceId,
    aor: "sip:alice@example.org",
    displayName: "Alice",
    isAdmin: true,
    role: "participant",
    state: "present",
    joinedAt: T0,
    leftAt: null,
  } as const;
}

Deno.test({
  name: "mysql outage: 503-style errors while MariaDB is dead, automatic recovery, no data lost",
  ignore: !available && !REQUIRE_SERVICES,
  async fn() {
    const unhandled: unknown[] = [];
    const onUnhandled = (event: PromiseRejectionEvent) => unhandled.push(event.reason);
    globalThis.addEventListener("unhandledrejection", onUnhandled);
    const capture = new LogCapture();
    const server = await PrivateMariadb.install(freePort());
    let store: Store | null = null;
    try {
      await server.start();
      const admin = { host: "127.0.0.1", port: server.port, user: "root", password: "" };
      await createDatabase("conclave", admin);
      const clock = new AutoAdvanceClock();
      store = await openStore({
        backend: "mysql",
        connectionString: `mysql://root@127.0.0.1:${server.port}/conclave`,
        stateDirectory: "/nonexistent",
        retry: { initialDelayMs: 50, maxDelayMs: 500, totalMs: 2000, retryAfterSeconds: 7 },
        clock,
        poolSize: 4,
      });

      await store.createConference({
        id: "before",
        uri: "sip:before@x",
        kind: "chat",
        createdAt: T0,
      });
      await store.upsertParticipant(participant("before"));
      const messageId = await store.enqueueMessage("before", {
        senderAor: "sip:bob@example.org",
        senderDevice: null,
        contentType: "text/plain",
        body: new TextEncoder().encode("queued before the outage"),
        receivedAt: T0,
        recipients: ["sip:alice@example.org;gr=urn:uuid:1"],
      });

      // Two writers keep creating conferences; the server dies under them once 30 writes were
      // acknowledged. Each write either resolves (then it must survive the restart) or is
      // refused with StoreUnavailableError; none may hang or crash.
      const acknowledged: string[] = [];
      let killed: Promise<void> | null = null;
      const writer = async (name: string): Promise<unknown> => {
        for (let i = 0;; i++) {
          const id = `${name}-${i}`;
          try {
            await store!.createConference({
              id,
              uri: `sip:${id}@x`,
              kind: "chat",
              createdAt: T0 + i,
            });
          } catch (error) {
            return error;
          }
          acknowledged.push(id);
          if (acknowledged.length === 30) killed = server.kill();
        }
      };
      const endings = await Promise.all([writer("w1"), writer("w2")]);
      await killed;
      assert.ok(acknowledged.length >= 30);
      for (const ending of endings) {
        assert.ok(ending instanceof StoreUnavailableError, String(ending));
      }

      // While it is down: every kind of operation is refused the same way.
      const s = store;
      const refused: Array<Promise<unknown>> = [
        s.createConference({ id: "during", uri: "sip:during@x", kind: "chat", createdAt: T0 }),
        s.getConference("before"),
        s.listLiveConferences(),
        s.upsertParticipant(participant("before")),
        s.enqueueMessage("before", {
          senderAor: "sip:bob@example.org",
          senderDevice: null,
          contentType: "text/plain",
          body: new Uint8Array([1]),
          receivedAt: T0,
          recipients: ["x"],
        }),
        s.appendEvent("before", 1, "<e/>"),
        s.endConference("before", T0 + 1),
      ];
      for (const result of await Promise.allSettled(refused)) {
        const error = await rejectsWith(
          result.status === "rejected" ? Promise.reject(result.reason) : Promise.resolve(),
          StoreUnavailableError,
          `127.0.0.1:${server.port}`,
        );
        assert.equal(error.retryAfterSeconds, 7);
      }
      await rejectsWith(s.ping(), StoreUnavailableError, "ECONNREFUSED");
      assert.equal(
        capture.matching(`lost connection to MySQL at 127.0.0.1:${server.port}`).length,
        1,
        capture.lines.join("\n"),
      );
      assert.equal(
        capture.matching(`connection to MySQL at 127.0.0.1:${server.port} restored`).length,
        0,
      );

      // Back on the same data directory and port: the same store object works again.
      await server.start();
      const before = await s.getConference("before");
      assert.equal(before?.uri, "sip:before@x");
      assert.equal(before?.endedAt, null, "the refused endConference did not happen");
      assert.equal(
        capture.matching(`connection to MySQL at 127.0.0.1:${server.port} restored`).length,
        1,
        capture.lines.join("\n"),
      );
      assert.equal((await s.getParticipant("before", "sip:alice@example.org"))?.isAdmin, true);
      const pending = await s.pendingMessagesFor("before", "sip:alice@example.org;gr=urn:uuid:1");
      assert.deepEqual(pending.map((m) => m.id), [messageId]);
      assert.equal(new TextDecoder().decode(pending[0]?.body), "queued before the outage");
      for (const id of acknowledged) assert.notEqual(await s.getConference(id), null, `${id} lost`);
      await s.createConference({ id: "after", uri: "sip:after@x", kind: "chat", createdAt: T0 });
      assert.equal(await s.getConference("during"), null, "a refused write was not stored");
      await s.ping();
      assert.equal(
        capture.matching(`lost connection to MySQL at 127.0.0.1:${server.port}`).length,
        1,
      );
      assert.equal(
        capture.matching(`connection to MySQL at 127.0.0.1:${server.port} restored`).length,
        1,
      );
      assert.deepEqual(unhandled, []);
    } finally {
      capture.restore();
      globalThis.removeEventListener("unhandledrejection", onUnhandled);
      await store?.close();
      await server.dispose();
    }
  },
});
