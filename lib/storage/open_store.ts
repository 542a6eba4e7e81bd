/**
 * Opens the configured {@link Store}: `database-backend` (`sqlite3`, the default, or `mysql`)
 * with `database-connection-string` and `state-directory` (issue 5).
 *
 * For `sqlite3` the connection string is empty (the file is `conclave.sqlite3` in the state
 * directory), a file name or path (relative paths are taken from the state directory), or
 * `:memory:`. For `mysql` it is Flexisip's `db='…' user='…' …` list or a `mysql://` URL.
 *
 * Every failure rejects with one error whose message is one clear line: a
 * `ConnectionStringError`, a {@link StoreOpenError}, a {@link StoreUnavailableError}
 * (`cannot connect to MySQL at 127.0.0.1:3307: ECONNREFUSED`) or a
 * {@link StoreSchemaTooNewError}.
 * @module
 */

import { mkdirSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { Clock } from "../config/clock.ts";
import { parseMysqlConnectionString } from "./connection_string.ts";
import { MysqlStore } from "./mysql_store.ts";
import type { RetryPolicy } from "./retry.ts";
import { SqliteStore } from "./sqlite_store.ts";
import { type Store, type StoreBackend, StoreOpenError } from "./store.ts";

/** File name of the SQLite database inside the state directory. */
export const DEFAULT_SQLITE_FILE = "conclave.sqlite3";

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  readonly backend: StoreBackend;
  readonly connectionString: string;
  /** Directory for the SQLite file (created if missing). */
  readonly stateDirectory: string;
  /** MySQL retry budget before StoreUnavailableError; also gives Retry-After for SQLite. */
  readonly retry?: Partial<RetryPolicy>;
  /** Clock for backoff waits (default the system clock). */
  readonly clock?: Clock;
  /** Events kept per conference for partial-notify replay (default 100). */
  readonly maxEventsPerConference?: number;
  /** MySQL pool size (default 10). */
  readonly poolSize?: number;
  /** SQLite durability (default `normal`; see sqlite_store.ts). */
  readonly sqliteSynchronous?: "full" | "normal";
}

/** Where the SQLite database of these options lives (a path or `:memory:`). */
export function sqlitePath(connectionString: string, stateDirectory: string): string {
  const name = connectionString.trim();
  if (name === ":memory:") return name;
  if (name === "") return join(stateDirectory, DEFAULT_SQLITE_FILE);
  return isAbsolute(name) ? name : join(stateDirectory, name);
}

/** Opens the store, applying schema migrations; see the module documentation. */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  switch (options.backend) {
    case "sqlite3": {
      const path = sqlitePath(options.connectionString, options.stateDirectory);
      if (path !== ":memory:") {
        try {
          mkdirSync(options.stateDirectory, { recursive: true });
        } catch (error) {
          throw new StoreOpenError(
            `cannot create state-directory ${options.stateDirectory}: ${(error as Error).message}`,
            { cause: error },
          );
        }
      }
      return SqliteStore.open({
        path,
        ...(options.maxEventsPerConference === undefined
          ? {}
          : { maxEventsPerConference: options.maxEventsPerConference }),
        ...(options.sqliteSynchronous === undefined
          ? {}
          : { synchronous: options.sqliteSynchronous }),
        ...(options.retry?.retryAfterSeconds === undefined
          ? {}
          : { retryAfterSeconds: options.retry.retryAfterSeconds }),
      });
    }
    case "mysql": {
      const connection = parseMysqlConnectionString(options.connectionString);
      return await MysqlStore.open({
        connection,
        ...(options.retry === undefined ? {} : { retry: options.retry }),
        ...(options.clock === undefined ? {} : { clock: options.clock }),
        ...(options.maxEventsPerConference === undefined
          ? {}
          : { maxEventsPerConference: options.maxEventsPerConference }),
        ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }),
      });
    }
    default:
      throw new StoreOpenError(
        `unknown database-backend "${String(options.backend)}" (use sqlite3 or mysql)`,
      );
  }
}
