/**
 * Helpers for the storage tests: the shared MariaDB (127.0.0.1:3306, root, no password) with
 * throwaway databases, a private mariadbd the outage test may kill, a clock that fires its
 * timers at once in virtual time, and log capture.
 * @module
 */

import mysql from "mysql2/promise";
import { FakeClock, type TimerHandle } from "../../lib/config/clock.ts";
import { type LogLevel, setLogSink } from "../../lib/config/log.ts";

/** The shared MariaDB the suite may use. */
export const SHARED_MARIADB = { host: "127.0.0.1", port: 3306, user: "root", password: "" };

/** True when CI demands that service-backed tests run. */
export const REQUIRE_SERVICES = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";

async function sharedMariadbReachable(): Promise<string | null> {
  try {
    const connection = await mysql.createConnection({ ...SHARED_MARIADB, connectTimeout: 3000 });
    await connection.query("SELECT 1");
    await connection.end();
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

const unreachableReason = await sharedMariadbReachable();

/**
 * `ignore` flag for tests needing the shared MariaDB: set (with a loud warning) when it is
 * unreachable and CONCLAVE_REQUIRE_SERVICES is not 1; otherwise false, so the tests run and
 * fail if the server is missing.
 */
export function ignoreWithoutMariadb(file: string): boolean {
  if (unreachableReason === null || REQUIRE_SERVICES) return false;
  console.error(
    `\n!!!!! WARNING: MariaDB at 127.0.0.1:3306 is unreachable (${unreachableReason}); ` +
      `the MySQL tests of ${file} are IGNORED. Set CONCLAVE_REQUIRE_SERVICES=1 to fail instead.\n`,
  );
  return true;
}

/** A unique database name for one test. */
export function uniqueDatabaseName(tag: string): string {
  const random = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  return `conclave_t_${tag}_${Deno.pid}_${random}`;
}

/** Creates a database on a server (default the shared one). */
export async function createDatabase(
  name: string,
  server: { host: string; port: number; user: string; password: string } = SHARED_MARIADB,
): Promise<void> {
  const connection = await mysql.createConnection(server);
  try {
    await connection.query(
      `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`,
    );
  } finally {
    await connection.end();
  }
}

/** Drops a database if it exists. */
export async function dropDatabase(
  name: string,
  server: { host: string; port: number; user: string; password: string } = SHARED_MARIADB,
): Promise<void> {
  const connection = await mysql.createConnection(server);
  try {
    await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await connection.end();
  }
}

/** Runs one query against a database on the shared server, returning its rows. */
export async function queryDatabase(
  database: string,
  sql: string,
  values: Array<string | number | null> = [],
): Promise<Record<string, unknown>[]> {
  const connection = await mysql.createConnection({ ...SHARED_MARIADB, database });
  try {
    const [rows] = await connection.query(sql, values);
    return rows as Record<string, unknown>[];
  } finally {
    await connection.end();
  }
}

/** A Flexisip-style connection string for a database on the shared server. */
export function sharedConnectionString(database: string): string {
  return `db='${database}' user='root' password='' host='127.0.0.1' port=3306`;
}

/**
 * A {@link FakeClock} that moves itself: each timer is fired, in virtual time, right after
 * the current microtasks. Retry budgets are then spent exactly and instantly.
 */
export class AutoAdvanceClock extends FakeClock {
  /** Every delay requested, in order. */
  readonly requested: number[] = [];

  override setTimer(delayMs: number, callback: () => void): TimerHandle {
    this.requested.push(delayMs);
    const handle = super.setTimer(delayMs, callback);
    const due = this.now() + Math.max(0, delayMs);
    queueMicrotask(() => this.advance(Math.max(0, due - this.now())));
    return handle;
  }
}

/** Captured log lines, restoring the previous sink on dispose. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly #previous;

  constructor() {
    this.#previous = setLogSink((line: string, _level: LogLevel) => {
      this.lines.push(line);
    });
  }

  /** Lines containing `text`. */
  matching(text: string): string[] {
    return this.lines.filter((line) => line.includes(text));
  }

  restore(): void {
    setLogSink(this.#previous);
  }
}

/** Asserts that a promise rejects with an instance of `type`; returns the error. */
export async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
  messageIncludes?: string,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof type)) {
      throw new Error(
        `expected ${type.name}, got ${(error as Error)?.constructor?.name}: ${
          (error as Error)?.message
        }`,
      );
    }
    if (messageIncludes !== undefined && !error.message.includes(messageIncludes)) {
      throw new Error(`expected message with "${messageIncludes}", got "${error.message}"`);
    }
    return error;
  }
  throw new Error(`expected ${type.name}, but the promise resolved`);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
