/**
 * The transaction layer (RFC 3261 §17): matches incoming messages to transactions
 * (§17.1.3, §17.2.3), creates server transactions for new requests and hands them to the
 * transaction user (TU), answers CANCEL (§9.2) and merged requests (§8.2.2.2) itself, and
 * creates client transactions for requests the TU sends.
 *
 * The TU is an interface passed to the constructor; the layer never imports the dialog layer.
 * @module
 */

import { type Clock, systemClock } from "../config/clock.ts";
import { createLogger, type Logger } from "../config/log.ts";
import { formatVia, parseVia, type Via } from "../sip/headers.ts";
import { createResponse, type SipMessage, SipRequest, type SipResponse } from "../sip/message.ts";
import { formatUri } from "../sip/uri.ts";
import {
  bareHost,
  defaultPort,
  type Flow,
  type HostPort,
  type Target,
  toTransportName,
  type TransportName,
} from "../transport/flow.ts";
import { cancelFor } from "./derived_requests.ts";
import {
  type ClientTransaction,
  type ClientTransactionHandlers,
  InviteClientTransaction,
  NonInviteClientTransaction,
} from "./client_transaction.ts";
import {
  InviteServerTransaction,
  NonInviteServerTransaction,
  type ServerTransaction,
} from "./server_transaction.ts";
import {
  DEFAULT_TIMER_BASE,
  deriveTimers,
  type TimerBase,
  type TransactionTimers,
} from "./timers.ts";
import { generateBranch, generateTag, MAGIC_COOKIE } from "./transaction.ts";

/** What the layer needs from the transport layer (lib/transport's `TransportLayer` fits). */
export interface TransactionTransport {
  /** Sends a message (RFC 3261 §18); resolves with the flow used. */
  send(message: SipMessage, target?: Target | Flow): Promise<Flow | void>;
  /** Registers the receiver of every parsed message. */
  onMessage(listener: (message: SipMessage, flow: Flow) => void): void;
  /** Address for Via sent-by (RFC 3261 §18.1.1); throws when nothing listens on `transport`. */
  localAddress(transport: TransportName): HostPort;
}

/**
 * The transaction user (RFC 3261 §17: "the layer above the transaction layer"), e.g. the
 * user-agent core of lib/dialog.
 */
export interface TransactionUser {
  /**
   * A new request created a server transaction (RFC 3261 §17.2). Answer it with
   * `tx.respond(...)`. CANCEL and merged requests never arrive here; ACK never does either.
   */
  onRequest(tx: ServerTransaction): void;
  /**
   * An ACK that matched no INVITE server transaction: the ACK for a 2xx, which RFC 3261
   * §17.2.3/§13.3.1.4 hands to the TU core directly.
   */
  onAck?(ack: SipRequest, flow: Flow): void;
  /**
   * A CANCEL matched an INVITE server transaction (RFC 3261 §9.2). The layer has already
   * answered the CANCEL with 200 and, if the INVITE had no final response yet, the INVITE
   * with 487 (Request Terminated).
   */
  onCancel?(invite: InviteServerTransaction, cancel: SipRequest): void;
  /**
   * A response that matched no client transaction (RFC 3261 §18.1.2: discarded by the
   * transaction layer), e.g. a 2xx retransmission after Timer M; a UAC core may re-ACK it.
   */
  onStrayResponse?(response: SipResponse, flow: Flow): void;
}

/** Options of {@link TransactionLayer}. */
export interface TransactionLayerOptions {
  /** The transport layer; the transaction layer registers its message listener on it. */
  readonly transport: TransactionTransport;
  /** The TU receiving new server transactions. */
  readonly user: TransactionUser;
  /** Time source of every transaction timer (default: system clock). */
  readonly clock?: Clock;
  /** T1/T2/T4 (default 500 ms / 4 s / 5 s). */
  readonly timers?: TimerBase;
  /** Logger (default: component `transaction`). */
  readonly logger?: Logger;
}

/**
 * Transaction matching, creation and the CANCEL / merged-request rules (RFC 3261 §17,
 * §9.2, §8.2.2.2).
 */
export class TransactionLayer {
  readonly #transport: TransactionTransport;
  readonly #user: TransactionUser;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #unreliable: TransactionTimers;
  readonly #reliable: TransactionTimers;
  readonly #servers = new Map<string, ServerTransaction>();
  readonly #clients = new Map<string, ClientTransaction>();
  /** §8.2.2.2 index: From tag, Call-ID, CSeq → server transaction. */
  readonly #merge = new Map<string, ServerTransaction>();
  readonly #targets = new WeakMap<ClientTransaction, Target | Flow>();
  #closed = false;

  /** Creates the layer and subscribes to the transport's messages. */
  constructor(options: TransactionLayerOptions) {
    this.#transport = options.transport;
    this.#user = options.user;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("transaction");
    const base = options.timers ?? DEFAULT_TIMER_BASE;
    this.#unreliable = deriveTimers(base, false);
    this.#reliable = deriveTimers(base, true);
    this.#transport.onMessage((message, flow) => this.receive(message, flow));
  }

  /** Timer values for a transport (RFC 3261 Appendix A). */
  timersFor(transport: TransportName): TransactionTimers {
    return transport === "UDP" ? this.#unreliable : this.#reliable;
  }

  /** Number of live server transactions. */
  get serverTransactionCount(): number {
    return this.#servers.size;
  }

  /** Number of live client transactions. */
  get clientTransactionCount(): number {
    return this.#clients.size;
  }

  /**
   * Sends `request` in a new client transaction (RFC 3261 §17.1) to `target` (a destination
   * chosen by RFC 3263 rules, or a {@link Flow} to reuse a connection).
   *
   * When the request has no Via, one is added with our sent-by, a fresh branch and `rport`
   * (RFC 3261 §8.1.1.7, RFC 3581 §3); a top Via without branch gets one. Max-Forwards 70 is
   * added when missing (§8.1.1.6). ACK cannot be sent in a transaction: send the ACK for a
   * 2xx with the transport directly (§13.2.2.4).
   */
  sendRequest(
    request: SipRequest,
    target: Target | Flow,
    handlers: ClientTransactionHandlers = {},
  ): ClientTransaction {
    if (this.#closed) throw new Error("transaction layer closed");
    if (request.method === "ACK") {
      throw new TypeError("ACK is not sent in a client transaction (RFC 3261 §17.1.1.3)");
    }
    const branch = this.#prepareVia(request, target.transport);
    if (!request.headers.has("Max-Forwards")) request.headers.append("Max-Forwards", "70");
    const key = clientKey(branch, request.cseq.method);
    if (this.#clients.has(key)) throw new Error(`duplicate client transaction ${key}`);
    let destination: Target | Flow = target;
    const options = {
      request,
      key,
      clock: this.#clock,
      timers: this.timersFor(target.transport),
      logger: this.#logger,
      // Retransmissions and the ACK go where the request went (§17.1.1.3), over the same
      // connection once one is open.
      send: async (message: SipRequest) => {
        const used = await this.#transport.send(message, destination);
        if (used !== undefined && used.connectionId !== undefined) destination = used;
      },
      handlers: {
        ...handlers,
        onTerminated: (reason, tx) => {
          if (this.#clients.get(key) === tx) this.#clients.delete(key);
          handlers.onTerminated?.(reason, tx);
        },
      } satisfies ClientTransactionHandlers,
    };
    const tx = request.method === "INVITE"
      ? new InviteClientTransaction(options)
      : new NonInviteClientTransaction(options);
    this.#clients.set(key, tx);
    this.#targets.set(tx, target);
    tx.start();
    return tx;
  }

  /**
   * Sends a request outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4, §17.1.1.3:
   * "the ACK for a 2xx ... is passed directly to the transport layer"), with the same Via and
   * Max-Forwards preparation as {@link sendRequest} (a fresh branch when the top Via has none).
   * Resolves with the flow used; rejects with the transport's error.
   */
  async sendStateless(request: SipRequest, target: Target | Flow): Promise<Flow | void> {
    if (this.#closed) throw new Error("transaction layer closed");
    this.#prepareVia(request, target.transport);
    if (!request.headers.has("Max-Forwards")) request.headers.append("Max-Forwards", "70");
    return await this.#transport.send(request, target);
  }

  /**
   * Cancels a pending INVITE (RFC 3261 §9.1): waits until the transaction is in Proceeding
   * ("If no provisional response has been received, the CANCEL request MUST NOT be sent"),
   * then sends the CANCEL in its own client transaction to the same destination. Resolves
   * with that transaction, or undefined when the INVITE reached a final state first.
   */
  async cancel(
    invite: InviteClientTransaction,
    handlers: ClientTransactionHandlers = {},
  ): Promise<ClientTransaction | undefined> {
    if (invite.state === "calling") {
      await new Promise<void>((resolve) => {
        const off = invite.onStateChange(() => {
          off();
          resolve();
        });
      });
    }
    if (invite.state !== "proceeding" || this.#closed) return undefined;
    const target = this.#targets.get(invite);
    if (target === undefined) return undefined;
    return this.sendRequest(cancelFor(invite.request), target, handlers);
  }

  /**
   * Feeds a message from the transport (registered automatically in the constructor).
   * Responses go to their client transaction (§17.1.3); requests to their server
   * transaction (§17.2.3) or to a new one.
   */
  receive(message: SipMessage, flow: Flow): void {
    if (this.#closed) return;
    try {
      if (message instanceof SipRequest) this.#receiveRequest(message, flow);
      else this.#receiveResponse(message, flow);
    } catch (error) {
      // Accessors throw on header fields the parser accepted but that are unusable here.
      this.#logger.debug("message dropped", {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** Terminates every transaction (no messages sent). */
  close(): void {
    this.#closed = true;
    for (const tx of [...this.#servers.values()]) tx.terminate();
    for (const tx of [...this.#clients.values()]) tx.terminate();
    this.#servers.clear();
    this.#clients.clear();
    this.#merge.clear();
  }

  /** Ensures a top Via with a branch; returns the branch. */
  #prepareVia(request: SipRequest, transport: TransportName): string {
    const top = request.headers.get("Via");
    if (top !== undefined) {
      const via = parseVia(top);
      const branch = via.params.get("branch");
      if (branch !== undefined && branch !== null && branch.length > 0) return branch;
      const fresh = generateBranch();
      via.params.set("branch", fresh);
      request.headers.removeFirst("Via");
      request.headers.prepend("Via", formatVia(via));
      return fresh;
    }
    const branch = generateBranch();
    const local = this.#localAddress(transport);
    const via: Via = {
      protocol: "SIP/2.0",
      transport,
      host: local.host.includes(":") ? `[${local.host}]` : local.host,
      port: local.port,
      params: new Map<string, string | null>([["branch", branch], ["rport", null]]),
    };
    request.headers.prepend("Via", formatVia(via));
    return branch;
  }

  #localAddress(transport: TransportName): HostPort {
    try {
      return this.#transport.localAddress(transport);
    } catch {
      // No listener on that transport (e.g. an outgoing-only TCP connection): responses come
      // back on the connection, so any of our addresses serves as sent-by.
      for (const other of ["UDP", "TCP", "TLS"] as const) {
        try {
          return this.#transport.localAddress(other);
        } catch {
          // Try the next one.
        }
      }
      throw new Error("no listener to build a Via from");
    }
  }

  #receiveResponse(response: SipResponse, flow: Flow): void {
    // §17.1.3: "If the response has the same value of the branch parameter in the top Via
    // header field as the branch parameter in the top Via header field of the request that
    // created the transaction" and "the method parameter in the CSeq header field matches
    // the method of the request that created the transaction".
    const branch = response.branch;
    const tx = branch === undefined
      ? undefined
      : this.#clients.get(clientKey(branch, response.cseq.method));
    if (tx !== undefined) {
      tx.receiveResponse(response);
      return;
    }
    if (this.#user.onStrayResponse !== undefined) this.#user.onStrayResponse(response, flow);
    else {
      this.#logger.debug("response matches no transaction", {
        status: response.status,
        callId: response.callId,
      });
    }
  }

  #receiveRequest(request: SipRequest, flow: Flow): void {
    const method = request.method;
    const key = serverKey(request, method === "ACK" ? "INVITE" : method);
    if (method === "ACK") {
      const tx = this.#servers.get(key);
      if (tx instanceof InviteServerTransaction) tx.receiveAck(request);
      else if (this.#user.onAck !== undefined) this.#user.onAck(request, flow);
      return;
    }
    const existing = this.#servers.get(key);
    if (existing !== undefined) {
      // §17.2.3: a retransmission of the request that created the transaction.
      existing.receiveRequest(request);
      return;
    }
    if (method === "CANCEL") {
      this.#receiveCancel(request, flow, key);
      return;
    }
    const tx = this.#createServer(request, flow, key);
    if (this.#isMerged(request, tx)) {
      // §8.2.2.2: "If the From tag, Call-ID, and CSeq exactly match those associated with an
      // ongoing transaction, but the request does not match that transaction (based on the
      // matching rules in Section 17.2.3), the UAS core SHOULD generate a 482 (Loop
      // Detected) response and pass it to the server transaction."
      tx.respond(createResponse(request, 482, "Loop Detected", { toTag: generateTag() }));
      return;
    }
    this.#safely(() => this.#user.onRequest(tx));
  }

  /**
   * §9.2: "the CANCEL request matches a transaction [if] the branch, sent-by and Request-URI
   * rules of 17.2.3 match, except that the method is INVITE". A match is answered 200 and the
   * INVITE 487; no match is answered 481 (Call/Transaction Does Not Exist).
   */
  #receiveCancel(cancel: SipRequest, flow: Flow, key: string): void {
    const cancelTx = this.#createServer(cancel, flow, key);
    const invite = this.#servers.get(serverKey(cancel, "INVITE"));
    if (!(invite instanceof InviteServerTransaction) || invite.state === "terminated") {
      // "If the UAS did not find a matching transaction for the CANCEL according to the
      // procedure above, it SHOULD respond to the CANCEL with a 481."
      cancelTx.respond(createResponse(cancel, 481, undefined, { toTag: generateTag() }));
      return;
    }
    // "The To tag of the response to the CANCEL and the response to the original request
    // SHOULD be the same."
    cancelTx.respond(createResponse(cancel, 200, "OK", { toTag: invite.localTag }));
    // "If the UAS has not issued a final response for the original request, its behavior
    // depends on the method ... the UAS SHOULD respond to the INVITE with a 487."
    invite.cancel(cancel);
    if (this.#user.onCancel !== undefined) {
      const onCancel = this.#user.onCancel.bind(this.#user);
      this.#safely(() => onCancel(invite, cancel));
    }
  }

  #createServer(request: SipRequest, flow: Flow, key: string): ServerTransaction {
    const transport = toTransportName(flow.transport) ?? "UDP";
    const options = {
      request,
      flow,
      key,
      clock: this.#clock,
      timers: this.timersFor(transport),
      logger: this.#logger,
      send: async (response: SipResponse) => {
        await this.#transport.send(response, flow);
      },
    };
    const tx = request.method === "INVITE"
      ? new InviteServerTransaction(options)
      : new NonInviteServerTransaction(options);
    this.#servers.set(key, tx);
    const mergeKey = mergeKeyOf(request);
    if (mergeKey !== undefined && !this.#merge.has(mergeKey)) this.#merge.set(mergeKey, tx);
    tx.onTerminated(() => {
      if (this.#servers.get(key) === tx) this.#servers.delete(key);
      if (mergeKey !== undefined && this.#merge.get(mergeKey) === tx) this.#merge.delete(mergeKey);
    });
    return tx;
  }

  /** §8.2.2.2: only requests without a To tag are checked. */
  #isMerged(request: SipRequest, tx: ServerTransaction): boolean {
    const mergeKey = mergeKeyOf(request);
    if (mergeKey === undefined) return false;
    const owner = this.#merge.get(mergeKey);
    return owner !== undefined && owner !== tx && owner.state !== "terminated";
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#logger.warn("transaction user threw", {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

/** §17.1.3 client key: branch and CSeq method. */
function clientKey(branch: string, method: string): string {
  return `${branch}\u0000${method}`;
}

/**
 * §17.2.3 server key. With the magic cookie: branch, sent-by and method (ACK counts as
 * INVITE). Without it (RFC 2543 peers, §17.2.3 second half): Request-URI, From tag, Call-ID,
 * CSeq number, top Via and method; the To tag is left out so that the ACK, which carries our
 * tag, still matches its INVITE.
 */
export function serverKey(request: SipRequest, method: string): string {
  const via = request.topVia;
  const branch = via.params.get("branch") ?? "";
  if (branch.startsWith(MAGIC_COOKIE)) {
    const transport = toTransportName(via.transport) ?? "UDP";
    const port = via.port ?? defaultPort(transport);
    return `${branch}\u0000${bareHost(via.host).toLowerCase()}:${port}\u0000${method}`;
  }
  const viaKey = `${via.transport} ${via.host}:${via.port ?? ""};branch=${branch}`;
  return [
    "2543",
    formatUri(request.uri),
    request.fromTag ?? "",
    request.callId,
    String(request.cseq.seq),
    viaKey,
    method,
  ].join("\u0000");
}

function mergeKeyOf(request: SipRequest): string | undefined {
  if (request.toTag !== undefined) return undefined;
  const cseq = request.cseq;
  return `${request.fromTag ?? ""}\u0000${request.callId}\u0000${cseq.seq} ${cseq.method}`;
}
