/**
 * The user-agent core (RFC 3261 §8): the transaction user that sits above the transaction
 * layer. It applies the UAS checks of §8.2 (405/501 with Allow, 420 with Unsupported, 415 with
 * Accept, 483, 400 naming the defect), routes in-dialog requests to their dialog usage (§12.2.2,
 * 481 when none, 500 for an out-of-order CSeq), answers OPTIONS (§11.2), and builds and sends
 * out-of-dialog requests through the outbound proxy as a pre-loaded Route (§8.1.2).
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { formatNameAddr, Headers, type NameAddr, parseNameAddr } from "../sip/headers.ts";
import { SipRequest, type SipResponse } from "../sip/message.ts";
import { formatUri, parseUri, type SipUri } from "../sip/uri.ts";
import { generateTag } from "../transaction/transaction.ts";
import { defaultPort, type Flow, type Target, toTransportName } from "../transport/flow.ts";
import type { Dialog } from "./dialog.ts";
import { ServerRequest } from "./server_request.ts";
import type {
  IncomingTransaction,
  OutgoingHandlers,
  OutgoingTransaction,
  TransactionPort,
} from "./transaction_port.ts";

/** Methods this user agent implements (RFC 3261 §20.5 Allow). */
export const ALLOWED_METHODS: readonly string[] = [
  "INVITE",
  "ACK",
  "CANCEL",
  "BYE",
  "OPTIONS",
  "SUBSCRIBE",
  "NOTIFY",
  "REFER",
  "UPDATE",
  "INFO",
  "MESSAGE",
];

/** Methods we know of but do not accept (→ 405 rather than 501, RFC 3261 §8.2.1). */
const KNOWN_METHODS = new Set([...ALLOWED_METHODS, "REGISTER", "PRACK", "PUBLISH"]);

/**
 * Option tags we support (RFC 3261 §20.37): session timers (RFC 4028) and INVITEs carrying a
 * recipient list (RFC 5366 `recipient-list-invite`: chat room creation through the factory).
 */
export const SUPPORTED_OPTIONS: readonly string[] = ["timer", "recipient-list-invite"];

/** Body types we accept (RFC 3261 §20.1 Accept). */
export const ACCEPTED_TYPES: readonly string[] = [
  "application/sdp",
  "message/sipfrag",
  "application/conference-info+xml",
  "application/resource-lists+xml",
  "multipart/mixed",
  "text/plain",
  "message/cpim",
  "application/im-iscomposing+xml",
  "message/imdn+xml",
  "application/reginfo+xml",
];

/** Event packages served (RFC 6665 §8.2.2 Allow-Events). */
export const ALLOWED_EVENTS: readonly string[] = ["conference", "refer"];

/** A dialog usage: what lives on a dialog (an INVITE session, a subscription). */
export interface DialogUsage {
  readonly dialog: Dialog;
  /** An in-dialog request for this dialog that passed the CSeq check. */
  onRequest(request: ServerRequest): void;
  /** An ACK for this dialog (RFC 3261 §13.3.1.4: ACK to a 2xx travels outside transactions). */
  onAck?(ack: SipRequest): void;
}

/** What the layer above (the focus) receives. */
export interface RequestHandler {
  /** A request outside any dialog that passed the core checks. */
  onRequest(request: ServerRequest): void;
}

/** Settings of the user-agent core. */
export interface UserAgentOptions {
  readonly port: TransactionPort;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Value of `Server`/`User-Agent`, e.g. `Conclave/0.1.0`. */
  readonly serverName: string;
  /** Pre-loaded route for requests we originate (RFC 3261 §8.1.2), or undefined. */
  readonly outboundProxy: SipUri | undefined;
  /** T1 and T2 for 2xx retransmission (RFC 3261 §13.3.1.4). */
  readonly t1Ms: number;
  readonly t2Ms: number;
  /** Our Contact URI for a user part and the flow we answer on (or the default transport). */
  contactUri(user: string, flow: Flow | undefined): SipUri;
}

/** Parameters of an out-of-dialog request we originate. */
export interface OutgoingRequestSpec {
  readonly method: string;
  readonly uri: SipUri;
  readonly from: NameAddr;
  readonly to: NameAddr;
  readonly contact?: string;
  readonly headers?: Iterable<readonly [string, string]>;
  readonly body?: Uint8Array;
  readonly callId?: string;
  readonly cseq?: number;
}

function randomToken(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** Parses an option-tag list header (Require, Supported, …) into lower-case tags. */
export function optionTags(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(",")).map((t) => t.trim().toLowerCase()).filter((t) =>
    t !== ""
  );
}

/**
 * Chooses where to send a request (RFC 3261 §8.1.2; RFC 3263 without DNS: the URI's host,
 * port and transport parameter): the top Route if any, else the Request-URI.
 */
export function nextHop(request: SipRequest): Target {
  let uri = request.uri;
  const route = request.headers.get("Route");
  if (route !== undefined) {
    const m = /<([^>]*)>/.exec(route);
    try {
      uri = parseRouteUri(m?.[1] ?? route);
    } catch {
      // fall back to the Request-URI
    }
  }
  return targetOf(uri);
}

function parseRouteUri(text: string): SipUri {
  return parseUri(text.trim());
}

/** The transport target a SIP URI designates (RFC 3263 §4 without DNS lookups). */
export function targetOf(uri: SipUri): Target {
  const param = uri.params.get("transport");
  let transport = param ? toTransportName(param) : undefined;
  if (transport === undefined) transport = uri.scheme === "sips" ? "TLS" : "UDP";
  const host = uri.host.startsWith("[") ? uri.host.slice(1, -1) : uri.host;
  return { transport, host, port: uri.port ?? defaultPort(transport) };
}

/** The user-agent core. */
export class UserAgent {
  readonly options: UserAgentOptions;
  #handler: RequestHandler | undefined;
  readonly #usages = new Map<string, DialogUsage>();
  /** SUBSCRIBEs we sent whose dialog is not set up yet, by Call-ID + our tag (RFC 6665 §4.1.2.4). */
  readonly #earlyNotify = new Map<string, (request: ServerRequest) => boolean>();
  /** INVITEs awaiting a final response, by Call-ID + From tag + CSeq, for CANCEL. */
  readonly #pendingInvites = new Map<string, ServerRequest>();

  constructor(options: UserAgentOptions) {
    this.options = options;
  }

  /** Sets the layer above. */
  setHandler(handler: RequestHandler): void {
    this.#handler = handler;
  }

  get clock(): Clock {
    return this.options.clock;
  }

  get logger(): Logger {
    return this.options.logger;
  }

  /** Number of dialogs with a usage. */
  get dialogCount(): number {
    return this.#usages.size;
  }

  /** Registers a usage under its dialog's key. */
  addUsage(usage: DialogUsage): void {
    this.#usages.set(usage.dialog.key, usage);
  }

  /**
   * Routes a NOTIFY that matches no dialog yet but carries our `localTag` in its To to
   * `handler` (RFC 6665 §4.1.2.4: a NOTIFY may arrive before the 2xx to the SUBSCRIBE and then
   * creates the dialog). The handler returns false to let the core answer 481.
   */
  expectNotify(
    callId: string,
    localTag: string,
    handler: (request: ServerRequest) => boolean,
  ): void {
    this.#earlyNotify.set(`${callId}\u0000${localTag}`, handler);
  }

  /** Stops routing early NOTIFYs for a SUBSCRIBE (see {@link expectNotify}). */
  forgetNotify(callId: string, localTag: string): void {
    this.#earlyNotify.delete(`${callId}\u0000${localTag}`);
  }

  /** Removes a usage. */
  removeUsage(usage: DialogUsage): void {
    if (this.#usages.get(usage.dialog.key) === usage) this.#usages.delete(usage.dialog.key);
  }

  // ------------------------------------------------------------------------------------
  // Incoming

  /** A new server transaction from the transaction layer (RFC 3261 §8.2). */
  receiveRequest(transaction: IncomingTransaction): void {
    const sr = new ServerRequest(transaction, this.options.serverName);
    try {
      this.#dispatch(sr);
    } catch (err) {
      // A header that breaks when the core or a usage reads it: 400 naming the defect (RFC
      // 3261 §8.2, §21.4.1), one debug line. Anything else is our fault: 500, one warning.
      const malformed = err instanceof SyntaxError;
      const message = err instanceof Error ? err.message : String(err);
      const reason = malformed ? `Bad Request (${message})` : "Server Internal Error";
      if (malformed) this.logger.debug("request rejected", { method: sr.request.method, reason });
      else this.logger.warn("request failed", { method: sr.request.method, error: message });
      try {
        sr.respond(malformed ? 400 : 500, reason);
      } catch (e) {
        // Not even a response can be built (e.g. a broken To): drop it.
        this.logger.debug("request dropped", {
          method: sr.request.method,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  /** An ACK that matched no server transaction: the ACK for a 2xx (RFC 3261 §13.3.1.4). */
  receiveAck(ack: SipRequest): void {
    let key: string;
    try {
      key = `${ack.callId}\u0000${ack.toTag ?? ""}\u0000${ack.fromTag ?? ""}`;
    } catch {
      return;
    }
    this.#usages.get(key)?.onAck?.(ack);
  }

  /** A CANCEL matched a pending INVITE (the transaction layer already answered 200/487). */
  receiveCancel(invite: SipRequest): void {
    const key = pendingKey(invite);
    const sr = this.#pendingInvites.get(key);
    if (!sr) return;
    this.#pendingInvites.delete(key);
    sr.markCancelled();
  }

  #dispatch(sr: ServerRequest): void {
    const req = sr.request;
    // RFC 3261 §8.2.1 method inspection.
    if (!ALLOWED_METHODS.includes(req.method)) {
      const status = KNOWN_METHODS.has(req.method) ? 405 : 501;
      sr.respond(status, undefined, { headers: [["Allow", ALLOWED_METHODS.join(", ")]] });
      return;
    }
    // Mandatory headers parse (throws SyntaxError → 400 with the defect).
    void req.from;
    void req.to;
    void req.cseq;
    void req.callId;
    if (req.cseq.method !== req.method) {
      throw new SyntaxError(`CSeq method ${req.cseq.method} does not match ${req.method}`);
    }
    const maxForwards = req.maxForwards;
    if (req.headers.has("Max-Forwards") && maxForwards === 0 && req.method !== "OPTIONS") {
      sr.respond(483);
      return;
    }
    // RFC 3261 §8.2.2.3 Require.
    const unsupported = optionTags(req.headers.getAll("Require")).filter((t) =>
      !SUPPORTED_OPTIONS.includes(t)
    );
    if (unsupported.length > 0 && req.method !== "CANCEL" && req.method !== "ACK") {
      sr.respond(420, undefined, { headers: [["Unsupported", unsupported.join(", ")]] });
      return;
    }
    // RFC 3261 §8.2.3 content processing.
    const type = req.contentType?.split(";")[0]?.trim().toLowerCase();
    if (req.body.length > 0 && type !== undefined && !ACCEPTED_TYPES.includes(type)) {
      sr.respond(415, undefined, { headers: [["Accept", ACCEPTED_TYPES.join(", ")]] });
      return;
    }
    const encoding = req.headers.get("Content-Encoding")?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== "" && encoding !== "identity") {
      sr.respond(415, undefined, { headers: [["Accept-Encoding", "identity"]] });
      return;
    }

    // RFC 3261 §12.2.2: requests with a To tag belong to a dialog.
    if (req.toTag !== undefined) {
      const key = `${req.callId}\u0000${req.toTag}\u0000${req.fromTag ?? ""}`;
      const usage = this.#usages.get(key);
      if (!usage) {
        const early = req.method === "NOTIFY"
          ? this.#earlyNotify.get(`${req.callId}\u0000${req.toTag}`)
          : undefined;
        if (early === undefined || !early(sr)) sr.respond(481);
        return;
      }
      if (usage.dialog.checkRemoteSeq(req) === "out-of-order") {
        sr.respond(500, "Server Internal Error (CSeq out of order)");
        return;
      }
      usage.onRequest(sr);
      return;
    }

    if (req.method === "INVITE") {
      const key = pendingKey(req);
      this.#pendingInvites.set(key, sr);
      const cleanup = () => {
        if (this.#pendingInvites.get(key) === sr) this.#pendingInvites.delete(key);
      };
      // Forget the pending INVITE once answered.
      const original = sr.send.bind(sr);
      sr.send = (response: SipResponse) => {
        if (response.status >= 200) cleanup();
        return original(response);
      };
    }

    if (req.method === "OPTIONS" && !this.#handler) {
      this.answerOptions(sr);
      return;
    }
    if (!this.#handler) {
      sr.respond(503, "Service Unavailable (starting)");
      return;
    }
    this.#handler.onRequest(sr);
  }

  /** Answers OPTIONS with our capabilities (RFC 3261 §11.2). */
  answerOptions(sr: ServerRequest): void {
    sr.respond(200, undefined, { headers: this.capabilityHeaders() });
  }

  /** Allow, Accept, Supported and Allow-Events (RFC 3261 §11.2, RFC 6665 §8.2.2). */
  capabilityHeaders(): Array<readonly [string, string]> {
    return [
      ["Allow", ALLOWED_METHODS.join(", ")],
      ["Accept", ACCEPTED_TYPES.join(", ")],
      ["Accept-Encoding", "identity"],
      ["Supported", SUPPORTED_OPTIONS.join(", ")],
      ["Allow-Events", ALLOWED_EVENTS.join(", ")],
    ];
  }

  // ------------------------------------------------------------------------------------
  // Outgoing

  /** Builds an out-of-dialog request (RFC 3261 §8.1.1) with the outbound proxy pre-loaded. */
  createRequest(spec: OutgoingRequestSpec): SipRequest {
    const headers = new Headers();
    if (this.options.outboundProxy) {
      const proxy = this.options.outboundProxy;
      const routeUri = { ...proxy, params: new Map(proxy.params) };
      routeUri.params.set("lr", null);
      headers.append("Route", `<${formatUri(routeUri)}>`);
    }
    const from = { ...spec.from, params: new Map(spec.from.params) };
    if (!from.params.has("tag")) from.params.set("tag", generateTag());
    headers.append("From", formatNameAddr(from));
    headers.append("To", formatNameAddr(spec.to));
    headers.append("Call-ID", spec.callId ?? randomToken(12));
    headers.append("CSeq", `${spec.cseq ?? 1} ${spec.method}`);
    headers.append("Max-Forwards", "70");
    if (spec.contact !== undefined) headers.append("Contact", spec.contact);
    headers.append("User-Agent", this.options.serverName);
    if (spec.headers) { for (const [n, v] of spec.headers) headers.append(n, v); }
    return new SipRequest(spec.method, spec.uri, headers, spec.body);
  }

  /** Sends a request in a new client transaction toward its next hop (or a given flow). */
  send(request: SipRequest, handlers?: OutgoingHandlers, via?: Flow): OutgoingTransaction {
    const target: Target | Flow = via && this.options.port.isFlowOpen(via) ? via : nextHop(request);
    return this.options.port.sendRequest(request, target, handlers);
  }

  /**
   * Sends an in-dialog request: over the flow the dialog was set up on when the peer reached
   * us directly (no route set) and that connection is still open, else by next hop.
   */
  sendInDialog(
    request: SipRequest,
    dialog: Dialog,
    flow: Flow | undefined,
    handlers?: OutgoingHandlers,
  ): OutgoingTransaction {
    const direct = dialog.routeSet.length === 0 && flow !== undefined &&
      flow.transport !== "UDP" && this.options.port.isFlowOpen(flow);
    return this.options.port.sendRequest(
      request,
      direct ? flow : dialogNextHop(request, dialog),
      handlers,
    );
  }

  /** Sends an ACK for a 2xx (RFC 3261 §13.2.2.4). */
  sendAck(ack: SipRequest, dialog: Dialog, flow: Flow | undefined): Promise<void> {
    const direct = dialog.routeSet.length === 0 && flow !== undefined &&
      flow.transport !== "UDP" && this.options.port.isFlowOpen(flow);
    return this.options.port.sendAck(ack, direct ? flow : dialogNextHop(ack, dialog));
  }
}

/**
 * The next hop of a request built by {@link Dialog.createRequest} (RFC 3261 §8.1.2): "If the
 * first element in the route set indicated a strict router ..., the procedures MUST be applied
 * to the Request-URI of the request", otherwise to the top Route ({@link nextHop}).
 */
export function dialogNextHop(request: SipRequest, dialog: Dialog): Target {
  const first = dialog.routeSet[0];
  if (first !== undefined) {
    try {
      if (!parseNameAddr(first, "Route").uri.params.has("lr")) return targetOf(request.uri);
    } catch {
      // An unparsable route: let nextHop decide.
    }
  }
  return nextHop(request);
}

function pendingKey(req: SipRequest): string {
  return `${req.callId}\u0000${req.fromTag ?? ""}\u0000${req.cseq.seq}`;
}
