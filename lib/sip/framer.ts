/**
 * Cuts a stream transport's bytes (TCP, TLS) into SIP messages by Content-Length
 * (RFC 3261 §18.3) and recognises RFC 5626 §3.5.1 CRLF keep-alives. No I/O.
 * @module
 */

/** Limits enforced by {@link StreamFramer}. */
export interface FramerLimits {
  /** Largest start line + header section in bytes. Default 65536. */
  readonly maxHeaderBytes?: number;
  /** Most header lines (folded continuation lines count). Default 256. */
  readonly maxHeaders?: number;
  /** Largest body in bytes. Default 1 MiB. */
  readonly maxBodyBytes?: number;
}

/**
 * What the framer found:
 * - `message`: the bytes of one complete message (header section and body), for `parseMessage`;
 * - `ping`: a CRLFCRLF keep-alive between messages (RFC 5626 §3.5.1), to be answered with CRLF;
 * - `pong`: a single CRLF between messages (the answer to our ping; RFC 3261 §7.5 says to ignore
 *   it otherwise);
 * - `error`: the stream cannot be framed (limit exceeded, bad Content-Length); the framer is dead
 *   and the connection must be closed.
 */
export type FramerEvent =
  | { kind: "message"; bytes: Uint8Array }
  | { kind: "ping" }
  | { kind: "pong" }
  | { kind: "error"; reason: string };

const CR = 13;
const LF = 10;

/**
 * Incremental framer for one stream connection (RFC 3261 §18.3: "the Content-Length header
 * field value is used to locate the end of each SIP message in the stream").
 *
 * Bytes are kept in one growing buffer and scanning resumes where it stopped, so feeding a
 * message one byte at a time costs linear time. A missing Content-Length is taken as 0. A CRLF
 * at a message boundary is held until the next byte shows whether it begins a CRLFCRLF ping,
 * so the events do not depend on how the stream was chunked.
 */
export class StreamFramer {
  #buf = new Uint8Array(4096);
  #start = 0;
  #end = 0;
  /** Where the header-end search resumes, relative to #start; -1 when between messages. */
  #scan = -1;
  #lines = 0;
  /** Total length of the message being completed, once its header section is known. */
  #need = -1;
  #dead = false;
  readonly #maxHeaderBytes: number;
  readonly #maxHeaders: number;
  readonly #maxBodyBytes: number;

  /** Creates a framer with the given limits (defaults: 64 KiB headers, 256 lines, 1 MiB body). */
  constructor(limits: FramerLimits = {}) {
    this.#maxHeaderBytes = limits.maxHeaderBytes ?? 65536;
    this.#maxHeaders = limits.maxHeaders ?? 256;
    this.#maxBodyBytes = limits.maxBodyBytes ?? 1 << 20;
  }

  /** True after an error event: nothing more will be framed. */
  get dead(): boolean {
    return this.#dead;
  }

  /** Bytes received but not yet returned in an event. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Adds bytes read from the stream; returns the events they complete, in order. */
  push(chunk: Uint8Array): FramerEvent[] {
    if (this.#dead) return [];
    this.#append(chunk);
    const events: FramerEvent[] = [];
    for (;;) {
      const ev = this.#next();
      if (ev === undefined) break;
      events.push(ev);
      if (ev.kind === "error") {
        this.#dead = true;
        this.#buf = new Uint8Array(0);
        this.#start = this.#end = 0;
        break;
      }
    }
    return events;
  }

  #append(chunk: Uint8Array): void {
    const len = this.#end - this.#start;
    if (this.#end + chunk.length > this.#buf.length) {
      if (len + chunk.length <= this.#buf.length / 2) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const bigger = new Uint8Array(Math.max(this.#buf.length * 2, len + chunk.length));
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = bigger;
      }
      this.#start = 0;
      this.#end = len;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  #consume(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  #next(): FramerEvent | undefined {
    const buf = this.#buf;
    if (this.#scan < 0) {
      // Keep-alives and stray line ends between messages (RFC 5626 §3.5.1, RFC 3261 §7.5).
      for (;;) {
        const s = this.#start;
        const avail = this.#end - s;
        if (avail === 0) return undefined;
        const c = buf[s];
        if (c !== CR && c !== LF) break;
        if (c === LF) {
          this.#consume(1);
          continue;
        }
        if (avail < 2) return undefined;
        if (buf[s + 1] !== LF) {
          this.#consume(1);
          continue;
        }
        if (avail < 3) return undefined;
        if (buf[s + 2] === CR) {
          if (avail < 4) return undefined;
          if (buf[s + 3] === LF) {
            this.#consume(4);
            return { kind: "ping" };
          }
        }
        this.#consume(2);
        return { kind: "pong" };
      }
      this.#scan = 0;
      this.#lines = 0;
      this.#need = -1;
    }
    if (this.#need < 0) {
      const found = this.#findHeaderEnd();
      if (found === undefined) {
        if (this.#end - this.#start > this.#maxHeaderBytes) {
          return { kind: "error", reason: "header section too large" };
        }
        if (this.#lines > this.#maxHeaders) {
          return { kind: "error", reason: "too many header lines" };
        }
        return undefined;
      }
      if (found.lastLf > this.#maxHeaderBytes) {
        return { kind: "error", reason: "header section too large" };
      }
      if (this.#lines > this.#maxHeaders) return { kind: "error", reason: "too many header lines" };
      const length = this.#contentLength(found.lastLf);
      if (typeof length === "string") return { kind: "error", reason: length };
      if (length > this.#maxBodyBytes) return { kind: "error", reason: "body too large" };
      this.#need = found.bodyStart + length;
    }
    if (this.#end - this.#start < this.#need) return undefined;
    const bytes = buf.slice(this.#start, this.#start + this.#need);
    this.#consume(this.#need);
    this.#scan = -1;
    this.#need = -1;
    return { kind: "message", bytes };
  }

  /** Resumable search for the blank line; counts lines on the way. Offsets are relative. */
  #findHeaderEnd(): { lastLf: number; bodyStart: number } | undefined {
    const buf = this.#buf;
    const s = this.#start;
    const e = this.#end;
    let p = buf.indexOf(LF, s + this.#scan);
    while (p >= 0 && p < e) {
      if (p + 1 >= e || (buf[p + 1] === CR && p + 2 >= e)) {
        this.#scan = p - s;
        return undefined;
      }
      if (buf[p + 1] === LF) return { lastLf: p - s, bodyStart: p + 2 - s };
      if (buf[p + 1] === CR && buf[p + 2] === LF) return { lastLf: p - s, bodyStart: p + 3 - s };
      this.#lines++;
      p = buf.indexOf(LF, p + 1);
    }
    this.#scan = e - s;
    return undefined;
  }

  /** Reads Content-Length (or compact `l`) from the header section; a string is an error. */
  #contentLength(lastLf: number): number | string {
    const buf = this.#buf;
    const e = this.#start + lastLf;
    let found: number | undefined;
    let p = buf.indexOf(LF, this.#start) + 1;
    while (p > 0 && p < e) {
      let lineEnd = buf.indexOf(LF, p);
      if (lineEnd < 0 || lineEnd > e) lineEnd = e;
      const c = buf[p]! | 0x20;
      if (c === 0x63 || c === 0x6c) {
        let q = p;
        while (q < lineEnd && buf[q] !== 0x3a && !isBlank(buf[q]!)) q++;
        if (isContentLength(buf, p, q)) {
          while (q < lineEnd && isBlank(buf[q]!)) q++;
          if (buf[q] === 0x3a) {
            // The value, with any folded continuation lines (RFC 3261 §7.3.1).
            while (lineEnd < e && isBlank(buf[lineEnd + 1]!)) {
              const next = buf.indexOf(LF, lineEnd + 1);
              lineEnd = next < 0 || next > e ? e : next;
            }
            const n = readDecimal(buf, q + 1, lineEnd);
            if (n === undefined) return "malformed Content-Length";
            if (found !== undefined && found !== n) return "conflicting Content-Length values";
            found = n;
          }
        }
      }
      p = lineEnd + 1;
    }
    return found ?? 0;
  }
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === CR || c === LF;
}

const NAME = "content-length";

function isContentLength(buf: Uint8Array, from: number, to: number): boolean {
  if (to - from === 1) return (buf[from]! | 0x20) === 0x6c;
  if (to - from !== NAME.length) return false;
  for (let i = 0; i < NAME.length; i++) {
    if ((buf[from + i]! | 0x20) !== NAME.charCodeAt(i)) return false;
  }
  return true;
}

/** `LWS 1*10DIGIT LWS` between `from` and `to`, or undefined. */
function readDecimal(buf: Uint8Array, from: number, to: number): number | undefined {
  let i = from;
  while (i < to && isBlank(buf[i]!)) i++;
  const digits = i;
  let n = 0;
  while (i < to && buf[i]! >= 48 && buf[i]! <= 57) n = n * 10 + (buf[i++]! - 48);
  if (i === digits || i - digits > 10) return undefined;
  while (i < to && isBlank(buf[i]!)) i++;
  return i === to ? n : undefined;
}
