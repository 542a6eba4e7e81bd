/**
 * SQLite backend: the conformance suite on a temporary state directory, plus what only a
 * file database shows (WAL mode, the file location, a writer killed with SIGKILL).
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { DEFAULT_SQLITE_FILE, openStore } from "../../lib/storage/open_store.ts";
import { SqliteStore } from "../../lib/storage/sqlite_store.ts";
import type { Store } from "../../lib/storage/store.ts";
import { defineStoreConformance, type StoreFixture } from "./_conformance.ts";

async function sqliteFixture(options: { maxEventsPerConference?: number }): Promise<StoreFixture> {
  const dir = await Deno.makeTempDir({ prefix: "conclave_sqlite_" });
  const open = () =>
    openStore({ backend: "sqlite3", connectionString: "", stateDirectory: dir, ...options });
  let current: Store = await open();
  return {
    get store() {
      return current;
    },
    async reopen() {
      await current.close();
      current = await open();
      return current;
    },
    async dispose() {
      await current.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

defineStoreConformance("sqlite3", sqliteFixture);

Deno.test("sqlite3: the database is a WAL file in the state directory, with foreign keys on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave_sqlite_" });
  try {
    const state = join(dir, "nested", "state");
    const store = await openStore({
      backend: "sqlite3",
      connectionString: "",
      stateDirectory: state,
    });
    await store.createConference({ id: "c", uri: "sip:c@x", kind: "chat", createdAt: 1 });
    await store.close();
    const db = new DatabaseSync(join(state, DEFAULT_SQLITE_FILE));
    try {
      assert.equal(db.prepare("PRAGMA journal_mode").get()?.["journal_mode"], "wal");
      assert.equal(db.prepare("SELECT COUNT(*) AS n FROM conferences").get()?.["n"], 1);
    } finally {
      db.close();
    }
    const named = await openStore({
      backend: "sqlite3",
      connectionString: "other.db",
      stateDirectory: state,
    });
    assert.equal(await named.getConference("c"), null, "another file is another database");
    await named.close();
    assert.ok(Deno.statSync(join(state, "other.db")).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite3: an in-memory database works and does not touch the state directory", async () => {
  const store = SqliteStore.open({ path: ":memory:" });
  await store.createConference({ id: "c", uri: "sip:c@x", kind: "chat", createdAt: 1 });
  assert.equal((await store.listLiveConferences()).length, 1);
  await store.close();
});

Deno.test("sqlite3: every acknowledged write survives a SIGKILL of the writer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave_sqlite_kill_" });
  const writer = new URL("./_sqlite_writer.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      writer,
      dir,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let acknowledged = 0;
  try {
    // Kill it in the middle of its loop, once it has acknowledged a few hundred writes.
    while (acknowledged < 300) {
      const { value, done } = await reader.read();
      if (done) throw new Error("writer exited early");
      text += value;
      acknowledged = text.split("\n").filter((l) => l.startsWith("ok ")).length;
    }
    child.kill("SIGKILL");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    const acked = text.split("\n").filter((l) => l.startsWith("ok ")).map((l) => l.slice(3));
    const store = await openStore({
      backend: "sqlite3",
      connectionString: "",
      stateDirectory: dir,
    });
    try {
      for (const id of acked) {
        assert.notEqual(await store.getConference(id), null, `acknowledged ${id} is missing`);
        assert.equal((await store.listParticipants(id)).length, 1);
      }
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
