/**
 * Header field values as types (name-addr, Via, CSeq) and the ordered, case-insensitive
 * {@link Headers} collection (RFC 3261 §7.3, §20, §25.1).
 * @module
 */

import { SipParseError } from "./errors.ts";
import { canonicalHeaderName, headerKey } from "./header_names.ts";
import {
  formatParams,
  inClass,
  isWs,
  quote,
  readParams,
  readQuoted,
  skipWs,
  TOKEN,
  trimLws,
} from "./lexer.ts";
import { formatUri, parseUri, readHostPort, type SipUri } from "./uri.ts";

export { canonicalHeaderName } from "./header_names.ts";
export { unquote } from "./lexer.ts";

/**
 * A `name-addr` or `addr-spec` with header parameters, as in From, To, Contact, Route,
 * Record-Route, Refer-To (RFC 3261 §20.10, §25.1). `display` has quotes and quoted-pairs
 * resolved; `params` names are lower-cased, values as written (quoted values keep quotes).
 */
export interface NameAddr {
  display: string | undefined;
  uri: SipUri;
  params: Map<string, string | null>;
}

/** One Via header field value (RFC 3261 §20.42, §25.1 `via-parm`). */
export interface Via {
  /** `SIP/2.0`. */
  protocol: string;
  /** Upper-case transport: `UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP`, … */
  transport: string;
  /** sent-by host as written (IPv6 references keep brackets). */
  host: string;
  port: number | undefined;
  /** Names lower-cased (`branch`, `received`, `rport`, `maddr`, `ttl`), values as written. */
  params: Map<string, string | null>;
}

/** The CSeq header field (RFC 3261 §20.16). */
export interface CSeq {
  seq: number;
  method: string;
}

function bad(what: string, text: string, why: string): never {
  throw new SipParseError(`malformed ${what} "${text.slice(0, 80)}": ${why}`);
}

/**
 * Parses a From/To/Contact/Route value: `[display-name] <URI> *(;param)` or `addr-spec
 * *(;param)` (RFC 3261 §20.10). In the addr-spec form every `;` parameter belongs to the header,
 * and a URI with `?` headers must be enclosed in `<>` (§20). Throws {@link SipParseError}.
 */
export function parseNameAddr(text: string, what = "name-addr"): NameAddr {
  let i = skipWs(text, 0);
  let display: string | undefined;
  let uri: SipUri;
  let c = text.charCodeAt(i);
  if (c === 34) {
    const q = readQuoted(text, i, what);
    display = q.value;
    i = skipWs(text, q.end);
    c = text.charCodeAt(i);
    if (c !== 60) bad(what, text, 'expected "<" after display name');
  } else if (c !== 60) {
    let k = i;
    while (k < text.length && (inClass(TOKEN, text.charCodeAt(k)) || isWs(text.charCodeAt(k)))) {
      k++;
    }
    if (text.charCodeAt(k) === 60) {
      display = trimLws(text.slice(i, k)).replace(/[ \t\r\n]+/g, " ");
      i = k;
      c = 60;
    }
  }
  let j: number;
  if (c === 60) {
    const close = text.indexOf(">", i);
    if (close < 0) bad(what, text, 'missing ">"');
    uri = parseUri(text.slice(i + 1, close));
    j = close + 1;
  } else {
    let end = text.indexOf(";", i);
    if (end < 0) end = text.length;
    const uriText = trimLws(text.slice(i, end));
    if (text.lastIndexOf("<", end) >= i) {
      bad(what, text, "display name is neither a token list nor a quoted string");
    }
    if (uriText.includes("?") || uriText.includes(",")) {
      bad(what, text, "a URI with headers must be enclosed in <>");
    }
    uri = parseUri(uriText);
    j = end;
  }
  const p = readParams(text, j, what);
  if (p.end !== text.length) bad(what, text, `unexpected "${text[p.end]}"`);
  return { display, uri, params: p.params };
}

/**
 * Formats a name-addr, always in the `<...>` form (RFC 3261 §20.10), display name quoted:
 * `"Alice" <sip:alice@example.com>;tag=1`.
 */
export function formatNameAddr(na: NameAddr): string {
  const display = na.display === undefined ? "" : quote(na.display) + " ";
  return `${display}<${formatUri(na.uri)}>${formatParams(na.params)}`;
}

function readToken(s: string, i: number): number {
  while (i < s.length && inClass(TOKEN, s.charCodeAt(i))) i++;
  return i;
}

/**
 * Parses one Via value `SIP / 2.0 / UDP host[:port] *(;param)` (RFC 3261 §20.42, §25.1),
 * allowing LWS around the slashes. The transport is upper-cased.
 */
export function parseVia(text: string): Via {
  let i = skipWs(text, 0);
  const parts: string[] = [];
  for (let n = 0; n < 3; n++) {
    if (n > 0) {
      i = skipWs(text, i);
      if (text.charCodeAt(i) !== 47) bad("Via", text, 'expected "/"');
      i = skipWs(text, i + 1);
    }
    const end = readToken(text, i);
    if (end === i) bad("Via", text, "bad sent-protocol");
    parts.push(text.slice(i, end));
    i = end;
  }
  const ws = skipWs(text, i);
  if (ws === i) bad("Via", text, "missing sent-by");
  const hp = readHostPort(text, ws, text);
  const p = readParams(text, hp.end, "Via");
  if (p.end !== text.length) bad("Via", text, `unexpected "${text[p.end]}"`);
  return {
    protocol: `${parts[0]!.toUpperCase()}/${parts[1]}`,
    transport: parts[2]!.toUpperCase(),
    host: hp.host,
    port: hp.port,
    params: p.params,
  };
}

/** Formats a Via value: `SIP/2.0/UDP host:port;branch=z9hG4bK…` (RFC 3261 §20.42). */
export function formatVia(v: Via): string {
  const port = v.port === undefined ? "" : `:${v.port}`;
  return `${v.protocol}/${v.transport} ${v.host}${port}${formatParams(v.params)}`;
}

/**
 * Parses `1*DIGIT LWS Method` (RFC 3261 §20.16); the number must be below 2**31 (§8.1.1.5).
 */
export function parseCSeq(text: string): CSeq {
  const m = /^[ \t\r\n]*([0-9]+)[ \t\r\n]+([^ \t\r\n]+)[ \t\r\n]*$/.exec(text);
  if (m === null) bad("CSeq", text, "expected number and method");
  const digits = m[1]!.replace(/^0+(?=.)/, "");
  const seq = digits.length > 10 ? Infinity : Number(digits);
  if (seq >= 2 ** 31) bad("CSeq", text, "sequence number out of range");
  const method = m[2]!;
  if (readToken(method, 0) !== method.length) bad("CSeq", text, "bad method");
  return { seq, method };
}

/** Formats a CSeq value: `101 INVITE`. */
export function formatCSeq(c: CSeq): string {
  return `${c.seq} ${c.method}`;
}

/**
 * Splits a comma-separated header value into its elements (RFC 3261 §7.3.1), ignoring commas
 * inside quoted strings and `<...>`. Elements are trimmed; empty elements are dropped.
 */
export function splitHeaderValues(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inQuote) {
      if (c === 92) i++;
      else if (c === 34) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (c === 60) inAngle = true;
    else if (c === 62) inAngle = false;
    else if (c === 44 && !inAngle) {
      const item = trimLws(text.slice(start, i));
      if (item.length > 0) out.push(item);
      start = i + 1;
    }
  }
  const last = trimLws(text.slice(start));
  if (last.length > 0) out.push(last);
  return out;
}

interface Entry {
  name: string;
  key: string;
  value: string;
}

/**
 * An ordered list of header fields (RFC 3261 §7.3): names are matched case-insensitively with
 * compact forms expanded, and stored in canonical spelling. Order is kept, which matters for
 * Via, Route and Record-Route (§7.3.1).
 */
export class Headers implements Iterable<[string, string]> {
  #entries: Entry[] = [];

  /** Creates a collection from `[name, value]` pairs, in order. */
  constructor(init?: Iterable<readonly [string, string]>) {
    if (init !== undefined) { for (const [name, value] of init) this.append(name, value); }
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.length;
  }

  /** The first value of `name`, or undefined. */
  get(name: string): string | undefined {
    const key = headerKey(name);
    for (const e of this.#entries) if (e.key === key) return e.value;
    return undefined;
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const key = headerKey(name);
    const out: string[] = [];
    for (const e of this.#entries) if (e.key === key) out.push(e.value);
    return out;
  }

  /** True when at least one entry has this name. */
  has(name: string): boolean {
    const key = headerKey(name);
    return this.#entries.some((e) => e.key === key);
  }

  /**
   * Replaces every entry of `name` with the given value(s), at the position of the first
   * existing entry (or at the end).
   */
  set(name: string, value: string | readonly string[]): void {
    const key = headerKey(name);
    const first = this.#entries.findIndex((e) => e.key === key);
    this.#entries = this.#entries.filter((e) => e.key !== key);
    const fresh = this.#make(name, key, value);
    if (first < 0) this.#entries.push(...fresh);
    else this.#entries.splice(first, 0, ...fresh);
  }

  /** Adds value(s) after every existing entry. */
  append(name: string, value: string | readonly string[]): void {
    this.#entries.push(...this.#make(name, headerKey(name), value));
  }

  /**
   * Adds value(s) before the first entry of `name` (or at the top when there is none), as a
   * proxy or UAC does with Via and Route (RFC 3261 §8.1.1.7, §16.6).
   */
  prepend(name: string, value: string | readonly string[]): void {
    const key = headerKey(name);
    const first = this.#entries.findIndex((e) => e.key === key);
    this.#entries.splice(first < 0 ? 0 : first, 0, ...this.#make(name, key, value));
  }

  /** Removes every entry of `name`; returns true if any was removed. */
  delete(name: string): boolean {
    const key = headerKey(name);
    const before = this.#entries.length;
    this.#entries = this.#entries.filter((e) => e.key !== key);
    return this.#entries.length !== before;
  }

  /** Removes the first entry of `name` (e.g. the top Via, RFC 3261 §8.1.3.3) and returns it. */
  removeFirst(name: string): string | undefined {
    const key = headerKey(name);
    const index = this.#entries.findIndex((e) => e.key === key);
    if (index < 0) return undefined;
    return this.#entries.splice(index, 1)[0]!.value;
  }

  /** Iterates `[canonicalName, value]` pairs in order. */
  *[Symbol.iterator](): Iterator<[string, string]> {
    for (const e of this.#entries) yield [e.name, e.value];
  }

  /** An independent copy. */
  clone(): Headers {
    const copy = new Headers();
    copy.#entries = this.#entries.map((e) => ({ ...e }));
    return copy;
  }

  /** Appends an entry whose name is already canonical (parser fast path). */
  appendRaw(name: string, key: string, value: string): void {
    this.#entries.push({ name, key, value });
  }

  #make(name: string, key: string, value: string | readonly string[]): Entry[] {
    const canonical = canonicalHeaderName(trimLws(name));
    const values = typeof value === "string" ? [value] : value;
    return values.map((v) => ({ name: canonical, key, value: v }));
  }
}
