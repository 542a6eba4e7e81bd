/**
 * Leveled, named loggers. This module is the only place in Conclave that writes to the
 * console: every other module asks for a {@link Logger} with its component name.
 *
 * Lines go to stderr as `2026-11-21T14:30:00.000Z INFO  [component] message key=value`.
 * @module
 */

/** Severity levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Extra structured fields appended to a line as `key=value`. */
export type LogFields = Readonly<Record<string, unknown>>;

/** A sink receives finished lines; the default writes to stderr. Tests may capture lines. */
export type LogSink = (line: string, level: LogLevel) => void;

const encoder = new TextEncoder();

const stderrSink: LogSink = (line) => {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr closed: nothing sensible left to do with a log line.
  }
};

let threshold: LogLevel = "info";
let sink: LogSink = stderrSink;

/** Sets the lowest level that is written (default `info`). */
export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

/** Returns the current threshold. */
export function getLogLevel(): LogLevel {
  return threshold;
}

/** Replaces the sink (pass `undefined` to restore stderr). Returns the previous sink. */
export function setLogSink(next: LogSink | undefined): LogSink {
  const previous = sink;
  sink = next ?? stderrSink;
  return previous;
}

/** True when a level passes the threshold: lets callers skip building costly messages. */
export function isLogEnabled(level: LogLevel): boolean {
  return LEVEL_RANK[level] >= LEVEL_RANK[threshold];
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "string") return /^[\w.:/@+-]*$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) {
    return String(value);
  }
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** A logger bound to one component name (e.g. `sip`, `focus`, `mixer`). */
export class Logger {
  readonly component: string;

  constructor(component: string) {
    this.component = component;
  }

  /** Detailed tracing, off unless `--debug` or `[log] level=debug`. */
  debug(message: string, fields?: LogFields): void {
    this.#write("debug", message, fields);
  }

  /** Normal operational events (listening, conference created). */
  info(message: string, fields?: LogFields): void {
    this.#write("info", message, fields);
  }

  /** Something unexpected that the server handled. */
  warn(message: string, fields?: LogFields): void {
    this.#write("warn", message, fields);
  }

  /** A failure that an operator should look at. */
  error(message: string, fields?: LogFields): void {
    this.#write("error", message, fields);
  }

  /** A logger for a sub-component, named `parent.child`. */
  child(name: string): Logger {
    return new Logger(`${this.component}.${name}`);
  }

  #write(level: LogLevel, message: string, fields: LogFields | undefined): void {
    if (LEVEL_RANK[level] < LEVEL_RANK[threshold]) return;
    let line = `${new Date().toISOString()} ${
      level.toUpperCase().padEnd(5)
    } [${this.component}] ${message}`;
    if (fields) {
      for (const [key, value] of Object.entries(fields)) line += ` ${key}=${formatValue(value)}`;
    }
    sink(line, level);
  }
}

/** Creates a logger for a component. */
export function createLogger(component: string): Logger {
  return new Logger(component);
}
