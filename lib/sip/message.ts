/**
 * SIP requests and responses as values (RFC 3261 §7), with read-only accessors for the
 * headers every layer needs, and response construction (§8.2.6).
 * @module
 */

import { SipParseError } from "./errors.ts";
import {
  type CSeq,
  Headers,
  type NameAddr,
  parseCSeq,
  parseNameAddr,
  parseVia,
  type Via,
} from "./headers.ts";
import { cloneUri, type SipUri } from "./uri.ts";
import { defaultReason } from "./reasons.ts";

export { defaultReason } from "./reasons.ts";

const EMPTY = new Uint8Array(0);

function required(headers: Headers, name: string): string {
  const value = headers.get(name);
  if (value === undefined) throw new SipParseError(`missing ${name}`);
  return value;
}

/** Accessors shared by requests and responses (RFC 3261 §8.1.1 mandatory header fields). */
abstract class SipMessageBase {
  /** Header fields, in order. */
  headers: Headers;
  /** Body bytes (RFC 3261 §7.4); empty when there is none. */
  body: Uint8Array;

  constructor(headers: Headers, body: Uint8Array) {
    this.headers = headers;
    this.body = body;
  }

  /** Call-ID (RFC 3261 §20.8). Throws {@link SipParseError} when missing. */
  get callId(): string {
    return required(this.headers, "Call-ID");
  }

  /** CSeq (RFC 3261 §20.16). Throws {@link SipParseError} when missing or malformed. */
  get cseq(): CSeq {
    return parseCSeq(required(this.headers, "CSeq"));
  }

  /** From (RFC 3261 §20.20). Throws {@link SipParseError} when missing or malformed. */
  get from(): NameAddr {
    return parseNameAddr(required(this.headers, "From"), "From");
  }

  /** To (RFC 3261 §20.39). Throws {@link SipParseError} when missing or malformed. */
  get to(): NameAddr {
    return parseNameAddr(required(this.headers, "To"), "To");
  }

  /** The From tag (RFC 3261 §19.3), undefined when absent. */
  get fromTag(): string | undefined {
    return this.from.params.get("tag") ?? undefined;
  }

  /** The To tag (RFC 3261 §19.3), undefined when absent. */
  get toTag(): string | undefined {
    return this.to.params.get("tag") ?? undefined;
  }

  /** The first Via (RFC 3261 §20.42). Throws {@link SipParseError} when missing or malformed. */
  get topVia(): Via {
    return parseVia(required(this.headers, "Via"));
  }

  /** The top Via's branch parameter (RFC 3261 §8.1.1.7), undefined when absent. */
  get branch(): string | undefined {
    return this.topVia.params.get("branch") ?? undefined;
  }

  /** Content-Type as written (RFC 3261 §20.15), undefined when absent. */
  get contentType(): string | undefined {
    return this.headers.get("Content-Type");
  }

  /** Max-Forwards (RFC 3261 §20.22), undefined when absent or not a number. */
  get maxForwards(): number | undefined {
    const v = this.headers.get("Max-Forwards");
    if (v === undefined || !/^[ \t]*[0-9]{1,10}[ \t]*$/.test(v)) return undefined;
    return Number(v);
  }
}

/** A SIP request (RFC 3261 §7.1). */
export class SipRequest extends SipMessageBase {
  /** Method, case-sensitive (RFC 3261 §7.1): `INVITE`, `ACK`, … */
  method: string;
  /** Request-URI. */
  uri: SipUri;

  /** Creates a request; headers and body default to empty. */
  constructor(method: string, uri: SipUri, headers = new Headers(), body: Uint8Array = EMPTY) {
    super(headers, body);
    this.method = method;
    this.uri = uri;
  }
}

/** A SIP response (RFC 3261 §7.2). */
export class SipResponse extends SipMessageBase {
  /** Status code, 100–699. */
  status: number;
  /** Reason phrase (may be empty). */
  reason: string;

  /** Creates a response; headers and body default to empty. */
  constructor(status: number, reason: string, headers = new Headers(), body: Uint8Array = EMPTY) {
    super(headers, body);
    this.status = status;
    this.reason = reason;
  }
}

/** Either kind of SIP message (RFC 3261 §7). */
export type SipMessage = SipRequest | SipResponse;

/** True for a request. */
export function isRequest(m: SipMessage): m is SipRequest {
  return m instanceof SipRequest;
}

/** True for a response. */
export function isResponse(m: SipMessage): m is SipResponse {
  return m instanceof SipResponse;
}

/** Options of {@link createResponse}. */
export interface CreateResponseOptions {
  /** To tag to add when the request's To has none (RFC 3261 §8.2.6.2). */
  readonly toTag?: string;
  /** Extra header fields appended after the copied ones. */
  readonly headers?: Iterable<readonly [string, string]>;
  /** Body; the caller sets Content-Type through `headers`. */
  readonly body?: Uint8Array;
}

/**
 * Builds a response to `request` per RFC 3261 §8.2.6: copies every Via (same order), From,
 * To, Call-ID and CSeq (§8.2.6.2); adds `toTag` when the To has no tag; for 100 (Trying)
 * copies Timestamp (§8.2.6.1). The reason defaults to {@link defaultReason}.
 */
export function createResponse(
  request: SipRequest,
  status: number,
  reason?: string,
  opts: CreateResponseOptions = {},
): SipResponse {
  const h = new Headers();
  const src = request.headers;
  for (const via of src.getAll("Via")) h.append("Via", via);
  const from = src.get("From");
  if (from !== undefined) h.append("From", from);
  const to = src.get("To");
  if (to !== undefined) {
    let value = to;
    if (opts.toTag !== undefined && !parseNameAddr(to, "To").params.has("tag")) {
      value = `${to};tag=${opts.toTag}`;
    }
    h.append("To", value);
  }
  const callId = src.get("Call-ID");
  if (callId !== undefined) h.append("Call-ID", callId);
  const cseq = src.get("CSeq");
  if (cseq !== undefined) h.append("CSeq", cseq);
  if (status === 100) {
    const ts = src.get("Timestamp");
    if (ts !== undefined) h.append("Timestamp", ts);
  }
  if (opts.headers !== undefined) { for (const [n, v] of opts.headers) h.append(n, v); }
  return new SipResponse(status, reason ?? defaultReason(status), h, opts.body ?? EMPTY);
}

const decoder = new TextDecoder();

/** The body decoded as UTF-8 (RFC 3261 §7.4; SDP and XML bodies are UTF-8). */
export function bodyText(msg: SipMessage): string {
  return decoder.decode(msg.body);
}

/** A deep copy: URI, headers and body are independent of the original. */
export function cloneMessage<M extends SipMessage>(msg: M): M {
  if (msg instanceof SipRequest) {
    return new SipRequest(
      msg.method,
      cloneUri(msg.uri),
      msg.headers.clone(),
      msg.body.slice(),
    ) as M;
  }
  const r = msg as SipResponse;
  return new SipResponse(r.status, r.reason, r.headers.clone(), r.body.slice()) as M;
}
