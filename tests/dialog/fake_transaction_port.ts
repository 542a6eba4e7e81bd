/**
 * A scripted stand-in for the layers below the dialog layer (RFC 3261 §17 transactions, §18
 * transport): it records every request, ACK and 2xx retransmission the dialog layer hands it,
 * and lets a test answer each outgoing request when it chooses. Paired with
 * {@link FakeClock}, dialog tests step time instead of sleeping.
 * @module
 */

import { FakeClock } from "../../lib/config/clock.ts";
import { createLogger } from "../../lib/config/log.ts";
import type {
  IncomingTransaction,
  OutgoingHandlers,
  OutgoingTransaction,
  TransactionPort,
} from "../../lib/dialog/transaction_port.ts";
import { UserAgent, type UserAgentOptions } from "../../lib/dialog/user_agent.ts";
import { parseNameAddr } from "../../lib/sip/headers.ts";
import { createResponse, SipRequest, type SipResponse } from "../../lib/sip/message.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { parseUri, type SipUri } from "../../lib/sip/uri.ts";
import type { Flow, Target } from "../../lib/transport/flow.ts";

/** A request the dialog layer sent, waiting for the test to answer it. */
export interface SentRequest {
  readonly request: SipRequest;
  readonly target: Target | Flow;
  readonly handlers: OutgoingHandlers | undefined;
  /** Resolves the transaction's `final` promise. */
  settle(response: SipResponse): void;
  /** True once {@link settle} was called. */
  readonly settled: boolean;
}

/** Records what the dialog layer passes down; a test answers requests one by one. */
export class FakeTransactionPort implements TransactionPort {
  readonly sent: SentRequest[] = [];
  readonly acks: Array<{ ack: SipRequest; target: Target | Flow }> = [];
  readonly retransmissions: Array<{ response: SipResponse; flow: Flow; at: number }> = [];
  /** Connection ids reported as closed by {@link isFlowOpen}. */
  readonly closedConnections = new Set<number>();
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  sendRequest(
    request: SipRequest,
    target: Target | Flow,
    handlers?: OutgoingHandlers,
  ): OutgoingTransaction {
    let resolve!: (r: SipResponse) => void;
    const final = new Promise<SipResponse>((r) => (resolve = r));
    const entry = {
      request,
      target,
      handlers,
      settled: false,
      settle(response: SipResponse) {
        if (entry.settled) throw new Error("request already answered");
        entry.settled = true;
        resolve(response);
      },
    };
    this.sent.push(entry);
    return { final };
  }

  sendAck(ack: SipRequest, target: Target | Flow): Promise<void> {
    this.acks.push({ ack, target });
    return Promise.resolve();
  }

  sendResponse(response: SipResponse, flow: Flow): Promise<void> {
    this.retransmissions.push({ response, flow, at: this.#clock.now() });
    return Promise.resolve();
  }

  isFlowOpen(flow: Flow): boolean {
    return flow.connectionId === undefined || !this.closedConnections.has(flow.connectionId);
  }

  /** Sent requests with this method, in order. */
  requests(method: string): SentRequest[] {
    return this.sent.filter((s) => s.request.method === method);
  }

  /** The last request sent with this method (throws when none). */
  last(method: string): SentRequest {
    const all = this.requests(method);
    const entry = all[all.length - 1];
    if (entry === undefined) throw new Error(`no ${method} was sent`);
    return entry;
  }

  /** Answers `entry` as the peer would (RFC 3261 §8.2.6), with our To tag and extra parts. */
  answer(
    entry: SentRequest,
    status: number,
    parts: { toTag?: string; headers?: Array<[string, string]>; body?: string } = {},
  ): SipResponse {
    const response = peerResponse(entry.request, status, parts);
    entry.settle(response);
    return response;
  }
}

/** A server transaction as the transaction layer would hand it over; records responses. */
export class FakeIncomingTransaction implements IncomingTransaction {
  readonly request: SipRequest;
  readonly flow: Flow;
  readonly responses: SipResponse[] = [];

  constructor(request: SipRequest, flow: Flow) {
    this.request = request;
    this.flow = flow;
  }

  respond(response: SipResponse): void {
    this.responses.push(response);
  }

  /** The final response, if one was passed down. */
  get final(): SipResponse | undefined {
    return this.responses.find((r) => r.status >= 200);
  }

  /** The final response (throws when there is none). */
  get finalOrThrow(): SipResponse {
    const f = this.final;
    if (f === undefined) throw new Error(`no final response to ${this.request.method}`);
    return f;
  }
}

const encoder = new TextEncoder();

/** A response from the peer to a request the dialog layer sent. */
export function peerResponse(
  request: SipRequest,
  status: number,
  parts: { toTag?: string; headers?: Array<[string, string]>; body?: string } = {},
): SipResponse {
  const headers: Array<[string, string]> = [...(parts.headers ?? [])];
  let body: Uint8Array | undefined;
  if (parts.body !== undefined) {
    body = encoder.encode(parts.body);
    if (!headers.some(([n]) => n.toLowerCase() === "content-type")) {
      headers.push(["Content-Type", "application/sdp"]);
    }
  }
  return createResponse(request, status, undefined, {
    ...(status === 100 ? {} : { toTag: parts.toTag ?? "peer-tag" }),
    headers,
    ...(body !== undefined ? { body } : {}),
  });
}

/** A TCP flow from a peer at 192.0.2.10:40000 to us at 192.0.2.1:5060. */
export function tcpFlow(connectionId = 1): Flow {
  return {
    transport: "TCP",
    local: { host: "192.0.2.1", port: 5060 },
    remote: { host: "192.0.2.10", port: 40000 + connectionId },
    connectionId,
  };
}

/** A UDP flow from a peer at 192.0.2.20:5062. */
export function udpFlow(): Flow {
  return {
    transport: "UDP",
    local: { host: "192.0.2.1", port: 5060 },
    remote: { host: "192.0.2.20", port: 5062 },
  };
}

/** What {@link makeUa} builds. */
export interface UaFixture {
  readonly ua: UserAgent;
  readonly port: FakeTransactionPort;
  readonly clock: FakeClock;
}

/** A user-agent core over a fake port and a fake clock (T1 500 ms, T2 4 s by default). */
export function makeUa(
  overrides: Partial<Pick<UserAgentOptions, "outboundProxy" | "t1Ms" | "t2Ms">> = {},
): UaFixture {
  const clock = new FakeClock(1_000_000);
  const port = new FakeTransactionPort(clock);
  const ua = new UserAgent({
    port,
    clock,
    logger: createLogger("dialog-test"),
    serverName: "Conclave/test",
    outboundProxy: overrides.outboundProxy,
    t1Ms: overrides.t1Ms ?? 500,
    t2Ms: overrides.t2Ms ?? 4000,
    contactUri: (user) => parseUri(`sip:${user}@192.0.2.1:5060;transport=tcp`),
  });
  return { ua, port, clock };
}

/** Fields of {@link wireRequest}. */
export interface WireRequestSpec {
  readonly method: string;
  readonly uri?: string;
  readonly callId?: string;
  readonly cseq?: number;
  readonly fromTag?: string;
  readonly toTag?: string;
  readonly contact?: string;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
  readonly contentType?: string;
}

let branchCounter = 0;

/** A request as a peer would put it on the wire (RFC 3261 §8.1.1), parsed with lib/sip. */
export function wireRequest(spec: WireRequestSpec): SipRequest {
  const body = spec.body ?? "";
  const lines = [
    `${spec.method} ${spec.uri ?? "sip:conf@192.0.2.1"} SIP/2.0`,
    `Via: SIP/2.0/TCP 192.0.2.10:40001;branch=z9hG4bKdlg${++branchCounter}`,
    "Max-Forwards: 70",
    `From: "Alice" <sip:alice@example.org>;tag=${spec.fromTag ?? "alice-tag"}`,
    `To: <sip:conf@example.org>${spec.toTag !== undefined ? `;tag=${spec.toTag}` : ""}`,
    `Call-ID: ${spec.callId ?? "call-1@example.org"}`,
    `CSeq: ${spec.cseq ?? 1} ${spec.method}`,
    ...(spec.contact !== undefined ? [`Contact: ${spec.contact}`] : []),
    ...(spec.headers ?? []).map(([n, v]) => `${n}: ${v}`),
    ...(body !== "" ? [`Content-Type: ${spec.contentType ?? "application/sdp"}`] : []),
    `Content-Length: ${encoder.encode(body).length}`,
    "",
    body,
  ];
  const message = parseMessage(encoder.encode(lines.join("\r\n")));
  if (!(message instanceof SipRequest)) throw new Error("not a request");
  return message;
}

/** Delivers `request` to `ua` as a new server transaction on `flow`. */
export function deliver(
  ua: UserAgent,
  request: SipRequest,
  flow: Flow = tcpFlow(),
): FakeIncomingTransaction {
  const tx = new FakeIncomingTransaction(request, flow);
  ua.receiveRequest(tx);
  return tx;
}

/** The URI inside a name-addr header value. */
export function uriOf(value: string | undefined): SipUri {
  if (value === undefined) throw new Error("header missing");
  return parseNameAddr(value).uri;
}

/** An SDP body (version `v` in the o= line) for offer/answer tests. */
export function sdp(name: string, version = 1, port = 4000): string {
  return [
    "v=0",
    `o=${name} 1 ${version} IN IP4 192.0.2.10`,
    "s=-",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
    `m=audio ${port} RTP/AVP 0`,
    "a=rtpmap:0 PCMU/8000",
    "",
  ].join("\r\n");
}

/** Lets pending promise callbacks run (no timers, no sleeping). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** Asserts and narrows. */
export function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is undefined`);
  return value;
}
