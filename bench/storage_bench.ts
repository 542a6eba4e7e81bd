/**
 * Conference creations per second on each storage backend (issue 5), each next to the raw
 * driver doing the same INSERT on the same kind of database in the same run:
 *
 * - groups "sqlite3 createConference (…)": baseline = a prepared INSERT through node:sqlite
 *   on a WAL file with the same synchronous setting (what the store does underneath), then
 *   SqliteStore.createConference; once with the default synchronous=NORMAL, once with FULL
 *   (an fsync per commit, which is what dominates on this machine's disk).
 * - group "mysql createConference": baseline = one mysql2 pool.query INSERT into the same
 *   table on the same MariaDB (127.0.0.1:3306); then MysqlStore.createConference.
 *
 * So each figure shows what the store costs over the driver, and the two groups compare
 * the backends. The MariaDB group is skipped (with a warning) when the server is unreachable.
 * It uses the database `conclave_bench`, dropped and re-created at each run.
 */

import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { setLogLevel } from "../lib/config/log.ts";
import { openStore } from "../lib/storage/open_store.ts";
import type { NewConference, Store } from "../lib/storage/store.ts";

setLogLevel("warn");

const dir = Deno.makeTempDirSync({ prefix: "conclave_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

let counter = 0;
function next(): NewConference {
  const n = counter++;
  return {
    id: `b${n}`,
    uri: `sip:b${n}@conference.example.org`,
    factoryUri: "sip:conference-factory@example.org",
    kind: "audio-video",
    subject: "benchmark",
    createdAt: 1_790_000_000_000 + n,
    options: { locked: false, maxParticipants: 16, mediaTypes: ["audio", "video"] },
  };
}

const INSERT = `INSERT INTO conferences (id, uri, factory_uri, kind, subject, created_at, starts_at,
  ends_at, ended_at, options, last_notify_version) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, 0)`;

function values(c: NewConference): Array<string | number | null> {
  return [
    c.id,
    c.uri,
    c.factoryUri ?? null,
    c.kind,
    c.subject ?? "",
    c.createdAt,
    JSON.stringify(c.options ?? {}),
  ];
}

// --- SQLite -----------------------------------------------------------------------------
// Each raw baseline gets its schema from the store's own migrations, then opens a plain
// connection of its own with the same journal and sync settings as the store it is beside.
async function rawSqlite(name: string, synchronous: "NORMAL" | "FULL") {
  const path = join(dir, name);
  await (await openStore({ backend: "sqlite3", connectionString: "", stateDirectory: path }))
    .close();
  const db = new DatabaseSync(join(path, "conclave.sqlite3"));
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(`PRAGMA synchronous = ${synchronous}`);
  return db.prepare(INSERT);
}

const rawNormal = await rawSqlite("raw-normal", "NORMAL");
const rawFull = await rawSqlite("raw-full", "FULL");
const sqliteNormal = await openStore({
  backend: "sqlite3",
  connectionString: "",
  stateDirectory: join(dir, "normal"),
});
const sqliteFull = await openStore({
  backend: "sqlite3",
  connectionString: "",
  stateDirectory: join(dir, "full"),
  sqliteSynchronous: "full",
});

Deno.bench({
  name: "node:sqlite prepared INSERT (WAL, synchronous=NORMAL)",
  group: "sqlite3 createConference (default durability)",
  baseline: true,
  fn() {
    rawNormal.run(...values(next()));
  },
});

Deno.bench({
  name: "SqliteStore.createConference (WAL, synchronous=NORMAL)",
  group: "sqlite3 createConference (default durability)",
  async fn() {
    await sqliteNormal.createConference(next());
  },
});

Deno.bench({
  name: "node:sqlite prepared INSERT (WAL, synchronous=FULL)",
  group: "sqlite3 createConference (fsync every commit)",
  baseline: true,
  fn() {
    rawFull.run(...values(next()));
  },
});

Deno.bench({
  name: "SqliteStore.createConference (WAL, synchronous=FULL)",
  group: "sqlite3 createConference (fsync every commit)",
  async fn() {
    await sqliteFull.createConference(next());
  },
});

// --- MariaDB ----------------------------------------------------------------------------
const BENCH_DB = "conclave_bench";
const server = { host: "127.0.0.1", port: 3306, user: "root", password: "" };
let mysqlStore: Store | null = null;
let pool: mysql.Pool | null = null;
try {
  const admin = await mysql.createConnection({ ...server, connectTimeout: 3000 });
  await admin.query(`DROP DATABASE IF EXISTS ${BENCH_DB}`);
  await admin.query(`CREATE DATABASE ${BENCH_DB}`);
  await admin.end();
  mysqlStore = await openStore({
    backend: "mysql",
    connectionString: `mysql://root@127.0.0.1:3306/${BENCH_DB}`,
    stateDirectory: dir,
  });
  pool = mysql.createPool({ ...server, database: BENCH_DB, connectionLimit: 10 });
} catch (error) {
  console.error(
    `\n!!!!! WARNING: MariaDB at 127.0.0.1:3306 unusable (${(error as Error).message}); ` +
      "the mysql benchmarks are skipped.\n",
  );
}

Deno.bench({
  name: "mysql2 pool.query INSERT (same table, same server)",
  group: "mysql createConference",
  baseline: true,
  ignore: pool === null,
  async fn() {
    await pool!.query(INSERT, values(next()));
  },
});

Deno.bench({
  name: "MysqlStore.createConference",
  group: "mysql createConference",
  ignore: mysqlStore === null,
  async fn() {
    await mysqlStore!.createConference(next());
  },
});
