/**
 * A minimal scripted SIP user agent over one TCP connection, for focus integration tests:
 * builds requests, collects responses and incoming requests, and answers the latter.
 * @module
 */

import { parseNameAddr } from "../../lib/sip/headers.ts";
import {
  bodyText,
  createResponse,
  type SipMessage,
  SipRequest,
  SipResponse,
} from "../../lib/sip/message.ts";
import { serializeMessage } from "../../lib/sip/parser.ts";
import { RawStreamPeer } from "./sip_transport.ts";

let counter = 0;

/** A PCMU audio offer. */
export function pcmuOffer(port: number): string {
  return [
    "v=0",
    `o=test ${port} 1 IN IP4 127.0.0.1`,
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    `m=audio ${port} RTP/AVP 0 101`,
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=sendrecv",
    "",
  ].join("\r\n");
}

/** A scripted UA named `user` talking to a server on `port`. */
export class SipClient {
  readonly user: string;
  readonly peer: RawStreamPeer;
  readonly callId = `call-${Date.now()}-${++counter}`;
  readonly tag = `t${++counter}`;
  #cseq = 1;
  readonly #inbox: SipMessage[] = [];
  #waiters: Array<() => void> = [];
  #reading: Promise<void>;
  #closed = false;

  private constructor(user: string, peer: RawStreamPeer) {
    this.user = user;
    this.peer = peer;
    this.#reading = this.#readLoop();
  }

  static async connect(user: string, port: number): Promise<SipClient> {
    return new SipClient(user, await RawStreamPeer.connect(port));
  }

  get aor(): string {
    return `sip:${this.user}@example.org`;
  }

  /** A GRUU instance (RFC 5627 `gr` value) put in the Contact URI when set (chat devices). */
  gr: string | undefined;

  get contact(): string {
    const gr = this.gr !== undefined ? `;gr=${this.gr}` : "";
    return `<sip:${this.user}@127.0.0.1:${this.peer.port};transport=tcp${gr}>`;
  }

  /** The Contact URI (without brackets): the device URI the server sends requests to. */
  get contactUri(): string {
    return this.contact.slice(1, -1);
  }

  async #readLoop(): Promise<void> {
    for (;;) {
      let msg: SipMessage;
      try {
        msg = await this.peer.nextMessage();
      } catch {
        this.#closed = true;
        this.#wake();
        return;
      }
      this.#inbox.push(msg);
      this.#wake();
    }
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits for the first message matching `pred` and removes it from the inbox. */
  async take<M extends SipMessage>(pred: (m: SipMessage) => m is M): Promise<M>;
  async take(pred: (m: SipMessage) => boolean): Promise<SipMessage>;
  async take(pred: (m: SipMessage) => boolean): Promise<SipMessage> {
    for (;;) {
      const i = this.#inbox.findIndex(pred);
      if (i >= 0) return this.#inbox.splice(i, 1)[0]!;
      if (this.#closed) throw new Error(`${this.user}: connection closed while waiting`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** The next response to a request with this CSeq number and method. */
  response(cseq: number, method: string, final = true): Promise<SipResponse> {
    return this.take((m): m is SipResponse =>
      m instanceof SipResponse && m.cseq.seq === cseq && m.cseq.method === method &&
      (!final || m.status >= 200)
    );
  }

  /** The next incoming request with this method. */
  request(method: string): Promise<SipRequest> {
    return this.take((m): m is SipRequest => m instanceof SipRequest && m.method === method);
  }

  /** Sends a raw message. */
  async send(msg: SipMessage): Promise<void> {
    await this.peer.write(serializeMessage(msg));
  }

  /** Builds and sends a request; returns its CSeq number. */
  async sendRequest(
    method: string,
    uri: string,
    opts: {
      to?: string;
      toTag?: string;
      callId?: string;
      headers?: Array<[string, string]>;
      body?: string;
      contentType?: string;
      cseq?: number;
      routes?: string[];
    } = {},
  ): Promise<number> {
    const cseq = opts.cseq ?? this.#cseq++;
    const lines = [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${this.peer.port};branch=z9hG4bK${crypto.randomUUID()};rport`,
      `From: <${this.aor}>;tag=${this.tag}`,
      `To: <${opts.to ?? uri}>${opts.toTag ? `;tag=${opts.toTag}` : ""}`,
      `Call-ID: ${opts.callId ?? this.callId}`,
      `CSeq: ${cseq} ${method}`,
      "Max-Forwards: 70",
      `Contact: ${this.contact}`,
      ...(opts.routes ?? []).map((r) => `Route: ${r}`),
      ...(opts.headers ?? []).map(([n, v]) => `${n}: ${v}`),
    ];
    const body = opts.body ?? "";
    if (body !== "") lines.push(`Content-Type: ${opts.contentType ?? "application/sdp"}`);
    lines.push(`Content-Length: ${new TextEncoder().encode(body).length}`, "", body);
    await this.peer.write(lines.join("\r\n"));
    return cseq;
  }

  /** Answers an incoming request. */
  async answer(request: SipRequest, status = 200): Promise<void> {
    await this.send(createResponse(request, status, undefined, { toTag: `a${this.tag}` }));
  }

  /** ACK for a 2xx to INVITE, in the dialog the response created. */
  async ack(response: SipResponse, uri: string): Promise<void> {
    const contact = response.headers.get("Contact");
    const target = contact ? parseNameAddr(contact).uri : undefined;
    const lines = [
      `ACK ${target ? formatTarget(contact!) : uri} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${this.peer.port};branch=z9hG4bK${crypto.randomUUID()};rport`,
      `From: ${response.headers.get("From")}`,
      `To: ${response.headers.get("To")}`,
      `Call-ID: ${response.callId}`,
      `CSeq: ${response.cseq.seq} ACK`,
      "Max-Forwards: 70",
      "Content-Length: 0",
      "",
      "",
    ];
    await this.peer.write(lines.join("\r\n"));
  }

  close(): Promise<void> {
    this.peer.close();
    return this.#reading;
  }
}

function formatTarget(contact: string): string {
  const m = /<([^>]+)>/.exec(contact);
  return m?.[1] ?? contact;
}

/** The body of a message as text. */
export function textOf(m: SipMessage): string {
  return bodyText(m);
}
