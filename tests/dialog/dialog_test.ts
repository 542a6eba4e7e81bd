/**
 * Dialog state (RFC 3261 §12): creation on both sides, in-dialog request construction with
 * loose and strict routing, CSeq numbering and checking, target refresh.
 */

import assert from "node:assert/strict";
import { Dialog, dialogKey, tryParseUri } from "../../lib/dialog/dialog.ts";
import { formatNameAddr, parseNameAddr } from "../../lib/sip/headers.ts";
import { formatUri } from "../../lib/sip/uri.ts";
import { peerResponse, uriOf, wireRequest } from "./fake_transaction_port.ts";

function uasInvite(extra: Array<[string, string]> = [], uri = "sip:conf@192.0.2.1") {
  return wireRequest({
    method: "INVITE",
    uri,
    cseq: 7,
    fromTag: "a1",
    contact: "<sip:alice@198.51.100.7:5070;transport=tcp>",
    headers: extra,
  });
}

Deno.test("UAS dialog: ids, route set in Record-Route order, remote target, sequence numbers", () => {
  // Two Record-Route fields, the first carrying two values (split by the parser).
  const req = uasInvite([
    ["Record-Route", "<sip:p3.example.net;lr>, <sip:p2.example.net;lr>"],
    ["Record-Route", "<sip:p1.example.net;lr;transport=tcp>"],
  ]);
  const d = Dialog.fromIncomingRequest(req, "ours", "<sip:conf@192.0.2.1>");
  assert.deepEqual(d.id, { callId: "call-1@example.org", localTag: "ours", remoteTag: "a1" });
  assert.equal(d.key, dialogKey(d.id));
  assert.deepEqual(d.routeSet, [
    "<sip:p3.example.net;lr>",
    "<sip:p2.example.net;lr>",
    "<sip:p1.example.net;lr;transport=tcp>",
  ]);
  assert.equal(formatUri(d.remoteTarget), "sip:alice@198.51.100.7:5070;transport=tcp");
  assert.equal(d.remoteSeq, 7);
  assert.equal(d.localSeq, 0);
  assert.equal(d.localUri.params.get("tag"), "ours");
  assert.equal(d.remoteUri.params.get("tag"), "a1");
  assert.equal(formatUri(d.localUri.uri), "sip:conf@example.org");
  assert.equal(d.secure, false);
  // The request's To is not changed by adding our tag to the dialog's local URI.
  assert.equal(req.toTag, undefined);
});

Deno.test("UAS dialog: sips Request-URI makes it secure; no Contact falls back to From", () => {
  const req = wireRequest({ method: "INVITE", uri: "sips:conf@192.0.2.1", fromTag: "a1" });
  const d = Dialog.fromIncomingRequest(req, "ours", "");
  assert.equal(d.secure, true);
  assert.equal(formatUri(d.remoteTarget), "sip:alice@example.org");
  assert.deepEqual(d.routeSet, []);
});

Deno.test("UAS dialog: in-dialog request uses loose routing, increments CSeq, keeps tags", () => {
  const req = uasInvite([["Record-Route", "<sip:p2.example.net;lr>, <sip:p1.example.net;lr>"]]);
  const d = Dialog.fromIncomingRequest(req, "ours", "<sip:conf@192.0.2.1;transport=tcp>");
  const bye = d.createRequest("BYE");
  assert.equal(bye.method, "BYE");
  assert.equal(formatUri(bye.uri), "sip:alice@198.51.100.7:5070;transport=tcp");
  assert.deepEqual(bye.headers.getAll("Route"), [
    "<sip:p2.example.net;lr>",
    "<sip:p1.example.net;lr>",
  ]);
  assert.equal(bye.fromTag, "ours");
  assert.equal(bye.toTag, "a1");
  assert.equal(bye.from.display, undefined);
  assert.equal(bye.to.display, "Alice");
  assert.equal(bye.callId, "call-1@example.org");
  assert.deepEqual(bye.cseq, { seq: 1, method: "BYE" });
  assert.equal(bye.headers.get("Max-Forwards"), "70");
  assert.equal(bye.headers.get("Contact"), "<sip:conf@192.0.2.1;transport=tcp>");
  const notify = d.createRequest("NOTIFY", { body: new TextEncoder().encode("x") });
  assert.deepEqual(notify.cseq, { seq: 2, method: "NOTIFY" });
  assert.equal(notify.body.length, 1);
  assert.equal(d.localSeq, 2);
});

Deno.test("UAC dialog: route set is the response's Record-Route reversed; tags, target, CSeq", () => {
  const invite = wireRequest({
    method: "INVITE",
    uri: "sip:bob@example.org",
    cseq: 20,
    fromTag: "ourtag",
    contact: "<sip:focus@192.0.2.1>",
  });
  const ok = peerResponse(invite, 200, {
    toTag: "bobtag",
    headers: [
      ["Record-Route", "<sip:p2.example.net;lr>"],
      ["Record-Route", "<sip:p1.example.net;lr>"],
      ["Contact", "<sip:bob@203.0.113.5:5080>"],
    ],
  });
  const d = Dialog.fromResponse(invite, ok);
  assert.deepEqual(d.id, { callId: invite.callId, localTag: "ourtag", remoteTag: "bobtag" });
  assert.deepEqual(d.routeSet, ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]);
  assert.equal(formatUri(d.remoteTarget), "sip:bob@203.0.113.5:5080");
  assert.equal(d.localSeq, 20);
  assert.equal(d.remoteSeq, undefined);
  assert.equal(d.localContact, "<sip:focus@192.0.2.1>");
  // The response's Record-Route list is not reordered in place.
  assert.deepEqual(ok.headers.getAll("Record-Route"), [
    "<sip:p2.example.net;lr>",
    "<sip:p1.example.net;lr>",
  ]);

  const reinvite = d.createRequest("INVITE");
  assert.deepEqual(reinvite.cseq, { seq: 21, method: "INVITE" });
  assert.equal(formatUri(reinvite.uri), "sip:bob@203.0.113.5:5080");
  assert.deepEqual(reinvite.headers.getAll("Route"), [
    "<sip:p1.example.net;lr>",
    "<sip:p2.example.net;lr>",
  ]);
  // ACK and CANCEL reuse the INVITE's number and do not move the counter (§13.2.2.4, §9.1).
  const ack = d.createRequest("ACK", { cseq: 21 });
  assert.deepEqual(ack.cseq, { seq: 21, method: "ACK" });
  assert.equal(ack.headers.has("Contact"), false);
  const cancel = d.createRequest("CANCEL", { cseq: 21 });
  assert.deepEqual(cancel.cseq, { seq: 21, method: "CANCEL" });
  assert.equal(cancel.headers.has("Contact"), false);
  assert.equal(d.localSeq, 21);
  assert.deepEqual(d.createRequest("BYE").cseq, { seq: 22, method: "BYE" });
});

Deno.test("UAC dialog: no Contact in the 2xx keeps the Request-URI as target", () => {
  const invite = wireRequest({ method: "INVITE", uri: "sip:bob@example.org;transport=tcp" });
  const d = Dialog.fromResponse(invite, peerResponse(invite, 200));
  assert.equal(formatUri(d.remoteTarget), "sip:bob@example.org;transport=tcp");
  assert.equal(d.id.remoteTag, "peer-tag");
});

Deno.test("strict routing: first route becomes the Request-URI, remote target goes last", () => {
  const req = uasInvite([
    ["Record-Route", "<sip:strict.example.net;transport=tcp>"],
    ["Record-Route", "<sip:p2.example.net;lr>"],
  ]);
  const d = Dialog.fromIncomingRequest(req, "ours", "");
  const bye = d.createRequest("BYE");
  // §12.2.1.1: "the UAC MUST place the first URI from the route set into the Request-URI ...
  // add a Route header field containing the remainder of the route set values in order ...
  // then place the remote target URI into the Route header field as the last value."
  assert.equal(formatUri(bye.uri), "sip:strict.example.net;transport=tcp");
  const routes = bye.headers.getAll("Route");
  assert.equal(routes.length, 2);
  assert.equal(routes[0], "<sip:p2.example.net;lr>");
  assert.equal(formatUri(uriOf(routes[1])), "sip:alice@198.51.100.7:5070;transport=tcp");
  // The dialog's route set itself is unchanged.
  assert.equal(d.routeSet.length, 2);
});

Deno.test("CSeq check (§12.2.2): lower or equal is out of order, higher is recorded", () => {
  const d = Dialog.fromIncomingRequest(uasInvite(), "ours", "");
  const at = (method: string, cseq: number) =>
    wireRequest({ method, cseq, fromTag: "a1", toTag: "ours" });
  assert.equal(d.checkRemoteSeq(at("BYE", 6)), "out-of-order");
  assert.equal(d.checkRemoteSeq(at("INFO", 7)), "out-of-order");
  assert.equal(d.remoteSeq, 7);
  assert.equal(d.checkRemoteSeq(at("INFO", 9)), "ok");
  assert.equal(d.remoteSeq, 9);
  assert.equal(d.checkRemoteSeq(at("INFO", 8)), "out-of-order");
  // ACK and CANCEL carry the INVITE's number and are never rejected.
  assert.equal(d.checkRemoteSeq(at("ACK", 7)), "ok");
  assert.equal(d.checkRemoteSeq(at("CANCEL", 1)), "ok");
  assert.equal(d.remoteSeq, 9);
});

Deno.test("CSeq check: an empty remote sequence (UAC dialog) accepts any first number", () => {
  const invite = wireRequest({ method: "INVITE", uri: "sip:bob@example.org", cseq: 3 });
  const d = Dialog.fromResponse(invite, peerResponse(invite, 200));
  assert.equal(d.checkRemoteSeq(wireRequest({ method: "BYE", cseq: 1 })), "ok");
  assert.equal(d.remoteSeq, 1);
});

Deno.test("target refresh: a new Contact replaces the target; none or malformed keeps it", () => {
  const d = Dialog.fromIncomingRequest(uasInvite(), "ours", "");
  d.refreshTarget(wireRequest({ method: "UPDATE", contact: "<sip:alice@198.51.100.99>" }));
  assert.equal(formatUri(d.remoteTarget), "sip:alice@198.51.100.99");
  d.refreshTarget(wireRequest({ method: "UPDATE" }));
  assert.equal(formatUri(d.remoteTarget), "sip:alice@198.51.100.99");
  const broken = wireRequest({ method: "UPDATE" });
  broken.headers.append("Contact", "<not a uri");
  d.refreshTarget(broken);
  assert.equal(formatUri(d.remoteTarget), "sip:alice@198.51.100.99");
});

Deno.test("tryParseUri returns undefined instead of throwing", () => {
  assert.equal(tryParseUri("::nonsense"), undefined);
  assert.equal(formatUri(tryParseUri("sip:a@b")!), "sip:a@b");
  // Name-addr formatting of the dialog's URIs round-trips through the parser.
  const d = Dialog.fromIncomingRequest(uasInvite(), "ours", "");
  assert.equal(parseNameAddr(formatNameAddr(d.remoteUri)).params.get("tag"), "a1");
});
