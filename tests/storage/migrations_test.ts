/**
 * Schema migrations: idempotent re-opens, concurrent starts against one MySQL database, the
 * migration lock, and refusal of a schema newer than this binary — on both backends.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import mysql from "mysql2/promise";
import {
  migrateSqlite,
  MIGRATIONS,
  mysqlMigrationLockName,
  SCHEMA_VERSION,
} from "../../lib/storage/migrations.ts";
import { MysqlStore } from "../../lib/storage/mysql_store.ts";
import { parseMysqlConnectionString } from "../../lib/storage/connection_string.ts";
import { DEFAULT_SQLITE_FILE, openStore } from "../../lib/storage/open_store.ts";
import { StoreOpenError, StoreSchemaTooNewError } from "../../lib/storage/store.ts";
import {
  createDatabase,
  dropDatabase,
  ignoreWithoutMariadb,
  LogCapture,
  queryDatabase,
  rejectsWith,
  SHARED_MARIADB,
  sharedConnectionString,
  uniqueDatabaseName,
} from "./_support.ts";

const ignore = ignoreWithoutMariadb("tests/storage/migrations_test.ts");
const ALL_VERSIONS = MIGRATIONS.map((m) => m.version);

Deno.test("migrations: versions are strictly increasing and every one has both dialects", () => {
  assert.ok(MIGRATIONS.length > 0);
  MIGRATIONS.forEach((m, i) => {
    assert.equal(m.version, i + 1);
    assert.ok(m.sqlite.length > 0 && m.mysql.length > 0);
  });
  assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
  assert.ok(mysqlMigrationLockName("conf").startsWith("conclave_migrate:conf"));
  assert.ok(mysqlMigrationLockName("x".repeat(64)).length <= 64);
});

Deno.test("migrations (sqlite3): applying twice changes nothing", () => {
  const db = new DatabaseSync(":memory:");
  try {
    assert.deepEqual(migrateSqlite(db, "mem"), {
      applied: ALL_VERSIONS,
      schemaVersion: SCHEMA_VERSION,
    });
    assert.deepEqual(migrateSqlite(db, "mem"), { applied: [], schemaVersion: SCHEMA_VERSION });
    const rows = db.prepare("SELECT version FROM schema_version ORDER BY version").all();
    assert.deepEqual(rows.map((r) => r["version"]), ALL_VERSIONS);
  } finally {
    db.close();
  }
});

Deno.test("migrations (sqlite3): re-opening keeps data and applies nothing; a newer schema is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave_migr_" });
  const capture = new LogCapture();
  try {
    for (let i = 0; i < 3; i++) {
      const store = await openStore({
        backend: "sqlite3",
        connectionString: "",
        stateDirectory: dir,
      });
      if (i === 0) {
        await store.createConference({ id: "c", uri: "sip:c@x", kind: "chat", createdAt: 1 });
      }
      assert.notEqual(await store.getConference("c"), null);
      await store.close();
    }
    assert.equal(capture.matching("applied schema migration").length, MIGRATIONS.length);
    const path = join(dir, DEFAULT_SQLITE_FILE);
    const db = new DatabaseSync(path);
    db.prepare(
      "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'future', 0)",
    )
      .run(SCHEMA_VERSION + 1);
    db.close();
    const error = await rejectsWith(
      openStore({ backend: "sqlite3", connectionString: "", stateDirectory: dir }),
      StoreSchemaTooNewError,
      path,
    );
    assert.equal(error.databaseVersion, SCHEMA_VERSION + 1);
    assert.equal(error.supportedVersion, SCHEMA_VERSION);
  } finally {
    capture.restore();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "migrations (mysql): re-opening applies nothing and keeps one row per version",
  ignore,
  async fn() {
    const database = uniqueDatabaseName("migr");
    await createDatabase(database);
    try {
      for (let i = 0; i < 3; i++) {
        const store = await openStore({
          backend: "mysql",
          connectionString: sharedConnectionString(database),
          stateDirectory: "/nonexistent",
        });
        if (i === 0) {
          await store.createConference({ id: "c", uri: "sip:c@x", kind: "chat", createdAt: 1 });
        }
        assert.notEqual(await store.getConference("c"), null);
        await store.close();
      }
      const rows = await queryDatabase(
        database,
        "SELECT version FROM schema_version ORDER BY version",
      );
      assert.deepEqual(rows.map((r) => r["version"]), ALL_VERSIONS);
    } finally {
      await dropDatabase(database);
    }
  },
});

Deno.test({
  name:
    "migrations (mysql): concurrent starts on a fresh database all succeed, schema applied once",
  ignore,
  async fn() {
    const database = uniqueDatabaseName("conc");
    await createDatabase(database);
    const capture = new LogCapture();
    try {
      const stores = await Promise.all(
        Array.from({ length: 4 }, () =>
          openStore({
            backend: "mysql",
            connectionString: `mysql://root@127.0.0.1:3306/${database}`,
            stateDirectory: "/nonexistent",
          })),
      );
      const mine = capture.matching("applied schema migration").filter((l) => l.includes(database));
      assert.equal(mine.length, MIGRATIONS.length, mine.join("\n"));
      await stores[0]!.createConference({ id: "c", uri: "sip:c@x", kind: "chat", createdAt: 1 });
      for (const store of stores) {
        assert.equal((await store.getConference("c"))?.uri, "sip:c@x");
        await store.close();
      }
      const rows = await queryDatabase(
        database,
        "SELECT version FROM schema_version ORDER BY version",
      );
      assert.deepEqual(rows.map((r) => r["version"]), ALL_VERSIONS);
    } finally {
      capture.restore();
      await dropDatabase(database);
    }
  },
});

Deno.test({
  name: "migrations (mysql): a server holding the migration lock makes others wait for it",
  ignore,
  async fn() {
    const database = uniqueDatabaseName("lock");
    await createDatabase(database);
    const holder = await mysql.createConnection(SHARED_MARIADB);
    try {
      const [got] = await holder.query("SELECT GET_LOCK(?, 5) AS got", [
        mysqlMigrationLockName(database),
      ]);
      assert.equal((got as Array<{ got: number }>)[0]?.got, 1);
      const connection = parseMysqlConnectionString(sharedConnectionString(database));
      await rejectsWith(
        MysqlStore.open({ connection, migrationLockTimeoutSeconds: 1 }),
        StoreOpenError,
        "waiting for the schema migration lock",
      );
      assert.deepEqual(
        await queryDatabase(database, "SHOW TABLES LIKE 'conferences'"),
        [],
        "nothing was migrated without the lock",
      );
      await holder.query("SELECT RELEASE_LOCK(?)", [mysqlMigrationLockName(database)]);
      const store = await MysqlStore.open({ connection, migrationLockTimeoutSeconds: 1 });
      await store.ping();
      await store.close();
    } finally {
      await holder.end();
      await dropDatabase(database);
    }
  },
});

Deno.test({
  name: "migrations (mysql): a database newer than this binary is refused with a clear error",
  ignore,
  async fn() {
    const database = uniqueDatabaseName("new");
    await createDatabase(database);
    try {
      const store = await openStore({
        backend: "mysql",
        connectionString: sharedConnectionString(database),
        stateDirectory: "/nonexistent",
      });
      await store.close();
      await queryDatabase(
        database,
        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'future', 0)",
        [SCHEMA_VERSION + 1],
      );
      const error = await rejectsWith(
        openStore({
          backend: "mysql",
          connectionString: sharedConnectionString(database),
          stateDirectory: "/nonexistent",
        }),
        StoreSchemaTooNewError,
        `127.0.0.1:3306/${database}`,
      );
      assert.equal(error.databaseVersion, SCHEMA_VERSION + 1);
      assert.match(error.message, /is newer than this Conclave supports/);
    } finally {
      await dropDatabase(database);
    }
  },
});
