import assert from "node:assert/strict";
import { type FramerEvent, StreamFramer } from "../../lib/sip/framer.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { concat, fixtureBytes, prng } from "./_util.ts";

const enc = new TextEncoder();

function message(body: string, callId = "c1", extra: string[] = []): Uint8Array {
  const b = enc.encode(body);
  return concat(
    enc.encode(
      [
        "MESSAGE sip:bob@b SIP/2.0",
        "Via: SIP/2.0/TCP h;branch=z9hG4bK" + callId,
        "To: <sip:bob@b>",
        "From: <sip:alice@a>;tag=1",
        "Call-ID: " + callId,
        "CSeq: 1 MESSAGE",
        ...extra,
        `Content-Length: ${b.length}`,
      ].join("\r\n") + "\r\n\r\n",
    ),
    b,
  );
}

function feed(framer: StreamFramer, bytes: Uint8Array, sizes: () => number): FramerEvent[] {
  const out: FramerEvent[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = Math.max(1, sizes());
    out.push(...framer.push(bytes.subarray(i, i + n)));
    i += n;
  }
  return out;
}

const CRLF = enc.encode("\r\n");
const PING = enc.encode("\r\n\r\n");

Deno.test("several messages and keep-alives in one chunk (RFC 3261 §18.3, RFC 5626 §3.5.1)", () => {
  const a = message("hello", "a");
  const b = message("", "b");
  const c = message("x\r\n\r\ny", "c");
  const f = new StreamFramer();
  const events = f.push(concat(a, PING, b, CRLF, c, PING, PING));
  assert.deepStrictEqual(events, [
    { kind: "message", bytes: a },
    { kind: "ping" },
    { kind: "message", bytes: b },
    { kind: "pong" },
    { kind: "message", bytes: c },
    { kind: "ping" },
    { kind: "ping" },
  ]);
  assert.equal(f.buffered, 0);
  assert.equal(new TextDecoder().decode(parseMessage(c).body), "x\r\n\r\ny");
});

Deno.test("byte-by-byte input gives the same events, including a split ping", () => {
  const stream = concat(message("abc", "a"), PING, message("", "b"), CRLF, message("z", "c"));
  const whole = new StreamFramer().push(stream);
  const f = new StreamFramer();
  const byByte = feed(f, stream, () => 1);
  assert.deepStrictEqual(byByte, whole);
  assert.deepStrictEqual(byByte.map((e) => e.kind), [
    "message",
    "ping",
    "message",
    "pong",
    "message",
  ]);
});

Deno.test("every two-chunk split of a stream gives the same events", () => {
  const stream = concat(PING, message("0123456789", "a"), CRLF, message("", "b"), PING);
  const expected = new StreamFramer().push(stream);
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new StreamFramer();
    const got = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))];
    assert.deepStrictEqual(got, expected, `split at ${cut}`);
  }
});

Deno.test("random chunking of the fixtures corpus gives the same events", () => {
  const names = [
    "rfc4475-wsinv",
    "rfc4475-mpart01",
    "linphone-5.1-av-factory-invite",
    "rfc4475-longreq",
  ];
  const stream = concat(...names.flatMap((n) => [fixtureBytes("valid", n), PING]));
  const expected = new StreamFramer().push(stream);
  assert.deepStrictEqual(expected.map((e) => e.kind), [
    "message",
    "ping",
    "message",
    "ping",
    "message",
    "ping",
    "message",
    "ping",
  ]);
  const rand = prng(7);
  for (let round = 0; round < 50; round++) {
    const got = feed(new StreamFramer(), stream, () => Math.floor(rand() * 300));
    assert.deepStrictEqual(got, expected);
  }
});

Deno.test("a lone CRLF waits for the next byte before it is called a pong", () => {
  const f = new StreamFramer();
  assert.deepStrictEqual(f.push(CRLF), []);
  assert.deepStrictEqual(f.push(enc.encode("\r")), []);
  assert.deepStrictEqual(f.push(enc.encode("\n")), [{ kind: "ping" }]);
  assert.deepStrictEqual(f.push(CRLF), []);
  assert.deepStrictEqual(f.push(enc.encode("M")), [{ kind: "pong" }]);
  assert.equal(f.buffered, 1);
});

Deno.test("compact Content-Length, folded Content-Length, missing Content-Length", () => {
  const compact = enc.encode(
    "MESSAGE sip:b SIP/2.0\r\nl: 3\r\nVia: SIP/2.0/TCP h\r\n\r\nabcNEXT",
  );
  const f = new StreamFramer();
  const ev = f.push(compact);
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.kind === "message" && ev[0]!.bytes.length, compact.length - 4);
  const folded = enc.encode("X sip:b SIP/2.0\r\nContent-Length:\r\n  2\r\n\r\nok");
  const g = new StreamFramer().push(folded);
  assert.equal(g[0]!.kind === "message" && g[0]!.bytes.length, folded.length);
  const none = enc.encode("OPTIONS sip:b SIP/2.0\r\nVia: x\r\n\r\nOPTIONS");
  const h = new StreamFramer();
  const hv = h.push(none);
  assert.equal(hv.length, 1);
  assert.equal(h.buffered, 7);
});

Deno.test("bare LF line ends are framed like the parser reads them", () => {
  const m = enc.encode("OPTIONS sip:b SIP/2.0\nContent-Length: 2\n\nhi");
  const f = new StreamFramer();
  const ev = feed(f, m, () => 1);
  assert.deepStrictEqual(ev, [{ kind: "message", bytes: m }]);
});

Deno.test("limits and malformed Content-Length kill the framer", () => {
  const cases: Array<[Uint8Array, ConstructorParameters<typeof StreamFramer>[0], string]> = [
    [message("x".repeat(200)), { maxBodyBytes: 100 }, "body too large"],
    [
      message("", "c", ["X-Big: " + "a".repeat(500)]),
      { maxHeaderBytes: 300 },
      "header section too large",
    ],
    [
      enc.encode("INVITE sip:x SIP/2.0\r\n" + "X: a\r\n".repeat(1000)),
      { maxHeaderBytes: 1000 },
      "header section too large",
    ],
    [
      message("", "c", Array.from({ length: 30 }, (_, i) => `X-${i}: v`)),
      { maxHeaders: 20 },
      "too many header lines",
    ],
    [
      enc.encode("INVITE sip:x SIP/2.0\r\n" + "X: a\r\n".repeat(40)),
      { maxHeaders: 20 },
      "too many header lines",
    ],
    [enc.encode("A sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n"), {}, "malformed Content-Length"],
    [
      enc.encode("A sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab"),
      {},
      "conflicting Content-Length values",
    ],
  ];
  for (const [bytes, limits, reason] of cases) {
    for (const chunk of [bytes.length, 1]) {
      const f = new StreamFramer(limits);
      const events = feed(f, bytes, () => chunk);
      assert.deepStrictEqual(events, [{ kind: "error", reason }], `${reason} (chunk ${chunk})`);
      assert.ok(f.dead);
      assert.deepStrictEqual(f.push(message("fine")), []);
      assert.equal(f.buffered, 0);
    }
  }
});

Deno.test("messages just under the limits pass", () => {
  const body = "y".repeat(100);
  const f = new StreamFramer({ maxBodyBytes: 100, maxHeaders: 7 });
  const m = message(body);
  assert.deepStrictEqual(f.push(m), [{ kind: "message", bytes: m }]);
});

Deno.test("a large message fed one byte at a time is framed whole (no rescanning)", () => {
  const big = message("b".repeat(200_000), "big", ["X-Long: " + "h".repeat(30_000)]);
  const f = new StreamFramer();
  const events = feed(f, big, () => 1);
  assert.equal(events.length, 1);
  assert.deepStrictEqual(events[0], { kind: "message", bytes: big });
});
