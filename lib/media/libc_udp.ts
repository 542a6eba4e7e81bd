/**
 * The few libc calls a batched, non-blocking UDP media socket needs (Linux, through Deno
 * FFI: `Deno.dlopen("libc.so.6")`, needs `--allow-ffi`): `socket`, `bind`, `getsockname`,
 * `close`, `sendto`, `sendmmsg`, `recvmmsg`, `setsockopt`/`getsockopt` and `epoll_*`, with the byte layouts of `sockaddr_in`/
 * `sockaddr_in6` (RFC 791/RFC 8200 addresses, port in network order), `mmsghdr`, `iovec`
 * and `epoll_event` for the 64-bit Linux ABIs (x86_64, aarch64).
 *
 * Why: each `Deno.DatagramConn` operation is an async op with a promise (~7 µs per send
 * on loopback, plus a receive op per datagram); a synchronous FFI call costs ~150 ns on
 * top of the system call itself, and `recvmmsg` drains a socket in one call.
 *
 * Every call here is synchronous and runs on the JavaScript thread, so `errno` read right
 * after a failing call is that call's.
 * @module
 */

/** `AF_INET`. */
export const AF_INET = 2;
/** `AF_INET6` (Linux). */
export const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
/** `MSG_DONTWAIT`. */
export const MSG_DONTWAIT = 0x40;
/** `MSG_TRUNC` (in `msg_flags`: the datagram was longer than the buffer). */
export const MSG_TRUNC = 0x20;
const EPOLL_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 1;

/** Linux errno values this module maps. */
export const Errno = {
  EINTR: 4,
  EAGAIN: 11,
  EACCES: 13,
  EINVAL: 22,
  EMFILE: 24,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
} as const;

/** Size of `struct sockaddr_in6`, the larger of the two address structures. */
export const SOCKADDR_SIZE = 28;
/** Size of `struct mmsghdr` on 64-bit Linux (a 56-byte `msghdr` + `msg_len`, padded). */
export const MMSGHDR_SIZE = 64;
/** Size of `struct iovec` on 64-bit Linux. */
export const IOVEC_SIZE = 16;
/** `struct epoll_event` is packed (12 bytes) on x86_64 only; 16 bytes elsewhere. */
export const EPOLL_EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
/** Offset of `epoll_event.data`. */
export const EPOLL_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // ssize_t results are read as i32: they never exceed a datagram's size (or are -1).
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A failed libc call: the function and its errno. */
export class LibcError extends Error {
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`${call} failed: errno ${errno}`);
    this.name = "LibcError";
    this.errno = errno;
  }
}

/** Maps a failed `bind`/`socket` to the Deno error class the Deno backend would throw. */
export function bindError(call: string, errno: number, where: string): Error {
  const message = `${call} ${where}: errno ${errno}`;
  switch (errno) {
    case Errno.EADDRINUSE:
      return new Deno.errors.AddrInUse(`Address already in use (${message})`);
    case Errno.EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(`Address not available (${message})`);
    case Errno.EACCES:
      return new Deno.errors.PermissionDenied(`Permission denied (${message})`);
    default:
      return new LibcError(`${call} ${where}`, errno);
  }
}

/** The loaded libc functions, with errno access. */
export class Libc {
  readonly fn: LibcSymbols;
  /**
   * `sendto(fd, data, length, flags, sockaddr, sockaddrLength)`. Deno's FFI accepts a number
   * for a `usize` parameter (its type declarations ask for a bigint, which would allocate).
   */
  readonly sendto: (
    fd: number,
    data: Uint8Array,
    length: number,
    flags: number,
    sockaddr: Uint8Array,
    sockaddrLength: number,
  ) => number;
  readonly #errno: Deno.UnsafePointerView;
  readonly #epollEvent = new Uint8Array(16);

  private constructor(lib: Deno.DynamicLibrary<typeof SYMBOLS>) {
    this.fn = lib.symbols;
    this.sendto = lib.symbols.sendto as unknown as Libc["sendto"];
    const where = lib.symbols.__errno_location();
    if (where === null) throw new Error("__errno_location returned NULL");
    this.#errno = new Deno.UnsafePointerView(where);
  }

  /** Loads libc; throws when FFI is not permitted or not on 64-bit Linux. */
  static open(): Libc {
    if (Deno.build.os !== "linux") throw new Error("the libc UDP backend is Linux only");
    if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
      throw new Error(`the libc UDP backend does not know the ABI of ${Deno.build.arch}`);
    }
    return new Libc(Deno.dlopen("libc.so.6", SYMBOLS));
  }

  /** The calling thread's `errno`. */
  errno(): number {
    return this.#errno.getInt32(0);
  }

  /** `socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`; throws on failure. */
  udpSocket(family: number, where: string): number {
    const fd = this.fn.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw bindError("socket", this.errno(), where);
    return fd;
  }

  /** `bind`; throws the Deno error class matching errno (e.g. `AddrInUse`). */
  bind(fd: number, sockaddr: Uint8Array, length: number, where: string): void {
    if (this.fn.bind(fd, sockaddr, length) !== 0) throw bindError("bind", this.errno(), where);
  }

  /** `getsockname` into `sockaddr` (28 bytes). */
  localAddress(fd: number, sockaddr: Uint8Array): void {
    const length = new Uint32Array([sockaddr.byteLength]);
    if (this.fn.getsockname(fd, sockaddr, length) !== 0) {
      throw new LibcError("getsockname", this.errno());
    }
  }

  /**
   * Asks for `bytes` of kernel send and receive buffer (`SO_SNDBUF`, `SO_RCVBUF`; Linux caps
   * them at `net.core.wmem_max`/`rmem_max` and doubles the value for its bookkeeping).
   * Best effort: returns the receive buffer size the kernel granted (0 when unknown).
   */
  setBufferSizes(fd: number, bytes: number): number {
    const value = new Int32Array([bytes]);
    const asBytes = new Uint8Array(value.buffer);
    this.fn.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, asBytes, 4);
    this.fn.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, asBytes, 4);
    const length = new Uint32Array([4]);
    value[0] = 0;
    if (
      this.fn.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, asBytes, new Uint8Array(length.buffer)) !== 0
    ) {
      return 0;
    }
    return value[0]!;
  }

  /** `epoll_create1(EPOLL_CLOEXEC)`. */
  epollCreate(): number {
    const fd = this.fn.epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw new LibcError("epoll_create1", this.errno());
    return fd;
  }

  /** Adds `fd` to `epfd` for input readiness, level-triggered, with `id` as its data. */
  epollAdd(epfd: number, fd: number, id: number): void {
    const event = this.#epollEvent;
    const view = new DataView(event.buffer);
    view.setUint32(0, EPOLLIN, true);
    view.setUint32(EPOLL_DATA_OFFSET, id, true);
    view.setUint32(EPOLL_DATA_OFFSET + 4, 0, true);
    if (this.fn.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, event) !== 0) {
      throw new LibcError("epoll_ctl(ADD)", this.errno());
    }
  }

  /** Removes `fd` from `epfd` (errors ignored: closing the fd removes it anyway). */
  epollDelete(epfd: number, fd: number): void {
    this.fn.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, this.#epollEvent);
  }
}

let loaded: Libc | null | undefined;
let loadError: string | undefined;

/**
 * libc, loaded once; `null` when unavailable (not Linux, no `--allow-ffi`, dlopen failed).
 * {@link libcUnavailableReason} says why.
 */
export function libc(): Libc | null {
  if (loaded !== undefined) return loaded;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("no --allow-ffi permission");
    }
    loaded = Libc.open();
  } catch (error) {
    loaded = null;
    loadError = error instanceof Error ? error.message : String(error);
  }
  return loaded;
}

/** Why {@link libc} returned null (undefined when it did not). */
export function libcUnavailableReason(): string | undefined {
  libc();
  return loadError;
}

// ---- addresses ----

function parseIpv4(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^\d{1,3}$/.test(part)) return false;
    const value = Number(part);
    if (value > 255) return false;
    out[offset + i] = value;
  }
  return true;
}

/** Parses an IPv6 literal (RFC 4291 §2.2, optional `%scope` numeric zone) into 16 bytes. */
function parseIpv6(text: string, out: Uint8Array, offset: number): number | undefined {
  let scope = 0;
  const percent = text.indexOf("%");
  if (percent >= 0) {
    const zone = text.slice(percent + 1);
    if (!/^\d+$/.test(zone)) return undefined; // interface names would need if_nametoindex
    scope = Number(zone);
    text = text.slice(0, percent);
  }
  const groups: number[] = [];
  let tail: number[] = [];
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parseHalf = (half: string, allowV4: boolean): number[] | undefined => {
    if (half === "") return [];
    const out16: number[] = [];
    const items = half.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (allowV4 && i === items.length - 1 && item.includes(".")) {
        const v4 = new Uint8Array(4);
        if (!parseIpv4(item, v4, 0)) return undefined;
        out16.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
      out16.push(parseInt(item, 16));
    }
    return out16;
  };
  if (halves.length === 2) {
    const head = parseHalf(halves[0]!, false);
    const rest = parseHalf(halves[1]!, true);
    if (!head || !rest || head.length + rest.length > 7) return undefined;
    groups.push(...head);
    tail = rest;
    while (groups.length + tail.length < 8) groups.push(0);
    groups.push(...tail);
  } else {
    const all = parseHalf(text, true);
    if (!all || all.length !== 8) return undefined;
    groups.push(...all);
  }
  for (let i = 0; i < 8; i++) {
    out[offset + 2 * i] = groups[i]! >> 8;
    out[offset + 2 * i + 1] = groups[i]! & 0xff;
  }
  return scope;
}

/**
 * Writes `address:port` as a `sockaddr_in` (family `AF_INET`) or `sockaddr_in6` (family
 * `AF_INET6`; an IPv4 destination becomes IPv4-mapped `::ffff:a.b.c.d`, RFC 4291 §2.5.5.2,
 * as a dual-stack socket needs). Returns the structure's length, or 0 when `address` is not
 * an IP literal of a usable family.
 */
export function encodeSockaddr(
  family: number,
  address: string,
  port: number,
  out: Uint8Array,
): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) return 0;
  out.fill(0, 0, SOCKADDR_SIZE);
  const view = new DataView(out.buffer, out.byteOffset, SOCKADDR_SIZE);
  view.setUint16(0, family, true);
  view.setUint16(2, port, false);
  if (family === AF_INET) {
    return parseIpv4(address, out, 4) ? 16 : 0;
  }
  if (!address.includes(":")) {
    if (!parseIpv4(address, out, 20)) return 0;
    out[18] = 0xff;
    out[19] = 0xff;
    return SOCKADDR_SIZE;
  }
  const scope = parseIpv6(address, out, 8);
  if (scope === undefined) return 0;
  view.setUint32(24, scope, true);
  return SOCKADDR_SIZE;
}

/** The family a local bind address needs: IPv6 literals contain a colon. */
export function familyOf(address: string): number {
  return address.includes(":") ? AF_INET6 : AF_INET;
}

/** True for an IPv4 or IPv6 literal (what the libc backend can bind to or send to). */
export function isIpLiteral(address: string): boolean {
  return encodeSockaddr(familyOf(address), address, 0, new Uint8Array(SOCKADDR_SIZE)) !== 0;
}

/** Formats 4 bytes as dotted decimal. */
export function formatIpv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/**
 * Formats 16 bytes as an IPv6 text address the way Deno (Rust's `Ipv6Addr`) does: RFC 5952
 * (lower case, the longest run of two or more zero groups as `::`, the first of equal runs),
 * IPv4-mapped addresses as `::ffff:a.b.c.d`.
 */
export function formatIpv6(bytes: Uint8Array, offset: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes, offset + 12)}`;
  }
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((v) => v.toString(16)).join(":");
  if (bestLength < 2) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
