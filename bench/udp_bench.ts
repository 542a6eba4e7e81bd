/**
 * UDP send cost for media on loopback: 200 RTP-sized datagrams per iteration to one sink
 * that never reads (RFC 3550 transport). Baseline: `node:dgram`. Compared: raw
 * `Deno.DatagramConn.send` (un-ordered: back-to-back sends leave in reverse order), our
 * `UdpSocket` on one socket (ordered: one send in flight), and `UdpSocket` spread over 20
 * sockets (the media engine's shape: one socket per stream).
 * @module
 */
import dgram from "node:dgram";
import { UdpSocket } from "../lib/media/udp_socket.ts";

const BATCH = 200;
const payload = new Uint8Array(172);
const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const sinkPort = (sink.addr as Deno.NetAddr).port;
const sinkAddr = { transport: "udp" as const, hostname: "127.0.0.1", port: sinkPort };

const node = dgram.createSocket("udp4");
await new Promise<void>((resolve) => node.bind(0, "127.0.0.1", () => resolve()));
const raw = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const one = UdpSocket.bind("127.0.0.1", 0);
const many = Array.from({ length: 20 }, () => UdpSocket.bind("127.0.0.1", 0));
const to = { address: "127.0.0.1", port: sinkPort };

Deno.bench({
  name: "node:dgram send ×200",
  group: "udp send",
  baseline: true,
  async fn() {
    await new Promise<void>((resolve) => {
      let left = BATCH;
      for (let i = 0; i < BATCH; i++) {
        node.send(payload, sinkPort, "127.0.0.1", () => {
          if (--left === 0) resolve();
        });
      }
    });
  },
});

Deno.bench({
  name: "Deno.DatagramConn.send ×200 (unordered)",
  group: "udp send",
  async fn() {
    const pending: Promise<number>[] = [];
    for (let i = 0; i < BATCH; i++) pending.push(raw.send(payload, sinkAddr));
    await Promise.all(pending);
  },
});

Deno.bench({
  name: "UdpSocket.send ×200, one socket (ordered)",
  group: "udp send",
  async fn() {
    for (let i = 0; i < BATCH; i++) one.send(payload, to);
    await one.whenIdle();
  },
});

Deno.bench({
  name: "UdpSocket.send ×200 over 20 sockets (ordered per socket)",
  group: "udp send",
  async fn() {
    for (let i = 0; i < BATCH; i++) many[i % many.length]!.send(payload, to);
    await Promise.all(many.map((s) => s.whenIdle()));
  },
});

globalThis.addEventListener("unload", () => {
  node.close();
  raw.close();
  sink.close();
});
