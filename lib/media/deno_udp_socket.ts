/**
 * The portable media socket backend (RTP/RTCP, RFC 3550 §11 transport) over
 * `Deno.listenDatagram` (needs `--unstable-net`): the fallback where the libc backend
 * (`ffi_udp_socket.ts`) is not available. See `udp_socket.ts` for the choice.
 *
 * Measured on loopback (Deno 2.9, one core, 172-byte datagrams): `Deno.DatagramConn.send`
 * costs ~7 µs per packet against ~10 µs for `node:dgram`'s `send`, so the media path uses
 * Deno's API. `receive()` without a buffer allocates a fresh 64 KiB array per datagram, so
 * this wrapper receives into one reusable 2 KiB buffer and copies out exactly the datagram.
 *
 * Ordering: datagrams handed to `send()` back to back without awaiting leave in REVERSE
 * order (observed with both `Deno.DatagramConn.send` and `node:dgram` in Deno 2.9: ten
 * un-awaited sends arrive 9,8,…,0). RTP receivers tolerate reordering but should not be
 * fed it, so this wrapper keeps at most one send in flight per socket and queues the rest
 * in order (sockets are per stream, so this serialises only one stream's packets).
 *
 * Per-datagram cost matters (a conference of 400 moves 40,000 datagrams a second): the
 * receive loop allocates only the copy of the datagram (and a new source address object
 * only when the source changes); a send allocates nothing of its own beyond Deno's promise
 * (the completion handlers are bound once per socket and the destination object is reused
 * while the destination stays the same).
 * @module
 */

import type { DatagramHandler, UdpAddress, UdpSocket, UdpSocketStats } from "./udp_socket.ts";

/** Largest datagram we accept; RTP over Ethernet stays well under this. */
const RECEIVE_BUFFER_SIZE = 2048;
/** Queued sends beyond this are dropped (and counted as errors): the peer is not keeping up. */
const MAX_QUEUED_SENDS = 1024;

/**
 * A UDP socket with a push-style receive loop. `send` is fire-and-forget (RTP is unreliable
 * by design; RFC 3550 §2.2): failures are counted, never thrown.
 */
export class DenoUdpSocket implements UdpSocket {
  readonly backend = "deno";
  readonly synchronousSend = false;
  readonly #conn: Deno.DatagramConn;
  readonly hostname: string;
  readonly port: number;
  #handler: DatagramHandler | undefined;
  #loop: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #inFlight = 0;
  readonly #queue: { data: Uint8Array; to: UdpAddress }[] = [];
  #idleWaiters: (() => void)[] = [];
  #sent = 0;
  #sendErrors = 0;
  #received = 0;
  /** The destination of the last send, and the options object handed to Deno for it. */
  #lastTo: UdpAddress | undefined;
  #lastSendOptions: Deno.NetAddr = { transport: "udp", hostname: "", port: 0 };
  readonly #onSent = (): void => {
    this.#sent++;
    this.#settle();
  };
  readonly #onSendError = (): void => {
    this.#sendErrors++;
    this.#settle();
  };

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    const addr = conn.addr as Deno.NetAddr;
    this.hostname = addr.hostname;
    this.port = addr.port;
  }

  /**
   * Binds `hostname:port` (port 0 = ephemeral). Throws `Deno.errors.AddrInUse` when taken.
   */
  static bind(hostname: string, port: number): DenoUdpSocket {
    return new DenoUdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port }));
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Send/receive counters. */
  get stats(): UdpSocketStats {
    return { sent: this.#sent, sendErrors: this.#sendErrors, received: this.#received };
  }

  /** Datagrams waiting behind the one in flight. */
  get queuedSends(): number {
    return this.#queue.length;
  }

  /** Sets the receiver and starts the receive loop on first call. */
  onDatagram(handler: DatagramHandler): void {
    this.#handler = handler;
    if (!this.#loop && !this.#closing) this.#loop = this.#receiveLoop();
  }

  async #receiveLoop(): Promise<void> {
    const buffer = new Uint8Array(RECEIVE_BUFFER_SIZE);
    // The source of the previous datagram: handed out again (it is immutable) while the
    // peer keeps sending from the same address, as RTP peers do.
    let from: UdpAddress | undefined;
    for (;;) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await this.#conn.receive(buffer);
      } catch {
        return; // closed (Interrupted / BadResource)
      }
      if (this.#closing) return;
      this.#received++;
      // Indexing, not destructuring: an array pattern runs the iterator protocol.
      const net = received[1] as Deno.NetAddr;
      if (from === undefined || from.port !== net.port || from.address !== net.hostname) {
        from = { address: net.hostname, port: net.port };
      }
      try {
        this.#handler?.(received[0].slice(), from);
      } catch {
        // A handler bug must not kill the receive loop; the handler owns its error reporting.
      }
    }
  }

  /**
   * Sends one datagram, in order after those already queued; never throws (errors are
   * counted in {@link stats}). `data` must not be modified afterwards.
   */
  send(data: Uint8Array, to: UdpAddress): void {
    if (this.#closing) return;
    if (this.#inFlight > 0) {
      if (this.#queue.length >= MAX_QUEUED_SENDS) {
        this.#sendErrors++;
        return;
      }
      this.#queue.push({ data, to });
      return;
    }
    this.#transmit(data, to);
  }

  #transmit(data: Uint8Array, to: UdpAddress): void {
    this.#inFlight++;
    const last = this.#lastTo;
    if (last === undefined || last.port !== to.port || last.address !== to.address) {
      this.#lastTo = to;
      this.#lastSendOptions = { transport: "udp", hostname: to.address, port: to.port };
    }
    this.#conn.send(data, this.#lastSendOptions).then(this.#onSent, this.#onSendError);
  }

  #settle(): void {
    this.#inFlight--;
    const next = this.#queue.shift();
    if (next) {
      this.#transmit(next.data, next.to);
      return;
    }
    if (this.#inFlight === 0 && this.#idleWaiters.length > 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  /** Resolves once every datagram handed to {@link send} so far has left (or failed). */
  whenIdle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops accepting sends, flushes the queue, waits for the last send, closes the socket and waits for
   * the receive loop to end (so no operation outlives the socket). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      await this.whenIdle();
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
      await this.#loop;
    })();
    return this.#closing;
  }
}
