import assert from "node:assert/strict";
import { createResponse, SipRequest, SipResponse } from "../../lib/sip/message.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { TransportLayer } from "../../lib/transport/transport.ts";
import { requestText, unique } from "../_helpers/sip_messages.ts";
import { captureLogs, MessageQueue, RawDatagramPeer } from "../_helpers/sip_transport.ts";

async function server(): Promise<{ layer: TransportLayer; port: number; queue: MessageQueue }> {
  const layer = new TransportLayer({ idleTimeoutMs: 0 });
  const { port } = await layer.listen({ transport: "UDP", host: "127.0.0.1", port: 0 });
  const queue = new MessageQueue();
  layer.onMessage(queue.push);
  return { layer, port, queue };
}

Deno.test("UDP: rport and received are stamped, the response goes to the source port", async () => {
  const { layer, port, queue } = await server();
  const peer = new RawDatagramPeer();
  try {
    // sent-by names another host and port: received must be added, rport filled in.
    await peer.send(
      requestText({
        viaHost: "192.0.2.99",
        viaPort: 5999,
        viaParams: ";rport",
        callId: unique("c"),
      }),
      port,
    );
    const [msg, flow] = await queue.next();
    assert.ok(msg instanceof SipRequest);
    assert.equal(flow.transport, "UDP");
    assert.equal(flow.remote.port, peer.port);
    const via = msg.topVia;
    assert.equal(via.params.get("received"), "127.0.0.1");
    assert.equal(via.params.get("rport"), String(peer.port));
    const used = await layer.send(createResponse(msg, 200), flow);
    assert.equal(used.remote.port, peer.port);
    const reply = await peer.receive();
    assert.equal(reply.port, port, "sent from the listening socket");
    const res = parseMessage(new TextEncoder().encode(reply.text));
    assert.ok(res instanceof SipResponse);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("Via")!, new RegExp(`rport=${peer.port}`));
  } finally {
    peer.close();
    await layer.close();
  }
});

Deno.test("UDP: no received when sent-by is the source address; response goes to the sent-by port", async () => {
  const { layer, port, queue } = await server();
  const peer = new RawDatagramPeer();
  try {
    await peer.send(requestText({ viaPort: peer.port, callId: unique("c") }), port);
    const [msg, flow] = await queue.next();
    assert.ok(msg instanceof SipRequest);
    assert.equal(msg.topVia.params.has("received"), false);
    await layer.send(createResponse(msg, 404), flow);
    const reply = await peer.receive();
    assert.match(reply.text, /^SIP\/2\.0 404 /);
  } finally {
    peer.close();
    await layer.close();
  }
});

Deno.test("UDP: a domain name in sent-by always gets received", async () => {
  const { layer, port, queue } = await server();
  const peer = new RawDatagramPeer();
  try {
    await peer.send(requestText({ viaHost: "pc33.example.com", callId: unique("c") }), port);
    const [msg] = await queue.next();
    assert.ok(msg instanceof SipRequest);
    assert.equal(msg.topVia.params.get("received"), "127.0.0.1");
    assert.equal(msg.topVia.params.has("rport"), false);
  } finally {
    peer.close();
    await layer.close();
  }
});

Deno.test("UDP: malformed request with enough headers → 400 naming the defect", async () => {
  const { layer, port } = await server();
  const peer = new RawDatagramPeer();
  const errors: string[] = [];
  layer.onParseError((e) => errors.push(e.message));
  try {
    const bad = requestText({ viaParams: ";rport", callId: unique("c") }).replace(
      "Max-Forwards: 70",
      "Max-Forwards: seventy",
    );
    await peer.send(bad, port);
    const reply = await peer.receive();
    assert.match(reply.text, /^SIP\/2\.0 400 Bad Request \(malformed Max-Forwards\)\r\n/);
    assert.match(reply.text, /\r\nCSeq: 1 OPTIONS\r\n/);
    assert.deepEqual(errors, ["malformed Max-Forwards"]);
  } finally {
    peer.close();
    await layer.close();
  }
});

Deno.test("UDP: garbage is dropped silently with one debug line; CRLF keep-alives are ignored", async () => {
  const logs = captureLogs("debug");
  const { layer, port, queue } = await server();
  const peer = new RawDatagramPeer();
  try {
    await peer.send("\x00\x01 this is not SIP at all\r\n\r\n", port);
    await peer.send("\r\n\r\n", port); // keep-alive: ignored without a log line
    const good = unique("c");
    await peer.send(requestText({ viaPort: peer.port, callId: good }), port);
    const [msg, flow] = await queue.next();
    assert.equal(msg.callId, good, "the garbage produced no message");
    await layer.send(createResponse(msg as SipRequest, 200), flow);
    const reply = await peer.receive();
    assert.match(
      reply.text,
      /^SIP\/2\.0 200 OK/,
      "the first datagram back answers the good request",
    );
    const dropped = logs.lines.filter((l) => l.includes("malformed message dropped"));
    assert.equal(dropped.length, 1);
    assert.ok(!dropped[0]!.includes("    at "), "no stack trace");
  } finally {
    logs.restore();
    peer.close();
    await layer.close();
  }
});

Deno.test("UDP: requests to a target go out of the listening socket", async () => {
  const { layer } = await server();
  const peer = new RawDatagramPeer();
  try {
    const req = parseMessage(new TextEncoder().encode(requestText({ callId: unique("c") })));
    await layer.send(req, { transport: "UDP", host: "127.0.0.1", port: peer.port });
    const got = await peer.receive();
    assert.equal(got.port, layer.localAddress("UDP").port);
    assert.match(got.text, /^OPTIONS sip:conf@127\.0\.0\.1 SIP\/2\.0\r\n/);
  } finally {
    peer.close();
    await layer.close();
  }
});
