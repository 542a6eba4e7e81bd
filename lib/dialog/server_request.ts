/**
 * An incoming request as the transaction user sees it: the request, the flow it came on, and
 * a `respond` that fills in what every response of a user agent server carries (RFC 3261
 * §8.2.6: To tag; `Server`, §20.35).
 * @module
 */

import { Headers } from "../sip/headers.ts";
import { createResponse, type SipRequest, type SipResponse } from "../sip/message.ts";
import { generateTag } from "../transaction/transaction.ts";
import type { Flow } from "../transport/flow.ts";
import type { IncomingTransaction } from "./transaction_port.ts";

/** Extra parts of a response. */
export interface ResponseParts {
  /** Header fields appended after the copied ones. */
  readonly headers?: Iterable<readonly [string, string]>;
  /** Body bytes or text; `contentType` then names it. */
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
}

const encoder = new TextEncoder();

/** Methods whose 2xx creates a dialog (RFC 3261 §12.1, RFC 6665 §4.1.2, RFC 3515 §2.4.4). */
const DIALOG_CREATING = new Set(["INVITE", "SUBSCRIBE", "REFER"]);

/** One request waiting for (or having received) its final response. */
export class ServerRequest {
  readonly request: SipRequest;
  readonly flow: Flow;
  readonly #transaction: IncomingTransaction;
  readonly #serverName: string;
  /** The To tag this UAS uses for every response to this request (RFC 3261 §8.2.6.2). */
  readonly toTag: string;
  #final: SipResponse | undefined;
  #cancelled = false;
  #cancelListeners: Array<() => void> = [];

  constructor(transaction: IncomingTransaction, serverName: string) {
    this.#transaction = transaction;
    this.request = transaction.request;
    this.flow = transaction.flow;
    this.#serverName = serverName;
    let tag: string | undefined;
    try {
      tag = transaction.request.toTag;
    } catch {
      // A malformed To: the user-agent core answers 400 or drops the request.
    }
    this.toTag = tag ?? generateTag();
  }

  /** The final response sent, if any. */
  get finalResponse(): SipResponse | undefined {
    return this.#final;
  }

  /** True once a final response was sent. */
  get answered(): boolean {
    return this.#final !== undefined;
  }

  /** True once a CANCEL for this INVITE arrived (RFC 3261 §9.2); the transaction sent 487. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Runs `listener` when the request is cancelled. */
  onCancel(listener: () => void): void {
    this.#cancelListeners.push(listener);
  }

  /** Called by the user-agent core when a CANCEL matched this request. */
  markCancelled(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    for (const l of this.#cancelListeners) l();
  }

  /**
   * Builds a response to this request with our To tag (except for 100) and `Server`. A
   * response that establishes a dialog (101–299 to an INVITE, SUBSCRIBE or REFER outside any
   * dialog) carries the request's Record-Route values (RFC 3261 §12.1.1: "the UAS MUST copy all
   * Record-Route header field values from the request into the response").
   */
  build(status: number, reason?: string, parts: ResponseParts = {}): SipResponse {
    const headers: Array<readonly [string, string]> = [["Server", this.#serverName]];
    if (status > 100 && status < 300 && DIALOG_CREATING.has(this.request.method)) {
      let outsideDialog = false;
      try {
        outsideDialog = this.request.toTag === undefined;
      } catch {
        // A malformed To: nothing to copy into a response that cannot be built anyway.
      }
      if (outsideDialog) {
        for (const rr of this.request.headers.getAll("Record-Route")) {
          headers.push(["Record-Route", rr]);
        }
      }
    }
    if (parts.headers) headers.push(...parts.headers);
    let body: Uint8Array | undefined;
    if (parts.body !== undefined) {
      body = typeof parts.body === "string" ? encoder.encode(parts.body) : parts.body;
      if (parts.contentType !== undefined) headers.push(["Content-Type", parts.contentType]);
    }
    return createResponse(this.request, status, reason, {
      ...(status === 100 ? {} : { toTag: this.toTag }),
      headers,
      ...(body !== undefined ? { body } : {}),
    });
  }

  /**
   * Sends a response. A second final response, or anything after a CANCEL, is ignored.
   * Returns the response sent (or undefined when ignored).
   */
  respond(status: number, reason?: string, parts: ResponseParts = {}): SipResponse | undefined {
    if (this.#final !== undefined || this.#cancelled) return undefined;
    const response = this.build(status, reason, parts);
    return this.send(response);
  }

  /** Sends a response built elsewhere (e.g. with {@link build} and then edited). */
  send(response: SipResponse): SipResponse | undefined {
    if (this.#final !== undefined || this.#cancelled) return undefined;
    if (response.status >= 200) this.#final = response;
    this.#transaction.respond(response);
    return response;
  }
}

/** Convenience: a Headers list from pairs. */
export function headersOf(pairs: Iterable<readonly [string, string]>): Headers {
  return new Headers(pairs);
}
