/**
 * Batched sends on one libc UDP socket: datagrams are copied into a preallocated arena as
 * they are handed over and leave together with ONE `sendmmsg(2)` call per batch (up to
 * {@link SEND_BATCH_SIZE} datagrams), instead of one `sendto` each. Media is RTP/RTCP over
 * UDP (RFC 3550 §11); loss is tolerated (§2.2), so a datagram the kernel refuses (full
 * socket buffer, unreachable destination) is counted and dropped, never retried later.
 *
 * When a batch leaves: {@link flushUdpSends} (the `MediaTicker` calls it at the end of
 * every tick, after the mix wrote every participant's packet), when the batch or its arena
 * is full, before an oversized datagram, and in a microtask queued by the first datagram of
 * a batch, so sends made outside a tick (RTCP timers, BYE, tests) leave as soon as the
 * current task ends. Datagrams leave in the order they were handed over (per destination
 * and overall).
 * @module
 */

import { Errno, type Libc, MMSGHDR_SIZE, MSG_DONTWAIT, SOCKADDR_SIZE } from "./libc_udp.ts";

/** Datagrams per `sendmmsg` call (Linux caps a call at `UIO_MAXIOV` = 1024). */
export const SEND_BATCH_SIZE = 1024;
/** Bytes of datagram data a batch holds (larger datagrams leave alone, by `sendto`). */
const ARENA_SIZE = 1 << 20;
/** Largest datagram copied into the arena. */
const MAX_DATAGRAM = 9000;
/** Offsets in `struct msghdr` / `struct mmsghdr` (64-bit Linux). */
const MSG_NAME = 0;
const MSG_NAMELEN = 8;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const IOVEC_SIZE = 16;
const NAME_STRIDE = 32;
const TWO_32 = 0x1_0000_0000;

/** Who a datagram was sent for: told when the kernel refused it. */
export interface SendOwner {
  countSendError(): void;
}

function pointerNumber(bytes: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

const pending = new Set<SendBatch>();
let microtaskQueued = false;

function flushQueued(): void {
  microtaskQueued = false;
  flushUdpSends();
}

/** Sends every batched datagram of every socket now (the end of a media tick). */
export function flushUdpSends(): void {
  if (pending.size === 0) return;
  for (const batch of pending) batch.flush();
  pending.clear();
}

/** The batch of one socket; see the module documentation. */
export class SendBatch {
  readonly #lib: Libc;
  readonly #fd: number;
  readonly #headers = new Uint8Array(SEND_BATCH_SIZE * MMSGHDR_SIZE);
  readonly #headerView = new DataView(this.#headers.buffer);
  readonly #iovecs = new Uint8Array(SEND_BATCH_SIZE * IOVEC_SIZE);
  readonly #iovView = new DataView(this.#iovecs.buffer);
  readonly #names = new Uint8Array(SEND_BATCH_SIZE * NAME_STRIDE);
  readonly #arena = new Uint8Array(ARENA_SIZE);
  readonly #arenaAddress: number;
  readonly #owners: (SendOwner | undefined)[] = new Array(SEND_BATCH_SIZE);
  #count = 0;
  #used = 0;
  #calls = 0;
  #datagrams = 0;
  #errors = 0;

  constructor(lib: Libc, fd: number) {
    this.#lib = lib;
    this.#fd = fd;
    this.#arenaAddress = pointerNumber(this.#arena);
    const names = pointerNumber(this.#names);
    const iovecs = pointerNumber(this.#iovecs);
    for (let i = 0; i < SEND_BATCH_SIZE; i++) {
      const base = i * MMSGHDR_SIZE;
      this.#setPointer(this.#headerView, base + MSG_NAME, names + i * NAME_STRIDE);
      this.#setPointer(this.#headerView, base + MSG_IOV, iovecs + i * IOVEC_SIZE);
      this.#headerView.setUint32(base + MSG_IOVLEN, 1, true);
      // msg_control / msg_controllen / msg_flags stay 0.
    }
  }

  #setPointer(view: DataView, offset: number, value: number): void {
    view.setUint32(offset, value % TWO_32, true);
    view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
  }

  /** Datagrams waiting for the next flush. */
  get queued(): number {
    return this.#count;
  }

  /** `sendmmsg` calls made, datagrams sent, datagrams refused by the kernel. */
  get stats(): { readonly calls: number; readonly datagrams: number; readonly errors: number } {
    return { calls: this.#calls, datagrams: this.#datagrams, errors: this.#errors };
  }

  /**
   * Queues `data` for `sockaddr` (an encoded `sockaddr_in`/`sockaddr_in6` of exactly its
   * length); both are copied, so the caller may reuse them.
   */
  push(data: Uint8Array, sockaddr: Uint8Array, owner: SendOwner | undefined): void {
    const sockaddrLength = sockaddr.length;
    const length = data.length;
    if (length > MAX_DATAGRAM) {
      this.flush();
      const r = this.#lib.sendto(this.#fd, data, length, MSG_DONTWAIT, sockaddr, sockaddrLength);
      if (r < 0) {
        this.#errors++;
        owner?.countSendError();
      } else this.#datagrams++;
      return;
    }
    if (this.#count === SEND_BATCH_SIZE || this.#used + length > ARENA_SIZE) this.flush();
    const i = this.#count++;
    const offset = this.#used;
    this.#arena.set(data, offset);
    this.#used = offset + ((length + 7) & ~7);
    this.#names.set(sockaddr, i * NAME_STRIDE);
    this.#headerView.setUint32(i * MMSGHDR_SIZE + MSG_NAMELEN, sockaddrLength, true);
    this.#setPointer(this.#iovView, i * IOVEC_SIZE, this.#arenaAddress + offset);
    this.#iovView.setUint32(i * IOVEC_SIZE + 8, length, true);
    this.#iovView.setUint32(i * IOVEC_SIZE + 12, 0, true);
    this.#owners[i] = owner;
    if (i === 0) {
      pending.add(this);
      if (!microtaskQueued) {
        microtaskQueued = true;
        queueMicrotask(flushQueued);
      }
    }
  }

  /** Sends the queued datagrams now, in order (one `sendmmsg` unless the kernel stops early). */
  flush(): void {
    const count = this.#count;
    if (count === 0) return;
    const send = this.#lib.fn.sendmmsg;
    let done = 0;
    while (done < count) {
      const headers = done === 0 ? this.#headers : this.#headers.subarray(done * MMSGHDR_SIZE);
      this.#calls++;
      const r = send(this.#fd, headers, count - done, MSG_DONTWAIT);
      if (r > 0) {
        done += r;
        this.#datagrams += r;
        continue;
      }
      const errno = this.#lib.errno();
      if (errno === Errno.EINTR) continue;
      if (errno === Errno.EAGAIN) {
        // The socket buffer is full: the rest of the batch is lost (RFC 3550 §2.2).
        for (let i = done; i < count; i++) this.#refused(i);
        break;
      }
      // This datagram was refused (bad or unreachable destination): skip it, go on.
      this.#refused(done++);
    }
    this.#count = 0;
    this.#used = 0;
    this.#owners.fill(undefined, 0, count);
  }

  #refused(i: number): void {
    this.#errors++;
    this.#owners[i]?.countSendError();
  }

  /** Drops what is queued without sending (the socket is closing). */
  discard(): void {
    this.#count = 0;
    this.#used = 0;
    this.#owners.fill(undefined);
    pending.delete(this);
  }
}

/** Size of the `sockaddr` buffer {@link SendBatch.push} callers encode into. */
export const SEND_SOCKADDR_SIZE = SOCKADDR_SIZE;
