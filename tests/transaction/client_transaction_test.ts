import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import type { SipRequest, SipResponse } from "../../lib/sip/message.ts";
import { ackForNon2xx, cancelFor } from "../../lib/transaction/derived_requests.ts";
import {
  type ClientTransaction,
  InviteClientTransaction,
  NonInviteClientTransaction,
} from "../../lib/transaction/client_transaction.ts";
import { DEFAULT_TIMER_BASE, deriveTimers } from "../../lib/transaction/timers.ts";
import type { TerminationReason } from "../../lib/transaction/transaction.ts";
import { makeRequest, makeResponse } from "../_helpers/sip_messages.ts";

interface Rig {
  clock: FakeClock;
  sent: SipRequest[];
  provisional: SipResponse[];
  finals: SipResponse[];
  terminated: TerminationReason[];
  tx: ClientTransaction;
  request: SipRequest;
}

function rig(method: "INVITE" | "OPTIONS", reliable: boolean, failSend = false): Rig {
  const clock = new FakeClock();
  const request = makeRequest({ method, transport: reliable ? "TCP" : "UDP" });
  const r = {
    clock,
    sent: [] as SipRequest[],
    provisional: [] as SipResponse[],
    finals: [] as SipResponse[],
    terminated: [] as TerminationReason[],
    request,
  };
  const options = {
    request,
    key: "k",
    clock,
    timers: deriveTimers(DEFAULT_TIMER_BASE, reliable),
    send: (m: SipRequest) => {
      r.sent.push(m);
      return failSend ? Promise.reject(new Error("connection refused")) : Promise.resolve();
    },
    handlers: {
      onProvisional: (res: SipResponse) => void r.provisional.push(res),
      onFinal: (res: SipResponse) => void r.finals.push(res),
      onTerminated: (reason: TerminationReason) => void r.terminated.push(reason),
    },
  };
  const tx = method === "INVITE"
    ? new InviteClientTransaction(options)
    : new NonInviteClientTransaction(options);
  tx.start();
  return { ...r, tx };
}

/** Advances to absolute time `t` and returns how many requests were sent so far. */
function at(r: Rig, t: number): number {
  r.clock.advance(t - r.clock.now());
  return r.sent.length;
}

Deno.test("INVITE client over UDP: Timer A doubles without cap, Timer B gives 408 at 64*T1", async () => {
  const r = rig("INVITE", false);
  assert.equal(r.tx.state, "calling");
  assert.equal(r.sent.length, 1);
  // Retransmissions at 500, 1500, 3500, 7500, 15500, 31500 (intervals 500, 1000, 2000, ...).
  const expected: Array<[number, number]> = [
    [499, 1],
    [500, 2],
    [1499, 2],
    [1500, 3],
    [3500, 4],
    [7499, 4],
    [7500, 5],
    [15500, 6],
    [31500, 7],
    [31999, 7],
  ];
  for (const [t, count] of expected) assert.equal(at(r, t), count, `sends at t=${t}`);
  assert.equal(r.tx.state, "calling");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["timeout"]);
  assert.equal(r.tx.failure, "timeout");
  assert.equal(r.finals.length, 1);
  assert.equal(r.finals[0]!.status, 408);
  assert.equal((await r.tx.final).status, 408);
  assert.equal(r.sent.filter((m) => m.method === "ACK").length, 0, "no ACK on timeout");
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("INVITE client over TCP: no Timer A, Timer B still fires", () => {
  const r = rig("INVITE", true);
  assert.equal(at(r, 31999), 1);
  assert.equal(r.tx.state, "calling");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.equal(r.finals[0]!.status, 408);
});

Deno.test("INVITE client: 1xx moves to Proceeding and stops retransmissions", () => {
  const r = rig("INVITE", false);
  at(r, 600);
  assert.equal(r.sent.length, 2);
  r.tx.receiveResponse(makeResponse(r.request, 100));
  r.tx.receiveResponse(makeResponse(r.request, 180));
  assert.equal(r.tx.state, "proceeding");
  assert.equal(r.provisional.length, 2);
  at(r, 100_000);
  assert.equal(r.sent.length, 2, "no retransmission in Proceeding");
  assert.equal(r.tx.state, "proceeding", "Timer B does not act in Proceeding");
});

Deno.test("INVITE client over UDP: non-2xx is ACKed, retransmissions re-ACKed, Timer D ends", () => {
  const r = rig("INVITE", false);
  r.tx.receiveResponse(makeResponse(r.request, 180));
  const busy = makeResponse(r.request, 486, "busy-tag");
  r.tx.receiveResponse(busy);
  assert.equal(r.tx.state, "completed");
  assert.equal(r.finals.length, 1);
  assert.equal(r.finals[0]!.status, 486);
  const ack = r.sent[1]!;
  assert.equal(ack.method, "ACK");
  assert.deepEqual(ack.cseq, { seq: r.request.cseq.seq, method: "ACK" });
  assert.equal(ack.toTag, "busy-tag");
  assert.equal(ack.headers.getAll("Via").length, 1);
  assert.equal(ack.branch, r.request.branch);
  assert.equal(ack.callId, r.request.callId);
  assert.equal(ack.body.length, 0);
  r.tx.receiveResponse(busy);
  assert.equal(r.sent.length, 3, "retransmitted final → ACK again");
  assert.equal(r.finals.length, 1, "not passed to the TU again");
  at(r, 31999);
  assert.equal(r.tx.state, "completed");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["completed"]);
});

Deno.test("INVITE client over TCP: non-2xx ACKed and Terminated at once (Timer D = 0)", () => {
  const r = rig("INVITE", true);
  r.tx.receiveResponse(makeResponse(r.request, 603));
  assert.equal(r.sent.length, 2);
  assert.equal(r.sent[1]!.method, "ACK");
  assert.equal(r.tx.state, "terminated");
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("INVITE client: 2xx goes to the TU in Accepted, every 2xx again, no ACK, Timer M", async () => {
  const r = rig("INVITE", false);
  r.tx.receiveResponse(makeResponse(r.request, 200, "a"));
  assert.equal(r.tx.state, "accepted");
  r.tx.receiveResponse(makeResponse(r.request, 200, "a"));
  r.tx.receiveResponse(makeResponse(r.request, 200, "forked"));
  r.tx.receiveResponse(makeResponse(r.request, 486));
  assert.deepEqual(r.finals.map((f) => [f.status, f.toTag]), [[200, "a"], [200, "a"], [
    200,
    "forked",
  ]]);
  assert.equal((await r.tx.final).toTag, "a");
  assert.equal(r.sent.length, 1, "the transaction never ACKs a 2xx");
  at(r, 31999);
  assert.equal(r.tx.state, "accepted");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
});

Deno.test("INVITE client: transport error gives a 503 and terminates", async () => {
  const r = rig("INVITE", false, true);
  const final = await r.tx.final;
  assert.equal(final.status, 503);
  assert.match(final.reason, /connection refused/);
  assert.equal(r.tx.failure, "transport-error");
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["transport-error"]);
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("non-INVITE client over UDP: Timer E doubles to T2, Timer F gives 408", () => {
  const r = rig("OPTIONS", false);
  assert.equal(r.tx.state, "trying");
  // Sends at 0, 500, 1500, 3500, 7500, then every 4000 (T2): 11500 ... 31500.
  const expected: Array<[number, number]> = [
    [499, 1],
    [500, 2],
    [1500, 3],
    [3499, 3],
    [3500, 4],
    [7500, 5],
    [11499, 5],
    [11500, 6],
    [15500, 7],
    [31500, 11],
  ];
  for (const [t, count] of expected) assert.equal(at(r, t), count, `sends at t=${t}`);
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.equal(r.finals[0]!.status, 408);
  assert.deepEqual(r.terminated, ["timeout"]);
});

Deno.test("non-INVITE client: in Proceeding Timer E is reset to T2", () => {
  const r = rig("OPTIONS", false);
  r.tx.receiveResponse(makeResponse(r.request, 100));
  assert.equal(r.tx.state, "proceeding");
  assert.equal(at(r, 500), 2, "first E still at T1");
  assert.equal(at(r, 4499), 2);
  assert.equal(at(r, 4500), 3, "then every T2");
  assert.equal(at(r, 8500), 4);
  at(r, 32000);
  assert.equal(r.tx.state, "terminated", "Timer F also acts in Proceeding");
  assert.equal(r.finals[0]!.status, 408);
});

Deno.test("non-INVITE client over UDP: final → Completed, absorbs copies, Timer K = T4", () => {
  const r = rig("OPTIONS", false);
  const ok = makeResponse(r.request, 200);
  r.tx.receiveResponse(ok);
  assert.equal(r.tx.state, "completed");
  r.tx.receiveResponse(ok);
  assert.equal(r.finals.length, 1);
  assert.equal(at(r, 4999), 1, "no retransmission after the final response");
  assert.equal(r.tx.state, "completed");
  at(r, 5000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["completed"]);
});

Deno.test("non-INVITE client over TCP: no Timer E, final terminates at once (K = 0)", () => {
  const r = rig("OPTIONS", true);
  assert.equal(at(r, 20_000), 1);
  r.tx.receiveResponse(makeResponse(r.request, 404));
  assert.equal(r.tx.state, "terminated");
  assert.equal(r.finals[0]!.status, 404);
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("non-INVITE client over TCP: Timer F still fires", () => {
  const r = rig("OPTIONS", true);
  at(r, 31999);
  assert.equal(r.tx.state, "trying");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
});

Deno.test("ACK and CANCEL construction (RFC 3261 §17.1.1.3, §9.1)", () => {
  const invite = makeRequest({
    method: "INVITE",
    cseq: 7,
    extra: ["Route: <sip:proxy.example.com;lr>", "Contact: <sip:alice@127.0.0.1>"],
    body: "v=0\r\n",
  });
  invite.headers.append("Via", "SIP/2.0/UDP upstream.example.com;branch=z9hG4bKup");
  const ack = ackForNon2xx(invite, makeResponse(invite, 404, "t404"));
  assert.equal(ack.headers.getAll("Via").length, 1);
  assert.equal(ack.headers.get("Route"), "<sip:proxy.example.com;lr>");
  assert.equal(ack.headers.get("Contact"), undefined);
  assert.equal(ack.headers.get("CSeq"), "7 ACK");
  assert.equal(ack.toTag, "t404");
  const cancel = cancelFor(invite);
  assert.equal(cancel.method, "CANCEL");
  assert.equal(cancel.headers.get("CSeq"), "7 CANCEL");
  assert.equal(cancel.headers.get("Via"), invite.headers.get("Via"));
  assert.equal(cancel.headers.getAll("Via").length, 1);
  assert.equal(cancel.toTag, undefined);
  assert.equal(cancel.body.length, 0);
});
