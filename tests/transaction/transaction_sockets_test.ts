/**
 * The transaction layer over real UDP and TCP sockets: two TransportLayer + TransactionLayer
 * stacks on 127.0.0.1 (or one stack and a raw peer), transaction time stepped with FakeClock.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { Headers } from "../../lib/sip/headers.ts";
import { createResponse, SipRequest, type SipResponse } from "../../lib/sip/message.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { parseUri } from "../../lib/sip/uri.ts";
import type { InviteClientTransaction } from "../../lib/transaction/client_transaction.ts";
import type { ServerTransaction } from "../../lib/transaction/server_transaction.ts";
import { TransactionLayer } from "../../lib/transaction/transaction_layer.ts";
import type { Flow, TransportName } from "../../lib/transport/flow.ts";
import { TransportLayer } from "../../lib/transport/transport.ts";
import { requestText, unique } from "../_helpers/sip_messages.ts";
import { RawDatagramPeer } from "../_helpers/sip_transport.ts";

/** Hands out server transactions as the TU receives them. */
class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: Array<(item: T) => void> = [];
  readonly push = (item: T): void => {
    const w = this.#waiters.shift();
    if (w) w(item);
    else this.#items.push(item);
  };
  next(): Promise<T> {
    const item = this.#items.shift();
    return item !== undefined
      ? Promise.resolve(item)
      : new Promise((resolve) => this.#waiters.push(resolve));
  }
}

interface Stack {
  transport: TransportLayer;
  layer: TransactionLayer;
  requests: Inbox<ServerTransaction>;
  cancels: Inbox<SipRequest>;
  port: number;
  close(): Promise<void>;
}

async function stack(transportName: TransportName, clock: FakeClock): Promise<Stack> {
  const transport = new TransportLayer({ idleTimeoutMs: 0 });
  const { port } = await transport.listen({ transport: transportName, host: "127.0.0.1" });
  const requests = new Inbox<ServerTransaction>();
  const cancels = new Inbox<SipRequest>();
  const layer = new TransactionLayer({
    transport,
    clock,
    user: { onRequest: requests.push, onCancel: (_tx, cancel) => cancels.push(cancel) },
  });
  return {
    transport,
    layer,
    requests,
    cancels,
    port,
    async close() {
      layer.close();
      await transport.close();
    },
  };
}

function newRequest(method: string, to: number): SipRequest {
  const h = new Headers([
    ["From", `<sip:focus@127.0.0.1>;tag=${unique("f")}`],
    ["To", "<sip:bob@127.0.0.1>"],
    ["Call-ID", unique("call")],
    ["CSeq", `1 ${method}`],
    ["Contact", "<sip:focus@127.0.0.1>"],
  ]);
  return new SipRequest(method, parseUri(`sip:bob@127.0.0.1:${to}`), h);
}

for (const transportName of ["UDP", "TCP"] as const) {
  Deno.test(`${transportName}: OPTIONS round trip through two transaction layers`, async () => {
    const clock = new FakeClock();
    const a = await stack(transportName, clock);
    const b = await stack(transportName, clock);
    try {
      const tx = a.layer.sendRequest(newRequest("OPTIONS", b.port), {
        transport: transportName,
        host: "127.0.0.1",
        port: b.port,
      });
      const server = await b.requests.next();
      assert.equal(server.method, "OPTIONS");
      assert.equal(server.flow.transport, transportName);
      server.respond(createResponse(server.request, 200, "OK", { toTag: "b1" }));
      const final = await tx.final;
      assert.equal(final.status, 200);
      assert.equal(tx.state, transportName === "UDP" ? "completed" : "terminated");
      clock.advance(5000); // Timer K on UDP
      assert.equal(a.layer.clientTransactionCount, 0);
      clock.advance(32000); // Timer J on UDP
      assert.equal(b.layer.serverTransactionCount, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  Deno.test(`${transportName}: INVITE, 180, CANCEL → 200 + 487, ACK absorbed`, async () => {
    const clock = new FakeClock();
    const a = await stack(transportName, clock);
    const b = await stack(transportName, clock);
    try {
      const provisional: number[] = [];
      const target = { transport: transportName, host: "127.0.0.1", port: b.port };
      const tx = a.layer.sendRequest(newRequest("INVITE", b.port), target, {
        onProvisional: (r) => provisional.push(r.status),
      }) as InviteClientTransaction;
      const server = await b.requests.next();
      let ringing!: () => void;
      const rang = new Promise<void>((resolve) => (ringing = resolve));
      const off = tx.onStateChange((s) => s === "proceeding" && ringing());
      server.respond(createResponse(server.request, 180, "Ringing", { toTag: "b2" }));
      await rang;
      off();
      const cancelTx = await a.layer.cancel(tx);
      assert.ok(cancelTx !== undefined);
      const cancel = await b.cancels.next();
      assert.equal(cancel.method, "CANCEL");
      assert.equal((await cancelTx.final).status, 200);
      const final = await tx.final;
      assert.equal(final.status, 487);
      assert.equal(final.toTag, "b2");
      // The ACK for the 487 reaches the server transaction and confirms it.
      while (server.state === "completed") await new Promise((r) => setTimeout(r, 0));
      assert.equal(server.state, transportName === "UDP" ? "confirmed" : "terminated");
      assert.deepEqual(provisional, [180]);
      clock.advance(64_000);
      assert.equal(a.layer.clientTransactionCount, 0);
      assert.equal(b.layer.serverTransactionCount, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });
}

Deno.test("UDP: Timer G retransmissions reach the peer; retransmitted INVITE gets the final again", async () => {
  const clock = new FakeClock();
  const b = await stack("UDP", clock);
  const peer = new RawDatagramPeer();
  try {
    const callId = unique("c");
    const branch = unique("z9hG4bK");
    const invite = requestText({ method: "INVITE", callId, branch, viaPort: peer.port });
    await peer.send(invite, b.port);
    const server = await b.requests.next();
    server.respond(createResponse(server.request, 486, "Busy Here", { toTag: "busy" }));
    assert.match((await peer.receive()).text, /^SIP\/2\.0 486 /);
    clock.advance(500);
    assert.match((await peer.receive()).text, /^SIP\/2\.0 486 /, "Timer G");
    await peer.send(invite, b.port);
    assert.match((await peer.receive()).text, /^SIP\/2\.0 486 /, "absorbed retransmission");
    await peer.send(
      requestText({ method: "ACK", callId, branch, viaPort: peer.port, toTag: "busy" }),
      b.port,
    );
    while (server.state === "completed") await new Promise((r) => setTimeout(r, 0));
    assert.equal(server.state, "confirmed");
    clock.advance(5000);
    assert.equal(server.state, "terminated");
    assert.equal(b.layer.serverTransactionCount, 0);
  } finally {
    peer.close();
    await b.close();
  }
});

Deno.test("TCP: a refused connection reaches the TU as a 503 and a terminated transaction", async () => {
  const clock = new FakeClock();
  const a = await stack("TCP", clock);
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  try {
    const tx = a.layer.sendRequest(newRequest("OPTIONS", freePort), {
      transport: "TCP",
      host: "127.0.0.1",
      port: freePort,
    });
    const final: SipResponse = await tx.final;
    assert.equal(final.status, 503);
    assert.equal(tx.failure, "transport-error");
    assert.equal(tx.state, "terminated");
    assert.equal(a.layer.clientTransactionCount, 0);
  } finally {
    await a.close();
  }
});

Deno.test("TCP: the 2xx ACK (sent by the TU over the transport) reaches the TU via onAck", async () => {
  const clock = new FakeClock();
  const a = await stack("TCP", clock);
  const acks: Array<[SipRequest, Flow]> = [];
  let gotAck!: () => void;
  const acked = new Promise<void>((resolve) => (gotAck = resolve));
  const transport = new TransportLayer({ idleTimeoutMs: 0 });
  const { port } = await transport.listen({ transport: "TCP", host: "127.0.0.1" });
  const requests = new Inbox<ServerTransaction>();
  const layer = new TransactionLayer({
    transport,
    clock,
    user: {
      onRequest: requests.push,
      onAck: (ack, flow) => {
        acks.push([ack, flow]);
        gotAck();
      },
    },
  });
  try {
    const invite = newRequest("INVITE", port);
    const tx = a.layer.sendRequest(invite, { transport: "TCP", host: "127.0.0.1", port });
    const server = await requests.next();
    server.respond(createResponse(server.request, 200, "OK", { toTag: "ok2" }));
    const ok = await tx.final;
    assert.equal(ok.status, 200);
    const ack = parseMessage(new TextEncoder().encode(requestText({
      method: "ACK",
      transport: "TCP",
      callId: invite.callId,
      toTag: "ok2",
    }))) as SipRequest;
    ack.headers.delete("Via");
    await a.layer.sendStateless(ack, { transport: "TCP", host: "127.0.0.1", port });
    assert.notEqual(ack.branch, invite.branch, "the 2xx ACK is a new transaction-less request");
    assert.ok(ack.branch!.startsWith("z9hG4bK"));
    await acked;
    assert.equal(acks[0]![0].method, "ACK");
    assert.equal(acks[0]![1].transport, "TCP");
    assert.equal(a.transport.connectionCount, 1, "the ACK reused the INVITE's connection");
  } finally {
    layer.close();
    await transport.close();
    await a.close();
  }
});
