/**
 * Data-driven test over tests/fixtures/sip: every valid message parses, its accessors work,
 * parse → serialize → parse is stable, and the stream framer cuts it out byte by byte; every
 * invalid message meets the outcome written in its `.expect` sidecar.
 */

import assert from "node:assert/strict";
import { SipParseError } from "../../lib/sip/errors.ts";
import { StreamFramer } from "../../lib/sip/framer.ts";
import { isRequest } from "../../lib/sip/message.ts";
import { errorResponseFor, parseMessage, serializeMessage } from "../../lib/sip/parser.ts";
import { fixtureBytes, fixtureNames, FIXTURES, plainMessage } from "./_util.ts";

const valid = fixtureNames("valid");
const invalid = fixtureNames("invalid");

Deno.test("fixture folders are populated", () => {
  assert.ok(valid.filter((n) => n.startsWith("rfc4475-")).length >= 20);
  assert.ok(invalid.filter((n) => n.startsWith("rfc4475-")).length >= 29);
  for (const peer of ["linphone-", "sipp-", "baresip-"]) {
    assert.ok(valid.some((n) => n.startsWith(peer)), `no ${peer} capture`);
  }
});

for (const name of valid) {
  Deno.test(`valid fixture ${name}`, () => {
    const bytes = fixtureBytes("valid", name);
    const m1 = parseMessage(bytes);
    // Accessors never throw on a parsed message.
    assert.ok(m1.callId.length > 0);
    const cseq = m1.cseq;
    if (isRequest(m1)) assert.equal(cseq.method, m1.method);
    assert.ok(m1.from.uri.host.length > 0 || m1.from.uri.scheme === "tel");
    void m1.to;
    assert.ok(m1.topVia.protocol === "SIP/2.0");
    assert.equal(m1.headers.get("Content-Length"), String(m1.body.length));

    const s1 = serializeMessage(m1);
    const m2 = parseMessage(s1);
    assert.deepStrictEqual(plainMessage(m2), plainMessage(m1));
    const s2 = serializeMessage(m2);
    assert.deepStrictEqual(s2, s1);

    // The canonical bytes, fed one byte at a time, come out of the framer as one message.
    const framer = new StreamFramer();
    const events = [];
    for (let i = 0; i < s1.length; i++) events.push(...framer.push(s1.subarray(i, i + 1)));
    assert.equal(events.length, 1);
    const ev = events[0]!;
    assert.equal(ev.kind, "message");
    if (ev.kind === "message") assert.deepStrictEqual(ev.bytes, s1);
    assert.equal(framer.buffered, 0);
  });
}

interface Expectation {
  expect: string;
  error: string | undefined;
  reply: string | undefined;
}

function readExpect(name: string): Expectation {
  const text = Deno.readTextFileSync(new URL(`invalid/${name}.expect`, FIXTURES));
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const expect = fields.get("expect");
  if (expect === undefined) throw new Error(`${name}.expect has no expect: line`);
  return { expect, error: fields.get("error"), reply: fields.get("reply") };
}

for (const name of invalid) {
  Deno.test(`invalid fixture ${name}`, () => {
    const bytes = fixtureBytes("invalid", name);
    const exp = readExpect(name);
    if (exp.expect === "accept") {
      const m1 = parseMessage(bytes);
      const m2 = parseMessage(serializeMessage(m1));
      assert.deepStrictEqual(plainMessage(m2), plainMessage(m1));
      return;
    }
    let caught: unknown;
    try {
      parseMessage(bytes);
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof SipParseError, `${name} was not rejected with SipParseError`);
    if (exp.error !== undefined) {
      assert.ok(caught.message.includes(exp.error), `"${caught.message}" lacks "${exp.error}"`);
    }
    const isResponse = new TextDecoder().decode(bytes.subarray(0, 4)) === "SIP/";
    const reply = errorResponseFor(caught, "t1");
    if (exp.expect === "drop") {
      assert.ok(isResponse, "only responses are dropped outright");
      assert.equal(reply, undefined);
      return;
    }
    assert.ok(!isResponse);
    assert.equal(caught.status, Number(exp.expect));
    if (exp.reply === "yes") {
      assert.ok(reply !== undefined, "expected a best-effort reply");
      assert.equal(reply.status, caught.status);
      // Via, From, To, Call-ID and CSeq are copied (RFC 3261 §8.2.6.2) and a To tag added.
      const partial = caught.partial!;
      const vias = partial.headers.filter(([n]) => n === "Via").map(([, v]) => v);
      assert.deepStrictEqual(reply.headers.getAll("Via"), vias);
      assert.ok(/;tag=/.test(reply.headers.get("To")!));
      for (const h of ["From", "Call-ID", "CSeq"]) {
        assert.equal(reply.headers.get(h), partial.headers.find(([n]) => n === h)?.[1]);
      }
      assert.ok(serializeMessage(reply).length > 0);
    } else if (exp.reply === "no") {
      assert.equal(reply, undefined);
    } else {
      throw new Error(`${name}.expect must say reply: yes or reply: no`);
    }
  });
}
