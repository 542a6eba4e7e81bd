/**
 * The Linux media socket backend (RTP/RTCP, RFC 3550 §11 transport): libc UDP sockets
 * (`SOCK_NONBLOCK`) driven synchronously through Deno FFI (`libc_udp.ts`).
 *
 * - **Send**: one `sendto` per datagram, synchronous, so datagrams leave in call order and
 *   nothing is queued (a full socket buffer, `EAGAIN`, drops the datagram and counts an
 *   error, as a lost packet; RTP tolerates loss, RFC 3550 §2.2). The destination
 *   `sockaddr` is encoded once and reused while the destination stays the same.
 * - **Receive**: one {@link UdpPoller} per process holds an `epoll` set of every socket that
 *   has a handler. {@link UdpPoller.poll} asks `epoll_wait` (timeout 0) which are readable
 *   and drains each with `recvmmsg(MSG_DONTWAIT)` into one preallocated batch (headers,
 *   `iovec`s, source addresses and 2 KiB slots in shared `ArrayBuffer`s), handing each
 *   datagram to its handler as an exact copy with its source address (the object is reused
 *   while the source stays the same, as symmetric RTP peers do). The `MediaTicker` polls at
 *   the start of every tick, so the mixer sees what arrived before it; a timer polls every
 *   {@link POLL_INTERVAL_MS} ms between ticks (skipped when a poll just ran), so sockets
 *   outside a conference (tests, RTCP) receive too and arrival times stay within a few ms.
 *
 * Measured costs are in `bench/udp_bench.ts` and `bench/README.md`.
 * @module
 */

import {
  AF_INET,
  encodeSockaddr,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  Errno,
  familyOf,
  formatIpv4,
  formatIpv6,
  type Libc,
  libc,
  MMSGHDR_SIZE,
  MSG_DONTWAIT,
  MSG_TRUNC,
  SOCKADDR_SIZE,
} from "./libc_udp.ts";
import type { DatagramHandler, UdpAddress, UdpSocket, UdpSocketStats } from "./udp_socket.ts";

/** Largest datagram accepted; longer ones are dropped (RTP over Ethernet stays well under). */
const SLOT_SIZE = 2048;
/** Datagrams taken per `recvmmsg` call. */
const BATCH = 32;
/** Readiness events taken per `epoll_wait` call. */
const MAX_EVENTS = 256;
/** Poll period between media ticks. */
export const POLL_INTERVAL_MS = 5;
/** Offsets in `struct msghdr` / `struct mmsghdr` (64-bit Linux). */
const MSG_NAME = 0;
const MSG_NAMELEN = 8;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_FLAGS = 48;
const MSG_LEN = 56;
/** Spacing of source addresses in the batch (a `sockaddr_in6` rounded up). */
const NAME_STRIDE = 32;

const RESOLVED = Promise.resolve();

function address(pointer: Deno.PointerValue): bigint {
  return BigInt(Deno.UnsafePointer.value(pointer));
}

/**
 * The process's receive side for {@link FfiUdpSocket}s: one `epoll` set and one
 * `recvmmsg` batch; see the module documentation.
 */
export class UdpPoller {
  readonly #lib: Libc;
  readonly #epfd: number;
  readonly #events = new Uint8Array(MAX_EVENTS * EPOLL_EVENT_SIZE);
  readonly #eventView = new DataView(this.#events.buffer);
  readonly #headers = new Uint8Array(BATCH * MMSGHDR_SIZE);
  readonly #headerView = new DataView(this.#headers.buffer);
  readonly #iovecs = new Uint8Array(BATCH * 16);
  readonly #names = new Uint8Array(BATCH * NAME_STRIDE);
  readonly #nameView = new DataView(this.#names.buffer);
  readonly #slots = new Uint8Array(BATCH * SLOT_SIZE);
  readonly #sockets = new Map<number, FfiUdpSocket>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastPoll = -Infinity;
  #polling = false;
  #polls = 0;

  constructor(lib: Libc) {
    this.#lib = lib;
    this.#epfd = lib.epollCreate();
    const names = address(Deno.UnsafePointer.of(this.#names));
    const iovecs = address(Deno.UnsafePointer.of(this.#iovecs));
    const slots = address(Deno.UnsafePointer.of(this.#slots));
    const iov = new DataView(this.#iovecs.buffer);
    const h = this.#headerView;
    for (let i = 0; i < BATCH; i++) {
      iov.setBigUint64(i * 16, slots + BigInt(i * SLOT_SIZE), true);
      iov.setBigUint64(i * 16 + 8, BigInt(SLOT_SIZE), true);
      const base = i * MMSGHDR_SIZE;
      h.setBigUint64(base + MSG_NAME, names + BigInt(i * NAME_STRIDE), true);
      h.setUint32(base + MSG_NAMELEN, SOCKADDR_SIZE, true);
      h.setBigUint64(base + MSG_IOV, iovecs + BigInt(i * 16), true);
      h.setBigUint64(base + MSG_IOVLEN, 1n, true);
      // msg_control / msg_controllen stay 0: no ancillary data.
    }
  }

  /** Sockets with a handler. */
  get socketCount(): number {
    return this.#sockets.size;
  }

  /** Polls run so far (by the ticker or the timer). */
  get polls(): number {
    return this.#polls;
  }

  /** Adds a socket to the epoll set (on its first handler). */
  register(socket: FfiUdpSocket): void {
    this.#lib.epollAdd(this.#epfd, socket.fd, socket.id);
    this.#sockets.set(socket.id, socket);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => {
        if (performance.now() - this.#lastPoll >= POLL_INTERVAL_MS * 0.8) this.poll();
      }, POLL_INTERVAL_MS);
    }
  }

  /** Removes a socket (before its fd is closed); the timer stops with the last one. */
  unregister(socket: FfiUdpSocket): void {
    if (!this.#sockets.delete(socket.id)) return;
    this.#lib.epollDelete(this.#epfd, socket.fd);
    if (this.#sockets.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Delivers every datagram waiting on a registered socket now. */
  poll(): void {
    if (this.#polling || this.#sockets.size === 0) return;
    this.#polling = true;
    this.#polls++;
    this.#lastPoll = performance.now();
    try {
      const wait = this.#lib.fn.epoll_wait;
      // Level-triggered: a socket drained below stays quiet; a full event array means more.
      for (let round = 0; round < 4; round++) {
        const n = wait(this.#epfd, this.#events, MAX_EVENTS, 0);
        for (let i = 0; i < n; i++) {
          const id = this.#eventView.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET, true);
          const socket = this.#sockets.get(id);
          if (socket !== undefined) this.#drain(socket);
        }
        if (n < MAX_EVENTS) break;
      }
    } finally {
      this.#polling = false;
    }
  }

  #drain(socket: FfiUdpSocket): void {
    const recv = this.#lib.fn.recvmmsg;
    const h = this.#headerView;
    for (;;) {
      const n = recv(socket.fd, this.#headers, BATCH, MSG_DONTWAIT, null);
      if (n <= 0) return; // EAGAIN: drained (or an error the next poll meets again)
      for (let i = 0; i < n; i++) {
        const base = i * MMSGHDR_SIZE;
        h.setUint32(base + MSG_NAMELEN, SOCKADDR_SIZE, true);
        if (socket.closed) continue;
        if ((h.getInt32(base + MSG_FLAGS, true) & MSG_TRUNC) !== 0) {
          socket.countTruncated();
          continue;
        }
        const start = i * SLOT_SIZE;
        const data = this.#slots.slice(start, start + h.getUint32(base + MSG_LEN, true));
        socket.deliver(data, this.#nameView, i * NAME_STRIDE);
      }
      if (n < BATCH) return;
    }
  }
}

let poller: UdpPoller | undefined;

/** The process's poller (created on first use when `create`; undefined without libc). */
export function udpPoller(create: boolean): UdpPoller | undefined {
  if (poller === undefined && create) {
    const lib = libc();
    if (lib) poller = new UdpPoller(lib);
  }
  return poller;
}

let nextId = 1;

/**
 * Receives one datagram with its source as the kernel wrote it: a `sockaddr_in`/
 * `sockaddr_in6` at `offset` in `name` (valid only during the call). For demultiplexers
 * that key on the raw address without formatting it as text.
 */
export type RawDatagramHandler = (data: Uint8Array, name: DataView, offset: number) => void;

/** A libc UDP socket; see the module documentation. */
export class FfiUdpSocket implements UdpSocket {
  readonly backend = "ffi";
  readonly synchronousSend = true;
  readonly hostname: string;
  readonly port: number;
  /** The file descriptor (closed by {@link close}). */
  readonly fd: number;
  /** This socket's key in the poller (never reused, unlike fd numbers). */
  readonly id: number;
  readonly #lib: Libc;
  readonly #poller: UdpPoller;
  readonly #family: number;
  #handler: DatagramHandler | undefined;
  #rawHandler: RawDatagramHandler | undefined;
  #registered = false;
  #closed = false;
  #sent = 0;
  #sendErrors = 0;
  #received = 0;
  #truncated = 0;
  // The last destination and its encoded sockaddr.
  #lastTo: UdpAddress | undefined;
  readonly #dest = new Uint8Array(SOCKADDR_SIZE);
  #destLength = 0;
  // The last source address, raw (family, port, address words) and as handed out.
  #from: UdpAddress | undefined;
  #fromFamily = 0;
  #fromPort = -1;
  #fromWords = [0, 0, 0, 0];

  private constructor(lib: Libc, poller: UdpPoller, fd: number, family: number, bound: Uint8Array) {
    this.#lib = lib;
    this.#poller = poller;
    this.fd = fd;
    this.id = nextId++;
    this.#family = family;
    this.port = (bound[2]! << 8) | bound[3]!;
    this.hostname = family === AF_INET ? formatIpv4(bound, 4) : formatIpv6(bound, 8);
  }

  /**
   * Binds `hostname:port` (an IP literal; port 0 = ephemeral). Throws `Deno.errors.AddrInUse`
   * when the port is taken (as the Deno backend does), a `TypeError` for a non-literal.
   */
  static bind(hostname: string, port: number): FfiUdpSocket {
    const lib = libc();
    const poller = udpPoller(true);
    if (!lib || !poller) throw new Error("libc UDP sockets are not available");
    const family = familyOf(hostname);
    const sockaddr = new Uint8Array(SOCKADDR_SIZE);
    const length = encodeSockaddr(family, hostname, port, sockaddr);
    if (length === 0) throw new TypeError(`not an IP address and port: ${hostname}:${port}`);
    const where = `${hostname}:${port}`;
    const fd = lib.udpSocket(family, where);
    try {
      lib.bind(fd, sockaddr, length, where);
      lib.localAddress(fd, sockaddr);
    } catch (error) {
      lib.fn.close(fd);
      throw error;
    }
    return new FfiUdpSocket(lib, poller, fd, family, sockaddr);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get stats(): UdpSocketStats {
    return { sent: this.#sent, sendErrors: this.#sendErrors, received: this.#received };
  }

  /** Datagrams dropped because they were longer than 2 KiB. */
  get truncated(): number {
    return this.#truncated;
  }

  /** Always 0: sends are synchronous. */
  get queuedSends(): number {
    return 0;
  }

  onDatagram(handler: DatagramHandler): void {
    if (this.#closed) return;
    this.#handler = handler;
    this.#rawHandler = undefined;
    if (!this.#registered) {
      this.#poller.register(this);
      this.#registered = true;
    }
  }

  /** Like {@link onDatagram}, with the raw source address (replaces the other handler). */
  onRawDatagram(handler: RawDatagramHandler): void {
    if (this.#closed) return;
    this.#rawHandler = handler;
    this.#handler = undefined;
    if (!this.#registered) {
      this.#poller.register(this);
      this.#registered = true;
    }
  }

  /** The address family the socket was opened with (`AF_INET` or `AF_INET6`). */
  get family(): number {
    return this.#family;
  }

  send(data: Uint8Array, to: UdpAddress): void {
    if (this.#closed) return;
    if (to !== this.#lastTo) {
      const last = this.#lastTo;
      if (last === undefined || last.port !== to.port || last.address !== to.address) {
        this.#destLength = encodeSockaddr(this.#family, to.address, to.port, this.#dest);
      }
      this.#lastTo = to;
    }
    if (this.#destLength === 0) {
      this.#sendErrors++; // not an IP literal of a usable family
      return;
    }
    const sendto = this.#lib.sendto;
    let r = sendto(this.fd, data, data.length, MSG_DONTWAIT, this.#dest, this.#destLength);
    if (r < 0 && this.#lib.errno() === Errno.EINTR) {
      r = sendto(this.fd, data, data.length, MSG_DONTWAIT, this.#dest, this.#destLength);
    }
    if (r < 0) this.#sendErrors++;
    else this.#sent++;
  }

  whenIdle(): Promise<void> {
    return RESOLVED;
  }

  close(): Promise<void> {
    if (this.#closed) return RESOLVED;
    this.#closed = true;
    this.#handler = undefined;
    this.#rawHandler = undefined;
    if (this.#registered) this.#poller.unregister(this);
    this.#lib.fn.close(this.fd);
    return RESOLVED;
  }

  /** @internal The poller hands over one received datagram (`name` at `offset`). */
  deliver(data: Uint8Array, name: DataView, offset: number): void {
    this.#received++;
    const raw = this.#rawHandler;
    if (raw !== undefined) {
      try {
        raw(data, name, offset);
      } catch {
        // As below: a handler bug must not stop the poll.
      }
      return;
    }
    const family = name.getUint16(offset, true);
    const port = name.getUint16(offset + 2, false);
    const w = this.#fromWords;
    let from = this.#from;
    if (family === AF_INET) {
      const a = name.getUint32(offset + 4, false);
      if (
        from === undefined || family !== this.#fromFamily || port !== this.#fromPort ||
        a !== w[0]
      ) {
        from = { address: formatIpv4(new Uint8Array(name.buffer), offset + 4), port };
        this.#remember(from, family, port, a, 0, 0, 0);
      }
    } else {
      const a = name.getUint32(offset + 8, false);
      const b = name.getUint32(offset + 12, false);
      const c = name.getUint32(offset + 16, false);
      const d = name.getUint32(offset + 20, false);
      if (
        from === undefined || family !== this.#fromFamily || port !== this.#fromPort ||
        a !== w[0] || b !== w[1] || c !== w[2] || d !== w[3]
      ) {
        from = { address: formatIpv6(new Uint8Array(name.buffer), offset + 8), port };
        this.#remember(from, family, port, a, b, c, d);
      }
    }
    try {
      this.#handler?.(data, from);
    } catch {
      // A handler bug must not stop the poll; the handler owns its error reporting.
    }
  }

  #remember(
    from: UdpAddress,
    family: number,
    port: number,
    a: number,
    b: number,
    c: number,
    d: number,
  ): void {
    this.#from = from;
    this.#fromFamily = family;
    this.#fromPort = port;
    const w = this.#fromWords;
    w[0] = a;
    w[1] = b;
    w[2] = c;
    w[3] = d;
  }

  /** @internal Counts a datagram dropped for length. */
  countTruncated(): void {
    this.#truncated++;
  }
}
