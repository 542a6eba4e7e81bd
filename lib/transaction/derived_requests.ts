/**
 * Requests a UAC derives from one it sent: the ACK for a non-2xx final response
 * (RFC 3261 §17.1.1.3) and the CANCEL (§9.1).
 * @module
 */

import { Headers } from "../sip/headers.ts";
import { SipRequest, type SipResponse } from "../sip/message.ts";
import { cloneUri } from "../sip/uri.ts";

/**
 * Builds the ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI,
 * Call-ID, From, CSeq number and single top Via as the INVITE; To from the response; Route
 * header fields copied from the INVITE; no body.
 */
export function ackForNon2xx(invite: SipRequest, response: SipResponse): SipRequest {
  const h = new Headers();
  const src = invite.headers;
  const topVia = src.get("Via");
  if (topVia !== undefined) h.append("Via", topVia);
  for (const route of src.getAll("Route")) h.append("Route", route);
  const max = src.get("Max-Forwards");
  h.append("Max-Forwards", max ?? "70");
  const from = src.get("From");
  if (from !== undefined) h.append("From", from);
  const to = response.headers.get("To") ?? src.get("To");
  if (to !== undefined) h.append("To", to);
  const callId = src.get("Call-ID");
  if (callId !== undefined) h.append("Call-ID", callId);
  h.append("CSeq", `${invite.cseq.seq} ACK`);
  return new SipRequest("ACK", cloneUri(invite.uri), h);
}

/**
 * Builds the CANCEL for a pending request (RFC 3261 §9.1): same Request-URI, Call-ID, To,
 * From and CSeq number (method CANCEL), a single Via equal to the request's top Via, and the
 * request's Route header fields.
 */
export function cancelFor(request: SipRequest): SipRequest {
  const h = new Headers();
  const src = request.headers;
  const topVia = src.get("Via");
  if (topVia !== undefined) h.append("Via", topVia);
  for (const route of src.getAll("Route")) h.append("Route", route);
  h.append("Max-Forwards", src.get("Max-Forwards") ?? "70");
  for (const name of ["From", "To", "Call-ID"]) {
    const value = src.get(name);
    if (value !== undefined) h.append(name, value);
  }
  h.append("CSeq", `${request.cseq.seq} CANCEL`);
  return new SipRequest("CANCEL", cloneUri(request.uri), h);
}
