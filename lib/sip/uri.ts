/**
 * SIP, SIPS and tel URIs as values: parse, format, compare (RFC 3261 §19.1, RFC 3966).
 * @module
 */

import { SipParseError } from "./errors.ts";
import {
  allIn,
  HNV,
  HOSTNAME,
  inClass,
  IPV6,
  PARAMCHAR,
  PASSWORD,
  unescapePercent,
  USER,
} from "./lexer.ts";

/** URI schemes Conclave understands. */
export type UriScheme = "sip" | "sips" | "tel";

/**
 * A parsed URI (RFC 3261 §19.1.1, RFC 3966 for `tel`).
 *
 * - `host` is as written; an IPv6 reference keeps its brackets (`[2001:db8::1]`).
 * - For `tel` URIs the number is in `user` and `host` is `""`.
 * - `params` names are lower-cased, values kept as written (escapes preserved; `null` for a
 *   parameter without value). `headers` keep names and values as written.
 */
export interface SipUri {
  scheme: UriScheme;
  user: string | undefined;
  password: string | undefined;
  host: string;
  port: number | undefined;
  params: Map<string, string | null>;
  headers: Map<string, string>;
}

const TEL_CHARS = /^[0-9A-Fa-f*#+\-.()]+$/;

function fail(text: string, why: string): never {
  throw new SipParseError(`malformed URI "${text.slice(0, 80)}": ${why}`);
}

/**
 * Parses `host [":" port]` at the start of `s` (RFC 3261 §25.1 hostport); returns the host,
 * the port and the index after them. Exported for the Via parser.
 */
export function readHostPort(
  s: string,
  i: number,
  text: string,
): { host: string; port: number | undefined; end: number } {
  let j = i;
  let host: string;
  if (s.charCodeAt(j) === 91) {
    const close = s.indexOf("]", j);
    if (close < 0) fail(text, "unterminated IPv6 reference");
    const inner = s.slice(j + 1, close);
    if (inner.length < 2 || !inner.includes(":") || !allIn(inner, IPV6, false)) {
      fail(text, "bad IPv6 reference");
    }
    host = s.slice(j, close + 1);
    j = close + 1;
  } else {
    while (j < s.length && inClass(HOSTNAME, s.charCodeAt(j))) j++;
    host = s.slice(i, j);
    if (host.length === 0) fail(text, "missing host");
    if (host.startsWith(".") || host.startsWith("-") || host.includes("..")) {
      fail(text, "bad host name");
    }
  }
  let port: number | undefined;
  if (s.charCodeAt(j) === 58) {
    const start = ++j;
    while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
    if (j === start || j - start > 5) fail(text, "bad port");
    port = Number(s.slice(start, j));
    if (port > 65535) fail(text, "port out of range");
  }
  return { host, port, end: j };
}

function parseUriParams(s: string, text: string): Map<string, string | null> {
  const params = new Map<string, string | null>();
  if (s.length === 0) return params;
  for (const part of s.slice(1).split(";")) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? null : part.slice(eq + 1);
    if (name.length === 0 || !allIn(name, PARAMCHAR, true)) fail(text, "bad parameter");
    if (value !== null && (value.length === 0 || !allIn(value, PARAMCHAR, true))) {
      fail(text, `bad value of parameter ${name}`);
    }
    params.set(name.toLowerCase(), value);
  }
  return params;
}

function parseUriHeaders(s: string, text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const part of s.split("&")) {
    const eq = part.indexOf("=");
    if (eq <= 0) fail(text, "bad header");
    const name = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (!allIn(name, HNV, true) || !allIn(value, HNV, true)) fail(text, "bad header");
    headers.set(name, value);
  }
  return headers;
}

/**
 * Parses a SIP, SIPS (RFC 3261 §19.1.1, §25.1 `SIP-URI`/`SIPS-URI`) or tel (RFC 3966) URI.
 * Throws {@link SipParseError} with status 416 for another scheme and 400 for bad syntax.
 * No white space is allowed anywhere in the text.
 */
export function parseUri(text: string): SipUri {
  const colon = text.indexOf(":");
  if (colon <= 0) fail(text, "missing scheme");
  const scheme = text.slice(0, colon).toLowerCase();
  if (scheme !== "sip" && scheme !== "sips" && scheme !== "tel") {
    if (!/^[a-z][a-z0-9+\-.]*$/.test(scheme)) fail(text, "bad scheme");
    throw new SipParseError(`unsupported URI scheme "${scheme}"`, { status: 416 });
  }
  const rest = text.slice(colon + 1);
  if (scheme === "tel") return parseTel(rest, text);

  let user: string | undefined;
  let password: string | undefined;
  let hostStart = 0;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    const pc = userinfo.indexOf(":");
    user = pc < 0 ? userinfo : userinfo.slice(0, pc);
    if (pc >= 0) password = userinfo.slice(pc + 1);
    if (user.length === 0 || !allIn(user, USER, true)) fail(text, "bad user part");
    if (password !== undefined && !allIn(password, PASSWORD, true)) fail(text, "bad password");
    hostStart = at + 1;
  }
  const hp = readHostPort(rest, hostStart, text);
  let j = hp.end;
  const q = rest.indexOf("?", j);
  const paramsText = rest.slice(j, q < 0 ? rest.length : q);
  if (paramsText.length > 0 && paramsText.charCodeAt(0) !== 59) {
    fail(text, `unexpected "${paramsText[0]}"`);
  }
  const params = parseUriParams(paramsText, text);
  j = q < 0 ? rest.length : q + 1;
  const headers = q < 0 ? new Map<string, string>() : parseUriHeaders(rest.slice(j), text);
  return { scheme, user, password, host: hp.host, port: hp.port, params, headers };
}

function parseTel(rest: string, text: string): SipUri {
  const semi = rest.indexOf(";");
  const number = semi < 0 ? rest : rest.slice(0, semi);
  if (!TEL_CHARS.test(number)) fail(text, "bad telephone number");
  const params = parseUriParams(semi < 0 ? "" : rest.slice(semi), text);
  return {
    scheme: "tel",
    user: number,
    password: undefined,
    host: "",
    port: undefined,
    params,
    headers: new Map(),
  };
}

/** Formats a URI back to text (RFC 3261 §19.1.1); `parseUri(formatUri(u))` equals `u`. */
export function formatUri(uri: SipUri): string {
  let out = uri.scheme + ":";
  if (uri.scheme === "tel") {
    out += uri.user ?? "";
  } else {
    if (uri.user !== undefined) {
      out += uri.user;
      if (uri.password !== undefined) out += ":" + uri.password;
      out += "@";
    }
    out += uri.host;
    if (uri.port !== undefined) out += ":" + uri.port;
  }
  for (const [name, value] of uri.params) out += value === null ? `;${name}` : `;${name}=${value}`;
  if (uri.headers.size > 0) {
    out += "?" + [...uri.headers].map(([n, v]) => `${n}=${v}`).join("&");
  }
  return out;
}

/** A deep copy of a URI. */
export function cloneUri(uri: SipUri): SipUri {
  return {
    scheme: uri.scheme,
    user: uri.user,
    password: uri.password,
    host: uri.host,
    port: uri.port,
    params: new Map(uri.params),
    headers: new Map(uri.headers),
  };
}

/**
 * Parameters that make URIs differ when present in only one: user, ttl, method, maddr
 * (§19.1.4 rules) and transport (§19.1.4 examples: `sip:bob@biloxi.com` differs from
 * `sip:bob@biloxi.com;transport=udp`).
 */
const STRICT_PARAMS = ["user", "ttl", "method", "maddr", "transport"];

function telDigits(n: string | undefined): string {
  return (n ?? "").replace(/[\-.()]/g, "").toLowerCase();
}

/**
 * URI equivalence per RFC 3261 §19.1.4: schemes must match (sip never equals sips); user and
 * password compare case-sensitively after unescaping; host case-insensitively; ports must both
 * be absent or equal; a parameter present in both must match (case-insensitively); `user`,
 * `ttl`, `method`, `maddr`, `transport` present in only one make them differ; other one-sided parameters are
 * ignored; URI headers must all be present in both and match. tel URIs compare the number
 * without visual separators (RFC 3966 §4) and all parameters.
 */
export function uriEquals(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if (a.scheme === "tel") {
    if (telDigits(a.user) !== telDigits(b.user)) return false;
    if (a.params.size !== b.params.size) return false;
    for (const [name, value] of a.params) {
      if (!b.params.has(name)) return false;
      if (!sameValue(value, b.params.get(name) ?? null)) return false;
    }
    return true;
  }
  if ((a.user === undefined) !== (b.user === undefined)) return false;
  if (a.user !== undefined && unescapePercent(a.user) !== unescapePercent(b.user ?? "")) {
    return false;
  }
  if ((a.password ?? null) !== null || (b.password ?? null) !== null) {
    if (a.password === undefined || b.password === undefined) return false;
    if (unescapePercent(a.password) !== unescapePercent(b.password)) return false;
  }
  if (a.host.toLowerCase() !== b.host.toLowerCase()) return false;
  if (a.port !== b.port) return false;
  const aParams = lowerKeys(a.params);
  const bParams = lowerKeys(b.params);
  for (const [name, value] of aParams) {
    if (bParams.has(name)) {
      if (!sameValue(value, bParams.get(name) ?? null)) return false;
    } else if (STRICT_PARAMS.includes(name)) return false;
  }
  for (const name of bParams.keys()) {
    if (!aParams.has(name) && STRICT_PARAMS.includes(name)) return false;
  }
  const aHeaders = lowerKeys(a.headers);
  const bHeaders = lowerKeys(b.headers);
  if (aHeaders.size !== bHeaders.size) return false;
  for (const [name, value] of aHeaders) {
    const other = bHeaders.get(name);
    if (other === undefined || unescapePercent(value) !== unescapePercent(other)) return false;
  }
  return true;
}

function lowerKeys<V>(m: ReadonlyMap<string, V>): Map<string, V> {
  const out = new Map<string, V>();
  for (const [k, v] of m) out.set(unescapePercent(k).toLowerCase(), v);
  return out;
}

function sameValue(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  return unescapePercent(a).toLowerCase() === unescapePercent(b).toLowerCase();
}
