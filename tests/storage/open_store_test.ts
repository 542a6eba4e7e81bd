/** openStore: backend selection, file location, and one clear error per bad configuration. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ConnectionStringError } from "../../lib/storage/connection_string.ts";
import { DEFAULT_SQLITE_FILE, openStore, sqlitePath } from "../../lib/storage/open_store.ts";
import { StoreOpenError, StoreUnavailableError } from "../../lib/storage/store.ts";
import {
  createDatabase,
  dropDatabase,
  freePort,
  ignoreWithoutMariadb,
  rejectsWith,
  uniqueDatabaseName,
} from "./_support.ts";

const ignore = ignoreWithoutMariadb("tests/storage/open_store_test.ts");

Deno.test("openStore: sqlite3 file location from the connection string", () => {
  assert.equal(sqlitePath("", "/var/lib/conclave"), join("/var/lib/conclave", DEFAULT_SQLITE_FILE));
  assert.equal(sqlitePath("  ", "/s"), join("/s", DEFAULT_SQLITE_FILE));
  assert.equal(sqlitePath("conf.db", "/s"), "/s/conf.db");
  assert.equal(sqlitePath("/data/c.db", "/s"), "/data/c.db");
  assert.equal(sqlitePath(":memory:", "/s"), ":memory:");
});

Deno.test("openStore: a state directory that cannot be created is one clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave_open_" });
  try {
    const file = join(dir, "a-file");
    await Deno.writeTextFile(file, "x");
    const error = await rejectsWith(
      openStore({ backend: "sqlite3", connectionString: "", stateDirectory: join(file, "sub") }),
      StoreOpenError,
      "cannot create state-directory",
    );
    assert.ok(!error.message.includes("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openStore: unknown backend and bad connection strings reject", async () => {
  await rejectsWith(
    openStore({
      backend: "postgres" as unknown as "mysql",
      connectionString: "",
      stateDirectory: "/tmp",
    }),
    StoreOpenError,
    `unknown database-backend "postgres"`,
  );
  await rejectsWith(
    openStore({ backend: "mysql", connectionString: "user='x'", stateDirectory: "/tmp" }),
    ConnectionStringError,
    "no database name",
  );
});

Deno.test("openStore: an unreachable MySQL server is one clear error line, at once", async () => {
  const port = freePort();
  const error = await rejectsWith(
    openStore({
      backend: "mysql",
      connectionString: `db='conf' user='u' password='p' host='127.0.0.1' port=${port}`,
      stateDirectory: "/tmp",
    }),
    StoreUnavailableError,
  );
  assert.equal(error.message, `cannot connect to MySQL at 127.0.0.1:${port}: ECONNREFUSED`);
});

Deno.test({
  name: "openStore: a missing database and a wrong user are named in the error",
  ignore,
  async fn() {
    const missing = uniqueDatabaseName("missing");
    await rejectsWith(
      openStore({ backend: "mysql", connectionString: `db=${missing}`, stateDirectory: "/tmp" }),
      StoreOpenError,
      `MySQL database '${missing}' does not exist at 127.0.0.1:3306`,
    );
    const database = uniqueDatabaseName("user");
    await createDatabase(database);
    try {
      const error = await rejectsWith(
        openStore({
          backend: "mysql",
          connectionString: `db=${database} user=conclave_nobody password='not it'`,
          stateDirectory: "/tmp",
        }),
        StoreOpenError,
        "access denied for MySQL user 'conclave_nobody' at 127.0.0.1:3306",
      );
      assert.ok(!error.message.includes("not it"));
    } finally {
      await dropDatabase(database);
    }
  },
});
