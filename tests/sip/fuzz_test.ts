/**
 * Deterministic fuzzing of parseMessage and StreamFramer: mutated fixtures (bit flips, byte
 * replacement with syntax characters, insertions, deletions, truncation, splices of other
 * messages, duplicated lines) and random byte strings from a seeded PRNG.
 *
 * Properties: only SipParseError escapes parseMessage; a message that parses survives
 * serialize → parse unchanged and its accessors work; the framer never throws, emits only
 * known events, and gives the same events however the bytes are chunked.
 */

import assert from "node:assert/strict";
import { SipParseError } from "../../lib/sip/errors.ts";
import { type FramerEvent, StreamFramer } from "../../lib/sip/framer.ts";
import { isRequest } from "../../lib/sip/message.ts";
import { errorResponseFor, parseMessage, serializeMessage } from "../../lib/sip/parser.ts";
import { byteString, concat, fixtureBytes, fixtureNames, plainMessage, prng } from "./_util.ts";

const ITERATIONS = 100_000;
const SPECIAL = [...'\r\n \t:;,<>"\\%@=[]/?*.0123456789'].map((c) => c.charCodeAt(0)).concat([
  0,
  0x7f,
  0x80,
  0xc3,
  0xff,
]);

const corpus: Uint8Array[] = [
  ...fixtureNames("valid").map((n) => fixtureBytes("valid", n)),
  ...fixtureNames("invalid").map((n) => fixtureBytes("invalid", n)),
];

type Rand = () => number;

function int(rand: Rand, n: number): number {
  return Math.floor(rand() * n);
}

function mutate(rand: Rand, input: Uint8Array): Uint8Array {
  let b = input;
  const steps = 1 + int(rand, 4);
  for (let s = 0; s < steps; s++) {
    const at = int(rand, b.length + 1);
    switch (int(rand, 8)) {
      case 0: { // bit flip
        if (b.length === 0) break;
        b = b.slice();
        const i = Math.min(at, b.length - 1);
        b[i] = b[i]! ^ (1 << int(rand, 8));
        break;
      }
      case 1: { // replace with a syntax-significant byte
        if (b.length === 0) break;
        b = b.slice();
        b[Math.min(at, b.length - 1)] = SPECIAL[int(rand, SPECIAL.length)]!;
        break;
      }
      case 2: { // insert random or special bytes
        const n = 1 + int(rand, 8);
        const ins = Uint8Array.from(
          { length: n },
          () => rand() < 0.5 ? int(rand, 256) : SPECIAL[int(rand, SPECIAL.length)]!,
        );
        b = concat(b.subarray(0, at), ins, b.subarray(at));
        break;
      }
      case 3: // truncate
        b = b.subarray(0, at);
        break;
      case 4: { // delete a range
        const n = 1 + int(rand, 40);
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + n)));
        break;
      }
      case 5: { // splice a slice of another message
        const other = corpus[int(rand, corpus.length)]!;
        const from = int(rand, other.length);
        const n = int(rand, 200);
        b = concat(b.subarray(0, at), other.subarray(from, from + n), b.subarray(at));
        break;
      }
      case 6: { // duplicate a line
        const start = b.lastIndexOf(10, Math.max(0, at - 1)) + 1;
        const end = b.indexOf(10, at);
        if (end < 0) break;
        b = concat(b.subarray(0, end + 1), b.subarray(start, end + 1), b.subarray(end + 1));
        break;
      }
      default: { // change a digit run (lengths, CSeq, ports, status codes)
        const ds = b.findIndex((c, i) => i >= at && c >= 48 && c <= 57);
        if (ds < 0) break;
        const repl = new TextEncoder().encode(
          String(int(rand, 3) === 0 ? int(rand, 1e12) : int(rand, 1000)),
        );
        let de = ds;
        while (de < b.length && b[de]! >= 48 && b[de]! <= 57) de++;
        b = concat(b.subarray(0, ds), repl, b.subarray(de));
      }
    }
  }
  return b;
}

function randomMessage(rand: Rand): Uint8Array {
  if (rand() < 0.5) {
    return Uint8Array.from({ length: int(rand, 300) }, () => int(rand, 256));
  }
  // Random lines of syntax characters around a plausible start line.
  const parts = ["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "X y z"][int(rand, 3)]!;
  const alphabet = 'abcXYZ019 :;,<>"\\@=%/\t-.';
  const lines = [parts];
  for (let i = int(rand, 12); i > 0; i--) {
    let l = "";
    for (let j = int(rand, 30); j > 0; j--) l += alphabet[int(rand, alphabet.length)];
    lines.push(l);
  }
  return new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
}

function checkParse(bytes: Uint8Array): "ok" | "error" {
  let m;
  try {
    m = parseMessage(bytes);
  } catch (e) {
    if (!(e instanceof SipParseError)) throw e;
    assert.ok(e.status >= 400 && e.status < 600);
    const reply = errorResponseFor(e, "fz");
    if (reply !== undefined) serializeMessage(reply);
    return "error";
  }
  // Accepted: accessors must work and the canonical form must round-trip exactly.
  void m.callId;
  void m.from;
  void m.to;
  void m.topVia;
  const cseq = m.cseq;
  if (isRequest(m)) assert.equal(cseq.method, m.method);
  const s1 = serializeMessage(m);
  const m2 = parseMessage(s1);
  assert.equal(JSON.stringify(plainMessage(m2)), JSON.stringify(plainMessage(m)));
  assert.equal(byteString(serializeMessage(m2)), byteString(s1));
  return "ok";
}

function frame(bytes: Uint8Array, rand: Rand | undefined): FramerEvent[] {
  const f = new StreamFramer({ maxHeaderBytes: 4096, maxBodyBytes: 4096, maxHeaders: 64 });
  const events: FramerEvent[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = rand === undefined ? bytes.length : 1 + int(rand, 64);
    events.push(...f.push(bytes.subarray(i, i + n)));
    i += n;
  }
  return events;
}

Deno.test(`fuzz: ${ITERATIONS} mutated and random messages`, () => {
  const rand = prng(0x5eed);
  const counts = { ok: 0, error: 0, messages: 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const bytes = rand() < 0.05
      ? randomMessage(rand)
      : mutate(rand, corpus[int(rand, corpus.length)]!);
    try {
      counts[checkParse(bytes)]++;
    } catch (e) {
      const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      throw new Error(`iteration ${i} failed on ${hex}: ${e}`, { cause: e });
    }
    // The framer on a stream of this message twice with a ping between: chunk-independent.
    if (i % 4 === 0) {
      const stream = concat(bytes, enc.encode("\r\n\r\n"), bytes);
      const whole = frame(stream, undefined);
      const chunked = frame(stream, rand);
      assert.equal(describe(chunked), describe(whole), `framer differs on iteration ${i}`);
      for (const ev of whole) {
        assert.ok(["message", "ping", "pong", "error"].includes(ev.kind));
        if (ev.kind === "message") {
          counts.messages++;
          checkParse(ev.bytes);
        }
      }
    }
  }
  // The corpus must keep exercising both outcomes.
  assert.ok(counts.ok > ITERATIONS / 10, `only ${counts.ok} accepted`);
  assert.ok(counts.error > ITERATIONS / 10, `only ${counts.error} rejected`);
  assert.ok(counts.messages > ITERATIONS / 10);
});

const enc = new TextEncoder();

function describe(events: FramerEvent[]): string {
  return JSON.stringify(events.map((e) => e.kind === "message" ? byteString(e.bytes) : e));
}
