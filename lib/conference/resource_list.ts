/**
 * RFC 4826 resource lists as chat room creation uses them: the `application/resource-lists+xml`
 * body of an INVITE with `Require: recipient-list-invite` (RFC 5366 §4), alone or as one part of
 * a multipart body, and the list of other participants the focus sends when it invites a
 * device (`Content-Disposition: recipient-list-history`, RFC 5364 §9).
 * @module
 */

import { bodyText, type SipRequest } from "../sip/message.ts";
import { parseUri } from "../sip/uri.ts";
import { addressOfRecord } from "./conference_uri.ts";

/** The `resource-lists` content type (RFC 4826 §3.1). */
export const RESOURCE_LISTS_TYPE = "application/resource-lists+xml";

function unescapeXml(text: string): string {
  return text.replaceAll("&quot;", '"').replaceAll("&apos;", "'").replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** The resource-lists XML of a request: its body, or the matching part of a multipart body. */
export function resourceListText(request: SipRequest): string | undefined {
  if (request.body.length === 0) return undefined;
  const type = request.contentType?.toLowerCase() ?? "";
  const text = bodyText(request);
  if (type.startsWith(RESOURCE_LISTS_TYPE)) return text;
  if (!type.startsWith("multipart/")) return undefined;
  const m = /boundary="?([^";]+)"?/i.exec(request.contentType ?? "");
  if (!m?.[1]) return undefined;
  for (const part of text.split(`--${m[1]}`)) {
    const split = part.indexOf("\r\n\r\n");
    if (split < 0) continue;
    if (part.slice(0, split).toLowerCase().includes(RESOURCE_LISTS_TYPE)) {
      return part.slice(split + 4);
    }
  }
  return undefined;
}

/**
 * The `uri` attributes of the `entry` elements of a resource list (RFC 4826 §3.2), in order,
 * without duplicates. Throws SyntaxError when the text is not a resource list.
 */
export function resourceListUris(xml: string): string[] {
  if (!/<(?:[\w.-]+:)?resource-lists[\s>]/.test(xml)) {
    throw new SyntaxError("body is not an RFC 4826 resource-lists document");
  }
  const out: string[] = [];
  for (const m of xml.matchAll(/<(?:[\w.-]+:)?entry\b[^>]*?\suri\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    const uri = unescapeXml(m[2] ?? m[3] ?? "").trim();
    if (uri !== "" && !out.includes(uri)) out.push(uri);
  }
  return out;
}

/**
 * The participants a resource list names besides `self` (RFC 5366 §4: the creator of a chat
 * room): the address of record of each entry, in order, without duplicates; an entry that is
 * not a URI is skipped.
 */
export function otherParticipants(uris: readonly string[], self: string): string[] {
  const others: string[] = [];
  for (const u of uris) {
    try {
      const aor = addressOfRecord(parseUri(u));
      if (aor !== self && !others.includes(aor)) others.push(aor);
    } catch {
      // an entry that is not a URI is skipped
    }
  }
  return others;
}

/** A resource list of `uris` (RFC 4826 §3.2), as liblinphone's server sends it. */
export function buildResourceList(uris: readonly string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">',
    "  <list>",
    ...uris.map((u) => `    <entry uri="${escapeXml(u)}"/>`),
    "  </list>",
    "</resource-lists>",
    "",
  ].join("\r\n");
}
