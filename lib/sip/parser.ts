/**
 * Bytes ↔ {@link SipMessage}: the RFC 3261 §7 message grammar (start line, header fields with
 * folding and compact forms, body framed by Content-Length, §18.3) and the checks that make a
 * message usable (§8.2.2: mandatory header fields, CSeq method, SIP version).
 * @module
 */

import { type PartialMessage, SipParseError } from "./errors.ts";
import { headerNameInfo, LIST_HEADERS } from "./header_names.ts";
import {
  canonicalHeaderName,
  Headers,
  parseCSeq,
  parseNameAddr,
  parseVia,
  splitHeaderValues,
} from "./headers.ts";
import { isToken, trimLws } from "./lexer.ts";
import { defaultReason, SipRequest, SipResponse } from "./message.ts";
import type { SipMessage } from "./message.ts";
import { formatUri, parseUri, type SipUri } from "./uri.ts";

/** Size limits applied while parsing (RFC 3261 §21.4.14 413, §21.5.9 513). */
export interface ParseLimits {
  /** Largest start line + header section, in bytes (→ 513). Default 65536. */
  readonly maxHeaderBytes?: number;
  /** Most header field entries after comma lists are split (→ 513). Default 256. */
  readonly maxHeaders?: number;
  /** Largest body, in bytes (→ 413). Default 1 MiB. */
  readonly maxBodyBytes?: number;
}

/** The limits used when none are given. */
export const DEFAULT_PARSE_LIMITS: Required<ParseLimits> = Object.freeze({
  maxHeaderBytes: 65536,
  maxHeaders: 256,
  maxBodyBytes: 1 << 20,
});

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Mandatory in every request and response (RFC 3261 §8.1.1); must appear exactly once. */
const SINGLE = ["to", "from", "call-id", "cseq"] as const;
/** May appear at most once. */
const AT_MOST_ONCE = ["max-forwards", "content-length", "content-type", "expires"] as const;
const COUNTED: ReadonlySet<string> = new Set([...SINGLE, ...AT_MOST_ONCE]);

/**
 * Finds the blank line ending the header section from `from`; returns the index of the LF of
 * the last header line and the index where the body starts, or undefined. Accepts CRLF and,
 * leniently, bare LF line ends.
 */
export function findHeaderEnd(
  bytes: Uint8Array,
  from: number,
): { lastLf: number; bodyStart: number } | undefined {
  let p = bytes.indexOf(10, from);
  while (p >= 0) {
    const n = bytes[p + 1];
    if (n === 10) return { lastLf: p, bodyStart: p + 2 };
    if (n === 13 && bytes[p + 2] === 10) return { lastLf: p, bodyStart: p + 3 };
    p = bytes.indexOf(10, p + 1);
  }
  return undefined;
}

interface Line {
  text: string;
  line: number;
}

/** Splits the header section into logical lines, undoing folding (RFC 3261 §7.3.1). */
function unfold(text: string): Line[] {
  const raw = text.split("\n");
  const out: Line[] = [];
  for (let i = 0; i < raw.length; i++) {
    let l = raw[i]!;
    if (l.endsWith("\r")) l = l.slice(0, -1);
    if (l.includes("\r")) throw new SipParseError(`bare CR in line ${i + 1}`, { line: i + 1 });
    const c = l.charCodeAt(0);
    if ((c === 32 || c === 9) && out.length > 0) {
      const prev = out[out.length - 1]!;
      if (out.length === 1) {
        throw new SipParseError("start line cannot be folded", { line: i + 1 });
      }
      prev.text = prev.text + " " + trimLws(l);
    } else {
      out.push({ text: l, line: i + 1 });
    }
  }
  return out;
}

/** What is known while parsing; the partial message for errors is built only when needed. */
class Ctx {
  readonly startLine: string;
  readonly headers: Headers;
  /** [lookup key, line number] of each header line, in order. */
  readonly lineKeys: Array<[string, number]> = [];

  constructor(startLine: string, headers: Headers) {
    this.startLine = startLine;
    this.headers = headers;
  }

  get partial(): PartialMessage {
    return { startLine: this.startLine, headers: [...this.headers] };
  }

  lineOf(key: string): number | undefined {
    for (const [k, line] of this.lineKeys) if (k === key) return line;
    return undefined;
  }
}

function fail(message: string, ctx: Ctx, line?: number, status = 400): never {
  const partial = ctx.partial;
  throw new SipParseError(
    message,
    line === undefined ? { status, partial } : { status, partial, line },
  );
}

/**
 * Parses one SIP message (RFC 3261 §7). Leading CRLFs are skipped (§7.5). The body is framed
 * by Content-Length when present: fewer bytes than announced is an error, extra bytes are
 * discarded (§18.3, datagram rule); without Content-Length the rest is the body. After parsing
 * the message always carries a Content-Length equal to its body length.
 *
 * Throws {@link SipParseError} naming the defect ("missing Call-ID", "malformed CSeq",
 * "Content-Length mismatch", "bad SIP version" …) with the status to answer with.
 */
export function parseMessage(bytes: Uint8Array, opts: ParseLimits = {}): SipMessage {
  const maxHeaderBytes = opts.maxHeaderBytes ?? DEFAULT_PARSE_LIMITS.maxHeaderBytes;
  const maxHeaders = opts.maxHeaders ?? DEFAULT_PARSE_LIMITS.maxHeaders;
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_PARSE_LIMITS.maxBodyBytes;

  let start = 0;
  while (start < bytes.length && (bytes[start] === 13 || bytes[start] === 10)) start++;
  if (start === bytes.length) throw new SipParseError("empty message");
  const end = findHeaderEnd(bytes, start);
  if (end === undefined || end.lastLf - start > maxHeaderBytes) {
    if (bytes.length - start > maxHeaderBytes) {
      throw new SipParseError("header section too large", { status: 513 });
    }
    throw new SipParseError("missing empty line after header fields");
  }
  const lines = unfold(decoder.decode(bytes.subarray(start, end.lastLf)));
  const startLine = lines[0]!.text;
  const headers = new Headers();
  const ctx = new Ctx(startLine, headers);

  for (let i = 1; i < lines.length; i++) {
    const { text, line } = lines[i]!;
    const colon = text.indexOf(":");
    const name = colon < 0 ? "" : trimLws(text.slice(0, colon));
    if (!isToken(name)) fail(`malformed header line ${line}`, ctx, line);
    const { canonical, key } = headerNameInfo(name);
    const value = trimLws(text.slice(colon + 1));
    ctx.lineKeys.push([key, line]);
    if (value.includes(",") && LIST_HEADERS.has(key)) {
      const items = splitHeaderValues(value);
      if (items.length === 0) items.push("");
      for (const item of items) headers.appendRaw(canonical, key, item);
    } else {
      headers.appendRaw(canonical, key, value);
    }
    if (headers.size > maxHeaders) fail("too many header fields", ctx, line, 513);
  }

  const message = parseStartLine(ctx);
  validate(message, ctx);
  message.body = frameBody(bytes, end.bodyStart, ctx, maxBodyBytes);
  return message;
}

const VERSION = /^SIP\/[0-9]+\.[0-9]+$/i;

function checkVersion(version: string, partial: Ctx): void {
  if (version.length === 7 && version.toUpperCase() === "SIP/2.0") return;
  if (VERSION.test(version)) fail(`bad SIP version "${version}"`, partial, 1, 505);
  fail(`malformed SIP version "${version.slice(0, 20)}"`, partial, 1);
}

function parseStartLine(ctx: Ctx): SipRequest | SipResponse {
  const { startLine, headers } = ctx;
  const partial = ctx;
  if (startLine.length >= 4 && startLine.slice(0, 4).toUpperCase() === "SIP/") {
    const sp = startLine.indexOf(" ");
    if (sp < 0) fail("malformed Status-Line", partial, 1);
    checkVersion(startLine.slice(0, sp), partial);
    const code = startLine.slice(sp + 1, sp + 4);
    const after = startLine.charCodeAt(sp + 4);
    if (!/^[1-6][0-9][0-9]$/.test(code) || !(Number.isNaN(after) || after === 32)) {
      fail("malformed status code", partial, 1);
    }
    return new SipResponse(Number(code), startLine.slice(sp + 5), headers);
  }
  const sp1 = startLine.indexOf(" ");
  const sp2 = sp1 < 0 ? -1 : startLine.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || startLine.indexOf(" ", sp2 + 1) >= 0) {
    fail("malformed Request-Line", partial, 1);
  }
  const method = startLine.slice(0, sp1);
  const uriText = startLine.slice(sp1 + 1, sp2);
  checkVersion(startLine.slice(sp2 + 1), partial);
  if (!isToken(method)) fail("malformed method", partial, 1);
  if (uriText.startsWith("<")) fail("Request-URI must not be enclosed in <>", partial, 1);
  let uri: SipUri;
  try {
    uri = parseUri(uriText);
  } catch (e) {
    if (!(e instanceof SipParseError)) throw e;
    fail(`bad Request-URI: ${e.message}`, partial, 1, e.status);
  }
  if (uri.headers.size > 0) fail("Request-URI must not contain headers", partial, 1);
  return new SipRequest(method, uri, headers);
}

function hasCtlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127) return true;
  }
  return false;
}

function checked<T>(parse: () => T, name: string, line: number | undefined, partial: Ctx): T {
  try {
    return parse();
  } catch (e) {
    if (!(e instanceof SipParseError)) throw e;
    fail(`malformed ${name}: ${e.message}`, partial, line);
  }
}

function validate(m: SipRequest | SipResponse, ctx: Ctx): void {
  const partial = ctx;
  const counts = new Map<string, number>();
  for (const [key] of ctx.lineKeys) {
    if (COUNTED.has(key)) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const lineOf = { get: (key: string) => ctx.lineOf(key) };
  const h = m.headers;
  for (const key of SINGLE) {
    const n = counts.get(key) ?? 0;
    const name = canonicalHeaderName(key);
    if (n === 0) fail(`missing ${name}`, partial);
    if (n > 1) fail(`multiple ${name} header fields`, partial, lineOf.get(key));
  }
  for (const key of AT_MOST_ONCE) {
    if ((counts.get(key) ?? 0) > 1) {
      fail(`multiple ${canonicalHeaderName(key)} header fields`, partial, lineOf.get(key));
    }
  }
  const vias = h.getAll("Via");
  if (vias.length === 0) fail("missing Via", partial);
  for (const via of vias) checked(() => parseVia(via), "Via", lineOf.get("via"), partial);
  for (const key of ["to", "from"]) {
    const name = canonicalHeaderName(key);
    checked(() => parseNameAddr(h.get(key)!, name), name, lineOf.get(key), partial);
  }
  const callId = h.get("Call-ID")!;
  if (callId.length === 0 || hasCtlOrSpace(callId)) {
    fail("malformed Call-ID", partial, lineOf.get("call-id"));
  }
  const cseq = checked(() => parseCSeq(h.get("CSeq")!), "CSeq", lineOf.get("cseq"), partial);
  if (m instanceof SipRequest && cseq.method !== m.method) {
    fail(`CSeq method ${cseq.method} does not match ${m.method}`, partial, lineOf.get("cseq"));
  }
  const mf = h.get("Max-Forwards");
  if (mf !== undefined && (!/^[0-9]{1,10}$/.test(mf) || Number(mf) > 255)) {
    fail("malformed Max-Forwards", partial, lineOf.get("max-forwards"));
  }
  const contacts = h.getAll("Contact");
  for (const c of contacts) {
    if (c === "*") {
      if (contacts.length > 1) {
        fail('Contact "*" with other values', partial, lineOf.get("contact"));
      }
    } else checked(() => parseNameAddr(c, "Contact"), "Contact", lineOf.get("contact"), partial);
  }
  for (const name of ["Route", "Record-Route"]) {
    for (const r of h.getAll(name)) {
      checked(() => parseNameAddr(r, name), name, lineOf.get(name.toLowerCase()), partial);
    }
  }
}

function frameBody(bytes: Uint8Array, bodyStart: number, ctx: Ctx, maxBodyBytes: number) {
  const headers = ctx.headers;
  const partial = ctx;
  const available = Math.max(0, bytes.length - bodyStart);
  const cl = headers.get("Content-Length");
  let length: number;
  if (cl === undefined) {
    length = available;
  } else {
    if (!/^[0-9]{1,10}$/.test(cl)) fail("malformed Content-Length", partial);
    length = Number(cl);
  }
  if (length > maxBodyBytes) fail("body too large", partial, undefined, 413);
  if (length > available) {
    fail(`Content-Length mismatch: ${length} announced, ${available} received`, partial);
  }
  const text = String(length);
  if (cl !== text) headers.set("Content-Length", text);
  return bytes.slice(bodyStart, bodyStart + length);
}

/**
 * Serializes a message (RFC 3261 §7): CRLF line ends, one header field per line in stored
 * order with canonical names, Content-Length set from the body (added at the end if absent).
 * Throws TypeError when a header value or reason phrase contains CR or LF.
 */
export function serializeMessage(msg: SipMessage): Uint8Array {
  let s: string;
  if (msg instanceof SipRequest) {
    s = `${msg.method} ${formatUri(msg.uri)} SIP/2.0\r\n`;
  } else {
    if (/[\r\n]/.test(msg.reason)) throw new TypeError("reason phrase contains CR or LF");
    s = `SIP/2.0 ${msg.status} ${msg.reason}\r\n`;
  }
  const body = msg.body;
  let sawLength = false;
  for (const [name, value] of msg.headers) {
    if (name === "Content-Length") {
      if (!sawLength) s += `Content-Length: ${body.length}\r\n`;
      sawLength = true;
      continue;
    }
    if (value.includes("\n") || value.includes("\r")) {
      throw new TypeError(`header ${name} contains CR or LF`);
    }
    s += `${name}: ${value}\r\n`;
  }
  if (!sawLength) s += `Content-Length: ${body.length}\r\n`;
  s += "\r\n";
  const head = encoder.encode(s);
  if (body.length === 0) return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/**
 * Best-effort response to a request that failed to parse (RFC 3261 §8.2.2, §8.2.6): when the
 * partial message is a request carrying Via, From, To, Call-ID and CSeq, returns a response
 * with the error's status that copies them (adding `toTag` to a To without tag) and a reason
 * naming the defect; otherwise undefined (the message can only be dropped).
 */
export function errorResponseFor(err: SipParseError, toTag?: string): SipResponse | undefined {
  const p = err.partial;
  if (p === undefined || p.startLine.toUpperCase().startsWith("SIP/")) return undefined;
  const src = new Headers(p.headers);
  const h = new Headers();
  const vias = src.getAll("Via");
  if (vias.length === 0) return undefined;
  for (const name of ["From", "To", "Call-ID", "CSeq"]) {
    if (src.getAll(name).length !== 1) return undefined;
  }
  try {
    for (const via of vias) parseVia(via);
    parseNameAddr(src.get("From")!);
    const to = parseNameAddr(src.get("To")!);
    h.append("Via", vias);
    h.append("From", src.get("From")!);
    const toValue = src.get("To")!;
    h.append(
      "To",
      toTag !== undefined && !to.params.has("tag") ? `${toValue};tag=${toTag}` : toValue,
    );
  } catch {
    return undefined;
  }
  h.append("Call-ID", src.get("Call-ID")!);
  h.append("CSeq", src.get("CSeq")!);
  const reason = `${defaultReason(err.status)} (${err.message.replace(/[^\x20-\x7e]/g, "?")})`;
  return new SipResponse(err.status, reason.slice(0, 200), h);
}
