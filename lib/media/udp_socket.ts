/**
 * A bound UDP socket for media (RTP/RTCP, RFC 3550 §11 transport), and the choice of its
 * backend:
 * - `ffi` (`ffi_udp_socket.ts`): libc sockets through Deno FFI on Linux — synchronous
 *   `sendto`, and receives drained with `recvmmsg` when `epoll` says a socket is readable,
 *   at the start of every media tick ({@link pollUdpSockets}, called by the `MediaTicker`)
 *   and every few milliseconds between ticks. No promise and no Deno resource per datagram
 *   or per socket. Needs `--allow-ffi`.
 * - `deno` (`deno_udp_socket.ts`): `Deno.listenDatagram`, an async op per datagram.
 * `auto` (the default) picks `ffi` when libc can be loaded (Linux, `--allow-ffi`) and the
 * bind address is an IP literal, else `deno`. Both keep per-socket datagram order, never
 * throw from `send`, and hand each received datagram to the handler as its own copy.
 * @module
 */

import { DenoUdpSocket } from "./deno_udp_socket.ts";
import { FfiUdpSocket, udpPoller } from "./ffi_udp_socket.ts";
import { isIpLiteral, libc } from "./libc_udp.ts";
import { flushUdpSends } from "./udp_send_batch.ts";

/** A transport address (IPv4/IPv6 literal and port). */
export interface UdpAddress {
  readonly address: string;
  readonly port: number;
}

/** Receives one datagram; `data` is owned by the handler (a fresh copy). */
export type DatagramHandler = (data: Uint8Array, from: UdpAddress) => void;

/** Counters for a socket's life. */
export interface UdpSocketStats {
  readonly sent: number;
  readonly sendErrors: number;
  readonly received: number;
}

/** Which implementation a socket uses (see the module documentation). */
export type UdpBackendName = "ffi" | "deno";

/** The `media-socket` setting: a backend, or `auto`. */
export type UdpBackendChoice = UdpBackendName | "auto";

/**
 * A UDP socket with a push-style receive. `send` is fire-and-forget (RTP is unreliable by
 * design; RFC 3550 §2.2): failures are counted, never thrown; datagrams leave in the order
 * of the `send` calls.
 */
export interface UdpSocket {
  readonly backend: UdpBackendName;
  /** The bound address (as given, or the wildcard). */
  readonly hostname: string;
  /** The bound port. */
  readonly port: number;
  /** True once {@link close} was called. */
  readonly closed: boolean;
  /** Send/receive counters. */
  readonly stats: UdpSocketStats;
  /**
   * True when `send` is done with `data` once it returns (the caller may reuse the array);
   * false when the datagram leaves later and `data` must stay untouched.
   */
  readonly synchronousSend: boolean;
  /** Datagrams accepted by `send` that have not left yet. */
  readonly queuedSends: number;
  /**
   * Optional: the transport address the peer said it sends from (its SDP `c=`/`m=`
   * address, or `a=rtcp` for an RTCP socket; RFC 4961 symmetric RTP), `undefined` when
   * unknown (`0.0.0.0`). A shared port (`shared_udp_port.ts`) demultiplexes by it; a
   * socket of its own ignores it.
   */
  expectSource?(source: UdpAddress | undefined): void;
  /** Sets the receiver (and starts receiving on first call). */
  onDatagram(handler: DatagramHandler): void;
  /** Sends one datagram after those already sent (see {@link synchronousSend} for `data`). */
  send(data: Uint8Array, to: UdpAddress): void;
  /** Resolves once every datagram handed to `send` so far has left (or failed). */
  whenIdle(): Promise<void>;
  /** Closes the socket (its file descriptor) once queued sends have left. Idempotent. */
  close(): Promise<void>;
}

/** Thrown when `ffi` was asked for and cannot be used. */
export class UdpBackendUnavailableError extends Error {
  override name = "UdpBackendUnavailableError";
}

/** The backend `auto` resolves to for `hostname` (and why not `ffi`, when it is not). */
export function resolveUdpBackend(
  choice: UdpBackendChoice,
  hostname: string,
): { readonly backend: UdpBackendName; readonly reason?: string } {
  if (choice === "deno") return { backend: "deno" };
  const lib = libc();
  let reason: string | undefined;
  if (!lib) reason = "libc is not available (Linux with --allow-ffi needed)";
  else if (!isIpLiteral(hostname)) reason = `"${hostname}" is not an IP address literal`;
  if (reason === undefined) return { backend: "ffi" };
  if (choice === "ffi") throw new UdpBackendUnavailableError(`media-socket=ffi: ${reason}`);
  return { backend: "deno", reason };
}

/** Binds media sockets with the chosen backend. */
export const UdpSocket = {
  /**
   * Binds `hostname:port` (port 0 = ephemeral) with `backend` (default `auto`). Throws
   * `Deno.errors.AddrInUse` when the port is taken, whatever the backend.
   */
  bind(hostname: string, port: number, backend: UdpBackendChoice = "auto"): UdpSocket {
    return resolveUdpBackend(backend, hostname).backend === "ffi"
      ? FfiUdpSocket.bind(hostname, port)
      : DenoUdpSocket.bind(hostname, port);
  },
};

/**
 * Delivers every datagram waiting on `ffi` sockets now (the `MediaTicker` calls this at the
 * start of each tick, so the mixer sees everything that arrived before it). A no-op when
 * no `ffi` socket exists.
 */
export function pollUdpSockets(): void {
  udpPoller(false)?.poll();
}

/**
 * Sends every datagram batched on shared media ports now (the `MediaTicker` calls this at
 * the end of each tick, so one `sendmmsg` carries the whole tick's packets). A no-op when
 * nothing is batched.
 */
export function flushUdpBatches(): void {
  flushUdpSends();
}
