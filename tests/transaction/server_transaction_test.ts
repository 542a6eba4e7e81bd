import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import type { SipRequest, SipResponse } from "../../lib/sip/message.ts";
import {
  InviteServerTransaction,
  NonInviteServerTransaction,
  type ServerTransaction,
} from "../../lib/transaction/server_transaction.ts";
import { DEFAULT_TIMER_BASE, deriveTimers } from "../../lib/transaction/timers.ts";
import type { TerminationReason } from "../../lib/transaction/transaction.ts";
import type { Flow } from "../../lib/transport/flow.ts";
import { makeRequest, makeResponse } from "../_helpers/sip_messages.ts";

interface Rig<T extends ServerTransaction> {
  clock: FakeClock;
  sent: SipResponse[];
  terminated: TerminationReason[];
  tx: T;
  request: SipRequest;
}

function flow(reliable: boolean): Flow {
  return {
    transport: reliable ? "TCP" : "UDP",
    local: { host: "127.0.0.1", port: 5060 },
    remote: { host: "127.0.0.1", port: 40000 },
  };
}

function options(method: string, reliable: boolean, clock: FakeClock, sent: SipResponse[]) {
  const request = makeRequest({ method, transport: reliable ? "TCP" : "UDP" });
  return {
    request,
    flow: flow(reliable),
    key: "k",
    clock,
    timers: deriveTimers(DEFAULT_TIMER_BASE, reliable),
    send: (m: SipResponse) => {
      sent.push(m);
      return Promise.resolve();
    },
  };
}

function invite(reliable: boolean): Rig<InviteServerTransaction> {
  const clock = new FakeClock();
  const sent: SipResponse[] = [];
  const o = options("INVITE", reliable, clock, sent);
  const tx = new InviteServerTransaction(o);
  const terminated: TerminationReason[] = [];
  tx.onTerminated((reason) => terminated.push(reason));
  return { clock, sent, terminated, tx, request: o.request };
}

function nonInvite(reliable: boolean): Rig<NonInviteServerTransaction> {
  const clock = new FakeClock();
  const sent: SipResponse[] = [];
  const o = options("REGISTER", reliable, clock, sent);
  const tx = new NonInviteServerTransaction(o);
  const terminated: TerminationReason[] = [];
  tx.onTerminated((reason) => terminated.push(reason));
  return { clock, sent, terminated, tx, request: o.request };
}

function at(r: Rig<ServerTransaction>, t: number): number {
  r.clock.advance(t - r.clock.now());
  return r.sent.length;
}

Deno.test("INVITE server: 100 Trying after 200 ms when the TU is silent", () => {
  const r = invite(false);
  assert.equal(r.tx.state, "proceeding");
  assert.equal(at(r, 199), 0);
  assert.equal(at(r, 200), 1);
  assert.equal(r.sent[0]!.status, 100);
  assert.equal(r.sent[0]!.toTag, undefined);
  // Retransmitted INVITE → the 100 again (last provisional).
  r.tx.receiveRequest(r.request);
  assert.equal(r.sent.length, 2);
  assert.equal(r.sent[1]!.status, 100);
});

Deno.test("INVITE server: no 100 Trying when the TU answers within 200 ms", () => {
  const r = invite(false);
  at(r, 50);
  assert.equal(r.tx.respond(makeResponse(r.request, 180)), true);
  at(r, 1000);
  assert.deepEqual(r.sent.map((s) => s.status), [180]);
  r.tx.receiveRequest(r.request);
  assert.deepEqual(r.sent.map((s) => s.status), [180, 180], "retransmission absorbed with 180");
});

Deno.test("INVITE server over UDP: Timer G retransmits the final (capped at T2) until Timer H", () => {
  const r = invite(false);
  r.tx.respond(makeResponse(r.request, 486));
  assert.equal(r.tx.state, "completed");
  // Retransmissions at 500, 1500, 3500, 7500, then every 4000 up to 31500.
  const expected: Array<[number, number]> = [
    [499, 1],
    [500, 2],
    [1500, 3],
    [3500, 4],
    [7500, 5],
    [11499, 5],
    [11500, 6],
    [31500, 11],
  ];
  for (const [t, count] of expected) assert.equal(at(r, t), count, `sends at t=${t}`);
  assert.equal(r.tx.state, "completed");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["timeout"], "Timer H: the ACK never came");
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("INVITE server over UDP: retransmitted INVITE in Completed gets the final again; ACK → Confirmed → Timer I", () => {
  const r = invite(false);
  r.tx.respond(makeResponse(r.request, 180));
  assert.equal(r.tx.respond(makeResponse(r.request, 603)), true);
  r.tx.receiveRequest(r.request);
  assert.deepEqual(r.sent.map((s) => s.status), [180, 603, 603]);
  assert.equal(r.tx.respond(makeResponse(r.request, 200)), false, "no second final");
  at(r, 600);
  assert.equal(r.sent.length, 4, "Timer G fired once");
  r.tx.receiveAck(makeRequest({ method: "ACK", branch: r.request.branch! }));
  assert.equal(r.tx.state, "confirmed");
  at(r, 600 + 4999);
  assert.equal(r.sent.length, 4, "no retransmissions in Confirmed");
  r.tx.receiveAck(makeRequest({ method: "ACK", branch: r.request.branch! }));
  assert.equal(r.tx.state, "confirmed");
  at(r, 600 + 5000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["completed"]);
});

Deno.test("INVITE server over TCP: no Timer G, ACK terminates at once (I = 0), Timer H still set", () => {
  const r = invite(true);
  r.tx.respond(makeResponse(r.request, 486));
  assert.equal(at(r, 20000), 1);
  r.tx.receiveAck(makeRequest({ method: "ACK" }));
  assert.equal(r.tx.state, "terminated");
  assert.equal(r.clock.pendingTimers, 0);

  const h = invite(true);
  h.tx.respond(makeResponse(h.request, 486));
  at(h, 31999);
  assert.equal(h.tx.state, "completed");
  at(h, 32000);
  assert.deepEqual(h.terminated, ["timeout"]);
});

Deno.test("INVITE server: 2xx → Accepted; INVITE copies absorbed, ACK to the TU, 2xx resends, Timer L", () => {
  const r = invite(false);
  const acks: SipRequest[] = [];
  r.tx.onAck((ack) => acks.push(ack));
  const ok = makeResponse(r.request, 200);
  assert.equal(r.tx.respond(ok), true);
  assert.equal(r.tx.state, "accepted");
  r.tx.receiveRequest(r.request);
  assert.equal(r.sent.length, 1, "retransmitted INVITE absorbed in Accepted");
  assert.equal(at(r, 5000), 1, "the transaction does not retransmit 2xx itself");
  assert.equal(r.tx.respond(ok), true, "the TU's 2xx retransmission passes");
  assert.equal(r.sent.length, 2);
  assert.equal(r.tx.respond(makeResponse(r.request, 486)), false);
  r.tx.receiveAck(makeRequest({ method: "ACK" }));
  assert.equal(acks.length, 1);
  at(r, 31999);
  assert.equal(r.tx.state, "accepted");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["completed"]);
});

Deno.test("INVITE server: cancel() sends 487 with a To tag and tells listeners", () => {
  const r = invite(false);
  r.tx.respond(makeResponse(r.request, 180, "ringtag"));
  const seen: string[] = [];
  r.tx.onCancel((c) => seen.push(c.method));
  assert.equal(r.tx.cancel(makeRequest({ method: "CANCEL" })), true);
  assert.equal(r.tx.cancelled, true);
  assert.deepEqual(seen, ["CANCEL"]);
  const last = r.sent.at(-1)!;
  assert.equal(last.status, 487);
  assert.equal(last.toTag, "ringtag", "same tag as the provisional response");
  assert.equal(r.tx.state, "completed");
  // After a final response, a CANCEL changes nothing on the wire.
  assert.equal(r.tx.cancel(makeRequest({ method: "CANCEL" })), false);
  assert.equal(r.sent.length, 2);
});

Deno.test("INVITE server: transport error terminates and informs the TU", async () => {
  const clock = new FakeClock();
  const o = options("INVITE", false, clock, []);
  const tx = new InviteServerTransaction({ ...o, send: () => Promise.reject(new Error("boom")) });
  const ended = new Promise<[TerminationReason, Error | undefined]>((resolve) =>
    tx.onTerminated((reason, error) => resolve([reason, error]))
  );
  tx.respond(makeResponse(o.request, 180));
  const [reason, error] = await ended;
  assert.equal(reason, "transport-error");
  assert.equal(error?.message, "boom");
  assert.equal(tx.state, "terminated");
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("non-INVITE server over UDP: Trying discards copies, Proceeding resends 1xx, Completed resends final until Timer J", () => {
  const r = nonInvite(false);
  assert.equal(r.tx.state, "trying");
  r.tx.receiveRequest(r.request);
  assert.equal(r.sent.length, 0, "Trying: retransmission discarded");
  r.tx.respond(makeResponse(r.request, 100));
  assert.equal(r.tx.state, "proceeding");
  r.tx.receiveRequest(r.request);
  assert.deepEqual(r.sent.map((s) => s.status), [100, 100]);
  r.tx.respond(makeResponse(r.request, 200));
  assert.equal(r.tx.state, "completed");
  r.tx.receiveRequest(r.request);
  assert.deepEqual(r.sent.map((s) => s.status), [100, 100, 200, 200]);
  assert.equal(r.tx.respond(makeResponse(r.request, 500)), false);
  assert.equal(at(r, 31999), 4, "no retransmission on its own");
  assert.equal(r.tx.state, "completed");
  at(r, 32000);
  assert.equal(r.tx.state, "terminated");
  assert.deepEqual(r.terminated, ["completed"]);
});

Deno.test("non-INVITE server over TCP: final response terminates at once (J = 0)", () => {
  const r = nonInvite(true);
  r.tx.respond(makeResponse(r.request, 200));
  assert.equal(r.sent.length, 1);
  assert.equal(r.tx.state, "terminated");
  assert.equal(r.clock.pendingTimers, 0);
});

Deno.test("server transaction: invalid status is a RangeError; terminate() is final", () => {
  const r = nonInvite(false);
  assert.throws(() => r.tx.respond(makeResponse(r.request, 700)), RangeError);
  r.tx.terminate();
  assert.deepEqual(r.terminated, ["closed"]);
  assert.equal(r.tx.respond(makeResponse(r.request, 200)), false);
  assert.equal(r.sent.length, 0);
});
