import assert from "node:assert/strict";
import { SipParseError } from "../../lib/sip/errors.ts";
import { Headers } from "../../lib/sip/headers.ts";
import {
  bodyText,
  cloneMessage,
  createResponse,
  defaultReason,
  isRequest,
  isResponse,
  SipRequest,
  SipResponse,
} from "../../lib/sip/message.ts";
import { formatUri, parseUri } from "../../lib/sip/uri.ts";

function invite(): SipRequest {
  return new SipRequest(
    "INVITE",
    parseUri("sip:focus@example.org;conf-id=abc"),
    new Headers([
      ["Via", "SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKtop;rport"],
      ["Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKsecond"],
      ["Max-Forwards", "69"],
      ["From", '"Alice" <sip:alice@example.org>;tag=fromtag'],
      ["To", "sip:focus@example.org"],
      ["Call-ID", "abc@10.0.0.1"],
      ["CSeq", "20 INVITE"],
      ["Timestamp", "54"],
      ["Record-Route", "<sip:proxy.example.org;lr>"],
      ["Content-Type", "application/sdp"],
    ]),
    new TextEncoder().encode("v=0\r\n"),
  );
}

Deno.test("accessors read the mandatory header fields (RFC 3261 §8.1.1)", () => {
  const r = invite();
  assert.equal(r.callId, "abc@10.0.0.1");
  assert.deepStrictEqual(r.cseq, { seq: 20, method: "INVITE" });
  assert.equal(r.from.display, "Alice");
  assert.equal(formatUri(r.from.uri), "sip:alice@example.org");
  assert.equal(r.fromTag, "fromtag");
  assert.equal(r.toTag, undefined);
  assert.equal(formatUri(r.to.uri), "sip:focus@example.org");
  assert.equal(r.topVia.transport, "TCP");
  assert.equal(r.topVia.host, "10.0.0.1");
  assert.equal(r.topVia.port, 5060);
  assert.equal(r.branch, "z9hG4bKtop");
  assert.equal(r.contentType, "application/sdp");
  assert.equal(r.maxForwards, 69);
  assert.equal(bodyText(r), "v=0\r\n");
  assert.ok(isRequest(r));
  assert.ok(!isResponse(r));
});

Deno.test("accessors throw SipParseError when a header is missing or malformed", () => {
  const r = new SipRequest("OPTIONS", parseUri("sip:x@y"));
  for (const get of [() => r.callId, () => r.cseq, () => r.from, () => r.to, () => r.topVia]) {
    assert.throws(get, (e: unknown) => e instanceof SipParseError && /missing/.test(e.message));
  }
  assert.equal(r.maxForwards, undefined);
  assert.equal(r.contentType, undefined);
  r.headers.set("CSeq", "x OPTIONS");
  assert.throws(() => r.cseq, SipParseError);
  r.headers.set("Max-Forwards", "lots");
  assert.equal(r.maxForwards, undefined);
});

Deno.test("createResponse copies Via, From, To, Call-ID, CSeq and adds the To tag (§8.2.6.2)", () => {
  const req = invite();
  const res = createResponse(req, 180, undefined, { toTag: "totag1" });
  assert.ok(isResponse(res));
  assert.equal(res.status, 180);
  assert.equal(res.reason, "Ringing");
  assert.deepStrictEqual([...res.headers], [
    ["Via", "SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKtop;rport"],
    ["Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKsecond"],
    ["From", '"Alice" <sip:alice@example.org>;tag=fromtag'],
    ["To", "sip:focus@example.org;tag=totag1"],
    ["Call-ID", "abc@10.0.0.1"],
    ["CSeq", "20 INVITE"],
  ]);
  assert.equal(res.toTag, "totag1");
  assert.equal(res.body.length, 0);
});

Deno.test("createResponse keeps an existing To tag and copies Timestamp only for 100 (§8.2.6.1)", () => {
  const req = invite();
  req.headers.set("To", "<sip:focus@example.org>;tag=already");
  const ok = createResponse(req, 200, "Fine", {
    toTag: "ignored",
    headers: [["Contact", "<sip:focus@10.0.0.9>"], ["Content-Type", "application/sdp"]],
    body: new TextEncoder().encode("v=0\r\n"),
  });
  assert.equal(ok.reason, "Fine");
  assert.equal(ok.toTag, "already");
  assert.equal(ok.headers.get("Timestamp"), undefined);
  assert.equal(ok.headers.get("Contact"), "<sip:focus@10.0.0.9>");
  assert.equal(bodyText(ok), "v=0\r\n");
  const trying = createResponse(req, 100);
  assert.equal(trying.reason, "Trying");
  assert.equal(trying.headers.get("Timestamp"), "54");
  assert.equal(trying.headers.get("Record-Route"), undefined);
});

Deno.test("defaultReason: RFC 3261 §21 phrases and class fallbacks", () => {
  assert.equal(defaultReason(100), "Trying");
  assert.equal(defaultReason(200), "OK");
  assert.equal(defaultReason(481), "Call/Transaction Does Not Exist");
  assert.equal(defaultReason(505), "Version Not Supported");
  assert.equal(defaultReason(513), "Message Too Large");
  assert.equal(defaultReason(603), "Decline");
  assert.equal(defaultReason(299), "Success");
  assert.equal(defaultReason(499), "Client Error");
  assert.equal(defaultReason(699), "Global Failure");
});

Deno.test("cloneMessage: deep copy of URI, headers and body", () => {
  const req = invite();
  const copy = cloneMessage(req);
  assert.ok(copy instanceof SipRequest);
  copy.uri.params.set("x", "1");
  copy.headers.removeFirst("Via");
  copy.body[0] = 0x21;
  assert.equal(formatUri(req.uri), "sip:focus@example.org;conf-id=abc");
  assert.equal(req.headers.getAll("Via").length, 2);
  assert.equal(bodyText(req), "v=0\r\n");
  const res = createResponse(req, 486);
  const rc = cloneMessage(res);
  assert.ok(rc instanceof SipResponse);
  rc.headers.set("Call-ID", "other");
  assert.equal(res.callId, "abc@10.0.0.1");
  assert.equal(rc.reason, "Busy Here");
});
