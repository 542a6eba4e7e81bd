/**
 * What the focus reads from an INVITE that joins or creates a conference: the SDP offer,
 * which may be the `application/sdp` part of a `multipart/mixed` body (RFC 2046 §5.1; Linphone
 * sends its factory INVITE with the resource list beside the offer, RFC 5366), and the
 * device that sent it: the Contact, a GRUU when the device has one (RFC 5627), else the From
 * (RFC 3261 §8.1.1.3).
 * @module
 */

import { parseNameAddr } from "../sip/headers.ts";
import { bodyText, type SipRequest } from "../sip/message.ts";
import { formatUri } from "../sip/uri.ts";

/** Extracts the SDP from a body that may be multipart/mixed (Linphone's factory INVITE). */
export function sdpBody(request: SipRequest): string | undefined {
  const type = request.contentType?.toLowerCase() ?? "";
  if (request.body.length === 0) return undefined;
  const text = bodyText(request);
  if (type.startsWith("application/sdp")) return text;
  if (type.startsWith("multipart/")) {
    const m = /boundary="?([^";]+)"?/i.exec(request.contentType ?? "");
    if (!m?.[1]) return undefined;
    for (const part of text.split(`--${m[1]}`)) {
      const split = part.indexOf("\r\n\r\n");
      if (split < 0) continue;
      const head = part.slice(0, split).toLowerCase();
      if (head.includes("content-type: application/sdp")) {
        return part.slice(split + 4).replace(/\r\n$/, "");
      }
    }
  }
  return undefined;
}

/** The device URI of a request's sender: its Contact (GRUU when present), else its From. */
export function deviceUriOf(request: SipRequest): string {
  const contact = request.headers.get("Contact");
  if (contact !== undefined) {
    try {
      return formatUri(parseNameAddr(contact, "Contact").uri);
    } catch {
      // fall through
    }
  }
  return formatUri(request.from.uri);
}
