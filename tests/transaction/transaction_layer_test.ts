import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { type SipMessage, SipRequest, type SipResponse } from "../../lib/sip/message.ts";
import { parseUri } from "../../lib/sip/uri.ts";
import { Headers } from "../../lib/sip/headers.ts";
import type { InviteClientTransaction } from "../../lib/transaction/client_transaction.ts";
import type {
  InviteServerTransaction,
  ServerTransaction,
} from "../../lib/transaction/server_transaction.ts";
import {
  TransactionLayer,
  type TransactionTransport,
} from "../../lib/transaction/transaction_layer.ts";
import type { Flow, HostPort, Target } from "../../lib/transport/flow.ts";
import { makeRequest, makeResponse, unique } from "../_helpers/sip_messages.ts";

/** The transaction layer's view of a transport, recording what is sent. */
class RecordingTransport implements TransactionTransport {
  readonly sent: Array<{ message: SipMessage; target: Target | Flow | undefined }> = [];
  #listener: ((message: SipMessage, flow: Flow) => void) | undefined;

  send(message: SipMessage, target?: Target | Flow): Promise<Flow> {
    this.sent.push({ message, target });
    return Promise.resolve(FLOW);
  }
  onMessage(listener: (message: SipMessage, flow: Flow) => void): void {
    this.#listener = listener;
  }
  localAddress(): HostPort {
    return { host: "192.0.2.10", port: 5070 };
  }
  deliver(message: SipMessage, flow: Flow = FLOW): void {
    this.#listener?.(message, flow);
  }
  responses(): SipResponse[] {
    return this.sent.map((s) => s.message).filter((m): m is SipResponse => "status" in m);
  }
  requests(): SipRequest[] {
    return this.sent.map((s) => s.message).filter((m): m is SipRequest => m instanceof SipRequest);
  }
}

const FLOW: Flow = {
  transport: "UDP",
  local: { host: "127.0.0.1", port: 5060 },
  remote: { host: "127.0.0.1", port: 40000 },
};

interface Rig {
  clock: FakeClock;
  transport: RecordingTransport;
  layer: TransactionLayer;
  requests: ServerTransaction[];
  acks: SipRequest[];
  cancels: Array<[InviteServerTransaction, SipRequest]>;
  strays: SipResponse[];
}

function rig(): Rig {
  const clock = new FakeClock();
  const transport = new RecordingTransport();
  const r = {
    clock,
    transport,
    requests: [] as ServerTransaction[],
    acks: [] as SipRequest[],
    cancels: [] as Array<[InviteServerTransaction, SipRequest]>,
    strays: [] as SipResponse[],
  };
  const layer = new TransactionLayer({
    transport,
    clock,
    user: {
      onRequest: (tx) => r.requests.push(tx),
      onAck: (ack) => r.acks.push(ack),
      onCancel: (invite, cancel) => r.cancels.push([invite, cancel]),
      onStrayResponse: (response) => r.strays.push(response),
    },
  });
  return { ...r, layer };
}

Deno.test("layer: new request → TU; retransmission absorbed with the last response; Timer J removes it", () => {
  const r = rig();
  const req = makeRequest({ method: "OPTIONS", callId: unique("c") });
  r.transport.deliver(req);
  assert.equal(r.requests.length, 1);
  const tx = r.requests[0]!;
  assert.equal(tx.flow, FLOW);
  tx.respond(makeResponse(tx.request, 200));
  assert.equal(r.transport.sent[0]!.target, FLOW, "responses go back on the request's flow");
  r.transport.deliver(makeRequest({ method: "OPTIONS", branch: req.branch!, callId: req.callId }));
  assert.equal(r.requests.length, 1, "the TU sees the request once");
  assert.deepEqual(r.transport.responses().map((s) => s.status), [200, 200]);
  assert.equal(r.layer.serverTransactionCount, 1);
  r.clock.advance(32000);
  assert.equal(r.layer.serverTransactionCount, 0);
});

Deno.test("layer: ACK for a non-2xx matches the INVITE transaction; ACK for a 2xx goes to the TU", () => {
  const r = rig();
  const inv = makeRequest({ method: "INVITE", callId: unique("c") });
  r.transport.deliver(inv);
  const tx = r.requests[0]!;
  tx.respond(makeResponse(inv, 486));
  r.transport.deliver(makeRequest({
    method: "ACK",
    branch: inv.branch!,
    callId: inv.callId,
    toTag: "uas1",
  }));
  assert.equal(tx.state, "confirmed");
  assert.equal(r.acks.length, 0);

  const inv2 = makeRequest({ method: "INVITE", callId: unique("c") });
  r.transport.deliver(inv2);
  r.requests[1]!.respond(makeResponse(inv2, 200));
  r.transport.deliver(makeRequest({ method: "ACK", callId: inv2.callId, toTag: "uas1" }));
  assert.equal(r.acks.length, 1, "2xx ACK has its own branch: passed to the TU");
  assert.equal(r.requests.length, 2, "ACK never creates a server transaction");
});

Deno.test("layer: CANCEL → 200 to CANCEL, 487 to INVITE (same To tag), TU told; ACK confirms", () => {
  const r = rig();
  const inv = makeRequest({ method: "INVITE", callId: unique("c") });
  r.transport.deliver(inv);
  const tx = r.requests[0]!;
  tx.respond(makeResponse(inv, 180, "ring"));
  const cancel = makeRequest({
    method: "CANCEL",
    branch: inv.branch!,
    callId: inv.callId,
  });
  r.transport.deliver(cancel);
  const statuses = r.transport.responses().map((s) => [s.status, s.cseq.method, s.toTag]);
  assert.deepEqual(statuses, [[180, "INVITE", "ring"], [200, "CANCEL", "ring"], [
    487,
    "INVITE",
    "ring",
  ]]);
  assert.equal(r.cancels.length, 1);
  assert.equal(r.cancels[0]![0], tx);
  assert.equal(r.requests.length, 1, "the CANCEL is not passed to onRequest");
  assert.equal(tx.state, "completed");
  assert.equal(tx.respond(makeResponse(inv, 200)), false, "too late to accept");
  // CANCEL retransmission gets the 200 again.
  r.transport.deliver(makeRequest({ method: "CANCEL", branch: inv.branch!, callId: inv.callId }));
  assert.deepEqual(r.transport.responses().at(-1)!.status, 200);
  r.transport.deliver(makeRequest({
    method: "ACK",
    branch: inv.branch!,
    callId: inv.callId,
    toTag: "ring",
  }));
  assert.equal(tx.state, "confirmed");
});

Deno.test("layer: CANCEL without a matching INVITE → 481", () => {
  const r = rig();
  r.transport.deliver(makeRequest({ method: "CANCEL", callId: unique("c") }));
  const [res] = r.transport.responses();
  assert.equal(res!.status, 481);
  assert.notEqual(res!.toTag, undefined);
  assert.equal(r.cancels.length, 0);
});

Deno.test("layer: merged request (same From tag, Call-ID, CSeq, other branch, no To tag) → 482", () => {
  const r = rig();
  const callId = unique("c");
  r.transport.deliver(makeRequest({ method: "INVITE", callId, fromTag: "ft", cseq: 5 }));
  r.transport.deliver(makeRequest({ method: "INVITE", callId, fromTag: "ft", cseq: 5 }));
  assert.equal(r.requests.length, 1, "the TU never sees the merged copy");
  const [res] = r.transport.responses();
  assert.equal(res!.status, 482);
  assert.equal(res!.reason, "Loop Detected");
  // Not merged: different CSeq, or a To tag (in-dialog request).
  r.transport.deliver(makeRequest({ method: "INVITE", callId, fromTag: "ft", cseq: 6 }));
  r.transport.deliver(makeRequest({
    method: "INVITE",
    callId,
    fromTag: "ft",
    cseq: 5,
    toTag: "x",
  }));
  assert.equal(r.requests.length, 3);
  assert.equal(r.transport.responses().length, 1);
});

Deno.test("layer: sendRequest adds Via (branch, rport) and Max-Forwards; responses match branch + CSeq method", async () => {
  const r = rig();
  const h = new Headers([
    ["From", "<sip:focus@example.com>;tag=f1"],
    ["To", "<sip:bob@example.com>"],
    ["Call-ID", unique("c")],
    ["CSeq", "1 INVITE"],
  ]);
  const req = new SipRequest("INVITE", parseUri("sip:bob@127.0.0.1"), h);
  const target: Target = { transport: "UDP", host: "127.0.0.1", port: 40000 };
  const finals: number[] = [];
  const tx = r.layer.sendRequest(req, target, { onFinal: (res) => finals.push(res.status) });
  const via = req.topVia;
  assert.equal(via.transport, "UDP");
  assert.equal(via.host, "192.0.2.10");
  assert.equal(via.port, 5070);
  assert.ok(via.params.get("branch")!.startsWith("z9hG4bK"));
  assert.ok(via.params.has("rport"));
  assert.equal(req.headers.get("Max-Forwards"), "70");
  assert.equal(r.transport.sent[0]!.target, target);

  // A response with the same branch but CSeq method CANCEL does not match the INVITE.
  const wrong = makeResponse(req, 200);
  wrong.headers.set("CSeq", "1 CANCEL");
  r.transport.deliver(wrong);
  assert.equal(r.strays.length, 1);
  assert.deepEqual(finals, []);
  r.transport.deliver(makeResponse(req, 200));
  assert.deepEqual(finals, [200]);
  assert.equal((await tx.final).status, 200);
  assert.equal(r.layer.clientTransactionCount, 1, "Accepted lingers for Timer M");
  r.clock.advance(32000);
  assert.equal(r.layer.clientTransactionCount, 0);
  r.transport.deliver(makeResponse(req, 200));
  assert.equal(r.strays.length, 2, "a 2xx after Timer M is a stray for the TU core");
  assert.throws(
    () => r.layer.sendRequest(makeRequest({ method: "ACK" }), target),
    TypeError,
  );
});

Deno.test("layer: cancel() waits for a provisional response, then sends CANCEL with the INVITE's branch", async () => {
  const r = rig();
  const inv = makeRequest({ method: "INVITE", callId: unique("c") });
  const target: Target = { transport: "UDP", host: "127.0.0.1", port: 40000 };
  const tx = r.layer.sendRequest(inv, target) as InviteClientTransaction;
  const pending = r.layer.cancel(tx);
  await Promise.resolve();
  assert.equal(r.transport.requests().filter((m) => m.method === "CANCEL").length, 0);
  r.transport.deliver(makeResponse(inv, 180));
  const cancelTx = await pending;
  assert.ok(cancelTx !== undefined);
  const cancel = r.transport.requests().find((m) => m.method === "CANCEL")!;
  assert.equal(cancel.branch, inv.branch);
  r.transport.deliver(makeResponse(cancel, 200));
  assert.equal((await cancelTx.final).status, 200);
  r.transport.deliver(makeResponse(inv, 487));
  assert.equal((await tx.final).status, 487);
  assert.equal(r.transport.requests().at(-1)!.method, "ACK");

  // An INVITE answered before any provisional response is never cancelled.
  const inv2 = makeRequest({ method: "INVITE", callId: unique("c") });
  const tx2 = r.layer.sendRequest(inv2, target) as InviteClientTransaction;
  const pending2 = r.layer.cancel(tx2);
  r.transport.deliver(makeResponse(inv2, 200));
  assert.equal(await pending2, undefined);
  r.layer.close();
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("layer: RFC 2543 requests (no magic cookie) match retransmissions and the ACK", () => {
  const r = rig();
  const callId = unique("c");
  const inv = makeRequest({ method: "INVITE", callId, branch: "oldstyle1" });
  r.transport.deliver(inv);
  assert.equal(r.requests.length, 1);
  r.transport.deliver(makeRequest({ method: "INVITE", callId, branch: "oldstyle1" }));
  assert.equal(r.requests.length, 1);
  r.requests[0]!.respond(makeResponse(inv, 404));
  r.transport.deliver(makeRequest({ method: "ACK", callId, branch: "oldstyle1", toTag: "uas1" }));
  assert.equal(r.requests[0]!.state, "confirmed");
});

Deno.test("layer: close() terminates every transaction and leaves no timer", () => {
  const r = rig();
  r.transport.deliver(makeRequest({ method: "INVITE", callId: unique("c") }));
  r.layer.sendRequest(makeRequest({ method: "OPTIONS", callId: unique("c") }), {
    transport: "UDP",
    host: "127.0.0.1",
    port: 40000,
  });
  assert.ok(r.clock.pendingTimers > 0);
  r.layer.close();
  assert.equal(r.clock.pendingTimers, 0);
  assert.equal(r.requests[0]!.state, "terminated");
});
