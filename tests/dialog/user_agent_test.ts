/**
 * The user-agent core (RFC 3261 §8.2 checks, §12.2.2 in-dialog routing, §11.2 OPTIONS, §8.1.2
 * outbound proxy and next hop) over a fake transaction port.
 */

import assert from "node:assert/strict";
import { Dialog } from "../../lib/dialog/dialog.ts";
import type { ServerRequest } from "../../lib/dialog/server_request.ts";
import {
  ACCEPTED_TYPES,
  ALLOWED_EVENTS,
  ALLOWED_METHODS,
  type DialogUsage,
  nextHop,
  optionTags,
  SUPPORTED_OPTIONS,
  targetOf,
} from "../../lib/dialog/user_agent.ts";
import { Headers } from "../../lib/sip/headers.ts";
import { SipRequest } from "../../lib/sip/message.ts";
import { formatUri, parseUri } from "../../lib/sip/uri.ts";
import { captureLogs } from "../_helpers/sip_transport.ts";
import {
  defined,
  deliver,
  makeUa,
  tcpFlow,
  udpFlow,
  wireRequest,
} from "./fake_transaction_port.ts";

/** A usage that records what reaches it. */
class RecordingUsage implements DialogUsage {
  readonly dialog: Dialog;
  readonly requests: ServerRequest[] = [];
  readonly acks: SipRequest[] = [];
  constructor(dialog: Dialog) {
    this.dialog = dialog;
  }
  onRequest(sr: ServerRequest): void {
    this.requests.push(sr);
    sr.respond(200);
  }
  onAck(ack: SipRequest): void {
    this.acks.push(ack);
  }
}

/** A UA with a handler that records out-of-dialog requests and leaves them unanswered. */
function withHandler() {
  const fx = makeUa();
  const seen: ServerRequest[] = [];
  fx.ua.setHandler({ onRequest: (sr) => seen.push(sr) });
  return { ...fx, seen };
}

/** A dialog registered on `ua` as if an INVITE with CSeq 1 from alice had set it up. */
function registerDialog(fx: ReturnType<typeof makeUa>) {
  const invite = wireRequest({ method: "INVITE", cseq: 1, fromTag: "a1" });
  const usage = new RecordingUsage(Dialog.fromIncomingRequest(invite, "ours", "<sip:c@x>"));
  fx.ua.addUsage(usage);
  return usage;
}

Deno.test("405 with Allow for a known method we do not accept, 501 with Allow otherwise", () => {
  const { ua, seen } = withHandler();
  for (const method of ["REGISTER", "PRACK", "PUBLISH"]) {
    const tx = deliver(ua, wireRequest({ method }));
    const r = tx.finalOrThrow;
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.get("Allow"), ALLOWED_METHODS.join(", "));
    assert.equal(r.headers.get("Server"), "Conclave/test");
    assert.ok(r.toTag, "a final response carries a To tag");
  }
  const tx = deliver(ua, wireRequest({ method: "FROBNICATE" }));
  assert.equal(tx.finalOrThrow.status, 501);
  assert.equal(tx.finalOrThrow.reason, "Not Implemented");
  assert.ok(tx.finalOrThrow.headers.get("Allow")?.includes("INVITE"));
  assert.equal(seen.length, 0);
});

Deno.test("420 lists only the unsupported Require tags; Require: timer passes", () => {
  const { ua, seen } = withHandler();
  const tx = deliver(
    ua,
    wireRequest({ method: "MESSAGE", headers: [["Require", "timer, 100rel"], ["Require", "Foo"]] }),
  );
  assert.equal(tx.finalOrThrow.status, 420);
  assert.equal(tx.finalOrThrow.headers.get("Unsupported"), "100rel, foo");
  assert.equal(seen.length, 0);
  const ok = deliver(ua, wireRequest({ method: "MESSAGE", headers: [["Require", "timer"]] }));
  assert.equal(ok.final, undefined);
  assert.equal(seen.length, 1);
});

Deno.test("415 with Accept for an unknown body type; 415 with Accept-Encoding for gzip", () => {
  const { ua, seen } = withHandler();
  const tx = deliver(
    ua,
    wireRequest({ method: "MESSAGE", body: "{}", contentType: "application/json" }),
  );
  assert.equal(tx.finalOrThrow.status, 415);
  assert.equal(tx.finalOrThrow.headers.get("Accept"), ACCEPTED_TYPES.join(", "));
  const enc = deliver(
    ua,
    wireRequest({
      method: "MESSAGE",
      body: "hi",
      contentType: "text/plain",
      headers: [["Content-Encoding", "gzip"]],
    }),
  );
  assert.equal(enc.finalOrThrow.status, 415);
  assert.equal(enc.finalOrThrow.headers.get("Accept-Encoding"), "identity");
  // A known type with parameters passes.
  deliver(
    ua,
    wireRequest({ method: "MESSAGE", body: "hi", contentType: "Text/Plain;charset=UTF-8" }),
  );
  assert.equal(seen.length, 1);
});

Deno.test("483 for Max-Forwards 0, except OPTIONS which is answered", () => {
  const { ua, seen } = withHandler();
  const req = wireRequest({ method: "MESSAGE" });
  req.headers.set("Max-Forwards", "0");
  assert.equal(deliver(ua, req).finalOrThrow.status, 483);
  const opt = wireRequest({ method: "OPTIONS" });
  opt.headers.set("Max-Forwards", "0");
  deliver(ua, opt);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.request.method, "OPTIONS");
});

/** A request built field by field, skipping the parser's checks (as a buggy peer's might). */
function rawRequest(method: string, fields: Array<[string, string]>): SipRequest {
  const base: Array<[string, string]> = [
    ["Via", "SIP/2.0/TCP 192.0.2.10:40001;branch=z9hG4bKraw"],
    ["From", "<sip:alice@example.org>;tag=a1"],
    ["To", "<sip:conf@example.org>"],
    ["Call-ID", "raw-1"],
    ["CSeq", `1 ${method}`],
    ["Max-Forwards", "70"],
  ];
  const names = new Set(fields.map(([n]) => n.toLowerCase()));
  const headers = new Headers([...base.filter(([n]) => !names.has(n.toLowerCase())), ...fields]);
  return new SipRequest(method, parseUri("sip:conf@192.0.2.1"), headers);
}

Deno.test("400 with a reason naming the defect for broken mandatory headers, logged at debug", () => {
  const logs = captureLogs("debug");
  try {
    const { ua, seen } = withHandler();
    const cases: Array<[Array<[string, string]>, RegExp]> = [
      [[["CSeq", "abc INVITE"]], /CSeq/],
      [[["From", "<sip:alice@example.org;tag=a1"]], /From/],
      [[["CSeq", "1 BYE"]], /CSeq method/],
    ];
    for (const [fields, pattern] of cases) {
      const tx = deliver(ua, rawRequest("INVITE", fields));
      const r = tx.finalOrThrow;
      assert.equal(r.status, 400);
      assert.match(r.reason, /^Bad Request \(/);
      assert.match(r.reason, pattern);
    }
    const missing = rawRequest("MESSAGE", []);
    missing.headers.delete("Call-ID");
    assert.match(deliver(ua, missing).finalOrThrow.reason, /missing Call-ID/);
    assert.equal(seen.length, 0);
    // One debug line per rejected request, nothing louder.
    const ours = logs.lines.filter((l) => l.includes("[dialog-test]"));
    assert.equal(ours.filter((l) => l.includes("request rejected")).length, 4);
    assert.ok(ours.every((l) => / DEBUG \[/.test(l)), ours.join("\n"));
  } finally {
    logs.restore();
  }
});

Deno.test("a broken To (no response can be built) is dropped without throwing", () => {
  const { ua, seen } = withHandler();
  const req = rawRequest("MESSAGE", [["To", "<sip:conf@example.org"]]);
  const tx = deliver(ua, req);
  assert.equal(tx.responses.length, 0);
  assert.equal(seen.length, 0);
  // The UA keeps working for the next request.
  deliver(ua, wireRequest({ method: "MESSAGE" }));
  assert.equal(seen.length, 1);
});

Deno.test("a header that only breaks in the layer above gets 400 naming it; other errors 500", () => {
  const { ua } = makeUa();
  ua.setHandler({
    onRequest: (sr) => {
      if (sr.request.method === "MESSAGE") throw new SyntaxError("malformed Event header");
      throw new Error("boom");
    },
  });
  const bad = deliver(ua, wireRequest({ method: "MESSAGE" }));
  assert.equal(bad.finalOrThrow.status, 400);
  assert.equal(bad.finalOrThrow.reason, "Bad Request (malformed Event header)");
  const logs = captureLogs("warn");
  try {
    const oops = deliver(ua, wireRequest({ method: "INFO" }));
    assert.equal(oops.finalOrThrow.status, 500);
  } finally {
    logs.restore();
  }
});

Deno.test("481 for a request with a To tag that matches no dialog", () => {
  const { ua, seen } = withHandler();
  const tx = deliver(ua, wireRequest({ method: "BYE", toTag: "nope", cseq: 2 }));
  assert.equal(tx.finalOrThrow.status, 481);
  assert.equal(tx.finalOrThrow.toTag, "nope");
  assert.equal(seen.length, 0);
});

Deno.test("in-dialog routing: usage gets in-order requests, 500 for out-of-order CSeq", () => {
  const fx = makeUa();
  const usage = registerDialog(fx);
  assert.equal(fx.ua.dialogCount, 1);
  const inDialog = (method: string, cseq: number) =>
    deliver(fx.ua, wireRequest({ method, cseq, fromTag: "a1", toTag: "ours" }));
  assert.equal(inDialog("INFO", 2).finalOrThrow.status, 200);
  const stale = inDialog("INFO", 2);
  assert.equal(stale.finalOrThrow.status, 500);
  assert.match(stale.finalOrThrow.reason, /CSeq/);
  assert.equal(inDialog("INFO", 1).finalOrThrow.status, 500);
  assert.equal(inDialog("BYE", 5).finalOrThrow.status, 200);
  assert.deepEqual(usage.requests.map((r) => r.request.cseq.seq), [2, 5]);
  // The wrong From tag is another dialog.
  const other = deliver(
    fx.ua,
    wireRequest({ method: "INFO", cseq: 9, fromTag: "zz", toTag: "ours" }),
  );
  assert.equal(other.finalOrThrow.status, 481);
  fx.ua.removeUsage(usage);
  assert.equal(fx.ua.dialogCount, 0);
  assert.equal(inDialog("INFO", 10).finalOrThrow.status, 481);
});

Deno.test("ACK for a 2xx goes to the dialog's usage; unknown ACKs are ignored", () => {
  const fx = makeUa();
  const usage = registerDialog(fx);
  fx.ua.receiveAck(wireRequest({ method: "ACK", cseq: 1, fromTag: "a1", toTag: "ours" }));
  fx.ua.receiveAck(wireRequest({ method: "ACK", cseq: 1, fromTag: "a1", toTag: "other" }));
  const broken = wireRequest({ method: "ACK", cseq: 1, fromTag: "a1", toTag: "ours" });
  broken.headers.set("To", "<sip:broken");
  fx.ua.receiveAck(broken);
  assert.equal(usage.acks.length, 1);
});

Deno.test("OPTIONS: capabilities (Allow, Accept, Supported, Allow-Events, Server)", () => {
  const { ua } = makeUa();
  const tx = deliver(ua, wireRequest({ method: "OPTIONS" }));
  const r = tx.finalOrThrow;
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("Allow"), ALLOWED_METHODS.join(", "));
  for (const m of ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "SUBSCRIBE", "NOTIFY", "REFER"]) {
    assert.ok(optionTags([r.headers.get("Allow") ?? ""]).includes(m.toLowerCase()), m);
  }
  assert.equal(r.headers.get("Accept"), ACCEPTED_TYPES.join(", "));
  assert.ok(r.headers.get("Accept")?.includes("application/sdp"));
  assert.equal(r.headers.get("Supported"), SUPPORTED_OPTIONS.join(", "));
  assert.equal(r.headers.get("Allow-Events"), ALLOWED_EVENTS.join(", "));
  assert.equal(r.headers.get("Server"), "Conclave/test");
  assert.ok(r.toTag);
});

Deno.test("with a handler, OPTIONS goes up and answerOptions gives the capabilities", () => {
  const { ua, seen } = withHandler();
  const tx = deliver(ua, wireRequest({ method: "OPTIONS" }));
  assert.equal(tx.responses.length, 0);
  ua.answerOptions(defined(seen[0], "options"));
  assert.equal(tx.finalOrThrow.headers.get("Allow-Events"), "conference, refer");
});

Deno.test("503 before a handler is set, for anything but OPTIONS", () => {
  const { ua } = makeUa();
  assert.equal(deliver(ua, wireRequest({ method: "INVITE" })).finalOrThrow.status, 503);
});

Deno.test("CANCEL of a pending INVITE marks the ServerRequest cancelled; late answers ignored", () => {
  const { ua, seen } = withHandler();
  const invite = wireRequest({ method: "INVITE", cseq: 4 });
  const tx = deliver(ua, invite);
  const sr = defined(seen[0], "invite");
  let heard = 0;
  sr.onCancel(() => heard++);
  ua.receiveCancel(invite);
  assert.equal(sr.cancelled, true);
  assert.equal(heard, 1);
  assert.equal(sr.respond(200), undefined);
  assert.equal(tx.responses.length, 0);
  // A second CANCEL is harmless.
  ua.receiveCancel(invite);
  assert.equal(heard, 1);
});

Deno.test("CANCEL after the INVITE was answered does nothing; other INVITEs are unaffected", () => {
  const { ua, seen } = withHandler();
  const a = wireRequest({ method: "INVITE", callId: "a", cseq: 1 });
  const b = wireRequest({ method: "INVITE", callId: "b", cseq: 1 });
  deliver(ua, a);
  deliver(ua, b);
  const [srA, srB] = [defined(seen[0], "a"), defined(seen[1], "b")];
  srA.respond(486);
  ua.receiveCancel(a);
  assert.equal(srA.cancelled, false);
  assert.equal(srB.cancelled, false);
  ua.receiveCancel(b);
  assert.equal(srB.cancelled, true);
});

Deno.test("outbound proxy: pre-loaded Route with lr; send() goes to the proxy", () => {
  const proxy = parseUri("sip:proxy.example.net:5070;transport=tcp");
  const { ua, port } = makeUa({ outboundProxy: proxy });
  const req = ua.createRequest({
    method: "MESSAGE",
    uri: parseUri("sip:bob@example.org"),
    from: { display: "Conf", uri: parseUri("sip:conf@example.org"), params: new Map() },
    to: { display: undefined, uri: parseUri("sip:bob@example.org"), params: new Map() },
    contact: "<sip:conf@192.0.2.1>",
    headers: [["Subject", "hi"]],
    body: new TextEncoder().encode("x"),
    callId: "fixed-call",
    cseq: 5,
  });
  assert.deepEqual(req.headers.getAll("Route"), [
    "<sip:proxy.example.net:5070;transport=tcp;lr>",
  ]);
  assert.equal(formatUri(proxy), "sip:proxy.example.net:5070;transport=tcp", "proxy not mutated");
  assert.equal(formatUri(req.uri), "sip:bob@example.org");
  assert.ok(req.fromTag && req.fromTag.length >= 8);
  assert.equal(req.toTag, undefined);
  assert.equal(req.callId, "fixed-call");
  assert.deepEqual(req.cseq, { seq: 5, method: "MESSAGE" });
  assert.equal(req.headers.get("Max-Forwards"), "70");
  assert.equal(req.headers.get("User-Agent"), "Conclave/test");
  assert.equal(req.headers.get("Subject"), "hi");
  assert.equal(req.headers.get("Contact"), "<sip:conf@192.0.2.1>");
  ua.send(req);
  assert.deepEqual(port.last("MESSAGE").target, {
    transport: "TCP",
    host: "proxy.example.net",
    port: 5070,
  });
});

Deno.test("no outbound proxy: next hop is the Request-URI (transport, default ports, IPv6)", () => {
  const { ua, port } = makeUa();
  const spec = (uri: string) => ({
    method: "OPTIONS",
    uri: parseUri(uri),
    from: { display: undefined, uri: parseUri("sip:conf@example.org"), params: new Map() },
    to: { display: undefined, uri: parseUri(uri), params: new Map() },
  });
  const req = ua.createRequest(spec("sip:bob@203.0.113.9"));
  assert.equal(req.headers.has("Route"), false);
  assert.notEqual(req.callId, ua.createRequest(spec("sip:bob@203.0.113.9")).callId);
  ua.send(req);
  assert.deepEqual(port.last("OPTIONS").target, {
    transport: "UDP",
    host: "203.0.113.9",
    port: 5060,
  });
  assert.deepEqual(targetOf(parseUri("sips:bob@example.org")), {
    transport: "TLS",
    host: "example.org",
    port: 5061,
  });
  assert.deepEqual(targetOf(parseUri("sip:[2001:db8::1]:5080;transport=TCP")), {
    transport: "TCP",
    host: "2001:db8::1",
    port: 5080,
  });
  // An open flow given to send() is reused; a closed one falls back to the next hop.
  const flow = tcpFlow(7);
  ua.send(ua.createRequest(spec("sip:bob@203.0.113.9")), undefined, flow);
  assert.equal(port.last("OPTIONS").target, flow);
  port.closedConnections.add(7);
  ua.send(ua.createRequest(spec("sip:bob@203.0.113.9")), undefined, flow);
  assert.deepEqual(port.last("OPTIONS").target, {
    transport: "UDP",
    host: "203.0.113.9",
    port: 5060,
  });
});

Deno.test("nextHop: top Route (with or without <>), else Request-URI", () => {
  const req = new SipRequest("BYE", parseUri("sip:bob@203.0.113.9:5090"));
  assert.deepEqual(nextHop(req), { transport: "UDP", host: "203.0.113.9", port: 5090 });
  req.headers.append("Route", "<sip:p1.example.net;lr;transport=tcp>");
  req.headers.append("Route", "<sip:p2.example.net;lr>");
  assert.deepEqual(nextHop(req), { transport: "TCP", host: "p1.example.net", port: 5060 });
  const bare = new SipRequest("BYE", parseUri("sip:bob@203.0.113.9"));
  bare.headers.append("Route", "sip:p3.example.net:5099;lr");
  assert.deepEqual(nextHop(bare), { transport: "UDP", host: "p3.example.net", port: 5099 });
});

Deno.test("in-dialog sends: direct on the open TCP flow without route set, else next hop", () => {
  const fx = makeUa();
  const invite = wireRequest({
    method: "INVITE",
    fromTag: "a1",
    contact: "<sip:alice@198.51.100.7:5070>",
  });
  const direct = Dialog.fromIncomingRequest(invite, "ours", "");
  const flow = tcpFlow(3);
  fx.ua.sendInDialog(direct.createRequest("INFO"), direct, flow);
  assert.equal(fx.port.last("INFO").target, flow);
  fx.port.closedConnections.add(3);
  fx.ua.sendInDialog(direct.createRequest("INFO"), direct, flow);
  assert.deepEqual(fx.port.last("INFO").target, {
    transport: "UDP",
    host: "198.51.100.7",
    port: 5070,
  });
  fx.ua.sendInDialog(direct.createRequest("INFO"), direct, udpFlow());
  assert.equal(isTarget(fx.port.last("INFO").target), true);

  const routed = Dialog.fromIncomingRequest(
    wireRequest({
      method: "INVITE",
      fromTag: "a1",
      contact: "<sip:alice@198.51.100.7:5070>",
      headers: [["Record-Route", "<sip:edge.example.net;lr;transport=tcp>"]],
    }),
    "ours",
    "",
  );
  fx.ua.sendInDialog(routed.createRequest("INFO"), routed, tcpFlow(4));
  assert.deepEqual(fx.port.last("INFO").target, {
    transport: "TCP",
    host: "edge.example.net",
    port: 5060,
  });
  void fx.ua.sendAck(routed.createRequest("ACK", { cseq: 1 }), routed, tcpFlow(4));
  assert.deepEqual(fx.port.acks[0]?.target, {
    transport: "TCP",
    host: "edge.example.net",
    port: 5060,
  });
});

Deno.test("in-dialog sends through a strict router go to the Request-URI (§8.1.2)", () => {
  const fx = makeUa();
  const strict = Dialog.fromIncomingRequest(
    wireRequest({
      method: "INVITE",
      fromTag: "a1",
      contact: "<sip:alice@198.51.100.7:5070>",
      headers: [["Record-Route", "<sip:strict.example.net:5077;transport=tcp>"]],
    }),
    "ours",
    "",
  );
  const bye = strict.createRequest("BYE");
  fx.ua.sendInDialog(bye, strict, undefined);
  // "If the first element in the route set indicated a strict router ... the procedures MUST
  // be applied to the Request-URI of the request."
  assert.deepEqual(fx.port.last("BYE").target, {
    transport: "TCP",
    host: "strict.example.net",
    port: 5077,
  });
  void fx.ua.sendAck(strict.createRequest("ACK", { cseq: 1 }), strict, undefined);
  assert.deepEqual(fx.port.acks[0]?.target, {
    transport: "TCP",
    host: "strict.example.net",
    port: 5077,
  });
});

function isTarget(t: unknown): boolean {
  return typeof t === "object" && t !== null && !("remote" in t);
}

Deno.test("optionTags splits, trims and lower-cases", () => {
  assert.deepEqual(optionTags(["timer, 100REL", " ,Path", ""]), ["timer", "100rel", "path"]);
});
