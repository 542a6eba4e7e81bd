/**
 * Classification of npm:mysql2 errors for the MySQL backend: which ones mean "the server or
 * the connection is gone" (retry, then 503 — RFC 3261 §21.5.4), which are worth retrying on
 * a live server (deadlock, lock wait), and which are final (duplicate key, bad value).
 * @module
 */

import type { FailureKind } from "./retry.ts";
import type { MysqlConnectionOptions } from "./connection_string.ts";
import {
  StoreConflictError,
  StoreError,
  StoreNotFoundError,
  StoreOpenError,
  StoreUnavailableError,
} from "./store.ts";

/** The fields of a mysql2 / Node socket error we look at. */
interface DriverError {
  readonly code?: unknown;
  readonly errno?: unknown;
  readonly fatal?: unknown;
  readonly message?: unknown;
}

/** Socket and protocol codes meaning the connection or the server is gone. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "ENOENT", // unix socket file missing while the server restarts
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR",
  "PROTOCOL_ENQUEUE_AFTER_QUIT",
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  "ER_CONNECTION_KILLED",
  "ER_CLIENT_INTERACTION_TIMEOUT",
  "ER_NET_READ_ERROR",
  "ER_NET_READ_INTERRUPTED",
  "ER_NET_ERROR_ON_WRITE",
  "ER_NET_WRITE_INTERRUPTED",
]);

/** Server errors worth retrying on a live connection. */
const TRANSIENT_CODES = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]);

function fields(error: unknown): DriverError {
  return typeof error === "object" && error !== null ? error as DriverError : {};
}

/** The error's code (e.g. `ECONNREFUSED`, `ER_DUP_ENTRY`), or its message. */
export function errorCode(error: unknown): string {
  const { code, message } = fields(error);
  if (typeof code === "string" && code !== "") return code;
  return typeof message === "string" ? message : String(error);
}

/** How {@link withRetry} should treat a mysql2 error. */
export function classifyMysqlError(error: unknown): FailureKind {
  if (error instanceof StoreError) return "fatal";
  const { code, fatal } = fields(error);
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return "connection";
  if (typeof code === "string" && TRANSIENT_CODES.has(code)) return "transient";
  // mysql2 marks every error that killed the connection as fatal.
  if (fatal === true) return "connection";
  return "fatal";
}

/** True for an error after which the connection must not go back to the pool. */
export function isConnectionError(error: unknown): boolean {
  return classifyMysqlError(error) === "connection";
}

/**
 * Maps a final mysql2 error to the store's error classes; errors that did not come from the
 * driver (no `code`) pass through unchanged.
 */
export function translateMysqlError(error: unknown): unknown {
  if (error instanceof StoreError || !(error instanceof Error)) return error;
  const { code } = fields(error);
  if (typeof code !== "string") return error;
  switch (code) {
    case "ER_DUP_ENTRY":
      return new StoreConflictError(error.message, { cause: error });
    case "ER_NO_REFERENCED_ROW":
    case "ER_NO_REFERENCED_ROW_2":
      return new StoreNotFoundError(error.message, { cause: error });
    case "ER_DATA_TOO_LONG":
    case "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD":
      return new RangeError(error.message, { cause: error });
    default:
      return new StoreError(`MySQL: ${error.message}`, { cause: error });
  }
}

/** One clear line for a store that cannot be opened. */
export function mysqlOpenError(
  error: unknown,
  c: MysqlConnectionOptions,
  target: string,
  retryAfterSeconds: number,
): StoreError {
  const code = errorCode(error);
  if (code === "ER_ACCESS_DENIED_ERROR" || code === "ER_DBACCESS_DENIED_ERROR") {
    return new StoreOpenError(
      `access denied for MySQL user '${c.user}' at ${target} (database '${c.database}')`,
      { cause: error },
    );
  }
  if (code === "ER_BAD_DB_ERROR") {
    return new StoreOpenError(`MySQL database '${c.database}' does not exist at ${target}`, {
      cause: error,
    });
  }
  if (isConnectionError(error)) {
    return new StoreUnavailableError(
      `cannot connect to MySQL at ${target}: ${code}`,
      retryAfterSeconds,
      {
        cause: error,
      },
    );
  }
  return new StoreOpenError(
    `cannot open MySQL database '${c.database}' at ${target}: ${(error as Error).message}`,
    { cause: error },
  );
}

/** Turns a foreign-key failure into a StoreNotFoundError with a useful message. */
export function foreignKeyToNotFound(error: unknown, message: string): unknown {
  const code = errorCode(error);
  if (code === "ER_NO_REFERENCED_ROW_2" || code === "ER_NO_REFERENCED_ROW") {
    return new StoreNotFoundError(message, { cause: error });
  }
  return error;
}
