/**
 * Character classes and small scanners shared by the URI and header parsers
 * (RFC 3261 §25.1 basic rules). Internal to `lib/sip/`.
 * @module
 */

import { SipParseError } from "./errors.ts";

function table(chars: string, alnum = true): Uint8Array {
  const t = new Uint8Array(128);
  if (alnum) {
    for (let c = 48; c <= 57; c++) t[c] = 1;
    for (let c = 65; c <= 90; c++) t[c] = 1;
    for (let c = 97; c <= 122; c++) t[c] = 1;
  }
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

/** RFC 3261 §25.1 `token` characters. */
export const TOKEN = table("-.!%*_+`'~");
/** `unreserved` = alphanum / mark (RFC 3261 §25.1). */
const UNRESERVED_MARKS = "-_.!~*'()";
/** `user` characters other than escapes (unreserved / user-unreserved). */
export const USER = table(UNRESERVED_MARKS + "&=+$,;?/");
/** `password` characters other than escapes. */
export const PASSWORD = table(UNRESERVED_MARKS + "&=+$,");
/** `paramchar` other than escapes (param-unreserved / unreserved). */
export const PARAMCHAR = table(UNRESERVED_MARKS + "[]/:&+$");
/** `hname`/`hvalue` characters other than escapes (hnv-unreserved / unreserved). */
export const HNV = table(UNRESERVED_MARKS + "[]/?:+$");
/** Host name characters (alphanum, "-", "."; "_" tolerated as seen in the field). */
export const HOSTNAME = table("-._");
/** IPv6 reference interior characters. */
export const IPV6 = table(":.", false);
/** Unquoted generic-param value: token / host (which adds ":" "[" "]"). */
export const GEN_VALUE = table("-.!%*_+`'~:[]");

for (let c = 48; c <= 57; c++) IPV6[c] = 1;
for (let c = 65; c <= 70; c++) IPV6[c] = 1;
for (let c = 97; c <= 102; c++) IPV6[c] = 1;

/** True when `c` (a char code) is in the table. */
export function inClass(t: Uint8Array, c: number): boolean {
  return c < 128 && t[c] === 1;
}

/** True for a hexadecimal digit char code. */
export function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** True for SP, HTAB, CR, LF (linear white space once folding is undone). */
export function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** Skips linear white space from `i`; returns the next index. */
export function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

/** Removes leading and trailing SP, HTAB, CR, LF only (not other Unicode white space). */
export function trimLws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWs(s.charCodeAt(a))) a++;
  while (b > a && isWs(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** True when every char of `s` is in the table (escapes `%HH` allowed when `escapes`). */
export function allIn(s: string, t: Uint8Array, escapes: boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && escapes) {
      if (!isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false;
      i += 2;
    } else if (!inClass(t, c)) return false;
  }
  return true;
}

/** True when `s` is a non-empty RFC 3261 token. */
export function isToken(s: string): boolean {
  return s.length > 0 && allIn(s, TOKEN, false);
}

/** Result of scanning a quoted string. */
export interface Quoted {
  /** The content with quoted-pairs resolved. */
  readonly value: string;
  /** Index just past the closing quote. */
  readonly end: number;
}

/**
 * Reads an RFC 3261 §25.1 quoted-string starting at `s[i] === '"'`; resolves quoted-pairs
 * (`\` followed by any character but CR or LF).
 */
export function readQuoted(s: string, i: number, what: string): Quoted {
  let out = "";
  let j = i + 1;
  let runStart = j;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c === 34) {
      return { value: out + s.slice(runStart, j), end: j + 1 };
    }
    if (c === 92) {
      const n = s.charCodeAt(j + 1);
      if (j + 1 >= s.length || n === 13 || n === 10) break;
      out += s.slice(runStart, j) + s[j + 1];
      j += 2;
      runStart = j;
      continue;
    }
    if (c === 13 || c === 10) break;
    j++;
  }
  throw new SipParseError(`unterminated quoted string in ${what}`);
}

/** Quotes `s` as an RFC 3261 quoted-string, escaping `"` and `\`. */
export function quote(s: string): string {
  return '"' + s.replace(/["\\]/g, (m) => "\\" + m) + '"';
}

/**
 * Removes surrounding quotes from a parameter value kept as written (`"abc"` → `abc`,
 * resolving quoted-pairs); returns other values unchanged. RFC 3261 §25.1.
 */
export function unquote(value: string): string {
  if (value.length >= 2 && value.charCodeAt(0) === 34) {
    try {
      const q = readQuoted(value, 0, "value");
      if (q.end === value.length) return q.value;
    } catch {
      // not a well-formed quoted string: return as written
    }
  }
  return value;
}

/** Result of scanning header parameters. */
export interface ParsedParams {
  /** Parameter names lower-cased; values as written (quoted values keep their quotes). */
  readonly params: Map<string, string | null>;
  /** Index of the first character not consumed. */
  readonly end: number;
}

/**
 * Reads `*( SEMI generic-param )` (RFC 3261 §25.1 `generic-param`, with LWS allowed around
 * `;` and `=`) from index `i`. Stops at the first character that is neither white space nor
 * `;`. Throws on an empty or malformed parameter.
 */
export function readParams(s: string, i: number, what: string): ParsedParams {
  const params = new Map<string, string | null>();
  let j = skipWs(s, i);
  while (j < s.length && s.charCodeAt(j) === 59) {
    j = skipWs(s, j + 1);
    const nameStart = j;
    while (j < s.length && inClass(TOKEN, s.charCodeAt(j))) j++;
    if (j === nameStart) throw new SipParseError(`empty parameter in ${what}`);
    const name = s.slice(nameStart, j).toLowerCase();
    j = skipWs(s, j);
    let value: string | null = null;
    if (s.charCodeAt(j) === 61) {
      j = skipWs(s, j + 1);
      if (s.charCodeAt(j) === 34) {
        const q = readQuoted(s, j, what);
        value = s.slice(j, q.end);
        j = q.end;
      } else {
        const valueStart = j;
        while (j < s.length && inClass(GEN_VALUE, s.charCodeAt(j))) j++;
        if (j === valueStart) {
          throw new SipParseError(`empty value of parameter ${name} in ${what}`);
        }
        value = s.slice(valueStart, j);
      }
      j = skipWs(s, j);
    }
    params.set(name, value);
  }
  return { params, end: j };
}

/** Formats parameters as `;name=value;flag` (RFC 3261 §25.1). */
export function formatParams(params: ReadonlyMap<string, string | null>): string {
  let out = "";
  for (const [name, value] of params) out += value === null ? `;${name}` : `;${name}=${value}`;
  return out;
}

const utf8 = new TextEncoder();

/**
 * Comparison key of a URI component (RFC 3261 §19.1.4: "characters other than those in the
 * reserved set are equivalent to their %HH escapes"): the UTF-8 bytes of `s` with every
 * `%HH` escape decoded, as a string of byte values. Malformed escapes stay as written.
 */
export function unescapePercent(s: string): string {
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 || c > 127) {
      ascii = false;
      break;
    }
  }
  if (ascii) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 128) {
      out += s[i];
    } else {
      const cp = s.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of utf8.encode(String.fromCodePoint(cp))) out += String.fromCharCode(b);
    }
  }
  return out;
}
