import assert from "node:assert/strict";
import { createResponse, SipRequest, type SipResponse } from "../../lib/sip/message.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { TransportLayer } from "../../lib/transport/transport.ts";
import { requestText, unique } from "../_helpers/sip_messages.ts";
import { MessageQueue } from "../_helpers/sip_transport.ts";

/** A self-signed certificate for 127.0.0.1 made with the system's openssl, or undefined. */
async function selfSigned(dir: string): Promise<{ cert: string; key: string } | undefined> {
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success ? { cert, key } : undefined;
  } catch {
    return undefined;
  }
}

Deno.test("TLS: request and response over a verified TLS connection, connection reused", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "conclave-tls-" });
  try {
    const files = await selfSigned(dir);
    if (files === undefined) {
      console.warn("!!! openssl unavailable: TLS transport test skipped !!!");
      await t.step({ name: "TLS (skipped: no openssl)", ignore: true, fn: () => {} });
      return;
    }
    const server = new TransportLayer({ idleTimeoutMs: 0 });
    const client = new TransportLayer({
      idleTimeoutMs: 0,
      tls: { caCerts: [await Deno.readTextFile(files.cert)] },
    });
    try {
      const { port } = await server.listen({
        transport: "TLS",
        host: "127.0.0.1",
        tls: { certFile: files.cert, keyFile: files.key },
      });
      const serverQueue = new MessageQueue();
      const clientQueue = new MessageQueue();
      server.onMessage(serverQueue.push);
      client.onMessage(clientQueue.push);
      const req = parseMessage(new TextEncoder().encode(
        requestText({ transport: "TLS", callId: unique("c") }),
      ));
      const target = { transport: "TLS" as const, host: "127.0.0.1", port };
      const used = await client.send(req, target);
      assert.equal(used.transport, "TLS");
      const [got, flow] = await serverQueue.next();
      assert.ok(got instanceof SipRequest);
      assert.equal(flow.transport, "TLS");
      await server.send(createResponse(got, 200), flow);
      const [res, resFlow] = await clientQueue.next();
      assert.equal((res as SipResponse).status, 200);
      assert.equal(resFlow.connectionId, used.connectionId);
      await client.send(req, target);
      await serverQueue.next();
      assert.equal(client.connectionCount, 1);
    } finally {
      await client.close();
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TLS: an untrusted server certificate is a transport error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave-tls-" });
  try {
    const files = await selfSigned(dir);
    if (files === undefined) {
      console.warn("!!! openssl unavailable: TLS transport test skipped !!!");
      return;
    }
    const server = new TransportLayer({ idleTimeoutMs: 0 });
    const client = new TransportLayer({ idleTimeoutMs: 0 });
    try {
      const { port } = await server.listen({
        transport: "TLS",
        host: "127.0.0.1",
        tls: { certFile: files.cert, keyFile: files.key },
      });
      const req = parseMessage(new TextEncoder().encode(
        requestText({ transport: "TLS", callId: unique("c") }),
      ));
      await assert.rejects(client.send(req, { transport: "TLS", host: "127.0.0.1", port }));
      assert.equal(client.connectionCount, 0);
    } finally {
      await client.close();
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
