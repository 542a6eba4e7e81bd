/**
 * Socket-level helpers for transport and transaction tests: a queue of messages a
 * TransportLayer delivered, a raw TCP peer that frames what it reads, a raw UDP peer, and a
 * log capture.
 * @module
 */

import { getLogLevel, type LogLevel, setLogLevel, setLogSink } from "../../lib/config/log.ts";
import { StreamFramer } from "../../lib/sip/framer.ts";
import type { SipMessage } from "../../lib/sip/message.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import type { Flow } from "../../lib/transport/flow.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Collects `(message, flow)` pairs and hands them out in order. */
export class MessageQueue {
  readonly #items: Array<[SipMessage, Flow]> = [];
  readonly #waiters: Array<(item: [SipMessage, Flow]) => void> = [];

  /** Listener to register with `TransportLayer.onMessage`. */
  readonly push = (message: SipMessage, flow: Flow): void => {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter([message, flow]);
    else this.#items.push([message, flow]);
  };

  /** The next message (waits until one arrives). */
  next(): Promise<[SipMessage, Flow]> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Messages received and not yet taken. */
  get size(): number {
    return this.#items.length;
  }
}

/** A raw TCP client that writes text and reads framed messages or raw bytes. */
export class RawStreamPeer {
  readonly conn: Deno.Conn;
  readonly #framer = new StreamFramer();
  readonly #queue: Array<{ kind: string; bytes?: Uint8Array }> = [];
  #eof = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects to `127.0.0.1:port`. */
  static async connect(port: number): Promise<RawStreamPeer> {
    return new RawStreamPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Waits for the next connection on `listener` (a peer that something connected to). */
  static async accept(listener: Deno.Listener): Promise<RawStreamPeer> {
    return new RawStreamPeer(await listener.accept());
  }

  /** Our local port. */
  get port(): number {
    return (this.conn.localAddr as Deno.NetAddr).port;
  }

  /** Writes all of `data`. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /**
   * The next framer event (`message` with bytes, `pong`, `ping`), or `eof` once the server
   * closed the connection. A lone CRLF (the server's keep-alive answer) becomes `pong` only
   * when a later byte arrives, so never wait here for a pong: that waits forever. Use
   * {@link readExact} for keep-alive answers.
   */
  async nextEvent(): Promise<{ kind: string; bytes?: Uint8Array }> {
    const buf = new Uint8Array(65536);
    while (this.#queue.length === 0) {
      if (this.#eof) return { kind: "eof" };
      let n: number | null;
      try {
        n = await this.conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        this.#eof = true;
        continue;
      }
      for (const ev of this.#framer.push(buf.slice(0, n))) {
        this.#queue.push(ev.kind === "message" ? { kind: "message", bytes: ev.bytes } : ev);
      }
    }
    return this.#queue.shift()!;
  }

  /**
   * Reads exactly `n` raw bytes, bypassing the framer (for keep-alive pongs, which a framer
   * holds back until the next byte arrives). Do not mix with {@link nextEvent} on one peer.
   */
  async readExact(n: number): Promise<string> {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const got = await this.conn.read(out.subarray(at));
      if (got === null) throw new Error(`connection closed after ${at} of ${n} bytes`);
      at += got;
    }
    return decoder.decode(out);
  }

  /** The next SIP message; throws if the connection closes or something else arrives. */
  async nextMessage(): Promise<SipMessage> {
    const ev = await this.nextEvent();
    if (ev.kind !== "message" || ev.bytes === undefined) {
      throw new Error(`expected message, got ${ev.kind}`);
    }
    return parseMessage(ev.bytes);
  }

  /** Closes the socket (idempotent). */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A raw UDP peer on 127.0.0.1. */
export class RawDatagramPeer {
  readonly #conn: Deno.DatagramConn;

  constructor() {
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  }

  /** Our port. */
  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  /** Sends one datagram to `127.0.0.1:port`. */
  async send(data: string | Uint8Array, port: number): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    await this.#conn.send(bytes, { transport: "udp", hostname: "127.0.0.1", port });
  }

  /** The next datagram as text, with its source port. */
  async receive(): Promise<{ text: string; port: number }> {
    const [data, addr] = await this.#conn.receive();
    return { text: decoder.decode(data), port: (addr as Deno.NetAddr).port };
  }

  /** Closes the socket. */
  close(): void {
    this.#conn.close();
  }
}

/** Captures log lines at `level` and above until `restore()`. */
export function captureLogs(level: LogLevel = "debug"): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  const previousLevel = getLogLevel();
  const previousSink = setLogSink((line) => lines.push(line));
  setLogLevel(level);
  return {
    lines,
    restore() {
      setLogSink(previousSink);
      setLogLevel(previousLevel);
    },
  };
}
