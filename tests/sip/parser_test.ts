import assert from "node:assert/strict";
import { SipParseError } from "../../lib/sip/errors.ts";
import { Headers } from "../../lib/sip/headers.ts";
import { bodyText, isRequest, SipRequest, SipResponse } from "../../lib/sip/message.ts";
import {
  errorResponseFor,
  findHeaderEnd,
  parseMessage,
  serializeMessage,
} from "../../lib/sip/parser.ts";
import { formatUri, parseUri } from "../../lib/sip/uri.ts";
import { fixtureBytes, plainMessage } from "./_util.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const BASE = [
  "OPTIONS sip:bob@biloxi.example.com SIP/2.0",
  "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877",
  "Max-Forwards: 70",
  "To: <sip:bob@biloxi.example.com>",
  "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
  "Call-ID: a84b4c76e66710",
  "CSeq: 63104 OPTIONS",
];

function msg(lines: string[], body = ""): Uint8Array {
  return enc.encode(lines.join("\r\n") + "\r\n\r\n" + body);
}

function without(name: string): string[] {
  return BASE.filter((l) => !l.startsWith(name + ":"));
}

function rejects(bytes: Uint8Array, status: number, text: string, limits = {}): SipParseError {
  try {
    parseMessage(bytes, limits);
  } catch (e) {
    assert.ok(e instanceof SipParseError, `not a SipParseError: ${e}`);
    assert.equal(e.status, status, e.message);
    assert.ok(e.message.includes(text), `"${e.message}" lacks "${text}"`);
    return e;
  }
  throw new assert.AssertionError({ message: `accepted, expected "${text}"` });
}

Deno.test("RFC 4475 wsinv: folding, odd spacing, compact forms, lists (§3.1.1.1)", () => {
  const m = parseMessage(fixtureBytes("valid", "rfc4475-wsinv"));
  assert.ok(m instanceof SipRequest);
  assert.equal(m.method, "INVITE");
  assert.equal(formatUri(m.uri), "sip:vivekg@chair-dnrc.example.com;unknownparam");
  assert.equal(m.toTag, "1918181833n");
  assert.equal(m.from.display, 'J Rosenberg \\"');
  assert.equal(m.fromTag, "98asjd8");
  assert.equal(m.maxForwards, 68);
  assert.equal(m.callId, "wsinv.ndaksdj@192.0.2.1");
  assert.deepStrictEqual(m.cseq, { seq: 9, method: "INVITE" });
  const vias = m.headers.getAll("Via");
  assert.equal(vias.length, 3);
  assert.equal(m.topVia.host, "192.0.2.2");
  assert.equal(m.branch, "390skdjuw");
  assert.equal(m.headers.get("Subject"), "");
  assert.equal(
    m.headers.get("NewFangledHeader"),
    "newfangled value continued newfangled value",
  );
  assert.equal(m.headers.get("UnknownHeaderWithUnusualValue"), ";;,,;;,;");
  assert.equal(
    m.headers.get("Route"),
    "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
  );
  const contact = m.headers.get("Contact")!;
  assert.ok(contact.startsWith('"Quoted string \\"\\"" <sip:jdrosen@example.com>'));
  assert.equal(m.body.length, 150);
  assert.ok(bodyText(m).startsWith("v=0\r\n"));
});

Deno.test("RFC 4475 intmeth: unusual method, tokens, control chars in quotes (§3.1.1.2)", () => {
  const m = parseMessage(fixtureBytes("valid", "rfc4475-intmeth"));
  assert.ok(isRequest(m));
  assert.equal(m.method, "!interesting-Method0123456789_*+`.%indeed'~");
  assert.equal(m.to.display, "BEL:\x07 NUL:\x00 DEL:\x7f");
  assert.equal(m.from.display, "token1~` token2'+_ token3*%!.-");
  assert.equal(m.from.params.get("fromparam''~+*_!.-%"), '"работающий"');
  assert.equal(m.fromTag, "_token~1'+`*%!-.");
  assert.equal(m.callId, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
  assert.equal(m.headers.get("extensionHeader-!.%*+_`'~"), "\ufeff大停電");
});

Deno.test("RFC 4475 dblreq: bytes after Content-Length are discarded (§18.3)", () => {
  const m = parseMessage(fixtureBytes("valid", "rfc4475-dblreq"));
  assert.ok(isRequest(m));
  assert.equal(m.method, "REGISTER");
  assert.equal(m.body.length, 0);
});

Deno.test("RFC 4475 unreason/noreason: UTF-8 and empty reason phrases", () => {
  const u = parseMessage(fixtureBytes("valid", "rfc4475-unreason"));
  assert.ok(u instanceof SipResponse);
  assert.equal(u.status, 200);
  assert.ok(u.reason.startsWith("= 2**3 * 5**2 но сто"));
  const n = parseMessage(fixtureBytes("valid", "rfc4475-noreason"));
  assert.ok(n instanceof SipResponse);
  assert.equal(n.status, 100);
  assert.equal(n.reason, "");
});

Deno.test("comma lists are split for list headers only", () => {
  const m = parseMessage(msg([
    ...BASE,
    "Allow: INVITE, ACK,BYE",
    'Contact: <sip:a@b>;q=0.5, "x, y" <sip:c@d>',
    "v: SIP/2.0/TCP h2;branch=z9hG4bK2, SIP/2.0/TCP h3;branch=z9hG4bK3",
    "Subject: lunch, then work",
    "Date: Sat, 13 Nov 2010 23:29:00 GMT",
    'Authorization: Digest username="a", realm="b"',
    "X-Custom: a, b",
  ]));
  assert.deepStrictEqual(m.headers.getAll("Allow"), ["INVITE", "ACK", "BYE"]);
  assert.deepStrictEqual(m.headers.getAll("Contact"), ["<sip:a@b>;q=0.5", '"x, y" <sip:c@d>']);
  assert.equal(m.headers.getAll("Via").length, 3);
  assert.equal(m.headers.get("Subject"), "lunch, then work");
  assert.equal(m.headers.get("Date"), "Sat, 13 Nov 2010 23:29:00 GMT");
  assert.equal(m.headers.get("Authorization"), 'Digest username="a", realm="b"');
  assert.equal(m.headers.get("X-Custom"), "a, b");
});

Deno.test("compact forms are expanded and names canonicalised", () => {
  const m = parseMessage(msg([
    "INVITE sip:bob@b SIP/2.0",
    "v: SIP/2.0/UDP h;branch=z9hG4bK1",
    "t: <sip:bob@b>",
    "f: <sip:alice@a>;tag=1",
    "i: id1",
    "CSEQ: 1 INVITE",
    "k: timer",
    "c: application/sdp",
    "l: 4",
  ], "v=0\n"));
  assert.deepStrictEqual([...m.headers].map(([n]) => n), [
    "Via",
    "To",
    "From",
    "Call-ID",
    "CSeq",
    "Supported",
    "Content-Type",
    "Content-Length",
  ]);
  assert.equal(m.contentType, "application/sdp");
  assert.equal(bodyText(m), "v=0\n");
});

Deno.test("mandatory header fields (RFC 3261 §8.1.1) and single-valued ones", () => {
  for (const name of ["To", "From", "Call-ID", "CSeq", "Via"]) {
    rejects(msg(without(name)), 400, `missing ${name}`);
  }
  parseMessage(msg(without("Max-Forwards")));
  rejects(msg([...BASE, "To: <sip:x@y>"]), 400, "multiple To");
  rejects(msg([...BASE, "i: other"]), 400, "multiple Call-ID");
  rejects(msg([...BASE, "Max-Forwards: 70"]), 400, "multiple Max-Forwards");
  rejects(msg([...BASE, "Content-Length: 0", "l: 0"]), 400, "multiple Content-Length");
});

Deno.test("malformed values of checked headers are named in the error", () => {
  const bad = (name: string, value: string) => msg([...without(name), `${name}: ${value}`]);
  rejects(bad("CSeq", "x OPTIONS"), 400, "malformed CSeq");
  rejects(bad("CSeq", "1 INVITE"), 400, "CSeq method INVITE does not match OPTIONS");
  rejects(bad("Via", "SIP/2.0 host"), 400, "malformed Via");
  rejects(bad("To", "<sip:bob@b"), 400, "malformed To");
  rejects(bad("From", "http://x"), 400, "malformed From");
  rejects(bad("Call-ID", "a b"), 400, "malformed Call-ID");
  rejects(bad("Max-Forwards", "-1"), 400, "malformed Max-Forwards");
  rejects(bad("Max-Forwards", "256"), 400, "malformed Max-Forwards");
  rejects(msg([...BASE, "Contact: <sip:a@b"]), 400, "malformed Contact");
  rejects(msg([...BASE, "Contact: *, <sip:a@b>"]), 400, 'Contact "*"');
  rejects(msg([...BASE, "Route: sip:p;lr>"]), 400, "malformed Route");
  parseMessage(msg([...BASE, "Contact: *"]));
});

Deno.test("start line: versions, methods, URIs, status codes", () => {
  rejects(msg(["OPTIONS sip:bob@b SIP/3.0", ...BASE.slice(1)]), 505, "bad SIP version");
  rejects(msg(["OPTIONS sip:bob@b HTTP/1.1", ...BASE.slice(1)]), 400, "malformed SIP version");
  rejects(msg(["OPTIONS sip:bob@b", ...BASE.slice(1)]), 400, "malformed Request-Line");
  rejects(msg(["OPTIONS  sip:bob@b SIP/2.0", ...BASE.slice(1)]), 400, "malformed Request-Line");
  rejects(msg(["OPT@IONS sip:bob@b SIP/2.0", ...BASE.slice(1)]), 400, "malformed method");
  rejects(msg(["OPTIONS <sip:bob@b> SIP/2.0", ...BASE.slice(1)]), 400, "enclosed in <>");
  rejects(msg(["OPTIONS mailto:bob@b SIP/2.0", ...BASE.slice(1)]), 416, "unsupported URI scheme");
  rejects(
    msg(["OPTIONS sip:bob@b?x=y SIP/2.0", ...BASE.slice(1)]),
    400,
    "must not contain headers",
  );
  const lower = parseMessage(msg(["OPTIONS sip:bob@b sip/2.0", ...BASE.slice(1)]));
  assert.ok(isRequest(lower));
  const resp = (line: string) => msg([line, ...BASE.slice(1)]);
  const ok = parseMessage(resp("SIP/2.0 486 Busy Here"));
  assert.ok(ok instanceof SipResponse && ok.status === 486 && ok.reason === "Busy Here");
  const bare = parseMessage(resp("SIP/2.0 200"));
  assert.ok(bare instanceof SipResponse && bare.reason === "");
  rejects(resp("SIP/2.0 099 Low"), 400, "malformed status code");
  rejects(resp("SIP/2.0 700 High"), 400, "malformed status code");
  rejects(resp("SIP/2.0 2000 OK"), 400, "malformed status code");
  rejects(resp("SIP/2.0 20 OK"), 400, "malformed status code");
  rejects(resp("SIP/2.1 200 OK"), 505, "bad SIP version");
  // A response's CSeq method is not compared with anything.
  parseMessage(msg(["SIP/2.0 200 OK", ...without("CSeq").slice(1), "CSeq: 1 INVITE"]));
});

Deno.test("header section syntax: colon, name, folding", () => {
  const e = rejects(msg([...BASE, "NoColonHere"]), 400, "malformed header line 8");
  assert.equal(e.line, 8);
  rejects(msg([...BASE, "Bad Name: x"]), 400, "malformed header line");
  rejects(msg([...BASE, ": x"]), 400, "malformed header line");
  rejects(
    msg([BASE[0]!, " folded-start-line", ...BASE.slice(1)]),
    400,
    "start line cannot be folded",
  );
  const m = parseMessage(msg([...BASE, "Subject: one", "\t two", "   three"]));
  assert.equal(m.headers.get("Subject"), "one two three");
  const spaced = parseMessage(msg([...BASE, "X-A   :   v  "]));
  assert.equal(spaced.headers.get("X-A"), "v");
});

Deno.test("framing: leading CRLFs, bare LF, missing blank line, Content-Length rules", () => {
  const plain = msg(BASE);
  const lead = new Uint8Array([13, 10, 13, 10, ...plain]);
  assert.deepStrictEqual(plainMessage(parseMessage(lead)), plainMessage(parseMessage(plain)));
  const lf = enc.encode(BASE.join("\n") + "\n\n");
  assert.deepStrictEqual(plainMessage(parseMessage(lf)), plainMessage(parseMessage(plain)));
  rejects(enc.encode(BASE.join("\r\n") + "\r\n"), 400, "missing empty line");
  rejects(enc.encode("\r\n\r\n"), 400, "empty message");
  rejects(new Uint8Array(0), 400, "empty message");

  const noLength = parseMessage(msg(BASE, "hello"));
  assert.equal(bodyText(noLength), "hello");
  assert.equal(noLength.headers.get("Content-Length"), "5");
  const longer = parseMessage(msg([...BASE, "Content-Length: 3"], "hello"));
  assert.equal(bodyText(longer), "hel");
  const padded = parseMessage(msg([...BASE, "Content-Length: 0003"], "hello"));
  assert.equal(padded.headers.get("Content-Length"), "3");
  rejects(msg([...BASE, "Content-Length: 6"], "hello"), 400, "Content-Length mismatch");
  rejects(msg([...BASE, "Content-Length: -1"]), 400, "malformed Content-Length");
  rejects(msg([...BASE, "Content-Length: 1e3"]), 400, "malformed Content-Length");
});

Deno.test("findHeaderEnd locates the blank line", () => {
  assert.deepStrictEqual(findHeaderEnd(enc.encode("A\r\nB\r\n\r\nbody"), 0), {
    lastLf: 5,
    bodyStart: 8,
  });
  assert.deepStrictEqual(findHeaderEnd(enc.encode("A\nB\n\nbody"), 0), { lastLf: 3, bodyStart: 5 });
  assert.equal(findHeaderEnd(enc.encode("A\r\nB\r\n"), 0), undefined);
});

Deno.test("limits: 513 for header size and count, 413 for body size", () => {
  const big = msg([...BASE, "X-Big: " + "a".repeat(2000)]);
  rejects(big, 513, "header section too large", { maxHeaderBytes: 1000 });
  rejects(enc.encode(BASE.join("\r\n") + "\r\nX: " + "a".repeat(2000)), 513, "too large", {
    maxHeaderBytes: 1000,
  });
  parseMessage(big, { maxHeaderBytes: 4000 });
  const many = msg([...BASE, ...Array.from({ length: 20 }, (_, i) => `X-${i}: ${i}`)]);
  rejects(many, 513, "too many header fields", { maxHeaders: 20 });
  parseMessage(many, { maxHeaders: 30 });
  const lists = msg([...BASE, "Allow: " + Array.from({ length: 30 }, (_, i) => `M${i}`).join(",")]);
  rejects(lists, 513, "too many header fields", { maxHeaders: 30 });
  const body = msg([...BASE, "Content-Length: 100"], "x".repeat(100));
  rejects(body, 413, "body too large", { maxBodyBytes: 99 });
  parseMessage(body, { maxBodyBytes: 100 });
});

Deno.test("body is kept as bytes, including NUL and invalid UTF-8", () => {
  const head = enc.encode(
    BASE.join("\r\n") + "\r\nContent-Type: application/octet-stream\r\n" +
      "Content-Length: 6\r\n\r\n",
  );
  const bytes = new Uint8Array([...head, 0, 255, 13, 10, 0xc3, 0x28]);
  const m = parseMessage(bytes);
  assert.deepStrictEqual(Array.from(m.body), [0, 255, 13, 10, 0xc3, 0x28]);
  const again = parseMessage(serializeMessage(m));
  assert.deepStrictEqual(Array.from(again.body), [0, 255, 13, 10, 0xc3, 0x28]);
});

Deno.test("serializeMessage: canonical form, Content-Length from the body", () => {
  const req = new SipRequest(
    "MESSAGE",
    parseUri("sip:bob@b"),
    new Headers([
      ["v", "SIP/2.0/TCP h;branch=z9hG4bKx"],
      ["Content-Length", "999"],
      ["t", "<sip:bob@b>"],
      ["f", '"Zoë" <sip:zoe@a>;tag=1'],
      ["i", "c1"],
      ["CSeq", "1 MESSAGE"],
    ]),
    enc.encode("héllo"),
  );
  const text = dec.decode(serializeMessage(req));
  assert.equal(
    text,
    "MESSAGE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nContent-Length: 6\r\n" +
      'To: <sip:bob@b>\r\nFrom: "Zoë" <sip:zoe@a>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n\r\n' +
      "héllo",
  );
  const back = parseMessage(serializeMessage(req));
  assert.equal(back.from.display, "Zoë");
  const res = new SipResponse(200, "OK", new Headers([["Via", "SIP/2.0/UDP h"]]));
  assert.equal(
    dec.decode(serializeMessage(res)),
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 0\r\n\r\n",
  );
});

Deno.test("serializeMessage refuses CR/LF injection", () => {
  const req = new SipRequest(
    "OPTIONS",
    parseUri("sip:a@b"),
    new Headers([["Subject", "a\r\nVia: x"]]),
  );
  assert.throws(() => serializeMessage(req), TypeError);
  assert.throws(() => serializeMessage(new SipResponse(200, "OK\r\nX: y")), TypeError);
});

Deno.test("parse → serialize → parse is stable for a message with every feature", () => {
  const bytes = msg([
    "INVITE sips:conf@[2001:db8::1]:5061;transport=tls;lr SIP/2.0",
    "v: SIP/2.0/TLS [2001:db8::2]:5061;rport;branch=z9hG4bKq, SIP/2.0/UDP h2;received=1.2.3.4",
    "Max-Forwards: 0070",
    'f: "A \\"quoted\\" name" <sip:a@a>;tag=1;x="y;z"',
    "t: sip:conf@b",
    "i: x@y",
    "CSeq: 0001 INVITE",
    'm: <sip:a@[2001:db8::2]:5061;transport=tls>;+sip.instance="<urn:uuid:1>";expires=60',
    "Route: <sip:p1;lr>, <sip:p2;lr>",
    "Supported:",
    "X-Empty:",
    "c: application/sdp",
  ], "v=0\r\n");
  const m1 = parseMessage(bytes);
  const m2 = parseMessage(serializeMessage(m1));
  assert.deepStrictEqual(plainMessage(m2), plainMessage(m1));
  assert.equal(m1.headers.get("Supported"), "");
  assert.equal(m1.maxForwards, 70);
});

Deno.test("errors carry the partial message; errorResponseFor builds a 400", () => {
  const e = rejects(
    msg(["OPTIONS sip:bob@b SIP/2.0", ...BASE.slice(1), "CSeq: 2 OPTIONS"]),
    400,
    "multiple CSeq",
  );
  assert.equal(e.partial?.startLine, "OPTIONS sip:bob@b SIP/2.0");
  assert.equal(errorResponseFor(e), undefined);
  const v = rejects(msg(["OPTIONS sip:bob@b SIP/2.1", ...BASE.slice(1)]), 505, "bad SIP version");
  const reply = errorResponseFor(v, "zz");
  assert.ok(reply !== undefined);
  assert.equal(reply.status, 505);
  assert.equal(reply.toTag, "zz");
  assert.equal(reply.callId, "a84b4c76e66710");
  assert.equal(reply.branch, "z9hG4bKhjhs8ass877");
  assert.ok(reply.reason.startsWith("Version Not Supported"));
  const r = rejects(
    msg(["SIP/2.0 200 OK", ...without("CSeq").slice(1), "CSeq: x"]),
    400,
    "malformed CSeq",
  );
  assert.equal(errorResponseFor(r), undefined);
});
