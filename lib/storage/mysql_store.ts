/**
 * {@link Store} on MySQL/MariaDB through a npm:mysql2 connection pool, for deployments that
 * run several servers or want the state off the box (`database-backend = mysql`).
 *
 * Failure behaviour (issue 5): every operation runs under {@link withRetry}; when the server
 * goes away the pool drops the dead connections and opens new ones on the next attempt, so
 * recovery is automatic. An operation that cannot reach the server within the retry budget
 * rejects with {@link StoreUnavailableError} (the focus answers 503 + Retry-After). Loss and
 * recovery are logged once each, not once per query.
 *
 * A write retried after a connection loss may have committed the first time; creations and
 * enqueues recognize their own earlier row (same conference / same client token) instead of
 * reporting a conflict or storing a duplicate.
 * @module
 */

import { Buffer } from "node:buffer";
import mysql from "mysql2/promise";
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { type Clock, systemClock } from "../config/clock.ts";
import { createLogger } from "../config/log.ts";
import { describeMysqlTarget, type MysqlConnectionOptions } from "./connection_string.ts";
import { migrateMysql } from "./migrations.ts";
import { ConnectionHealth } from "./connection_health.ts";
import {
  classifyMysqlError,
  errorCode,
  foreignKeyToNotFound,
  isConnectionError,
  mysqlOpenError,
  translateMysqlError,
} from "./mysql_errors.ts";
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
  sameConference,
} from "./record_codec.ts";
import { resolveRetryPolicy, type RetryHooks, type RetryPolicy, withRetry } from "./retry.ts";
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
  StoreUnavailableError,
} from "./store.ts";

/** Options of {@link MysqlStore.open}. */
export interface MysqlStoreOptions {
  readonly connection: MysqlConnectionOptions;
  /** Backoff before StoreUnavailableError (default {@link DEFAULT_RETRY_POLICY}). */
  readonly retry?: Partial<RetryPolicy>;
  /** Time source for backoff waits and outage durations (default the system clock). */
  readonly clock?: Clock;
  /** Pool size (default 10). */
  readonly poolSize?: number;
  /** Events kept per conference for partial-notify replay (default 100). */
  readonly maxEventsPerConference?: number;
  /** A query running longer than this kills its connection and counts as lost (10000 ms). */
  readonly queryTimeoutMs?: number;
  /** Wait for another server's schema migration (default 30 s). */
  readonly migrationLockTimeoutSeconds?: number;
}

type Queryable = Pool | PoolConnection;

/** A query parameter (arrays expand to lists, nested arrays to row lists). */
type SqlParam = string | number | null | Buffer | SqlParam[];

const log = createLogger("storage.mysql");

/** MySQL-backed {@link Store}. */
export class MysqlStore implements Store {
  readonly backend = "mysql" as const;
  readonly #pool: Pool;
  readonly #target: string;
  readonly #clock: Clock;
  readonly #policy: RetryPolicy;
  readonly #maxEvents: number;
  readonly #queryTimeout: number;
  readonly #hooks: RetryHooks;
  readonly #health: ConnectionHealth;
  #closed = false;

  private constructor(pool: Pool, target: string, options: MysqlStoreOptions, policy: RetryPolicy) {
    this.#pool = pool;
    this.#target = target;
    this.#clock = options.clock ?? systemClock;
    this.#policy = policy;
    this.#maxEvents = options.maxEventsPerConference ?? 100;
    this.#queryTimeout = options.queryTimeoutMs ?? 10_000;
    this.#health = new ConnectionHealth(log, `MySQL at ${target}`, this.#clock);
    this.#hooks = {
      classify: (error) => this.#closed ? "fatal" : classifyMysqlError(error),
      onConnectionFailure: (error) => this.#health.lost(errorCode(error)),
      onSuccess: () => this.#health.ok(),
      describe: (error) => `cannot reach MySQL at ${this.#target}: ${errorCode(error)}`,
    };
  }

  /**
   * Connects once (no retries: a wrong address should fail fast with one clear line), applies
   * migrations under the migration lock, and returns the store.
   */
  static async open(options: MysqlStoreOptions): Promise<MysqlStore> {
    const policy = resolveRetryPolicy(options.retry);
    const c = options.connection;
    const maxEvents = checkInteger("maxEventsPerConference", options.maxEventsPerConference ?? 100);
    if (maxEvents < 1) throw new RangeError("maxEventsPerConference must be at least 1");
    const target = describeMysqlTarget(c);
    const pool = mysql.createPool({
      ...(c.socketPath === null ? { host: c.host, port: c.port } : { socketPath: c.socketPath }),
      user: c.user,
      password: c.password,
      database: c.database,
      connectionLimit: options.poolSize ?? 10,
      connectTimeout: c.connectTimeoutMs ?? 5000,
      supportBigNumbers: true,
      charset: "UTF8MB4_BIN",
      waitForConnections: true,
    });
    pool.on("connection", (connection) => {
      // The pool drops a connection on its first error; this keeps later ones from being
      // unhandled 'error' events while the socket winds down.
      connection.on("error", (error: unknown) => {
        log.debug("pooled connection closed", { target, error: errorCode(error) });
      });
    });
    let connection: PoolConnection;
    try {
      connection = await pool.getConnection();
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw mysqlOpenError(error, c, target, policy.retryAfterSeconds);
    }
    try {
      const where = `${target}/${c.database}`;
      const result = await migrateMysql(
        connection,
        c.database,
        where,
        options.migrationLockTimeoutSeconds ?? 30,
      );
      log.debug("opened", { where, schema: result.schemaVersion });
      connection.release();
    } catch (error) {
      connection.destroy();
      await pool.end().catch(() => undefined);
      if (error instanceof StoreError) throw error;
      throw mysqlOpenError(error, c, target, policy.retryAfterSeconds);
    }
    return new MysqlStore(pool, target, { ...options, maxEventsPerConference: maxEvents }, policy);
  }

  async createConference(input: NewConference): Promise<ConferenceRecord> {
    const c = normalizeNewConference(input);
    return await this.#op(async (attempt) => {
      try {
        await this.#exec(
          this.#pool,
          `INSERT INTO conferences (id, uri, factory_uri, kind, subject, created_at, starts_at,
             ends_at, ended_at, options, last_notify_version)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
          [
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
          ],
        );
        return c;
      } catch (error) {
        if (errorCode(error) !== "ER_DUP_ENTRY") throw error;
        if (attempt > 1) {
          // Our first attempt may have committed before the connection dropped.
          const existing = await this.#conference("id", c.id);
          if (existing !== null && sameConference(existing, c)) return existing;
        }
        throw new StoreConflictError(`conference ${c.id} or URI ${c.uri} exists already`, {
          cause: error,
        });
      }
    });
  }

  getConference(id: string): Promise<ConferenceRecord | null> {
    return this.#op(() => this.#conference("id", id));
  }

  getConferenceByUri(uri: string): Promise<ConferenceRecord | null> {
    return this.#op(() => this.#conference("uri", uri));
  }

  listLiveConferences(): Promise<readonly ConferenceRecord[]> {
    return this.#op(async () =>
      (await this.#rows(
        this.#pool,
        "SELECT * FROM conferences WHERE ended_at IS NULL ORDER BY created_at, id",
        [],
      )).map(conferenceFromRow)
    );
  }

  async updateConference(id: string, patch: ConferencePatch): Promise<ConferenceRecord> {
    const columns = patchColumns(patch);
    return await this.#op(async () => {
      if (columns.length > 0) {
        await this.#exec(
          this.#pool,
          `UPDATE conferences SET ${columns.map(([c]) => `${c} = ?`).join(", ")} WHERE id = ?`,
          [...columns.map(([, v]) => v), id],
        );
      }
      return await this.#existing(id);
    });
  }

  async endConference(id: string, at: number): Promise<ConferenceRecord> {
    checkInteger("at", at);
    return await this.#op(async () => {
      await this.#exec(
        this.#pool,
        "UPDATE conferences SET ended_at = COALESCE(ended_at, ?) WHERE id = ?",
        [at, id],
      );
      return await this.#existing(id);
    });
  }

  isEnded(id: string): Promise<boolean> {
    return this.#op(async () => {
      const rows = await this.#rows(this.#pool, "SELECT ended_at FROM conferences WHERE id = ?", [
        id,
      ]);
      return rows.length > 0 && rows[0]?.["ended_at"] !== null;
    });
  }

  async purgeExpired(endedBefore: number): Promise<number> {
    checkInteger("endedBefore", endedBefore);
    return await this.#op(async () =>
      (await this.#exec(
        this.#pool,
        "DELETE FROM conferences WHERE ended_at IS NOT NULL AND ended_at < ?",
        [endedBefore],
      )).affectedRows
    );
  }

  async upsertParticipant(p: ParticipantRecord): Promise<void> {
    checkParticipant(p);
    return await this.#op(async () => {
      try {
        await this.#exec(
          this.#pool,
          `INSERT INTO participants (conference_id, aor, display_name, is_admin, role, state,
             joined_at, left_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE display_name = VALUES(display_name),
             is_admin = VALUES(is_admin), role = VALUES(role), state = VALUES(state),
             joined_at = VALUES(joined_at), left_at = VALUES(left_at)`,
          [
            p.conferenceId,
            p.aor,
            p.displayName,
            p.isAdmin ? 1 : 0,
            p.role,
            p.state,
            p.joinedAt,
            p
              .leftAt,
          ],
        );
      } catch (error) {
        throw foreignKeyToNotFound(error, `conference ${p.conferenceId} does not exist`);
      }
    });
  }

  getParticipant(conferenceId: string, aor: string): Promise<ParticipantRecord | null> {
    return this.#op(async () => {
      const rows = await this.#rows(
        this.#pool,
        "SELECT * FROM participants WHERE conference_id = ? AND aor = ?",
        [conferenceId, aor],
      );
      return rows[0] === undefined ? null : participantFromRow(rows[0]);
    });
  }

  removeParticipant(conferenceId: string, aor: string): Promise<boolean> {
    return this.#op(async () =>
      (await this.#exec(
        this.#pool,
        "DELETE FROM participants WHERE conference_id = ? AND aor = ?",
        [
          conferenceId,
          aor,
        ],
      )).affectedRows > 0
    );
  }

  listParticipants(conferenceId: string): Promise<readonly ParticipantRecord[]> {
    return this.#op(async () =>
      (await this.#rows(
        this.#pool,
        "SELECT * FROM participants WHERE conference_id = ? ORDER BY joined_at, aor",
        [conferenceId],
      )).map(participantFromRow)
    );
  }

  async upsertDevice(d: DeviceRecord): Promise<void> {
    checkDevice(d);
    return await this.#op(async () => {
      try {
        await this.#exec(
          this.#pool,
          `INSERT INTO devices (conference_id, aor, device_uri, name, state, joining_method,
             joining_time, last_notify_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE aor = VALUES(aor), name = VALUES(name), state = VALUES(state),
             joining_method = VALUES(joining_method), joining_time = VALUES(joining_time),
             last_notify_version = VALUES(last_notify_version)`,
          [
            d.conferenceId,
            d.aor,
            d.deviceUri,
            d.name,
            d.state,
            d.joiningMethod,
            d.joiningTime,
            d.lastNotifyVersion,
          ],
        );
      } catch (error) {
        throw foreignKeyToNotFound(
          error,
          `participant ${d.aor} of conference ${d.conferenceId} does not exist`,
        );
      }
    });
  }

  removeDevice(conferenceId: string, deviceUri: string): Promise<boolean> {
    return this.#op(async () =>
      (await this.#exec(
        this.#pool,
        "DELETE FROM devices WHERE conference_id = ? AND device_uri = ?",
        [conferenceId, deviceUri],
      )).affectedRows > 0
    );
  }

  listDevices(conferenceId: string, aor?: string): Promise<readonly DeviceRecord[]> {
    return this.#op(async () => {
      const rows = aor === undefined
        ? await this.#rows(
          this.#pool,
          "SELECT * FROM devices WHERE conference_id = ? ORDER BY aor, device_uri",
          [conferenceId],
        )
        : await this.#rows(
          this.#pool,
          "SELECT * FROM devices WHERE conference_id = ? AND aor = ? ORDER BY aor, device_uri",
          [conferenceId, aor],
        );
      return rows.map(deviceFromRow);
    });
  }

  async enqueueMessage(conferenceId: string, message: NewChatMessage): Promise<number> {
    const recipients = checkMessage(conferenceId, message);
    const token = newClientToken();
    const body = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
    return await this.#op((attempt) =>
      this.#transaction(async (connection) => {
        let id: number;
        try {
          id = (await this.#exec(
            connection,
            `INSERT INTO chat_messages (conference_id, client_token, sender_aor, sender_device,
               content_type, body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
            [
              conferenceId,
              token,
              message.senderAor,
              message.senderDevice,
              message.contentType,
              body,
              message.receivedAt,
            ],
          )).insertId;
        } catch (error) {
          if (attempt > 1 && errorCode(error) === "ER_DUP_ENTRY") {
            // The earlier attempt committed (message and recipients are one transaction).
            const rows = await this.#rows(
              connection,
              "SELECT id FROM chat_messages WHERE client_token = ?",
              [token],
            );
            if (rows[0] !== undefined) return Number(rows[0]["id"]);
          }
          throw foreignKeyToNotFound(error, `conference ${conferenceId} does not exist`);
        }
        await this.#exec(
          connection,
          "INSERT INTO chat_message_recipients (message_id, device_uri) VALUES ?",
          [recipients.map((r) => [id, r])],
        );
        return id;
      })
    );
  }

  pendingMessagesFor(
    conferenceId: string,
    deviceUri: string,
  ): Promise<readonly ChatMessageRecord[]> {
    return this.#op(async () =>
      (await this.#rows(
        this.#pool,
        `SELECT m.* FROM chat_message_recipients r JOIN chat_messages m ON m.id = r.message_id
         WHERE r.device_uri = ? AND m.conference_id = ? ORDER BY m.id`,
        [deviceUri, conferenceId],
      )).map(messageFromRow)
    );
  }

  markDelivered(messageId: number, deviceUri: string): Promise<boolean> {
    return this.#op(async () => {
      // Two autocommit statements: whichever call removes the last recipient also sees no
      // recipient left and deletes the message, so concurrent calls cannot leave it behind.
      const removed = (await this.#exec(
        this.#pool,
        "DELETE FROM chat_message_recipients WHERE message_id = ? AND device_uri = ?",
        [messageId, deviceUri],
      )).affectedRows;
      await this.#exec(
        this.#pool,
        `DELETE FROM chat_messages WHERE id = ? AND NOT EXISTS
           (SELECT 1 FROM chat_message_recipients WHERE message_id = ?)`,
        [messageId, messageId],
      );
      return removed > 0;
    });
  }

  async purgeMessagesOlderThan(receivedBefore: number): Promise<number> {
    checkInteger("receivedBefore", receivedBefore);
    return await this.#op(async () =>
      (await this.#exec(this.#pool, "DELETE FROM chat_messages WHERE received_at < ?", [
        receivedBefore,
      ])).affectedRows
    );
  }

  async appendEvent(conferenceId: string, version: number, payload: string): Promise<void> {
    checkEvent(conferenceId, version, payload);
    return await this.#op(() =>
      this.#transaction(async (connection) => {
        try {
          await this.#exec(
            connection,
            "INSERT INTO conference_events (conference_id, version, payload) VALUES (?, ?, ?)",
            [conferenceId, version, payload],
          );
        } catch (error) {
          if (errorCode(error) !== "ER_DUP_ENTRY") {
            throw foreignKeyToNotFound(error, `conference ${conferenceId} does not exist`);
          }
          const rows = await this.#rows(
            connection,
            "SELECT payload FROM conference_events WHERE conference_id = ? AND version = ?",
            [conferenceId, version],
          );
          if (rows[0]?.["payload"] === payload) return;
          throw new StoreConflictError(
            `event version ${version} of conference ${conferenceId} exists already`,
          );
        }
        await this.#exec(
          connection,
          `UPDATE conferences SET last_notify_version = GREATEST(last_notify_version, ?)
           WHERE id = ?`,
          [version, conferenceId],
        );
        const rows = await this.#rows(
          connection,
          "SELECT last_notify_version FROM conferences WHERE id = ?",
          [conferenceId],
        );
        const last = Number(rows[0]?.["last_notify_version"] ?? version);
        await this.#exec(
          connection,
          "DELETE FROM conference_events WHERE conference_id = ? AND version <= ?",
          [conferenceId, last - this.#maxEvents],
        );
      })
    );
  }

  async eventsSince(conferenceId: string, version: number): Promise<EventReplay> {
    checkInteger("version", version);
    return await this.#op(async () => {
      const rows = await this.#rows(
        this.#pool,
        "SELECT last_notify_version FROM conferences WHERE id = ?",
        [conferenceId],
      );
      if (rows[0] === undefined) return { complete: false, events: [] };
      const last = Number(rows[0]["last_notify_version"]);
      const events = (await this.#rows(
        this.#pool,
        `SELECT version, payload FROM conference_events WHERE conference_id = ? AND version > ?
         ORDER BY version`,
        [conferenceId, version],
      )).map(eventFromRow);
      return { complete: isCompleteReplay(version, last, events), events };
    });
  }

  /** One attempt, no retries: a health check reports the state as it is now. */
  async ping(): Promise<void> {
    if (this.#closed) throw new StoreClosedError();
    try {
      await this.#rows(this.#pool, "SELECT 1 AS one", []);
      this.#health.ok();
    } catch (error) {
      if (!isConnectionError(error)) throw translateMysqlError(error);
      this.#health.lost(errorCode(error));
      throw new StoreUnavailableError(
        `cannot reach MySQL at ${this.#target}: ${errorCode(error)}`,
        this.#policy.retryAfterSeconds,
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end().catch((error) => {
      log.debug("error while closing the pool", { error: errorCode(error) });
    });
  }

  async #op<T>(body: (attempt: number) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreClosedError();
    try {
      return await withRetry(this.#clock, this.#policy, this.#hooks, body);
    } catch (error) {
      if (this.#closed && !(error instanceof StoreError)) throw new StoreClosedError();
      throw translateMysqlError(error);
    }
  }

  async #transaction<T>(body: (connection: PoolConnection) => Promise<T>): Promise<T> {
    const connection = await this.#pool.getConnection();
    let broken = false;
    try {
      await connection.query("START TRANSACTION");
      const result = await body(connection);
      await connection.query("COMMIT");
      return result;
    } catch (error) {
      broken = isConnectionError(error);
      if (!broken) {
        await connection.query("ROLLBACK").catch(() => {
          broken = true;
        });
      }
      throw error;
    } finally {
      if (broken) connection.destroy();
      else connection.release();
    }
  }

  async #rows(on: Queryable, sql: string, values: SqlParam[]): Promise<Row[]> {
    const [rows] = await on.query<RowDataPacket[]>({ sql, timeout: this.#queryTimeout }, values);
    return rows as Row[];
  }

  async #exec(on: Queryable, sql: string, values: SqlParam[]): Promise<ResultSetHeader> {
    const [result] = await on.query<ResultSetHeader>({ sql, timeout: this.#queryTimeout }, values);
    return result;
  }

  async #conference(column: "id" | "uri", value: string): Promise<ConferenceRecord | null> {
    const rows = await this.#rows(
      this.#pool,
      `SELECT * FROM conferences WHERE ${column} = ?`,
      [value],
    );
    return rows[0] === undefined ? null : conferenceFromRow(rows[0]);
  }

  async #existing(id: string): Promise<ConferenceRecord> {
    const conference = await this.#conference("id", id);
    if (conference === null) throw new StoreNotFoundError(`conference ${id} does not exist`);
    return conference;
  }
}
