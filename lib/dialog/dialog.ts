/**
 * Dialog state (RFC 3261 §12): identifiers, sequence numbers, route set and remote target,
 * creation on the UAS side from a request (§12.1.1) and on the UAC side from a response
 * (§12.1.2), request construction within the dialog (§12.2.1.1), and CSeq checking of
 * incoming requests (§12.2.2). Pure values: no I/O.
 * @module
 */

import { formatNameAddr, Headers, type NameAddr, parseNameAddr } from "../sip/headers.ts";
import { SipRequest, type SipResponse } from "../sip/message.ts";
import { cloneUri, formatUri, parseUri, type SipUri } from "../sip/uri.ts";

/** A dialog's identity (RFC 3261 §12): Call-ID, local tag, remote tag. */
export interface DialogId {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
}

/** The key under which a dialog is found from an incoming request or response. */
export function dialogKey(id: DialogId): string {
  return `${id.callId}\u0000${id.localTag}\u0000${id.remoteTag}`;
}

/** Result of checking an incoming request's CSeq (RFC 3261 §12.2.2). */
export type CSeqCheck = "ok" | "out-of-order";

/** Mutable state of one dialog. */
export class Dialog {
  readonly id: DialogId;
  /** Local URI (our From in requests we send). */
  readonly localUri: NameAddr;
  /** Remote URI (our To in requests we send). */
  readonly remoteUri: NameAddr;
  /** Remote target: the peer's Contact (RFC 3261 §12.1; refreshed by target refresh requests). */
  remoteTarget: SipUri;
  /** Route set, in the order to put in Route headers (RFC 3261 §12.1.1, §12.1.2). */
  routeSet: string[];
  /** Our CSeq counter (RFC 3261 §12.2.1.1); incremented per new request. */
  localSeq: number;
  /** Highest CSeq received from the peer, or undefined before any (RFC 3261 §12.2.2). */
  remoteSeq: number | undefined;
  /** Our Contact, sent in requests and target-refresh responses. */
  localContact: string;
  /** Whether the dialog was set up over a sips URI (RFC 3261 §12.1.1). */
  readonly secure: boolean;

  constructor(init: {
    id: DialogId;
    localUri: NameAddr;
    remoteUri: NameAddr;
    remoteTarget: SipUri;
    routeSet: string[];
    localSeq: number;
    remoteSeq: number | undefined;
    localContact: string;
    secure?: boolean;
  }) {
    this.id = init.id;
    this.localUri = init.localUri;
    this.remoteUri = init.remoteUri;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.localSeq = init.localSeq;
    this.remoteSeq = init.remoteSeq;
    this.localContact = init.localContact;
    this.secure = init.secure ?? false;
  }

  /** Key for lookup tables ({@link dialogKey}). */
  get key(): string {
    return dialogKey(this.id);
  }

  /**
   * UAS side (RFC 3261 §12.1.1): route set = Record-Route of the request in order, remote
   * target = its Contact, remote sequence = its CSeq, local tag = the To tag we chose.
   */
  static fromIncomingRequest(request: SipRequest, localTag: string, localContact: string): Dialog {
    const from = request.from;
    const to = request.to;
    const contact = request.headers.get("Contact");
    const remoteTarget = contact !== undefined ? parseNameAddr(contact, "Contact").uri : from.uri;
    const localUri: NameAddr = { ...to, params: new Map(to.params) };
    localUri.params.set("tag", localTag);
    return new Dialog({
      id: { callId: request.callId, localTag, remoteTag: from.params.get("tag") ?? "" },
      localUri,
      remoteUri: from,
      remoteTarget,
      routeSet: request.headers.getAll("Record-Route"),
      localSeq: 0,
      remoteSeq: request.cseq.seq,
      localContact,
      secure: request.uri.scheme === "sips",
    });
  }

  /**
   * UAC side (RFC 3261 §12.1.2): route set = Record-Route of the response in reverse order,
   * remote target = its Contact, remote tag = its To tag.
   */
  static fromResponse(request: SipRequest, response: SipResponse): Dialog {
    const contact = response.headers.get("Contact");
    const to = response.to;
    const remoteTarget = contact !== undefined
      ? parseNameAddr(contact, "Contact").uri
      : cloneUri(request.uri);
    return new Dialog({
      id: {
        callId: request.callId,
        localTag: request.from.params.get("tag") ?? "",
        remoteTag: to.params.get("tag") ?? "",
      },
      localUri: request.from,
      remoteUri: to,
      remoteTarget,
      routeSet: response.headers.getAll("Record-Route").reverse(),
      localSeq: request.cseq.seq,
      remoteSeq: undefined,
      localContact: request.headers.get("Contact") ?? "",
      secure: request.uri.scheme === "sips",
    });
  }

  /**
   * Checks an incoming in-dialog request's CSeq (RFC 3261 §12.2.2): lower than the remote
   * sequence number → out of order (the UAS answers 500); otherwise the number is recorded.
   * ACK and CANCEL carry the INVITE's number and are not checked.
   */
  checkRemoteSeq(request: SipRequest): CSeqCheck {
    if (request.method === "ACK" || request.method === "CANCEL") return "ok";
    const seq = request.cseq.seq;
    if (this.remoteSeq !== undefined && seq <= this.remoteSeq) {
      // RFC 3261 §12.2.2: "If the remote sequence number was not empty, but the sequence
      // number of the request is lower than the remote sequence number, the request is out of
      // order and MUST be rejected with a 500". An equal number is a retransmission that the
      // transaction layer absorbs; a new transaction with an equal number is out of order too.
      return "out-of-order";
    }
    this.remoteSeq = seq;
    return "ok";
  }

  /** Target refresh (RFC 3261 §12.2.2): a new Contact in a re-INVITE/UPDATE replaces the target. */
  refreshTarget(message: SipRequest | SipResponse): void {
    const contact = message.headers.get("Contact");
    if (contact === undefined) return;
    try {
      this.remoteTarget = parseNameAddr(contact, "Contact").uri;
    } catch {
      // A malformed Contact leaves the old target in place.
    }
  }

  /**
   * Builds a request within the dialog (RFC 3261 §12.2.1.1). Loose routing: the Request-URI
   * is the remote target and the route set goes to Route headers; when the first route is a
   * strict router (no `lr`), it becomes the Request-URI and the remote target is appended.
   * `cseq` overrides the counter (ACK and CANCEL reuse the INVITE's number).
   */
  createRequest(method: string, options: { cseq?: number; body?: Uint8Array } = {}): SipRequest {
    let seq: number;
    if (options.cseq !== undefined) {
      seq = options.cseq;
    } else {
      this.localSeq += 1;
      seq = this.localSeq;
    }
    const headers = new Headers();
    let requestUri = cloneUri(this.remoteTarget);
    const routes = [...this.routeSet];
    const first = routes[0];
    if (first !== undefined) {
      const firstUri = parseNameAddr(first, "Route").uri;
      if (!firstUri.params.has("lr")) {
        requestUri = firstUri;
        routes.shift();
        routes.push(`<${formatUri(this.remoteTarget)}>`);
      }
    }
    for (const route of routes) headers.append("Route", route);
    headers.append("From", formatNameAddr(this.localUri));
    headers.append("To", formatNameAddr(this.remoteUri));
    headers.append("Call-ID", this.id.callId);
    headers.append("CSeq", `${seq} ${method}`);
    headers.append("Max-Forwards", "70");
    if (method !== "ACK" && method !== "CANCEL" && this.localContact !== "") {
      headers.append("Contact", this.localContact);
    }
    return new SipRequest(method, requestUri, headers, options.body);
  }
}

/** Parses a URI, returning undefined instead of throwing. */
export function tryParseUri(text: string): SipUri | undefined {
  try {
    return parseUri(text);
  } catch {
    return undefined;
  }
}
