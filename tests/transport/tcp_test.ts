import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { createResponse, SipRequest, SipResponse } from "../../lib/sip/message.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { TransportLayer, type TransportLayerOptions } from "../../lib/transport/transport.ts";
import { requestText, unique } from "../_helpers/sip_messages.ts";
import { captureLogs, MessageQueue, RawStreamPeer } from "../_helpers/sip_transport.ts";

interface Server {
  layer: TransportLayer;
  port: number;
  queue: MessageQueue;
  errors: string[];
}

async function server(options: TransportLayerOptions = {}): Promise<Server> {
  const layer = new TransportLayer({ idleTimeoutMs: 0, ...options });
  const { port } = await layer.listen({ transport: "TCP", host: "127.0.0.1", port: 0 });
  const queue = new MessageQueue();
  const errors: string[] = [];
  layer.onMessage(queue.push);
  layer.onParseError((e) => errors.push(e.message));
  return { layer, port, queue, errors };
}

function tcpRequest(callId: string, extra: Partial<Parameters<typeof requestText>[0]> = {}) {
  return requestText({ transport: "TCP", callId, ...extra });
}

Deno.test("TCP: a message written in pieces arrives whole, body included", async () => {
  const s = await server();
  const peer = await RawStreamPeer.connect(s.port);
  try {
    const callId = unique("c");
    const text = tcpRequest(callId, { method: "MESSAGE", body: "hello, focus" });
    const cuts = [5, 40, text.indexOf("\r\n\r\n") + 2, text.length - 3];
    let at = 0;
    for (const cut of [...cuts, text.length]) {
      await peer.write(text.slice(at, cut));
      at = cut;
    }
    const [msg, flow] = await s.queue.next();
    assert.ok(msg instanceof SipRequest);
    assert.equal(msg.callId, callId);
    assert.equal(new TextDecoder().decode(msg.body), "hello, focus");
    assert.equal(flow.transport, "TCP");
    assert.equal(flow.remote.port, peer.port);
    assert.equal(typeof flow.connectionId, "number");
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: pipelined messages in one write are delivered in order; responses reuse the connection", async () => {
  const s = await server();
  const peer = await RawStreamPeer.connect(s.port);
  try {
    const ids = [unique("a"), unique("b"), unique("c")];
    await peer.write(ids.map((id) => tcpRequest(id)).join(""));
    for (const id of ids) {
      const [msg, flow] = await s.queue.next();
      assert.equal(msg.callId, id);
      await s.layer.send(createResponse(msg as SipRequest, 200), flow);
    }
    for (const id of ids) {
      const res = await peer.nextMessage();
      assert.ok(res instanceof SipResponse);
      assert.equal(res.callId, id);
    }
    assert.equal(s.layer.connectionCount, 1);
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: CRLFCRLF keep-alive is answered with CRLF (RFC 5626 §3.5.1)", async () => {
  const s = await server();
  const peer = await RawStreamPeer.connect(s.port);
  try {
    await peer.write("\r\n\r\n");
    assert.equal(await peer.readExact(2), "\r\n");
    // A ping between messages does not disturb framing.
    const callId = unique("c");
    await peer.write(tcpRequest(unique("x")) + "\r\n\r\n" + tcpRequest(callId));
    assert.ok((await s.queue.next())[0] instanceof SipRequest);
    const [msg] = await s.queue.next();
    assert.equal(msg.callId, callId);
    assert.equal(await peer.readExact(2), "\r\n");
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: a request to the peer's address goes back over the connection it opened", async () => {
  const s = await server();
  const peer = await RawStreamPeer.connect(s.port);
  try {
    await peer.write(tcpRequest(unique("c"), { method: "REGISTER" }));
    const [, flow] = await s.queue.next();
    const outgoing = parseMessage(new TextEncoder().encode(tcpRequest(unique("n"), {
      method: "NOTIFY",
    })));
    // By address (the peer's ephemeral port, as a Contact learned from the packet would be):
    const used = await s.layer.send(outgoing, {
      transport: "TCP",
      host: "127.0.0.1",
      port: peer.port,
    });
    assert.equal(used.connectionId, flow.connectionId);
    const got = await peer.nextMessage();
    assert.ok(got instanceof SipRequest);
    assert.equal(got.method, "NOTIFY");
    // By flow:
    await s.layer.send(outgoing, flow);
    assert.equal(((await peer.nextMessage()) as SipRequest).method, "NOTIFY");
    assert.equal(s.layer.connectionCount, 1, "no new connection was opened");
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: layer to layer — outgoing connection reused for the response and the next request", async () => {
  const a = await server();
  const b = await server();
  try {
    const target = { transport: "TCP" as const, host: "127.0.0.1", port: b.port };
    const local = a.layer.localAddress("TCP");
    const first = parseMessage(new TextEncoder().encode(
      tcpRequest(unique("c"), { viaPort: local.port, viaParams: ";rport" }),
    )) as SipRequest;
    const sentOn = await a.layer.send(first, target);
    const [got, flow] = await b.queue.next();
    assert.equal(got.callId, first.callId);
    assert.equal((got as SipRequest).topVia.params.get("rport"), String(sentOn.local.port));
    await b.layer.send(createResponse(got as SipRequest, 200), flow);
    const [res, resFlow] = await a.queue.next();
    assert.equal((res as SipResponse).status, 200);
    assert.equal(resFlow.connectionId, sentOn.connectionId);
    const again = await a.layer.send(first, target);
    assert.equal(again.connectionId, sentOn.connectionId);
    await b.queue.next();
    assert.equal(a.layer.connectionCount, 1);
    assert.equal(b.layer.connectionCount, 1);
  } finally {
    await a.layer.close();
    await b.layer.close();
  }
});

Deno.test("TCP: when the request's connection is gone, the response opens one to received + sent-by port", async () => {
  const a = await server();
  const b = await server();
  try {
    const local = a.layer.localAddress("TCP");
    const req = parseMessage(new TextEncoder().encode(
      tcpRequest(unique("c"), { viaPort: local.port }),
    )) as SipRequest;
    const sentOn = await a.layer.send(req, { transport: "TCP", host: "127.0.0.1", port: b.port });
    const [got, flow] = await b.queue.next();
    a.layer.closeConnection(sentOn.connectionId!);
    assert.equal(a.layer.isConnectionOpen(sentOn.connectionId!), false);
    // Wait until B has seen the close, so the response cannot use the old connection.
    while (b.layer.isConnectionOpen(flow.connectionId!)) {
      await new Promise((resolve) => queueMicrotask(() => setTimeout(resolve, 0)));
    }
    const used = await b.layer.send(createResponse(got as SipRequest, 200), flow);
    assert.notEqual(used.connectionId, flow.connectionId);
    assert.equal(used.remote.port, local.port, "sent-by port");
    const [res] = await a.queue.next();
    assert.equal((res as SipResponse).status, 200);
  } finally {
    await a.layer.close();
    await b.layer.close();
  }
});

Deno.test("TCP: unparseable request → 400 naming the defect, connection stays usable", async () => {
  const s = await server();
  const peer = await RawStreamPeer.connect(s.port);
  try {
    const bad = tcpRequest(unique("c")).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    const good = unique("g");
    await peer.write(bad + tcpRequest(good));
    const res = await peer.nextMessage();
    assert.ok(res instanceof SipResponse);
    assert.equal(res.status, 400);
    assert.match(res.reason, /CSeq method INVITE does not match OPTIONS/);
    const [msg] = await s.queue.next();
    assert.equal(msg.callId, good);
    assert.equal(s.errors.length, 1);
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: framing error (bad Content-Length) → 400 then the connection closes", async () => {
  const s = await server();
  const peer = await RawStreamPeer.connect(s.port);
  try {
    const bad = tcpRequest(unique("c")).replace("Content-Length: 0", "Content-Length: zero");
    await peer.write(bad);
    const res = await peer.nextMessage();
    assert.equal((res as SipResponse).status, 400);
    assert.match((res as SipResponse).reason, /Content-Length/);
    assert.equal((await peer.nextEvent()).kind, "eof");
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: oversized header block closes that connection with one log line; others unaffected", async () => {
  const logs = captureLogs("debug");
  const s = await server({ limits: { maxHeaderBytes: 4096 } });
  const victim = await RawStreamPeer.connect(s.port);
  const bystander = await RawStreamPeer.connect(s.port);
  try {
    const huge = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n" + "X-Filler: " + "a".repeat(8000) + "\r\n";
    await victim.write(huge);
    assert.equal((await victim.nextEvent()).kind, "eof");
    const closeLines = logs.lines.filter((l) => l.includes("framing error, closing connection"));
    assert.equal(closeLines.length, 1);
    assert.match(closeLines[0]!, /header section too large/);
    assert.ok(logs.lines.every((l) => !l.includes("    at ")), "no stack trace");
    const callId = unique("c");
    await bystander.write(tcpRequest(callId));
    const [msg, flow] = await s.queue.next();
    assert.equal(msg.callId, callId);
    await s.layer.send(createResponse(msg as SipRequest, 200), flow);
    assert.equal(((await bystander.nextMessage()) as SipResponse).status, 200);
  } finally {
    logs.restore();
    victim.close();
    bystander.close();
    await s.layer.close();
  }
});

Deno.test("TCP: idle connections close after the idle timeout (injected clock)", async () => {
  const clock = new FakeClock();
  const s = await server({ clock, idleTimeoutMs: 60_000 });
  const peer = await RawStreamPeer.connect(s.port);
  try {
    await peer.write(tcpRequest(unique("c")));
    await s.queue.next();
    assert.equal(s.layer.connectionCount, 1);
    clock.advance(59_999);
    assert.equal(s.layer.connectionCount, 1);
    clock.advance(1);
    assert.equal(s.layer.connectionCount, 0);
    assert.equal((await peer.nextEvent()).kind, "eof");
  } finally {
    peer.close();
    await s.layer.close();
  }
});

Deno.test("TCP: connections beyond maxConnections are refused", async () => {
  const s = await server({ limits: { maxConnections: 1 } });
  const first = await RawStreamPeer.connect(s.port);
  const second = await RawStreamPeer.connect(s.port);
  try {
    await first.write(tcpRequest(unique("c")));
    await s.queue.next();
    assert.equal((await second.nextEvent()).kind, "eof");
    assert.equal(s.layer.connectionCount, 1);
  } finally {
    first.close();
    second.close();
    await s.layer.close();
  }
});

Deno.test("TCP: a refused connection rejects send", async () => {
  const s = await server();
  // A port that was just freed: nothing listens on it.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  try {
    const req = parseMessage(new TextEncoder().encode(tcpRequest(unique("c"))));
    await assert.rejects(
      s.layer.send(req, { transport: "TCP", host: "127.0.0.1", port: freePort }),
      Deno.errors.ConnectionRefused,
    );
  } finally {
    await s.layer.close();
  }
});
