/**
 * {@link Store} on embedded SQLite (`node:sqlite`, built into Deno): the default backend,
 * one file in the state directory.
 *
 * - WAL journal, foreign keys on, `busy_timeout` for another process holding the file.
 * - One writer: a single `DatabaseSync` connection, and every operation runs synchronously
 *   from start to COMMIT inside one call, so operations are serialized by construction (no
 *   other operation can interleave between BEGIN and COMMIT).
 * - `synchronous=NORMAL` by default: in WAL mode a commit that resolved survives a crash or
 *   SIGKILL of the process; only an OS crash or power loss can lose the last commits. `full`
 *   fsyncs every commit (as InnoDB does by default) but `node:sqlite` is synchronous, so each
 *   write then blocks the event loop — SIP and media included — for a whole fsync
 *   (~6 ms on the reference machine, see bench/storage_bench.ts).
 * - Disk errors (full, read-only, I/O, locked past the busy timeout) become
 *   {@link StoreUnavailableError} so the focus answers 503 instead of losing the write.
 * @module
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { createLogger } from "../config/log.ts";
import { migrateSqlite } from "./migrations.ts";
import {
  checkDevice,
  checkEvent,
  checkInteger,
  checkMessage,
  checkParticipant,
  conferenceFromRow,
  deviceFromRow,
  encodeOptions,
  eventFromRow,
  isCompleteReplay,
  messageFromRow,
  newClientToken,
  normalizeNewConference,
  participantFromRow,
  patchColumns,
  type Row,
} from "./record_codec.ts";
import {
  type ChatMessageRecord,
  type ConferencePatch,
  type ConferenceRecord,
  type DeviceRecord,
  type EventReplay,
  type NewChatMessage,
  type NewConference,
  type ParticipantRecord,
  type Store,
  StoreClosedError,
  StoreConflictError,
  StoreError,
  StoreNotFoundError,
  StoreOpenError,
  StoreUnavailableError,
} from "./store.ts";

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Database file path, or `:memory:` (benchmarks, throwaway tests). */
  readonly path: string;
  /** Events kept per conference for partial-notify replay (default 100). */
  readonly maxEventsPerConference?: number;
  /** How long to wait for another process's write lock (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /** `normal` (default): fsync at checkpoints only; `full`: fsync every commit. */
  readonly synchronous?: "full" | "normal";
  /** Retry-After for StoreUnavailableError (default 5 s). */
  readonly retryAfterSeconds?: number;
}

const log = createLogger("storage.sqlite");

const UNAVAILABLE_PATTERNS = [
  "database is locked",
  "database table is locked",
  "disk i/o error",
  "database or disk is full",
  "readonly database",
  "unable to open database",
  "disk image is malformed",
];

/** SQLite-backed {@link Store}. */
export class SqliteStore implements Store {
  readonly backend = "sqlite3" as const;
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #maxEvents: number;
  readonly #retryAfter: number;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  private constructor(db: DatabaseSync, path: string, maxEvents: number, retryAfter: number) {
    this.#db = db;
    this.#path = path;
    this.#maxEvents = maxEvents;
    this.#retryAfter = retryAfter;
  }

  /** Opens (creating if needed) the database file and applies migrations. */
  static open(options: SqliteStoreOptions): SqliteStore {
    const maxEvents = checkInteger("maxEventsPerConference", options.maxEventsPerConference ?? 100);
    if (maxEvents < 1) throw new RangeError("maxEventsPerConference must be at least 1");
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(options.path);
    } catch (error) {
      throw new StoreOpenError(
        `cannot open SQLite database at ${options.path}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    try {
      db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
      db.exec("PRAGMA foreign_keys = ON");
      const result = migrateSqlite(db, options.path);
      log.debug("opened", { path: options.path, schema: result.schemaVersion });
    } catch (error) {
      db.close();
      if (error instanceof StoreError) throw error;
      throw new StoreOpenError(
        `cannot open SQLite database at ${options.path}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return new SqliteStore(db, options.path, maxEvents, options.retryAfterSeconds ?? 5);
  }

  createConference(input: NewConference): Promise<ConferenceRecord> {
    return this.#op(() => {
      const c = normalizeNewConference(input);
      try {
        this.#run(
          `INSERT INTO conferences (id, uri, factory_uri, kind, subject, created_at, starts_at,
             ends_at, ended_at, options, last_notify_version)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
          c.id,
          c.uri,
          c.factoryUri,
          c.kind,
          c.subject,
          c.createdAt,
          c.startsAt,
          c.endsAt,
          encodeOptions(c.options),
          c.lastNotifyVersion,
        );
      } catch (error) {
        if (error instanceof StoreConflictError) {
          throw new StoreConflictError(`conference ${c.id} or URI ${c.uri} exists already`);
        }
        throw error;
      }
      return c;
    });
  }

  getConference(id: string): Promise<ConferenceRecord | null> {
    return this.#op(() => this.#conference("id", id));
  }

  getConferenceByUri(uri: string): Promise<ConferenceRecord | null> {
    return this.#op(() => this.#conference("uri", uri));
  }

  listLiveConferences(): Promise<readonly ConferenceRecord[]> {
    return this.#op(() =>
      this.#all("SELECT * FROM conferences WHERE ended_at IS NULL ORDER BY created_at, id")
        .map(conferenceFromRow)
    );
  }

  updateConference(id: string, patch: ConferencePatch): Promise<ConferenceRecord> {
    return this.#op(() => {
      const columns = patchColumns(patch);
      if (columns.length > 0) {
        this.#run(
          `UPDATE conferences SET ${columns.map(([c]) => `${c} = ?`).join(", ")} WHERE id = ?`,
          ...columns.map(([, v]) => v),
          id,
        );
      }
      return this.#existing(id);
    });
  }

  endConference(id: string, at: number): Promise<ConferenceRecord> {
    return this.#op(() => {
      checkInteger("at", at);
      this.#run("UPDATE conferences SET ended_at = COALESCE(ended_at, ?) WHERE id = ?", at, id);
      return this.#existing(id);
    });
  }

  isEnded(id: string): Promise<boolean> {
    return this.#op(() => {
      const row = this.#get("SELECT ended_at FROM conferences WHERE id = ?", id);
      return row !== undefined && row["ended_at"] !== null;
    });
  }

  purgeExpired(endedBefore: number): Promise<number> {
    return this.#op(() => {
      checkInteger("endedBefore", endedBefore);
      return this.#run(
        "DELETE FROM conferences WHERE ended_at IS NOT NULL AND ended_at < ?",
        endedBefore,
      );
    });
  }

  upsertParticipant(p: ParticipantRecord): Promise<void> {
    return this.#op(() => {
      checkParticipant(p);
      try {
        this.#run(
          `INSERT INTO participants (conference_id, aor, display_name, is_admin, role, state,
             joined_at, left_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (conference_id, aor) DO UPDATE SET display_name = excluded.display_name,
             is_admin = excluded.is_admin, role = excluded.role, state = excluded.state,
             joined_at = excluded.joined_at, left_at = excluded.left_at`,
          p.conferenceId,
          p.aor,
          p.displayName,
          p.isAdmin ? 1 : 0,
          p.role,
          p.state,
          p.joinedAt,
          p.leftAt,
        );
      } catch (error) {
        throw notFound(error, `conference ${p.conferenceId} does not exist`);
      }
    });
  }

  getParticipant(conferenceId: string, aor: string): Promise<ParticipantRecord | null> {
    return this.#op(() => {
      const row = this.#get(
        "SELECT * FROM participants WHERE conference_id = ? AND aor = ?",
        conferenceId,
        aor,
      );
      return row === undefined ? null : participantFromRow(row);
    });
  }

  removeParticipant(conferenceId: string, aor: string): Promise<boolean> {
    return this.#op(() =>
      this.#run("DELETE FROM participants WHERE conference_id = ? AND aor = ?", conferenceId, aor) >
        0
    );
  }

  listParticipants(conferenceId: string): Promise<readonly ParticipantRecord[]> {
    return this.#op(() =>
      this.#all(
        "SELECT * FROM participants WHERE conference_id = ? ORDER BY joined_at, aor",
        conferenceId,
      ).map(participantFromRow)
    );
  }

  upsertDevice(d: DeviceRecord): Promise<void> {
    return this.#op(() => {
      checkDevice(d);
      try {
        this.#run(
          `INSERT INTO devices (conference_id, aor, device_uri, name, state, joining_method,
             joining_time, last_notify_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (conference_id, device_uri) DO UPDATE SET aor = excluded.aor,
             name = excluded.name, state = excluded.state,
             joining_method = excluded.joining_method, joining_time = excluded.joining_time,
             last_notify_version = excluded.last_notify_version`,
          d.conferenceId,
          d.aor,
          d.deviceUri,
          d.name,
          d.state,
          d.joiningMethod,
          d.joiningTime,
          d.lastNotifyVersion,
        );
      } catch (error) {
        throw notFound(
          error,
          `participant ${d.aor} of conference ${d.conferenceId} does not exist`,
        );
      }
    });
  }

  removeDevice(conferenceId: string, deviceUri: string): Promise<boolean> {
    return this.#op(() =>
      this.#run(
        "DELETE FROM devices WHERE conference_id = ? AND device_uri = ?",
        conferenceId,
        deviceUri,
      ) > 0
    );
  }

  listDevices(conferenceId: string, aor?: string): Promise<readonly DeviceRecord[]> {
    return this.#op(() => {
      const rows = aor === undefined
        ? this.#all(
          "SELECT * FROM devices WHERE conference_id = ? ORDER BY aor, device_uri",
          conferenceId,
        )
        : this.#all(
          "SELECT * FROM devices WHERE conference_id = ? AND aor = ? ORDER BY aor, device_uri",
          conferenceId,
          aor,
        );
      return rows.map(deviceFromRow);
    });
  }

  enqueueMessage(conferenceId: string, message: NewChatMessage): Promise<number> {
    return this.#op(() => {
      const recipients = checkMessage(conferenceId, message);
      return this.#transaction(() => {
        let id: number;
        try {
          const result = this.#statement(
            `INSERT INTO chat_messages (conference_id, client_token, sender_aor, sender_device,
               content_type, body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          ).run(
            conferenceId,
            newClientToken(),
            message.senderAor,
            message.senderDevice,
            message.contentType,
            message.body,
            message.receivedAt,
          );
          id = Number(result.lastInsertRowid);
        } catch (error) {
          throw notFound(
            translate(error, this.#retryAfter),
            `conference ${conferenceId} does not exist`,
          );
        }
        const insert = this.#statement(
          "INSERT INTO chat_message_recipients (message_id, device_uri) VALUES (?, ?)",
        );
        for (const r of recipients) insert.run(id, r);
        return id;
      });
    });
  }

  pendingMessagesFor(
    conferenceId: string,
    deviceUri: string,
  ): Promise<readonly ChatMessageRecord[]> {
    return this.#op(() =>
      this.#all(
        `SELECT m.* FROM chat_message_recipients r JOIN chat_messages m ON m.id = r.message_id
         WHERE r.device_uri = ? AND m.conference_id = ? ORDER BY m.id`,
        deviceUri,
        conferenceId,
      ).map(messageFromRow)
    );
  }

  markDelivered(messageId: number, deviceUri: string): Promise<boolean> {
    return this.#op(() =>
      this.#transaction(() => {
        const removed = this.#run(
          "DELETE FROM chat_message_recipients WHERE message_id = ? AND device_uri = ?",
          messageId,
          deviceUri,
        );
        this.#run(
          `DELETE FROM chat_messages WHERE id = ? AND NOT EXISTS
             (SELECT 1 FROM chat_message_recipients WHERE message_id = ?)`,
          messageId,
          messageId,
        );
        return removed > 0;
      })
    );
  }

  purgeMessagesOlderThan(receivedBefore: number): Promise<number> {
    return this.#op(() => {
      checkInteger("receivedBefore", receivedBefore);
      return this.#run("DELETE FROM chat_messages WHERE received_at < ?", receivedBefore);
    });
  }

  appendEvent(conferenceId: string, version: number, payload: string): Promise<void> {
    return this.#op(() => {
      checkEvent(conferenceId, version, payload);
      this.#transaction(() => {
        const existing = this.#get(
          "SELECT payload FROM conference_events WHERE conference_id = ? AND version = ?",
          conferenceId,
          version,
        );
        if (existing !== undefined) {
          if (existing["payload"] === payload) return;
          throw new StoreConflictError(
            `event version ${version} of conference ${conferenceId} exists already`,
          );
        }
        try {
          this.#run(
            "INSERT INTO conference_events (conference_id, version, payload) VALUES (?, ?, ?)",
            conferenceId,
            version,
            payload,
          );
        } catch (error) {
          throw notFound(error, `conference ${conferenceId} does not exist`);
        }
        this.#run(
          `UPDATE conferences SET last_notify_version = MAX(last_notify_version, ?)
           WHERE id = ?`,
          version,
          conferenceId,
        );
        const row = this.#get(
          "SELECT last_notify_version FROM conferences WHERE id = ?",
          conferenceId,
        );
        const last = Number(row?.["last_notify_version"] ?? version);
        this.#run(
          "DELETE FROM conference_events WHERE conference_id = ? AND version <= ?",
          conferenceId,
          last - this.#maxEvents,
        );
      });
    });
  }

  eventsSince(conferenceId: string, version: number): Promise<EventReplay> {
    return this.#op(() => {
      checkInteger("version", version);
      const row = this.#get(
        "SELECT last_notify_version FROM conferences WHERE id = ?",
        conferenceId,
      );
      if (row === undefined) return { complete: false, events: [] };
      const events = this.#all(
        `SELECT version, payload FROM conference_events WHERE conference_id = ? AND version > ?
         ORDER BY version`,
        conferenceId,
        version,
      ).map(eventFromRow);
      const last = Number(row["last_notify_version"]);
      return { complete: isCompleteReplay(version, last, events), events };
    });
  }

  ping(): Promise<void> {
    return this.#op(() => void this.#get("SELECT 1 AS one"));
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#statements.clear();
      this.#db.close();
      log.debug("closed", { path: this.#path });
    }
    return Promise.resolve();
  }

  /** Runs one synchronous operation, turning its outcome into a promise. */
  #op<T>(body: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    try {
      return Promise.resolve(body());
    } catch (error) {
      return Promise.reject(translate(error, this.#retryAfter));
    }
  }

  #transaction<T>(body: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = body();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #run(sql: string, ...values: SQLInputValue[]): number {
    try {
      return Number(this.#statement(sql).run(...values).changes);
    } catch (error) {
      throw translate(error, this.#retryAfter);
    }
  }

  #get(sql: string, ...values: SQLInputValue[]): Row | undefined {
    return this.#statement(sql).get(...values) as Row | undefined;
  }

  #all(sql: string, ...values: SQLInputValue[]): Row[] {
    return this.#statement(sql).all(...values) as Row[];
  }

  #conference(column: "id" | "uri", value: string): ConferenceRecord | null {
    const row = this.#get(`SELECT * FROM conferences WHERE ${column} = ?`, value);
    return row === undefined ? null : conferenceFromRow(row);
  }

  #existing(id: string): ConferenceRecord {
    const conference = this.#conference("id", id);
    if (conference === null) throw new StoreNotFoundError(`conference ${id} does not exist`);
    return conference;
  }
}

/** Maps an SQLite error to the store's error classes (others pass through). */
function translate(error: unknown, retryAfterSeconds: number): unknown {
  if (!(error instanceof Error) || error instanceof StoreError) return error;
  const message = error.message.toLowerCase();
  if (message.includes("unique constraint failed")) {
    return new StoreConflictError(error.message, { cause: error });
  }
  if (message.includes("foreign key constraint failed")) {
    return new StoreNotFoundError(error.message, { cause: error });
  }
  if (UNAVAILABLE_PATTERNS.some((p) => message.includes(p))) {
    log.warn("database unavailable", { error: error.message });
    return new StoreUnavailableError(`SQLite: ${error.message}`, retryAfterSeconds, {
      cause: error,
    });
  }
  return error;
}

/** Replaces a foreign-key failure by a StoreNotFoundError with a useful message. */
function notFound(error: unknown, message: string): unknown {
  if (error instanceof StoreNotFoundError) return new StoreNotFoundError(message, { cause: error });
  return error;
}
