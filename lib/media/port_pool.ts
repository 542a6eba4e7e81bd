/**
 * Media port allocation from the `audio-port` / `video-port` settings: a single port
 * (`7078`), a range (`10000-20000`), or `0` (ask the kernel). RTP uses even ports and RTCP,
 * when not multiplexed, the next odd one (RFC 3550 §11). Allocation returns bound sockets, so
 * "free" means "we could bind it", not a guess. In shared mode ({@link PortSharing}) every
 * allocation is a virtual socket on one shared port (RTCP of non-multiplexing peers on a
 * second shared port, + 1), bound with the first allocation and closed with the last.
 * @module
 */

import { SharedPortStream, SharedUdpPort } from "./shared_udp_port.ts";
import { type UdpBackendChoice, UdpSocket } from "./udp_socket.ts";

/**
 * The `media-port-sharing` setting: `on` puts every stream on one shared port (the first
 * even port of the range, or the single port; `shared_udp_port.ts`), `off` binds a socket
 * per stream, `auto` shares when the setting is a single port.
 */
export type PortSharing = "auto" | "on" | "off";

/** A parsed port setting: `{ ephemeral: true }` for 0, else an inclusive range. */
export type PortRange =
  | { readonly ephemeral: true }
  | { readonly ephemeral: false; readonly min: number; readonly max: number };

/** Raised for a malformed port setting (a `SyntaxError`, like other config parse errors). */
export class PortSpecError extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = "PortSpecError";
  }
}

/** Raised when every port of the range is in use. */
export class PortPoolExhaustedError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "PortPoolExhaustedError";
  }
}

function parsePort(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new PortSpecError(`bad port "${text}" in "${whole}"`);
  const port = Number(text);
  if (port < 1 || port > 65535) {
    throw new PortSpecError(`port ${port} out of 1-65535 in "${whole}"`);
  }
  return port;
}

/**
 * Parses a port setting: `0` (ephemeral), `N` (one port), `A-B` (inclusive range, A ≤ B).
 * Surrounding spaces are ignored.
 */
export function parsePortRange(spec: string | number): PortRange {
  const text = String(spec).trim();
  if (text === "0") return { ephemeral: true };
  const dash = text.indexOf("-");
  if (dash < 0) {
    const port = parsePort(text, text);
    return { ephemeral: false, min: port, max: port };
  }
  const min = parsePort(text.slice(0, dash).trim(), text);
  const max = parsePort(text.slice(dash + 1).trim(), text);
  if (min > max) throw new PortSpecError(`empty port range "${text}"`);
  return { ephemeral: false, min, max };
}

/** Sockets bound for one media stream. */
export interface MediaPorts {
  /** The RTP port (even except for a single configured odd port or kernel-chosen ones). */
  readonly port: number;
  /** Socket bound to `port` (RTP, and RTCP too when multiplexed, RFC 5761). */
  readonly rtp: UdpSocket;
  /** Socket bound to `port + 1` when a separate RTCP port was requested. */
  readonly rtcp?: UdpSocket;
}

/** Options of {@link PortPool}. */
export interface PortPoolOptions {
  /** Address to bind (e.g. `127.0.0.1`, `0.0.0.0`). */
  readonly hostname: string;
  /** Ephemeral mode: how many kernel ports to try to find an even one (default 32). */
  readonly ephemeralAttempts?: number;
  /** Socket implementation (the `media-socket` setting). Default `auto`. */
  readonly backend?: UdpBackendChoice;
  /** Default `off` (a socket per stream). */
  readonly sharing?: PortSharing;
}

/** Options of one allocation. */
export interface AllocateOptions {
  /** Also bind `port + 1` for RTCP (when the peer does not do rtcp-mux). Default false. */
  readonly rtcpPort?: boolean;
}

function isAddrInUse(error: unknown): boolean {
  return error instanceof Deno.errors.AddrInUse ||
    (error instanceof Error && /in use/i.test(error.message));
}

/**
 * A pool of media ports (RFC 3550 §11: RTP on even ports, RTCP on the following odd port).
 * In a range, allocation rotates through the even ports so a just-released port is reused
 * last (late packets of an old call don't reach a new one); ports other programs hold are
 * skipped.
 */
export class PortPool {
  readonly range: PortRange;
  readonly hostname: string;
  readonly #ephemeralAttempts: number;
  readonly #backend: UdpBackendChoice;
  readonly #inUse = new Set<number>();
  readonly #sharedPort: number | undefined;
  #shared: SharedUdpPort | undefined;
  #sharedRtcp: SharedUdpPort | undefined;
  #sharedStreams = 0;
  #cursor: number;

  constructor(spec: string | number | PortRange, options: PortPoolOptions) {
    this.range = typeof spec === "object" ? spec : parsePortRange(spec);
    this.hostname = options.hostname;
    this.#ephemeralAttempts = options.ephemeralAttempts ?? 32;
    this.#backend = options.backend ?? "auto";
    this.#cursor = this.range.ephemeral ? 0 : this.range.min;
    const sharing = options.sharing ?? "off";
    const range = this.range;
    if (!range.ephemeral && (sharing === "on" || (sharing === "auto" && range.min === range.max))) {
      this.#sharedPort = range.min === range.max || range.min % 2 === 0 ? range.min : range.min + 1;
    }
  }

  /** The shared port in shared mode, else undefined. */
  get sharedPort(): number | undefined {
    return this.#sharedPort;
  }

  /** The shared RTP port's socket while bound (shared mode), for statistics. */
  get shared(): SharedUdpPort | undefined {
    return this.#shared;
  }

  /** Ports currently handed out. */
  get allocatedCount(): number {
    return this.#inUse.size + this.#sharedStreams;
  }

  /** Candidate RTP ports of the range, in order (even ports; a lone port as is). */
  #candidates(): number[] {
    const range = this.range;
    if (range.ephemeral) return [];
    if (range.min === range.max) return [range.min];
    const list: number[] = [];
    for (let p = range.min + (range.min % 2); p <= range.max; p += 2) list.push(p);
    return list;
  }

  /**
   * Binds sockets for one stream. Throws {@link PortPoolExhaustedError} when no port of the
   * range can be bound (all allocated here, or taken by other programs).
   */
  allocate(options: AllocateOptions = {}): MediaPorts {
    const wantRtcp = options.rtcpPort ?? false;
    if (this.#sharedPort !== undefined) return this.#allocateShared(this.#sharedPort, wantRtcp);
    if (this.range.ephemeral) return this.#allocateEphemeral(wantRtcp);
    const candidates = this.#candidates();
    if (candidates.length === 0) {
      throw new PortPoolExhaustedError(`no even port in ${this.range.min}-${this.range.max}`);
    }
    let start = candidates.findIndex((p) => p >= this.#cursor);
    if (start < 0) start = 0;
    for (let i = 0; i < candidates.length; i++) {
      const port = candidates[(start + i) % candidates.length]!;
      if (this.#inUse.has(port)) continue;
      if (wantRtcp && port + 1 > 65535) continue;
      const bound = this.#tryBind(port, wantRtcp);
      if (!bound) continue;
      this.#inUse.add(port);
      this.#cursor = port + 2;
      return bound;
    }
    throw new PortPoolExhaustedError(
      `all ${candidates.length} media ports of ${this.range.min}-${this.range.max} are in use`,
    );
  }

  #bindShared(port: number): SharedUdpPort {
    try {
      return SharedUdpPort.bind(this.hostname, port, { backend: this.#backend });
    } catch (error) {
      if (isAddrInUse(error)) {
        throw new PortPoolExhaustedError(`shared media port ${port} is in use by another program`);
      }
      throw error;
    }
  }

  #allocateShared(port: number, wantRtcp: boolean): MediaPorts {
    const shared = this.#shared ??= this.#bindShared(port);
    if (wantRtcp && this.#sharedRtcp === undefined) {
      if (port + 1 > 65535) throw new PortPoolExhaustedError(`no RTCP port after ${port}`);
      try {
        this.#sharedRtcp = this.#bindShared(port + 1);
      } catch (error) {
        this.#closeSharedIfIdle();
        throw error;
      }
    }
    const rtp = shared.openStream();
    this.#sharedStreams++;
    if (!wantRtcp) return { port, rtp };
    return { port, rtp, rtcp: this.#sharedRtcp!.openStream(rtp) };
  }

  #closeSharedIfIdle(): void {
    if (this.#shared && this.#shared.streamCount === 0) {
      void this.#shared.close();
      this.#shared = undefined;
    }
    if (this.#sharedRtcp && this.#sharedRtcp.streamCount === 0) {
      void this.#sharedRtcp.close();
      this.#sharedRtcp = undefined;
    }
  }

  #allocateEphemeral(wantRtcp: boolean): MediaPorts {
    for (let attempt = 0; attempt < this.#ephemeralAttempts; attempt++) {
      const rtp = UdpSocket.bind(this.hostname, 0, this.#backend);
      if (rtp.port % 2 !== 0 || this.#inUse.has(rtp.port)) {
        void rtp.close();
        continue;
      }
      if (!wantRtcp) {
        this.#inUse.add(rtp.port);
        return { port: rtp.port, rtp };
      }
      try {
        const rtcp = UdpSocket.bind(this.hostname, rtp.port + 1, this.#backend);
        this.#inUse.add(rtp.port);
        return { port: rtp.port, rtp, rtcp };
      } catch (error) {
        void rtp.close();
        if (!isAddrInUse(error)) throw error;
      }
    }
    throw new PortPoolExhaustedError(
      `no even ephemeral port after ${this.#ephemeralAttempts} attempts`,
    );
  }

  #tryBind(port: number, wantRtcp: boolean): MediaPorts | undefined {
    let rtp: UdpSocket;
    try {
      rtp = UdpSocket.bind(this.hostname, port, this.#backend);
    } catch (error) {
      if (isAddrInUse(error)) return undefined;
      throw error;
    }
    if (!wantRtcp) return { port, rtp };
    try {
      return { port, rtp, rtcp: UdpSocket.bind(this.hostname, port + 1, this.#backend) };
    } catch (error) {
      void rtp.close();
      if (isAddrInUse(error)) return undefined;
      throw error;
    }
  }

  /** Closes the sockets of an allocation and returns its port to the pool. */
  async release(ports: MediaPorts): Promise<void> {
    if (ports.rtp instanceof SharedPortStream) {
      if (ports.rtp.closed) return;
      await Promise.all([ports.rtp.close(), ports.rtcp?.close()]);
      this.#sharedStreams--;
      this.#closeSharedIfIdle();
      return;
    }
    await Promise.all([ports.rtp.close(), ports.rtcp?.close()]);
    this.#inUse.delete(ports.port);
  }
}
