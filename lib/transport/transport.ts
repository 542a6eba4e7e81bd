/**
 * The SIP transport layer (RFC 3261 §18): owns the UDP, TCP and TLS listeners and
 * connections, parses what arrives, stamps Via `received`/`rport` on requests (§18.2.1,
 * RFC 3581 §4), routes responses (§18.2.2, RFC 3581 §4) and reuses connections.
 *
 * Upward it speaks through listeners ({@link TransportLayer.onMessage},
 * {@link TransportLayer.onParseError}); it never imports the transaction layer.
 * @module
 */

import { type Clock, systemClock } from "../config/clock.ts";
import { createLogger, type Logger } from "../config/log.ts";
import { SipParseError } from "../sip/errors.ts";
import { createResponse, type SipMessage, SipRequest, type SipResponse } from "../sip/message.ts";
import { errorResponseFor, parseMessage, serializeMessage } from "../sip/parser.ts";
import {
  bareHost,
  defaultPort,
  type Flow,
  formatHostPort,
  type HostPort,
  isFlow,
  type Target,
  type TransportName,
} from "./flow.ts";
import { connectTcp, errorText, StreamConnection, TcpListener } from "./tcp.ts";
import { connectTls, listenTls, type TlsClientOptions, type TlsServerOptions } from "./tls.ts";
import { UdpEndpoint } from "./udp.ts";
import { responseDestination, stampVia } from "./via_rules.ts";

export type { Flow, HostPort, Target, TransportName } from "./flow.ts";

/** Hard limits applied to everything received (RFC 3261 §21.4.14 413, §21.5.9 513). */
export interface TransportLimits {
  /** Largest start line + header section in bytes. Default 65536. */
  readonly maxHeaderBytes?: number;
  /** Most header lines / fields. Default 256. */
  readonly maxHeaders?: number;
  /** Largest body in bytes. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Most simultaneous stream connections (inbound and outbound). Default 10000. */
  readonly maxConnections?: number;
}

/** Options of {@link TransportLayer}. */
export interface TransportLayerOptions {
  /** Time source for idle and connect timers (default: the system clock). */
  readonly clock?: Clock;
  /** Logger (default: component `transport`). */
  readonly logger?: Logger;
  /** Hard limits. */
  readonly limits?: TransportLimits;
  /** Close a stream connection after this long without traffic; 0 disables. Default 10 min. */
  readonly idleTimeoutMs?: number;
  /** Give up opening an outgoing connection after this long. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Client-side TLS settings for outgoing TLS connections. */
  readonly tls?: TlsClientOptions;
}

/** Where to listen. */
export interface ListenOptions {
  readonly transport: TransportName;
  /** Bind address (default `0.0.0.0`). */
  readonly host?: string;
  /** Bind port (default 0: ephemeral). */
  readonly port?: number;
  /**
   * Host to put in Via/Contact (RFC 3261 §18.1.1 sent-by); default: the bind address, or the
   * first non-loopback IPv4 interface when bound to a wildcard.
   */
  readonly advertisedHost?: string;
  /** Certificate and key files, required for TLS (RFC 3261 §26.2). */
  readonly tls?: TlsServerOptions;
}

/** Called for every parsed message with the flow it arrived on. */
export type MessageListener = (message: SipMessage, flow: Flow) => void;

/** Called when something received cannot be parsed or framed (after any 4xx was sent). */
export type ParseErrorListener = (error: SipParseError, flow: Flow) => void;

/** Thrown by {@link TransportLayer.send} when no socket can carry a message. */
export class TransportError extends Error {
  override name = "TransportError";
}

const DEFAULT_IDLE_MS = 600_000;
const DEFAULT_CONNECT_MS = 10_000;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

interface Listening {
  readonly transport: TransportName;
  readonly local: HostPort;
  readonly advertised: HostPort;
  readonly close: () => Promise<void>;
  readonly udp?: UdpEndpoint;
}

/**
 * Listeners, connections and message routing for UDP, TCP and TLS (RFC 3261 §18).
 *
 * Stream connections are indexed by `transport + remote address` (and by an RFC 5923 `alias`
 * sent-by), so requests and responses to a peer reuse a connection the peer opened before a
 * new outgoing one is tried.
 */
export class TransportLayer {
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #limits: Required<TransportLimits>;
  readonly #idleTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #tls: TlsClientOptions;
  readonly #listening: Listening[] = [];
  readonly #connections = new Map<number, StreamConnection>();
  readonly #byAddress = new Map<string, StreamConnection>();
  readonly #connecting = new Map<string, Promise<StreamConnection>>();
  readonly #messageListeners: MessageListener[] = [];
  readonly #errorListeners: ParseErrorListener[] = [];
  #nextConnectionId = 1;
  #closed = false;

  /** Creates a layer with no listeners. */
  constructor(options: TransportLayerOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("transport");
    this.#limits = {
      maxHeaderBytes: options.limits?.maxHeaderBytes ?? 65536,
      maxHeaders: options.limits?.maxHeaders ?? 256,
      maxBodyBytes: options.limits?.maxBodyBytes ?? 1 << 20,
      maxConnections: options.limits?.maxConnections ?? 10_000,
    };
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_MS;
    this.#tls = options.tls ?? {};
  }

  /** Opens a listener; resolves with the bound address (the real port when 0 was asked). */
  async listen(options: ListenOptions): Promise<HostPort> {
    if (this.#closed) throw new TransportError("transport layer closed");
    const host = options.host ?? "0.0.0.0";
    const port = options.port ?? 0;
    let entry: Listening;
    if (options.transport === "UDP") {
      const udp = UdpEndpoint.listen(
        host,
        port,
        (bytes, remote, endpoint) => this.#onDatagram(bytes, remote, endpoint),
        this.#logger,
      );
      entry = this.#entry("UDP", udp.local, options, () => udp.close(), udp);
    } else if (options.transport === "TCP") {
      const l = TcpListener.listen(host, port, (c) => this.#adopt(c, "TCP", true), this.#logger);
      entry = this.#entry("TCP", l.local, options, () => l.close());
    } else {
      if (options.tls === undefined) throw new TransportError("TLS listener needs cert and key");
      const l = await listenTls(
        host,
        port,
        options.tls,
        (c) => this.#adopt(c, "TLS", true),
        this.#logger,
      );
      entry = this.#entry("TLS", l.local, options, () => l.close());
    }
    this.#listening.push(entry);
    this.#logger.debug("listening", {
      transport: entry.transport,
      address: formatHostPort(entry.local.host, entry.local.port),
    });
    return entry.local;
  }

  /**
   * The address to advertise in Via sent-by and Contact for `transport` (RFC 3261 §18.1.1):
   * the first listener's advertised host and bound port. Throws when nothing listens on it.
   */
  localAddress(transport: TransportName): HostPort {
    const entry = this.#listening.find((l) => l.transport === transport);
    if (entry === undefined) throw new TransportError(`no ${transport} listener`);
    return entry.advertised;
  }

  /** True when a listener exists for `transport`. */
  hasTransport(transport: TransportName): boolean {
    return this.#listening.some((l) => l.transport === transport);
  }

  /** Number of open stream connections. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** True while the stream connection with this id is open. */
  isConnectionOpen(connectionId: number): boolean {
    return this.#connections.has(connectionId);
  }

  /** Closes one stream connection by id (no-op when already closed). */
  closeConnection(connectionId: number): void {
    this.#connections.get(connectionId)?.close();
  }

  /** Registers a listener for every parsed message. */
  onMessage(listener: MessageListener): void {
    this.#messageListeners.push(listener);
  }

  /** Registers a listener for unparseable input (already answered or dropped). */
  onParseError(listener: ParseErrorListener): void {
    this.#errorListeners.push(listener);
  }

  /**
   * Serializes and sends a message; resolves with the {@link Flow} used.
   *
   * - Request: `target` is required. A {@link Flow} with an open `connectionId` sends on that
   *   connection; otherwise an existing connection to the address is reused, else a new one
   *   is opened (TCP/TLS); UDP goes from the flow's local socket or the first UDP listener.
   * - Response: routed by its top Via (RFC 3261 §18.2.2, RFC 3581 §4) unless `target` is a
   *   plain {@link Target}; a Flow whose connection is still open is used first.
   *
   * Rejects with the transport's error (connection refused, timeout, closed socket).
   */
  async send(message: SipMessage, target?: Target | Flow): Promise<Flow> {
    if (this.#closed) throw new TransportError("transport layer closed");
    const bytes = serializeMessage(message);
    if (message instanceof SipRequest) {
      if (target === undefined) throw new TransportError("a request needs a target");
      return await this.#sendTo(bytes, target);
    }
    if (target !== undefined && !isFlow(target)) return await this.#sendTo(bytes, target);
    return await this.#sendResponse(message, bytes, target);
  }

  /** Closes every listener and connection; resolves when all loops have ended. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const waits: Promise<void>[] = [];
    for (const entry of this.#listening.splice(0)) waits.push(entry.close());
    for (const conn of [...this.#connections.values()]) {
      conn.close();
      waits.push(conn.finished);
    }
    await Promise.allSettled([...this.#connecting.values()]);
    for (const conn of [...this.#connections.values()]) {
      conn.close();
      waits.push(conn.finished);
    }
    await Promise.all(waits);
  }

  #entry(
    transport: TransportName,
    local: HostPort,
    options: ListenOptions,
    close: () => Promise<void>,
    udp?: UdpEndpoint,
  ): Listening {
    const advertised = {
      host: options.advertisedHost ?? advertisable(local.host),
      port: local.port,
    };
    return udp === undefined
      ? { transport, local, advertised, close }
      : { transport, local, advertised, close, udp };
  }

  // ---------------------------------------------------------------- receiving

  #onDatagram(bytes: Uint8Array, remote: HostPort, endpoint: UdpEndpoint): void {
    const flow: Flow = { transport: "UDP", local: endpoint.local, remote };
    // RFC 3261 §18.3 / §7.5: leading CRLFs are allowed; an all-CRLF datagram is a keep-alive.
    if (bytes.every((b) => b === 13 || b === 10)) return;
    this.#ingest(bytes, flow, (reply) => endpoint.send(reply, remote.host, remote.port));
  }

  #adopt(
    conn: Deno.Conn,
    transport: TransportName,
    inbound: boolean,
  ): StreamConnection | undefined {
    if (this.#closed || this.#connections.size >= this.#limits.maxConnections) {
      this.#logger.debug("connection refused: limit reached", { transport });
      try {
        conn.close();
      } catch {
        // Ignore.
      }
      return undefined;
    }
    const stream = new StreamConnection(conn, {
      id: this.#nextConnectionId++,
      transport,
      inbound,
      limits: this.#limits,
      idleTimeoutMs: this.#idleTimeoutMs,
      clock: this.#clock,
      logger: this.#logger,
      events: {
        onMessage: (bytes, c) => {
          this.#ingest(bytes, flowOf(c), (reply) => c.write(reply));
        },
        onFramingError: (reason, unframed, c) => this.#framingError(reason, unframed, c),
        onClose: (c) => this.#forget(c),
      },
    });
    this.#connections.set(stream.id, stream);
    this.#byAddress.set(addressKey(transport, stream.remote.host, stream.remote.port), stream);
    stream.start();
    this.#logger.debug("connection open", {
      conn: stream.id,
      transport,
      inbound,
      remote: formatHostPort(stream.remote.host, stream.remote.port),
    });
    return stream;
  }

  #forget(conn: StreamConnection): void {
    this.#connections.delete(conn.id);
    for (const [key, value] of this.#byAddress) if (value === conn) this.#byAddress.delete(key);
    this.#logger.debug("connection closed", { conn: conn.id });
  }

  /** Parses one message, answers or drops defects, stamps Via, and passes it up. */
  #ingest(bytes: Uint8Array, flow: Flow, reply: (bytes: Uint8Array) => Promise<void>): void {
    let message: SipMessage;
    try {
      message = parseMessage(bytes, this.#limits);
    } catch (error) {
      if (!(error instanceof SipParseError)) {
        this.#logger.debug("unexpected parser failure", { error: errorText(error) });
        return;
      }
      this.#rejectMalformed(error, flow, reply);
      return;
    }
    if (message instanceof SipRequest) {
      try {
        stampVia(message, flow);
      } catch (error) {
        const err = error instanceof SipParseError ? error : new SipParseError(errorText(error));
        this.#rejectMalformed(err, flow, reply);
        return;
      }
      if (flow.connectionId !== undefined) this.#noteAlias(message, flow);
    }
    for (const listener of this.#messageListeners) {
      try {
        listener(message, flow);
      } catch (error) {
        this.#logger.warn("message listener threw", { error: errorText(error) });
      }
    }
  }

  /**
   * A message that cannot be parsed: when it is a request with enough header fields, answer
   * with the parser's status (400, 413, 505, 513…) and a reason naming the defect (RFC 3261
   * §8.2.2, §21.4.1); otherwise drop it. One debug line either way.
   */
  #rejectMalformed(
    error: SipParseError,
    flow: Flow,
    reply: (bytes: Uint8Array) => Promise<void>,
  ): void {
    const response = errorResponseFor(error);
    this.#logger.debug(response === undefined ? "malformed message dropped" : "malformed message", {
      transport: flow.transport,
      remote: formatHostPort(flow.remote.host, flow.remote.port),
      defect: error.message,
      status: response?.status,
    });
    if (response !== undefined) {
      reply(serializeMessage(response)).catch((e: unknown) =>
        this.#logger.debug("error response not sent", { error: errorText(e) })
      );
    }
    for (const listener of this.#errorListeners) {
      try {
        listener(error, flow);
      } catch (e) {
        this.#logger.warn("parse error listener threw", { error: errorText(e) });
      }
    }
  }

  /** Framing failed: best-effort response from what was read, then the connection closes. */
  async #framingError(reason: string, unframed: Uint8Array, conn: StreamConnection): Promise<void> {
    let error: SipParseError;
    try {
      const partial = parseMessage(unframed, this.#limits);
      error = new SipParseError(reason, { status: 400 });
      if (partial instanceof SipRequest) {
        const response = createResponse(partial, 400, `Bad Request (${reason})`);
        await conn.write(serializeMessage(response)).catch(() => {});
      }
    } catch (e) {
      error = e instanceof SipParseError ? e : new SipParseError(reason);
      const response = errorResponseFor(error);
      if (response !== undefined) await conn.write(serializeMessage(response)).catch(() => {});
    }
    const flow = flowOf(conn);
    for (const listener of this.#errorListeners) {
      try {
        listener(new SipParseError(`${reason}: ${error.message}`, { status: error.status }), flow);
      } catch (e) {
        this.#logger.warn("parse error listener threw", { error: errorText(e) });
      }
    }
  }

  /** RFC 5923 §6: a request whose top Via has `alias` lets us reuse this connection. */
  #noteAlias(request: SipRequest, flow: Flow): void {
    const via = request.topVia;
    if (!via.params.has("alias") || flow.connectionId === undefined) return;
    const conn = this.#connections.get(flow.connectionId);
    if (conn === undefined) return;
    const port = via.port ?? defaultPort(flow.transport);
    this.#byAddress.set(addressKey(flow.transport, flow.remote.host, port), conn);
  }

  // ---------------------------------------------------------------- sending

  async #sendTo(bytes: Uint8Array, target: Target | Flow): Promise<Flow> {
    if (isFlow(target)) {
      if (target.transport === "UDP") {
        return await this.#sendUdp(bytes, target.remote, target.local);
      }
      const open = target.connectionId === undefined
        ? undefined
        : this.#connections.get(target.connectionId);
      if (open !== undefined) {
        await open.write(bytes);
        return flowOf(open);
      }
      return await this.#sendStream(
        bytes,
        target.transport,
        target.remote.host,
        target.remote.port,
      );
    }
    if (target.transport === "UDP") return await this.#sendUdp(bytes, target, undefined);
    return await this.#sendStream(bytes, target.transport, target.host, target.port);
  }

  async #sendUdp(bytes: Uint8Array, to: HostPort, from: HostPort | undefined): Promise<Flow> {
    const udp = this.#listening.filter((l) => l.udp !== undefined);
    const entry =
      (from === undefined
        ? undefined
        : udp.find((l) => l.local.port === from.port && l.local.host === from.host)) ??
        udp.find((l) => from !== undefined && l.local.port === from.port) ?? udp[0];
    if (entry?.udp === undefined) throw new TransportError("no UDP listener to send from");
    await entry.udp.send(bytes, to.host, to.port);
    return {
      transport: "UDP",
      local: entry.local,
      remote: { host: bareHost(to.host), port: to.port },
    };
  }

  async #sendStream(
    bytes: Uint8Array,
    transport: TransportName,
    host: string,
    port: number,
  ): Promise<Flow> {
    const conn = await this.#connection(transport, host, port);
    await conn.write(bytes);
    return flowOf(conn);
  }

  /** An open connection to `host:port`: reused when one exists, else opened (one at a time). */
  async #connection(
    transport: TransportName,
    host: string,
    port: number,
  ): Promise<StreamConnection> {
    const key = addressKey(transport, host, port);
    const existing = this.#byAddress.get(key);
    if (existing !== undefined && !existing.closed) return existing;
    const pending = this.#connecting.get(key);
    if (pending !== undefined) return await pending;
    const opening = (async () => {
      const conn = transport === "TLS"
        ? await connectTls(host, port, this.#connectTimeoutMs, this.#clock, this.#tls)
        : await connectTcp(host, port, this.#connectTimeoutMs, this.#clock);
      if (this.#closed) {
        conn.close();
        throw new TransportError("transport layer closed");
      }
      const stream = this.#adopt(conn, transport, false);
      if (stream === undefined) throw new TransportError("connection limit reached");
      this.#byAddress.set(key, stream);
      return stream;
    })();
    this.#connecting.set(key, opening);
    try {
      return await opening;
    } finally {
      this.#connecting.delete(key);
    }
  }

  /**
   * RFC 3261 §18.2.2: "If the "sent-protocol" is a reliable transport protocol such as TCP or
   * SCTP, or TLS over those, the response MUST be sent using the existing connection to the
   * source of the original request that created the transaction, if that connection is still
   * open." Otherwise the destination comes from the top Via ({@link responseDestination}).
   */
  async #sendResponse(
    response: SipResponse,
    bytes: Uint8Array,
    flow: Flow | undefined,
  ): Promise<Flow> {
    const destination = responseDestination(response);
    if (destination === undefined) {
      throw new TransportError(`unsupported transport ${response.topVia.transport}`);
    }
    if (destination.transport !== "UDP") {
      const open = flow?.connectionId === undefined
        ? undefined
        : this.#connections.get(flow.connectionId);
      if (open !== undefined) {
        await open.write(bytes);
        return flowOf(open);
      }
      return await this.#sendStream(
        bytes,
        destination.transport,
        destination.host,
        destination.port,
      );
    }
    return await this.#sendUdp(bytes, destination, flow?.local);
  }
}

/** The connection index key: transport and bare host and port. */
function addressKey(transport: TransportName, host: string, port: number): string {
  return `${transport} ${bareHost(host).toLowerCase()} ${port}`;
}

function flowOf(conn: StreamConnection): Flow {
  return {
    transport: conn.transport,
    local: conn.local,
    remote: conn.remote,
    connectionId: conn.id,
  };
}

/** A host worth advertising for a bind address (wildcards become a real interface). */
function advertisable(bound: string): string {
  if (bound !== "0.0.0.0" && bound !== "::") return bound;
  try {
    for (const nic of Deno.networkInterfaces()) {
      if (nic.family === "IPv4" && IPV4.test(nic.address) && !nic.address.startsWith("127.")) {
        return nic.address;
      }
    }
  } catch {
    // Permission or platform limits: fall back to loopback.
  }
  return "127.0.0.1";
}
