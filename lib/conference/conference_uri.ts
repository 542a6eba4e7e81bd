/**
 * Conference identifiers and URIs (RFC 4353 §6: a conference URI identifies a conference; the
 * focus URI plus `;conf-id=` as Flexisip builds them). Ids are 128 random bits, URL-safe,
 * never reused (RFC 4353 §6 "it SHOULD be hard to guess").
 * @module
 */

import { formatUri, parseUri, type SipUri } from "../sip/uri.ts";

/** A new conference id: 16 random bytes as base64url without padding (22 characters). */
export function newConferenceId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** True when `id` looks like an id we could have issued (and is safe to look up). */
export function isPlausibleConferenceId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

/** The conference URI for a focus URI template and an id: `<focus>;conf-id=<id>`. */
export function conferenceUri(focusUri: string, id: string): SipUri {
  const uri = parseUri(focusUri);
  uri.params.set("conf-id", id);
  return uri;
}

/** The address of record of a URI: scheme, user and host only (RFC 3261 §10.3 canonical form). */
export function addressOfRecord(uri: SipUri): string {
  const user = uri.user !== undefined ? `${uri.user}@` : "";
  return `${uri.scheme}:${user}${uri.host}`;
}

/** Whether a Request-URI designates the same user@host as a configured URI (port ignored). */
export function sameUserHost(a: SipUri, b: SipUri): boolean {
  return (a.user ?? "") === (b.user ?? "") && a.host.toLowerCase() === b.host.toLowerCase();
}

/** Text form of a URI. */
export function uriText(uri: SipUri): string {
  return formatUri(uri);
}
