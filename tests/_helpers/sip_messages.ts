/**
 * Builders of SIP requests and responses for transaction and transport tests, written as
 * RFC 3261 text and parsed with lib/sip so the messages are exactly what the wire would carry.
 * @module
 */

import { parseMessage } from "../../lib/sip/parser.ts";
import { createResponse, SipRequest, type SipResponse } from "../../lib/sip/message.ts";

/** Fields of {@link requestText}. */
export interface RequestSpec {
  readonly method?: string;
  readonly uri?: string;
  readonly transport?: string;
  readonly viaHost?: string;
  readonly viaPort?: number;
  readonly branch?: string;
  /** Extra Via parameters, e.g. `;rport`. */
  readonly viaParams?: string;
  readonly callId?: string;
  readonly cseq?: number;
  readonly cseqMethod?: string;
  readonly fromTag?: string;
  readonly toTag?: string;
  readonly body?: string;
  readonly extra?: readonly string[];
}

let counter = 0;

/** A unique token for Call-IDs, tags and branches within one test process. */
export function unique(prefix: string): string {
  counter++;
  return `${prefix}${counter}x${crypto.randomUUID().slice(0, 8)}`;
}

/** RFC 3261 request text with CRLF line ends. */
export function requestText(spec: RequestSpec = {}): string {
  const method = spec.method ?? "OPTIONS";
  const transport = spec.transport ?? "UDP";
  const host = spec.viaHost ?? "127.0.0.1";
  const port = spec.viaPort === undefined ? "" : `:${spec.viaPort}`;
  const branch = spec.branch ?? unique("z9hG4bK");
  const body = spec.body ?? "";
  const lines = [
    `${method} ${spec.uri ?? "sip:conf@127.0.0.1"} SIP/2.0`,
    `Via: SIP/2.0/${transport} ${host}${port};branch=${branch}${spec.viaParams ?? ""}`,
    "Max-Forwards: 70",
    `From: <sip:alice@example.com>;tag=${spec.fromTag ?? "from1"}`,
    `To: <sip:conf@example.com>${spec.toTag === undefined ? "" : `;tag=${spec.toTag}`}`,
    `Call-ID: ${spec.callId ?? "call-1@example.com"}`,
    `CSeq: ${spec.cseq ?? 1} ${spec.cseqMethod ?? method}`,
    ...(spec.extra ?? []),
    `Content-Length: ${new TextEncoder().encode(body).length}`,
    "",
    body,
  ];
  return lines.join("\r\n");
}

/** A parsed request built from {@link requestText}. */
export function makeRequest(spec: RequestSpec = {}): SipRequest {
  const message = parseMessage(new TextEncoder().encode(requestText(spec)));
  if (!(message instanceof SipRequest)) throw new Error("not a request");
  return message;
}

/** A response to `request` (RFC 3261 §8.2.6) with a To tag on everything but 100. */
export function makeResponse(request: SipRequest, status: number, toTag = "uas1"): SipResponse {
  return createResponse(request, status, undefined, status === 100 ? {} : { toTag });
}

/** Text of a message for assertions. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
