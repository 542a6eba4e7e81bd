/**
 * ServerRequest (RFC 3261 §8.2.6): To tag, Server, Record-Route in dialog-creating responses,
 * one final response, nothing after CANCEL.
 */

import assert from "node:assert/strict";
import { headersOf, ServerRequest } from "../../lib/dialog/server_request.ts";
import { bodyText } from "../../lib/sip/message.ts";
import { FakeIncomingTransaction, tcpFlow, wireRequest } from "./fake_transaction_port.ts";

function serverRequest(spec: Parameters<typeof wireRequest>[0]) {
  const tx = new FakeIncomingTransaction(wireRequest(spec), tcpFlow());
  return { tx, sr: new ServerRequest(tx, "Conclave/test") };
}

Deno.test("responses carry one To tag (not on 100), Server, and the request's fields", () => {
  const { tx, sr } = serverRequest({ method: "INVITE", cseq: 3 });
  assert.equal(sr.flow, tx.flow);
  assert.ok(sr.toTag.length >= 8);
  sr.respond(100);
  sr.respond(180);
  sr.respond(200, "Fine", { body: "v=0\r\n", contentType: "application/sdp" });
  const [trying, ringing, ok] = tx.responses;
  assert.equal(trying?.toTag, undefined);
  assert.equal(ringing?.toTag, sr.toTag);
  assert.equal(ok?.toTag, sr.toTag);
  assert.equal(ok?.reason, "Fine");
  assert.equal(ok?.headers.get("Server"), "Conclave/test");
  assert.equal(ok?.headers.get("Content-Type"), "application/sdp");
  assert.equal(bodyText(ok!), "v=0\r\n");
  assert.deepEqual(ok?.cseq, { seq: 3, method: "INVITE" });
  assert.equal(sr.finalResponse, ok);
  assert.equal(sr.answered, true);
});

Deno.test("an in-dialog request keeps its To tag", () => {
  const { sr } = serverRequest({ method: "BYE", toTag: "existing", cseq: 2 });
  assert.equal(sr.toTag, "existing");
  assert.equal(sr.build(200).toTag, "existing");
});

Deno.test("a second final response is ignored", () => {
  const { tx, sr } = serverRequest({ method: "MESSAGE" });
  assert.ok(sr.respond(202));
  assert.equal(sr.respond(500), undefined);
  assert.equal(sr.send(sr.build(603)), undefined);
  assert.deepEqual(tx.responses.map((r) => r.status), [202]);
});

Deno.test("after CANCEL nothing is sent; listeners run once", () => {
  const { tx, sr } = serverRequest({ method: "INVITE" });
  let calls = 0;
  sr.onCancel(() => calls++);
  sr.markCancelled();
  sr.markCancelled();
  assert.equal(calls, 1);
  assert.equal(sr.cancelled, true);
  assert.equal(sr.respond(180), undefined);
  assert.equal(sr.respond(200), undefined);
  assert.equal(tx.responses.length, 0);
});

Deno.test("Record-Route is copied into responses that create a dialog (§12.1.1), only those", () => {
  const rr: Array<[string, string]> = [
    ["Record-Route", "<sip:p2.example.net;lr>"],
    ["Record-Route", "<sip:p1.example.net;lr>"],
  ];
  for (const method of ["INVITE", "SUBSCRIBE", "REFER"]) {
    const { sr } = serverRequest({ method, headers: rr });
    assert.deepEqual(sr.build(200).headers.getAll("Record-Route"), [
      "<sip:p2.example.net;lr>",
      "<sip:p1.example.net;lr>",
    ], method);
    assert.equal(
      sr.build(method === "INVITE" ? 180 : 202).headers.getAll("Record-Route").length,
      2,
    );
    assert.equal(sr.build(100).headers.has("Record-Route"), false);
    assert.equal(sr.build(404).headers.has("Record-Route"), false);
  }
  assert.equal(
    serverRequest({ method: "MESSAGE", headers: rr }).sr.build(200).headers.has("Record-Route"),
    false,
  );
  assert.equal(
    serverRequest({ method: "INVITE", toTag: "t", headers: rr }).sr.build(200).headers
      .has("Record-Route"),
    false,
  );
});

Deno.test("extra headers keep their order; headersOf builds a Headers list", () => {
  const { sr } = serverRequest({ method: "OPTIONS" });
  const r = sr.build(200, undefined, { headers: [["Allow", "INVITE"], ["Allow", "BYE"]] });
  assert.deepEqual(r.headers.getAll("Allow"), ["INVITE", "BYE"]);
  assert.equal(headersOf([["X-A", "1"]]).get("x-a"), "1");
});
