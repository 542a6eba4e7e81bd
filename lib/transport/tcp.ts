/**
 * Stream transports (RFC 3261 §18.3): a TCP listener, outgoing TCP connections, and the
 * {@link StreamConnection} that frames a byte stream into SIP messages with lib/sip's
 * {@link StreamFramer}, answers RFC 5626 §3.5.1 CRLFCRLF keep-alives with CRLF, serializes
 * writes, and closes itself when idle. TLS (tls.ts) reuses the same connection class.
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { type FramerEvent, type FramerLimits, StreamFramer } from "../sip/framer.ts";
import { bareHost, type HostPort, type TransportName } from "./flow.ts";

const CRLF = new Uint8Array([13, 10]);
const READ_BUFFER_BYTES = 64 * 1024;

/** What a connection reports to its owner (the transport layer). */
export interface StreamConnectionEvents {
  /** One complete framed message (RFC 3261 §18.3). */
  onMessage(bytes: Uint8Array, connection: StreamConnection): void;
  /**
   * The stream cannot be framed (`reason` from the framer). `unframed` holds the bytes of
   * the message being framed when the error was found (possibly partial), so the owner can
   * try a best-effort error response. The connection closes once the returned promise
   * settles.
   */
  onFramingError(
    reason: string,
    unframed: Uint8Array,
    connection: StreamConnection,
  ): Promise<void> | void;
  /** The connection closed (peer, idle timeout, error or owner); called once. */
  onClose(connection: StreamConnection): void;
}

/** Settings of one stream connection. */
export interface StreamConnectionOptions {
  /** Identifier unique within the transport layer (the Flow's `connectionId`). */
  readonly id: number;
  /** `TCP` or `TLS`. */
  readonly transport: TransportName;
  /** True when the peer opened the connection. */
  readonly inbound: boolean;
  /** Framer limits (header section, header lines, body size). */
  readonly limits: FramerLimits;
  /** Close after this long without traffic in either direction; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Time source for the idle timer. */
  readonly clock: Clock;
  /** Receives messages, framing errors and the close. */
  readonly events: StreamConnectionEvents;
  /** Debug logging. */
  readonly logger: Logger;
}

/**
 * One TCP or TLS connection carrying SIP (RFC 3261 §18.3). Reading starts with
 * {@link StreamConnection.start}; {@link StreamConnection.write} queues bytes so that
 * messages never interleave.
 */
export class StreamConnection {
  /** The Flow `connectionId`. */
  readonly id: number;
  /** `TCP` or `TLS`. */
  readonly transport: TransportName;
  /** True when the peer opened the connection. */
  readonly inbound: boolean;
  /** Our end. */
  readonly local: HostPort;
  /** The peer's end. */
  readonly remote: HostPort;
  readonly #conn: Deno.Conn;
  readonly #framer: StreamFramer;
  readonly #options: StreamConnectionOptions;
  readonly #logger: Logger;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #reading: Promise<void> | undefined;
  #lastActivity: number;
  #idleTimer: TimerHandle | undefined;
  /** Bytes pushed to the framer and not yet returned in an event, as a chunk list. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  /** Wraps an open Deno connection; call {@link start} to begin reading. */
  constructor(conn: Deno.Conn, options: StreamConnectionOptions) {
    this.#conn = conn;
    // SIP messages are written whole; Nagle's algorithm would hold a NOTIFY that follows a
    // 200 until the peer's delayed ACK (~40 ms per exchange).
    if ("setNoDelay" in conn && typeof conn.setNoDelay === "function") {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not a TCP socket (or already closed): nothing to tune.
      }
    }
    this.#options = options;
    this.#logger = options.logger;
    this.id = options.id;
    this.transport = options.transport;
    this.inbound = options.inbound;
    this.local = toHostPort(conn.localAddr);
    this.remote = toHostPort(conn.remoteAddr);
    this.#framer = new StreamFramer(options.limits);
    this.#lastActivity = options.clock.now();
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Starts the read loop and the idle timer. */
  start(): void {
    if (this.#reading !== undefined) return;
    this.#armIdle();
    this.#reading = this.#readLoop();
  }

  /** Resolves when the read loop has finished (after close). */
  get finished(): Promise<void> {
    return this.#reading ?? Promise.resolve();
  }

  /**
   * Queues bytes for writing; resolves when all were written. Rejects (and closes the
   * connection) on a write error or when the connection is already closed.
   */
  write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.NotConnected("connection closed"));
    this.#touch();
    const next = this.#writing.then(async () => {
      if (this.#closed) throw new Deno.errors.NotConnected("connection closed");
      let offset = 0;
      while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
    });
    this.#writing = next.catch((error: unknown) => {
      this.#logger.debug("write failed, closing", { conn: this.id, error: errorText(error) });
      this.close();
    });
    return next;
  }

  /** Closes the connection (idempotent); the owner is told through `onClose`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#idleTimer?.cancel();
    this.#idleTimer = undefined;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or by a failed read.
    }
    this.#options.events.onClose(this);
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (!this.#closed) {
        let n: number | null;
        try {
          n = await this.#conn.read(buf);
        } catch (error) {
          if (!this.#closed) {
            this.#logger.debug("read failed", { conn: this.id, error: errorText(error) });
          }
          break;
        }
        if (n === null) break;
        if (n === 0) continue;
        this.#touch();
        const chunk = buf.slice(0, n);
        this.#pending.push(chunk);
        this.#pendingBytes += n;
        const events = this.#framer.push(chunk);
        if (await this.#dispatch(events)) break;
        this.#trimPending(this.#framer.buffered);
      }
    } finally {
      this.close();
    }
  }

  /** Handles framer events in order; returns true when the connection must close. */
  async #dispatch(events: FramerEvent[]): Promise<boolean> {
    for (const event of events) {
      switch (event.kind) {
        case "message":
          this.#options.events.onMessage(event.bytes, this);
          break;
        case "ping":
          // RFC 5626 §3.5.1: "When a server receives a double CRLF on a flow, it MUST
          // respond with a single CRLF."
          this.write(CRLF).catch(() => {});
          break;
        case "pong":
          break; // RFC 3261 §7.5: stray CRLFs between messages are ignored.
        case "error": {
          const unframed = this.#unframed(events);
          this.#logger.debug("framing error, closing connection", {
            conn: this.id,
            remote: `${this.remote.host}:${this.remote.port}`,
            reason: event.reason,
          });
          try {
            await this.#options.events.onFramingError(event.reason, unframed, this);
          } catch (error) {
            this.#logger.debug("framing error handler failed", { error: errorText(error) });
          }
          await this.#writing;
          return true;
        }
      }
    }
    return false;
  }

  /** Keeps only the last `keep` bytes of the pending chunk list. */
  #trimPending(keep: number): void {
    if (keep === 0) {
      this.#pending = [];
      this.#pendingBytes = 0;
      return;
    }
    while (this.#pending.length > 0 && this.#pendingBytes - this.#pending[0]!.length >= keep) {
      this.#pendingBytes -= this.#pending.shift()!.length;
    }
    if (this.#pendingBytes > keep) {
      this.#pending[0] = this.#pending[0]!.subarray(this.#pendingBytes - keep);
      this.#pendingBytes = keep;
    }
  }

  /**
   * The bytes of the message the framer rejected: the pending bytes minus the messages and
   * keep-alives it returned before the error (each preceded by skipped CR/LF).
   */
  #unframed(events: FramerEvent[]): Uint8Array {
    const all = new Uint8Array(this.#pendingBytes);
    let at = 0;
    for (const part of this.#pending) {
      all.set(part, at);
      at += part.length;
    }
    let pos = 0;
    const skipLineEnds = () => {
      while (pos < all.length && (all[pos] === 13 || all[pos] === 10)) pos++;
    };
    for (const event of events) {
      if (event.kind === "message") {
        skipLineEnds();
        pos += event.bytes.length;
      }
    }
    skipLineEnds();
    this.#pending = [];
    this.#pendingBytes = 0;
    return all.subarray(Math.min(pos, all.length));
  }

  #touch(): void {
    this.#lastActivity = this.#options.clock.now();
  }

  /** Idle timer: re-arms for the remaining time instead of on every packet. */
  #armIdle(): void {
    const timeout = this.#options.idleTimeoutMs;
    if (timeout <= 0 || this.#closed) return;
    const remaining = this.#lastActivity + timeout - this.#options.clock.now();
    this.#idleTimer = this.#options.clock.setTimer(Math.max(0, remaining), () => {
      this.#idleTimer = undefined;
      if (this.#closed) return;
      if (this.#options.clock.now() - this.#lastActivity >= timeout) {
        this.#logger.debug("idle connection closed", { conn: this.id, idleMs: timeout });
        this.close();
      } else {
        this.#armIdle();
      }
    });
  }
}

/** Converts a Deno address to a {@link HostPort} (non-network addresses become port 0). */
export function toHostPort(addr: Deno.Addr): HostPort {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return { host: addr.hostname, port: addr.port };
  }
  return { host: "", port: 0 };
}

/** A short text for a thrown value, for one-line debug logs (never a stack trace). */
export function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * A TCP listener (RFC 3261 §18: "all SIP elements MUST implement UDP and TCP") handing each
 * accepted connection to `accept`.
 */
export class TcpListener {
  /** The bound address. */
  readonly local: HostPort;
  readonly #listener: Deno.Listener;
  readonly #loop: Promise<void>;
  #closed = false;

  /** Wraps a Deno listener (TCP or TLS) and starts accepting. */
  constructor(listener: Deno.Listener, accept: (conn: Deno.Conn) => void, logger: Logger) {
    this.#listener = listener;
    this.local = toHostPort(listener.addr);
    this.#loop = (async () => {
      for (;;) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch (error) {
          if (this.#closed || error instanceof Deno.errors.BadResource) return;
          logger.debug("accept failed", { error: errorText(error) });
          continue;
        }
        accept(conn);
      }
    })();
  }

  /** Opens a TCP listener on `host:port` (port 0: ephemeral). */
  static listen(
    host: string,
    port: number,
    accept: (conn: Deno.Conn) => void,
    logger: Logger,
  ): TcpListener {
    const listener = Deno.listen({ hostname: bareHost(host), port, transport: "tcp" });
    return new TcpListener(listener, accept, logger);
  }

  /** Stops accepting; resolves when the accept loop has ended. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#loop;
  }
}

/**
 * Opens an outgoing TCP connection (RFC 3261 §18.1.1), aborting after `timeoutMs` on the
 * injected clock.
 */
export async function connectTcp(
  host: string,
  port: number,
  timeoutMs: number,
  clock: Clock,
): Promise<Deno.Conn> {
  const abort = new AbortController();
  const timer = timeoutMs > 0 ? clock.setTimer(timeoutMs, () => abort.abort()) : undefined;
  try {
    return await Deno.connect({ hostname: bareHost(host), port, signal: abort.signal });
  } catch (error) {
    if (abort.signal.aborted) {
      throw new Deno.errors.TimedOut(`connect to ${host}:${port} timed out`);
    }
    throw error;
  } finally {
    timer?.cancel();
  }
}
