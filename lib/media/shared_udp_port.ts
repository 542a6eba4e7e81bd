/**
 * One UDP media port shared by many streams (as Jitsi's single UDP port or mediasoup's
 * WebRtcServer): every stream gets a virtual {@link UdpSocket} ({@link SharedPortStream})
 * over the same bound socket, and received datagrams are demultiplexed by their source
 * transport address. Sends of all streams are batched into one `sendmmsg` per media tick
 * (`udp_send_batch.ts`) on the libc backend; receives already take one `recvmmsg` per 32
 * datagrams. RTP and RTCP keep RFC 3550 §11 ports: RTP (and multiplexed RTCP, RFC 5761) on
 * the shared port, RTCP of non-multiplexing peers on a second shared port (port + 1).
 *
 * **Demultiplexing rule** (in this order; the first that applies wins):
 * 1. *Exact source*: the datagram's source `ip:port` was registered for a stream — the
 *    peer's signalled address ({@link SharedPortStream.expectSource}: SDP `c=`/`m=`, or
 *    `a=rtcp`), or a source learned for it by rules 2–4.
 * 2. *Same SSRC* (an RTP packet's SSRC, RFC 3550 §5.1, or the sender SSRC of RTCP): the
 *    unknown source sends the SSRC a stream last received from its own source (and no other
 *    stream claims that SSRC). This follows a NAT rebinding of a peer already heard.
 * 3. *Same IP, first packet*: exactly one stream waiting for its first datagram (within
 *    the last {@link SharedUdpPortOptions.learnWindowMs}) signalled the source's IP.
 * 4. *Unusable signalled address*: exactly one waiting stream (same window) signalled
 *    `0.0.0.0`/`::` or a private address (RFC 1918, RFC 6598, RFC 4193, link-local) — a
 *    peer behind NAT that did not know its public address.
 * Otherwise the datagram is dropped and counted ({@link SharedPortStats.unmatched}); it is
 * never handed to a stream it could belong to only by guess. A source learned by rules 2–4
 * is kept for the stream (at most 4 per stream) until its signalled address changes or it
 * closes.
 *
 * *One source, several streams*: when live streams signalled the same exact `ip:port` (one
 * device with several calls from one port — SIPp does that for all its calls), rule 1
 * splits them by SSRC: a known SSRC goes to its stream, a new SSRC to the earliest
 * registered of them that has none yet, else it is dropped. The calls of that one device
 * may be swapped with each other; no other device is ever involved (`sharedSources`).
 *
 * **Limits** (use a port range when they matter): two or more peers behind NAT that do not
 * send from their signalled address and whose first packets are waited for at the same
 * time are ambiguous for rules 3–4, so none of them is heard until the window expires for
 * the others; a peer that changes its source address *and* its SSRC at once is lost until
 * it signals again (re-INVITE); anyone can send to the public port, so a stranger whose
 * datagram arrives first for a lone waiting stream of rule 4 takes its place (as latching
 * does on a port of its own).
 * @module
 */

import { AF_INET, AF_INET6, encodeSockaddr, formatIpv6, libc, SOCKADDR_SIZE } from "./libc_udp.ts";
import { FfiUdpSocket } from "./ffi_udp_socket.ts";
import { SendBatch } from "./udp_send_batch.ts";
import {
  type DatagramHandler,
  type UdpAddress,
  type UdpBackendChoice,
  type UdpBackendName,
  UdpSocket,
  type UdpSocketStats,
} from "./udp_socket.ts";

/** A source transport address as a map key: `ip32 × 65536 + port` for IPv4, else text. */
type SourceKey = number | string;

const RESOLVED = Promise.resolve();
const MAX_LEARNED = 4;
/**
 * Kernel buffer asked for the shared socket (`SO_RCVBUF`/`SO_SNDBUF`, capped by the
 * `net.core.rmem_max`/`wmem_max` sysctls): the default ≈208 KiB holds ≈270 small datagrams,
 * about 13 ms of 400 callers' arrivals, and less than one tick's `sendmmsg` on a real NIC.
 */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

function rawKey(name: DataView, offset: number): SourceKey {
  const family = name.getUint16(offset, true);
  const port = name.getUint16(offset + 2, false);
  if (family === AF_INET) return name.getUint32(offset + 4, false) * 65536 + port;
  const a = name.getUint32(offset + 8, false);
  const b = name.getUint32(offset + 12, false);
  const c = name.getUint32(offset + 16, false);
  if (a === 0 && b === 0 && c === 0xffff) {
    return name.getUint32(offset + 20, false) * 65536 + port;
  }
  return `${formatIpv6(new Uint8Array(name.buffer, name.byteOffset), offset + 8)}|${port}`;
}

const keyScratch = new Uint8Array(SOCKADDR_SIZE);
const keyView = new DataView(keyScratch.buffer);

/** The key of a text address, or undefined when it is not an IP literal. */
function addressKey(address: UdpAddress): SourceKey | undefined {
  if (encodeSockaddr(AF_INET6, address.address, address.port, keyScratch) === 0) return undefined;
  return rawKey(keyView, 0);
}

function ipOf(key: SourceKey): number | string {
  return typeof key === "number" ? Math.floor(key / 65536) : key.slice(0, key.lastIndexOf("|"));
}

/** True for a signalled address a peer behind NAT would give (rule 4). */
function isUnusableAddress(address: string): boolean {
  const a = address.toLowerCase();
  if (a === "0.0.0.0" || a === "::") return true;
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.\d+\.\d+$/.exec(a);
  if (v4) {
    const x = Number(v4[1]);
    const y = Number(v4[2]);
    return x === 10 || (x === 172 && y >= 16 && y <= 31) || (x === 192 && y === 168) ||
      (x === 100 && y >= 64 && y <= 127) || (x === 169 && y === 254);
  }
  return /^f[cd]/.test(a) || /^fe[89ab]/.test(a);
}

/** The SSRC of an RTP packet, or the sender SSRC of an RTCP packet (RFC 5761 §4). */
function ssrcOf(data: Uint8Array): number | undefined {
  if (data.length < 8 || (data[0]! & 0xc0) !== 0x80) return undefined;
  const pt = data[1]!;
  const at = pt >= 192 && pt <= 223 ? 4 : 8;
  if (data.length < at + 4) return undefined;
  return ((data[at]! << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!) >>> 0;
}

/** Counters of a {@link SharedUdpPort}. */
export interface SharedPortStats {
  /** Datagrams received on the shared socket. */
  readonly received: number;
  /** Datagrams from a source no stream could claim (dropped). */
  readonly unmatched: number;
  /** Sources learned by rules 2–4. */
  readonly learned: number;
  /** Exact sources signalled by more than one stream (split by SSRC). */
  readonly sharedSources: number;
  /** Open streams. */
  readonly streams: number;
}

/** Options of {@link SharedUdpPort.bind}. */
export interface SharedUdpPortOptions {
  /** Socket implementation (the `media-socket` setting). Default `auto`. */
  readonly backend?: UdpBackendChoice;
  /** How long a stream waits for its first datagram as a rule 3–4 candidate (default 10 s). */
  readonly learnWindowMs?: number;
  /** Monotonic time in ms for the learn window (default `performance.now`). */
  readonly now?: () => number;
}

interface Route {
  readonly from: UdpAddress;
  /** In registration order; more than one: a source shared by several streams. */
  readonly streams: SharedPortStream[];
  /** SSRC → stream, for a shared source. */
  bySsrc: Map<number, SharedPortStream> | undefined;
}

/** One bound socket shared by many streams; see the module documentation. */
export class SharedUdpPort {
  /** The bound socket (closed by {@link close}). */
  readonly socket: UdpSocket;
  /** The kernel receive buffer granted (libc backend; 0 when unknown or Deno sockets). */
  readonly receiveBufferBytes: number = 0;
  readonly #batch: SendBatch | undefined;
  readonly #family: number;
  readonly #learnWindowMs: number;
  readonly #now: () => number;
  readonly #streams = new Set<SharedPortStream>();
  readonly #routes = new Map<SourceKey, Route>();
  /** Streams that have not received a datagram yet. */
  readonly #waiting = new Set<SharedPortStream>();
  /** SSRC → the stream that last received it (null: claimed by two). */
  readonly #ssrcs = new Map<number, SharedPortStream | null>();
  #received = 0;
  #unmatched = 0;
  #learned = 0;
  #sharedSources = 0;

  private constructor(socket: UdpSocket, options: SharedUdpPortOptions) {
    this.socket = socket;
    this.#learnWindowMs = options.learnWindowMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
    const lib = libc();
    if (socket instanceof FfiUdpSocket && lib) {
      // One socket carries every stream: room for a tick's batch and a few ms of arrivals.
      this.receiveBufferBytes = lib.setBufferSizes(socket.fd, SOCKET_BUFFER_BYTES);
      this.#batch = new SendBatch(lib, socket.fd);
      this.#family = socket.family;
      socket.onRawDatagram((data, name, offset) => this.#receive(data, rawKey(name, offset)));
    } else {
      this.#family = socket.hostname.includes(":") ? AF_INET6 : AF_INET;
      socket.onDatagram((data, from) => {
        const key = addressKey(from);
        if (key === undefined) this.#unmatched++;
        else this.#receive(data, key, from);
      });
    }
  }

  /** Binds `hostname:port`; throws `Deno.errors.AddrInUse` when it is taken. */
  static bind(hostname: string, port: number, options: SharedUdpPortOptions = {}): SharedUdpPort {
    return new SharedUdpPort(UdpSocket.bind(hostname, port, options.backend ?? "auto"), options);
  }

  /** The bound port. */
  get port(): number {
    return this.socket.port;
  }

  /** Counters. */
  get stats(): SharedPortStats {
    return {
      received: this.#received,
      unmatched: this.#unmatched,
      learned: this.#learned,
      sharedSources: this.#sharedSources,
      streams: this.#streams.size,
    };
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** `sendmmsg` calls, datagrams and refusals of the send batch (libc backend only). */
  get batchStats(): SendBatch["stats"] | undefined {
    return this.#batch?.stats;
  }

  /** A new virtual socket on this port (`sibling`: the RTP stream of an RTCP stream). */
  openStream(sibling?: SharedPortStream): SharedPortStream {
    const stream = new SharedPortStream(this, this.#family, this.#batch, sibling);
    this.#streams.add(stream);
    return stream;
  }

  /** Sends what is batched now. */
  flush(): void {
    this.#batch?.flush();
  }

  /** Closes the socket (every stream first). */
  async close(): Promise<void> {
    for (const stream of [...this.#streams]) void stream.close();
    this.#batch?.flush();
    this.#batch?.discard();
    await this.socket.close();
  }

  /** @internal A stream's signalled source changed. */
  register(stream: SharedPortStream, key: SourceKey | undefined, from: UdpAddress | undefined) {
    this.#forget(stream);
    stream.waitingSince = this.#now();
    this.#waiting.add(stream);
    if (key === undefined || from === undefined) return;
    const route = this.#routes.get(key);
    if (route === undefined) {
      this.#routes.set(key, { from, streams: [stream], bySsrc: undefined });
    } else {
      if (route.streams.length === 1) this.#sharedSources++;
      route.streams.push(stream);
      route.bySsrc ??= new Map();
    }
    stream.sourceKeys.push(key);
  }

  /** @internal A stream closed. */
  unregister(stream: SharedPortStream): void {
    this.#forget(stream);
    this.#waiting.delete(stream);
    this.#streams.delete(stream);
  }

  #removeRoute(stream: SharedPortStream, key: SourceKey): void {
    const route = this.#routes.get(key);
    if (route === undefined) return;
    const at = route.streams.indexOf(stream);
    if (at < 0) return;
    route.streams.splice(at, 1);
    if (route.streams.length === 0) {
      this.#routes.delete(key);
      return;
    }
    if (route.bySsrc !== undefined) {
      for (const [ssrc, s] of route.bySsrc) if (s === stream) route.bySsrc.delete(ssrc);
      if (route.streams.length === 1) route.bySsrc = undefined;
    }
  }

  #forget(stream: SharedPortStream): void {
    for (const key of stream.sourceKeys) this.#removeRoute(stream, key);
    stream.sourceKeys.length = 0;
    stream.splitSsrc = undefined;
    if (stream.lastSsrc !== undefined) this.#unclaim(stream, stream.lastSsrc);
    stream.lastSsrc = undefined;
  }

  /** Drops `stream`'s claim (an ambiguous claim goes too: nobody is indexed by it then). */
  #unclaim(stream: SharedPortStream, ssrc: number): void {
    const holder = this.#ssrcs.get(ssrc);
    if (holder === stream || holder === null) this.#ssrcs.delete(ssrc);
  }

  /** @internal `stream` (or its RTP sibling) received `ssrc` from a known source. */
  claimSsrc(stream: SharedPortStream, ssrc: number): void {
    const previous = stream.lastSsrc;
    if (previous === ssrc) return;
    if (previous !== undefined) this.#unclaim(stream, previous);
    stream.lastSsrc = ssrc;
    const holder = this.#ssrcs.get(ssrc);
    if (holder === undefined) this.#ssrcs.set(ssrc, stream);
    else if (holder !== stream) this.#ssrcs.set(ssrc, null);
  }

  #receive(data: Uint8Array, key: SourceKey, from?: UdpAddress): void {
    this.#received++;
    let route = this.#routes.get(key);
    let stream: SharedPortStream | undefined;
    if (route === undefined) {
      stream = this.#match(data, key);
      if (stream === undefined) {
        this.#unmatched++;
        return;
      }
      route = this.#learn(stream, key, from);
    } else if (route.streams.length === 1) {
      stream = route.streams[0]!;
    } else {
      stream = this.#split(route, data);
      if (stream === undefined) {
        this.#unmatched++;
        return;
      }
    }
    if (stream.waitingSince !== undefined) {
      stream.waitingSince = undefined;
      this.#waiting.delete(stream);
    }
    const ssrc = ssrcOf(data);
    if (ssrc !== undefined && ssrc !== stream.lastSsrc) {
      this.claimSsrc(stream, ssrc);
      if (stream.sibling === undefined) {
        stream.rtcpSibling?.shared.claimSsrc(stream.rtcpSibling, ssrc);
      }
    }
    stream.deliver(data, route.from);
  }

  /** A source shared by several streams: by SSRC, a new one to the first stream without. */
  #split(route: Route, data: Uint8Array): SharedPortStream | undefined {
    const ssrc = ssrcOf(data);
    if (ssrc === undefined) return undefined;
    const known = route.bySsrc!.get(ssrc);
    if (known !== undefined) return known;
    for (const stream of route.streams) {
      if (stream.splitSsrc === undefined) {
        stream.splitSsrc = ssrc;
        route.bySsrc!.set(ssrc, stream);
        return stream;
      }
    }
    return undefined;
  }

  #match(data: Uint8Array, key: SourceKey): SharedPortStream | undefined {
    const ssrc = ssrcOf(data);
    if (ssrc !== undefined) {
      const owner = this.#ssrcs.get(ssrc);
      if (owner) return owner; // rule 2 (null: ambiguous)
    }
    if (this.#waiting.size === 0) return undefined;
    const ip = ipOf(key);
    const since = this.#now() - this.#learnWindowMs;
    let sameIp: SharedPortStream | undefined;
    let sameIpCount = 0;
    let unusable: SharedPortStream | undefined;
    let unusableCount = 0;
    for (const stream of this.#waiting) {
      if ((stream.waitingSince ?? -Infinity) < since) continue;
      if (stream.expectedIp !== undefined && stream.expectedIp === ip) {
        sameIp = stream;
        sameIpCount++;
      } else if (stream.expectedUnusable) {
        unusable = stream;
        unusableCount++;
      }
    }
    if (sameIpCount === 1) return sameIp; // rule 3
    if (sameIpCount === 0 && unusableCount === 1) return unusable; // rule 4
    return undefined;
  }

  #learn(stream: SharedPortStream, key: SourceKey, from: UdpAddress | undefined): Route {
    this.#learned++;
    const keys = stream.sourceKeys;
    const signalled = stream.signalledKey;
    // Keep the signalled source; drop the oldest learned one beyond the limit.
    const learnedKeys = keys.filter((k) => k !== signalled);
    if (learnedKeys.length >= MAX_LEARNED) {
      const oldest = learnedKeys[0]!;
      keys.splice(keys.indexOf(oldest), 1);
      this.#removeRoute(stream, oldest);
    }
    const route: Route = { from: from ?? sourceAddress(key), streams: [stream], bySsrc: undefined };
    this.#routes.set(key, route);
    keys.push(key);
    return route;
  }
}

/** The text address of a key (formatted once, when a source is learned). */
function sourceAddress(key: SourceKey): UdpAddress {
  if (typeof key === "string") {
    const bar = key.lastIndexOf("|");
    return { address: key.slice(0, bar), port: Number(key.slice(bar + 1)) };
  }
  const ip = Math.floor(key / 65536);
  return {
    address: `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`,
    port: key % 65536,
  };
}

/**
 * One stream's virtual socket on a {@link SharedUdpPort}: receives what the port's rule
 * assigns to it; sends through the port's batch. Closing it leaves the port open.
 */
export class SharedPortStream implements UdpSocket {
  readonly backend: UdpBackendName;
  readonly shared: SharedUdpPort;
  /** The RTP stream when this is an RTCP stream (port + 1). */
  readonly sibling: SharedPortStream | undefined;
  /** The RTCP stream of this RTP stream, if any. */
  rtcpSibling: SharedPortStream | undefined;
  /** @internal Source keys routed to this stream. */
  readonly sourceKeys: SourceKey[] = [];
  /** @internal Key of the signalled source. */
  signalledKey: SourceKey | undefined;
  /** @internal IP part of the signalled source key. */
  expectedIp: number | string | undefined;
  /** @internal The signalled address is unspecified or private (rule 4). */
  expectedUnusable = true;
  /** @internal Time the stream started waiting for its first datagram. */
  waitingSince: number | undefined;
  /** @internal The SSRC last received (rule 2). */
  lastSsrc: number | undefined;
  /** @internal The SSRC this stream got on a source shared with other streams. */
  splitSsrc: number | undefined;
  readonly #family: number;
  readonly #batch: SendBatch | undefined;
  #handler: DatagramHandler | undefined;
  #expecting = false;
  #closed = false;
  #sent = 0;
  #sendErrors = 0;
  #received = 0;
  #lastTo: UdpAddress | undefined;
  readonly #dest = new Uint8Array(SOCKADDR_SIZE);
  /** The encoded destination, exactly its length (empty: not an address). */
  #destView = new Uint8Array(0);

  /** @internal Use {@link SharedUdpPort.openStream}. */
  constructor(
    port: SharedUdpPort,
    family: number,
    batch: SendBatch | undefined,
    sibling: SharedPortStream | undefined,
  ) {
    this.shared = port;
    this.backend = port.socket.backend;
    this.#family = family;
    this.#batch = batch;
    this.sibling = sibling;
    if (sibling) sibling.rtcpSibling = this;
  }

  get hostname(): string {
    return this.shared.socket.hostname;
  }

  /** The shared port number. */
  get port(): number {
    return this.shared.port;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get stats(): UdpSocketStats {
    return { sent: this.#sent, sendErrors: this.#sendErrors, received: this.#received };
  }

  get synchronousSend(): boolean {
    return this.#batch !== undefined || this.shared.socket.synchronousSend;
  }

  get queuedSends(): number {
    return this.#batch?.queued ?? this.shared.socket.queuedSends;
  }

  expectSource(source: UdpAddress | undefined): void {
    if (this.#closed) return;
    const key = source ? addressKey(source) : undefined;
    if (this.#expecting && key === this.signalledKey) return;
    this.#expecting = true;
    this.signalledKey = key;
    this.expectedIp = key === undefined ? undefined : ipOf(key);
    this.expectedUnusable = !source || isUnusableAddress(source.address);
    this.shared.register(this, key, key === undefined ? undefined : source);
  }

  onDatagram(handler: DatagramHandler): void {
    if (!this.#closed) this.#handler = handler;
  }

  send(data: Uint8Array, to: UdpAddress): void {
    if (this.#closed) return;
    const batch = this.#batch;
    if (batch === undefined) {
      this.#sent++;
      this.shared.socket.send(data, to);
      return;
    }
    if (to !== this.#lastTo) {
      const last = this.#lastTo;
      if (last === undefined || last.port !== to.port || last.address !== to.address) {
        const length = encodeSockaddr(this.#family, to.address, to.port, this.#dest);
        this.#destView = this.#dest.subarray(0, length);
      }
      this.#lastTo = to;
    }
    if (this.#destView.length === 0) {
      this.#sendErrors++;
      return;
    }
    this.#sent++;
    batch.push(data, this.#destView, this);
  }

  /** @internal The kernel refused one of this stream's datagrams. */
  countSendError(): void {
    this.#sent--;
    this.#sendErrors++;
  }

  whenIdle(): Promise<void> {
    this.#batch?.flush();
    return this.#batch ? RESOLVED : this.shared.socket.whenIdle();
  }

  /** Unregisters from the port (what was sent so far leaves first). The port stays open. */
  close(): Promise<void> {
    if (this.#closed) return RESOLVED;
    this.#batch?.flush();
    this.#closed = true;
    this.#handler = undefined;
    this.shared.unregister(this);
    if (this.rtcpSibling?.sibling === this) this.rtcpSibling = undefined;
    return RESOLVED;
  }

  /** @internal The port hands over one datagram from `from`. */
  deliver(data: Uint8Array, from: UdpAddress): void {
    this.#received++;
    this.#handler?.(data, from);
  }
}
