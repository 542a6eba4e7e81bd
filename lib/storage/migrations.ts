/**
 * Versioned schema migrations, one list for both dialects, applied when a store opens.
 *
 * - A `schema_version` table holds one row per applied migration.
 * - Applying is idempotent: every statement is `CREATE … IF NOT EXISTS` (MySQL DDL commits
 *   implicitly, so a crash between a statement and its version row must be harmless).
 * - SQLite applies all pending migrations in one `BEGIN IMMEDIATE` transaction, which also
 *   serializes two processes opening the same file.
 * - MySQL holds `GET_LOCK('conclave_migrate:<database>', 30)` on one connection while it
 *   reads the version and applies what is missing, so two servers starting against the same
 *   database at once apply each migration once (the lock name carries the database name so
 *   that different databases on one server do not wait for each other).
 * - A database whose version is above {@link SCHEMA_VERSION} is refused with
 *   {@link StoreSchemaTooNewError}: an older binary must not write into a newer schema.
 *
 * Future migrations append to {@link MIGRATIONS}; never edit an applied one.
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import { createHash } from "node:crypto";
import type { PoolConnection, RowDataPacket } from "mysql2/promise";
import { createLogger } from "../config/log.ts";
import { StoreOpenError, StoreSchemaTooNewError } from "./store.ts";

/** One schema step, with the statements for each dialect (one statement per string). */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sqlite: readonly string[];
  readonly mysql: readonly string[];
}

const MYSQL_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/** Every migration, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "conferences, participants, devices, chat message queue, conference events",
    sqlite: [
      `CREATE TABLE IF NOT EXISTS conferences (
        id TEXT NOT NULL PRIMARY KEY,
        uri TEXT NOT NULL UNIQUE,
        factory_uri TEXT,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        starts_at INTEGER,
        ends_at INTEGER,
        ended_at INTEGER,
        options TEXT NOT NULL,
        last_notify_version INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS conferences_by_ended_at ON conferences (ended_at)`,
      `CREATE TABLE IF NOT EXISTS participants (
        conference_id TEXT NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
        aor TEXT NOT NULL,
        display_name TEXT,
        is_admin INTEGER NOT NULL,
        role TEXT NOT NULL,
        state TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        left_at INTEGER,
        PRIMARY KEY (conference_id, aor)
      )`,
      `CREATE TABLE IF NOT EXISTS devices (
        conference_id TEXT NOT NULL,
        aor TEXT NOT NULL,
        device_uri TEXT NOT NULL,
        name TEXT,
        state TEXT NOT NULL,
        joining_method TEXT NOT NULL,
        joining_time INTEGER,
        last_notify_version INTEGER NOT NULL,
        PRIMARY KEY (conference_id, device_uri),
        FOREIGN KEY (conference_id, aor) REFERENCES participants (conference_id, aor)
          ON DELETE CASCADE
      )`,
      `CREATE INDEX IF NOT EXISTS devices_by_participant ON devices (conference_id, aor)`,
      `CREATE TABLE IF NOT EXISTS chat_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conference_id TEXT NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
        client_token TEXT NOT NULL UNIQUE,
        sender_aor TEXT NOT NULL,
        sender_device TEXT,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        received_at INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS chat_messages_by_conference ON chat_messages (conference_id)`,
      `CREATE INDEX IF NOT EXISTS chat_messages_by_received_at ON chat_messages (received_at)`,
      `CREATE TABLE IF NOT EXISTS chat_message_recipients (
        message_id INTEGER NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
        device_uri TEXT NOT NULL,
        PRIMARY KEY (message_id, device_uri)
      )`,
      `CREATE INDEX IF NOT EXISTS chat_message_recipients_by_device
        ON chat_message_recipients (device_uri, message_id)`,
      `CREATE TABLE IF NOT EXISTS conference_events (
        conference_id TEXT NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (conference_id, version)
      )`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS conferences (
        id VARCHAR(191) NOT NULL PRIMARY KEY,
        uri VARCHAR(512) NOT NULL,
        factory_uri VARCHAR(512) NULL,
        kind VARCHAR(32) NOT NULL,
        subject TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        starts_at BIGINT NULL,
        ends_at BIGINT NULL,
        ended_at BIGINT NULL,
        options MEDIUMTEXT NOT NULL,
        last_notify_version BIGINT NOT NULL,
        UNIQUE KEY conferences_by_uri (uri),
        KEY conferences_by_ended_at (ended_at)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS participants (
        conference_id VARCHAR(191) NOT NULL,
        aor VARCHAR(512) NOT NULL,
        display_name TEXT NULL,
        is_admin TINYINT(1) NOT NULL,
        role VARCHAR(255) NOT NULL,
        state VARCHAR(32) NOT NULL,
        joined_at BIGINT NOT NULL,
        left_at BIGINT NULL,
        PRIMARY KEY (conference_id, aor),
        CONSTRAINT participants_conference FOREIGN KEY (conference_id)
          REFERENCES conferences (id) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS devices (
        conference_id VARCHAR(191) NOT NULL,
        aor VARCHAR(512) NOT NULL,
        device_uri VARCHAR(512) NOT NULL,
        name TEXT NULL,
        state VARCHAR(32) NOT NULL,
        joining_method VARCHAR(32) NOT NULL,
        joining_time BIGINT NULL,
        last_notify_version BIGINT NOT NULL,
        PRIMARY KEY (conference_id, device_uri),
        KEY devices_by_participant (conference_id, aor),
        CONSTRAINT devices_participant FOREIGN KEY (conference_id, aor)
          REFERENCES participants (conference_id, aor) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS chat_messages (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        conference_id VARCHAR(191) NOT NULL,
        client_token VARCHAR(64) NOT NULL,
        sender_aor VARCHAR(512) NOT NULL,
        sender_device VARCHAR(512) NULL,
        content_type VARCHAR(255) NOT NULL,
        body LONGBLOB NOT NULL,
        received_at BIGINT NOT NULL,
        UNIQUE KEY chat_messages_by_token (client_token),
        KEY chat_messages_by_received_at (received_at),
        CONSTRAINT chat_messages_conference FOREIGN KEY (conference_id)
          REFERENCES conferences (id) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS chat_message_recipients (
        message_id BIGINT NOT NULL,
        device_uri VARCHAR(512) NOT NULL,
        PRIMARY KEY (message_id, device_uri),
        KEY chat_message_recipients_by_device (device_uri, message_id),
        CONSTRAINT chat_message_recipients_message FOREIGN KEY (message_id)
          REFERENCES chat_messages (id) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS conference_events (
        conference_id VARCHAR(191) NOT NULL,
        version BIGINT NOT NULL,
        payload MEDIUMTEXT NOT NULL,
        PRIMARY KEY (conference_id, version),
        CONSTRAINT conference_events_conference FOREIGN KEY (conference_id)
          REFERENCES conferences (id) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
    ],
  },
];

/** The schema version this binary writes. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** Versions applied by one run (empty when the schema was up to date). */
export interface MigrationResult {
  readonly applied: readonly number[];
  readonly schemaVersion: number;
}

const log = createLogger("storage.migrations");

const SQLITE_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER NOT NULL PRIMARY KEY,
  description TEXT NOT NULL,
  applied_at INTEGER NOT NULL
)`;

const MYSQL_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS schema_version (
  version INT NOT NULL PRIMARY KEY,
  description VARCHAR(255) NOT NULL,
  applied_at BIGINT NOT NULL
) ${MYSQL_TABLE}`;

function pending(current: number, where: string): readonly Migration[] {
  if (current > SCHEMA_VERSION) throw new StoreSchemaTooNewError(where, current, SCHEMA_VERSION);
  return MIGRATIONS.filter((m) => m.version > current);
}

/**
 * Brings an SQLite database up to {@link SCHEMA_VERSION} in one immediate transaction.
 * `where` names the database in messages (its file path).
 */
export function migrateSqlite(db: DatabaseSync, where: string): MigrationResult {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(SQLITE_VERSION_TABLE);
    const row = db.prepare("SELECT MAX(version) AS v FROM schema_version").get();
    const current = Number(row?.["v"] ?? 0);
    const todo = pending(current, where);
    const insert = db.prepare(
      "INSERT INTO schema_version (version, description, applied_at) " +
        "VALUES (?, ?, CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
    );
    for (const migration of todo) {
      for (const statement of migration.sqlite) db.exec(statement);
      insert.run(migration.version, migration.description);
    }
    db.exec("COMMIT");
    for (const m of todo) log.info("applied schema migration", { version: m.version, where });
    return {
      applied: todo.map((m) => m.version),
      schemaVersion: Math.max(current, SCHEMA_VERSION),
    };
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

/** The GET_LOCK name for a database (at most 64 characters, as MySQL requires). */
export function mysqlMigrationLockName(database: string): string {
  const name = `conclave_migrate:${database}`;
  if (name.length <= 64) return name;
  return `conclave_migrate:${createHash("sha1").update(database).digest("hex")}`;
}

/**
 * Brings a MySQL database up to {@link SCHEMA_VERSION} while holding the migration lock on
 * `connection` (which the caller releases afterwards).
 */
export async function migrateMysql(
  connection: PoolConnection,
  database: string,
  where: string,
  lockTimeoutSeconds = 30,
): Promise<MigrationResult> {
  const lockName = mysqlMigrationLockName(database);
  const [lockRows] = await connection.query<RowDataPacket[]>("SELECT GET_LOCK(?, ?) AS got", [
    lockName,
    lockTimeoutSeconds,
  ]);
  if (Number(lockRows[0]?.["got"]) !== 1) {
    throw new StoreOpenError(
      `timed out after ${lockTimeoutSeconds} s waiting for the schema migration lock ` +
        `${lockName} at ${where} (another Conclave is migrating?)`,
    );
  }
  try {
    await connection.query(MYSQL_VERSION_TABLE);
    const [rows] = await connection.query<RowDataPacket[]>(
      "SELECT MAX(version) AS v FROM schema_version",
    );
    const current = Number(rows[0]?.["v"] ?? 0);
    const todo = pending(current, where);
    for (const migration of todo) {
      for (const statement of migration.mysql) await connection.query(statement);
      await connection.query(
        "INSERT INTO schema_version (version, description, applied_at) " +
          "VALUES (?, ?, CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED))",
        [migration.version, migration.description],
      );
      log.info("applied schema migration", { version: migration.version, where });
    }
    return {
      applied: todo.map((m) => m.version),
      schemaVersion: Math.max(current, SCHEMA_VERSION),
    };
  } finally {
    await connection.query("SELECT RELEASE_LOCK(?)", [lockName]).catch(() => undefined);
  }
}
