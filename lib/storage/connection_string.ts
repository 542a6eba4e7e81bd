/**
 * `database-connection-string` for the MySQL backend, in the two forms operators use:
 *
 * - Flexisip's (SOCI's) `key=value` list: `db='conf' user='u' password='p' host='127.0.0.1'
 *   port=3306`. Values may be bare (up to the next space) or quoted with `'` or `"`; inside
 *   quotes a backslash escapes the next character, so passwords may hold spaces and quotes.
 * - A URL (RFC 3986): `mysql://user:pass@host:port/db` (`mariadb://` too), percent-encoded.
 *
 * Errors are {@link ConnectionStringError}s whose message names the problem and position and
 * never repeats the password.
 * @module
 */

/** Where and how to reach a MySQL/MariaDB server. */
export interface MysqlConnectionOptions {
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly host: string;
  readonly port: number;
  /** Unix socket path; when set, host and port are not used. */
  readonly socketPath: string | null;
  /** Connect timeout in milliseconds, when the string sets one. */
  readonly connectTimeoutMs: number | null;
}

/** A connection string that cannot be understood. */
export class ConnectionStringError extends SyntaxError {
  constructor(message: string) {
    super(`invalid database-connection-string: ${message}`);
    this.name = "ConnectionStringError";
  }
}

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 3306;
const DEFAULT_USER = "root";

type Key = "database" | "user" | "password" | "host" | "port" | "socketPath" | "connectTimeout";

/** SOCI's key names (several are aliases) mapped to ours. */
const KEY_ALIASES: Readonly<Record<string, Key>> = {
  db: "database",
  dbname: "database",
  service: "database",
  user: "user",
  password: "password",
  pass: "password",
  host: "host",
  port: "port",
  unix_socket: "socketPath",
  connect_timeout: "connectTimeout",
};

/** Parses either form; see the module documentation. */
export function parseMysqlConnectionString(text: string): MysqlConnectionOptions {
  const trimmed = text.trim();
  if (trimmed.length === 0) {
    throw new ConnectionStringError(
      "empty; expected db='name' user='u' password='p' host='h' port=3306 or mysql://u:p@h:3306/db",
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) return parseUrl(trimmed);
  return finish(parsePairs(trimmed));
}

/** `host:port` or the socket path, for messages (never includes the password). */
export function describeMysqlTarget(options: MysqlConnectionOptions): string {
  return options.socketPath ?? `${options.host}:${options.port}`;
}

function parsePairs(text: string): Map<Key, string> {
  const values = new Map<Key, string>();
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && /\s/.test(text[i]!)) i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && /[A-Za-z0-9_]/.test(text[i]!)) i++;
    const rawKey = text.slice(keyStart, i);
    if (rawKey.length === 0) {
      throw new ConnectionStringError(`expected a key at column ${keyStart + 1}`);
    }
    if (text[i] !== "=") {
      throw new ConnectionStringError(`expected '=' after "${rawKey}" at column ${i + 1}`);
    }
    i++;
    const key = KEY_ALIASES[rawKey];
    if (key === undefined) {
      throw new ConnectionStringError(
        `unknown key "${rawKey}" at column ${keyStart + 1} (known: ${
          Object.keys(KEY_ALIASES).join(", ")
        })`,
      );
    }
    let value = "";
    const quote = text[i];
    if (quote === "'" || quote === '"') {
      const valueStart = i;
      i++;
      let closed = false;
      while (i < n) {
        const c = text[i]!;
        if (c === "\\" && i + 1 < n) {
          value += text[i + 1];
          i += 2;
        } else if (c === quote) {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) {
        throw new ConnectionStringError(
          `unterminated quote for "${rawKey}" starting at column ${valueStart + 1}`,
        );
      }
      if (i < n && !/\s/.test(text[i]!)) {
        throw new ConnectionStringError(`expected a space after the value of "${rawKey}"`);
      }
    } else {
      const valueStart = i;
      while (i < n && !/\s/.test(text[i]!)) i++;
      value = text.slice(valueStart, i);
      if (value.includes("'") || value.includes('"')) {
        throw new ConnectionStringError(`stray quote in the value of "${rawKey}"`);
      }
    }
    if (values.has(key)) throw new ConnectionStringError(`"${rawKey}" is given twice`);
    values.set(key, value);
  }
  return values;
}

function parseUrl(text: string): MysqlConnectionOptions {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConnectionStringError("not a valid URL");
  }
  if (url.protocol !== "mysql:" && url.protocol !== "mariadb:") {
    throw new ConnectionStringError(
      `unsupported URL scheme "${url.protocol.slice(0, -1)}" (use mysql:// or mariadb://)`,
    );
  }
  const values = new Map<Key, string>();
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConnectionStringError(`bad percent-encoding in the ${what}`);
    }
  };
  if (url.username !== "") values.set("user", decode(url.username, "user name"));
  if (url.password !== "") values.set("password", decode(url.password, "password"));
  if (url.hostname !== "") values.set("host", url.hostname.replace(/^\[(.*)\]$/, "$1"));
  if (url.port !== "") values.set("port", url.port);
  const path = decode(url.pathname.replace(/^\//, ""), "database name");
  if (path.includes("/")) throw new ConnectionStringError("the URL path must be /database");
  if (path !== "") values.set("database", path);
  for (const [name, value] of url.searchParams) {
    const key = name === "socket" ? "socketPath" : KEY_ALIASES[name];
    if (key !== "socketPath" && key !== "connectTimeout") {
      throw new ConnectionStringError(
        `unknown URL parameter "${name}" (known: socket, connect_timeout)`,
      );
    }
    values.set(key, value);
  }
  return finish(values);
}

function finish(values: Map<Key, string>): MysqlConnectionOptions {
  const database = values.get("database");
  if (database === undefined || database === "") {
    throw new ConnectionStringError("no database name (db='...' or mysql://host/db)");
  }
  const portText = values.get("port");
  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw new ConnectionStringError(`port must be 1-65535, got "${portText}"`);
    }
  }
  const timeoutText = values.get("connectTimeout");
  let connectTimeoutMs: number | null = null;
  if (timeoutText !== undefined) {
    if (!/^\d+$/.test(timeoutText) || Number(timeoutText) < 1) {
      throw new ConnectionStringError(
        `connect_timeout must be a positive number of seconds, got "${timeoutText}"`,
      );
    }
    connectTimeoutMs = Number(timeoutText) * 1000;
  }
  const host = values.get("host");
  const user = values.get("user");
  return {
    database,
    user: user === undefined || user === "" ? DEFAULT_USER : user,
    password: values.get("password") ?? "",
    host: host === undefined || host === "" ? DEFAULT_HOST : host,
    port,
    socketPath: values.get("socketPath") || null,
    connectTimeoutMs,
  };
}
