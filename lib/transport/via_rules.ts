/**
 * The Via rules of the transport layer as pure functions: what a server stamps on a received
 * request (RFC 3261 §18.2.1, RFC 3581 §4) and where a response goes when no open connection
 * can carry it (RFC 3261 §18.2.2, RFC 3581 §4).
 * @module
 */

import { SipParseError } from "../sip/errors.ts";
import { formatVia, parseVia } from "../sip/headers.ts";
import type { SipRequest, SipResponse } from "../sip/message.ts";
import { bareHost, defaultPort, type Flow, type Target, toTransportName } from "./flow.ts";

/**
 * RFC 3261 §18.2.1 and RFC 3581 §4 on a received request: add `received` when the sent-by
 * host is not the packet's source address (always when `rport` is present), and give an
 * empty `rport` the source port. Rewrites the top Via in place. Throws
 * {@link SipParseError} when there is no usable Via.
 */
export function stampVia(request: SipRequest, flow: Flow): void {
  const first = request.headers.get("Via");
  if (first === undefined) throw new SipParseError("missing Via");
  const via = parseVia(first);
  const source = flow.remote.host;
  const hasRport = via.params.has("rport");
  let changed = false;
  // "If the host portion of the "sent-by" parameter contains a domain name, or if it
  // contains an IP address that differs from the packet source address, the server MUST add
  // a "received" parameter to that Via header field value." RFC 3581: with rport, "the
  // server MUST insert a received parameter ... even if it is identical".
  if (hasRport || !sameAddress(via.host, source)) {
    via.params.set("received", source);
    changed = true;
  }
  if (hasRport && via.params.get("rport") === null) {
    // RFC 3581 §4: "it MUST set the value of the parameter to the source port of the request."
    via.params.set("rport", String(flow.remote.port));
    changed = true;
  }
  if (changed) {
    request.headers.removeFirst("Via");
    request.headers.prepend("Via", formatVia(via));
  }
}

/**
 * Where a response goes by its top Via when the request's connection cannot be used
 * (RFC 3261 §18.2.2, RFC 3581 §4); undefined for a transport Conclave does not speak.
 *
 * - Reliable: "open a connection to the IP address in the "received" parameter, if present,
 *   using the port in the "sent-by" value, or the default port for that transport".
 * - UDP with `maddr`: "forwarded to the address listed there, using the port indicated in
 *   "sent-by", or port 5060 if none is present".
 * - UDP with a valued `rport`: "sent to the IP address listed in the "received" parameter,
 *   and the port in the "rport" parameter".
 * - Otherwise: "the address in the "received" parameter, using the port indicated in the
 *   "sent-by" value, or using port 5060".
 */
export function responseDestination(response: SipResponse): Target | undefined {
  const via = response.topVia;
  const transport = toTransportName(via.transport);
  if (transport === undefined) return undefined;
  const received = via.params.get("received") ?? undefined;
  const host = bareHost(received ?? via.host);
  if (transport !== "UDP") {
    return { transport, host, port: via.port ?? defaultPort(transport) };
  }
  const maddr = via.params.get("maddr");
  if (maddr !== undefined && maddr !== null) {
    return { transport, host: bareHost(maddr), port: via.port ?? 5060 };
  }
  const rport = via.params.get("rport");
  if (rport !== undefined && rport !== null && /^\d{1,5}$/.test(rport)) {
    return { transport, host, port: Number(rport) };
  }
  return { transport, host, port: via.port ?? 5060 };
}

function sameAddress(viaHost: string, source: string): boolean {
  const a = bareHost(viaHost).toLowerCase();
  const b = bareHost(source).toLowerCase();
  if (a === b) return true;
  // IPv4-mapped IPv6 sources (::ffff:1.2.3.4) equal their IPv4 form.
  return b.startsWith("::ffff:") && b.slice(7) === a;
}
