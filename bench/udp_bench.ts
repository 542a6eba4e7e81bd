/**
 * UDP costs for media on loopback (RFC 3550 transport), both media socket backends in the
 * same run (`lib/media/udp_socket.ts`):
 * - send: 200 RTP-sized (172-byte) datagrams per iteration to one sink that never reads.
 *   Baseline: the Deno backend (`Deno.DatagramConn`, ordered: one send in flight per
 *   socket). Compared: the libc/FFI backend (synchronous `sendto`), both on one socket and
 *   spread over 20 sockets (the media engine's shape: one socket per stream); raw
 *   `Deno.DatagramConn.send` (unordered) and `node:dgram` for reference.
 * - receive: 200 datagrams already waiting in 20 sockets' kernel queues (10 each), until
 *   every one has reached its socket's handler. Baseline: the Deno backend's receive loops.
 *   Compared: one `pollUdpSockets()` of the FFI backend (`epoll_wait` + `recvmmsg`).
 * - an idle poll: `pollUdpSockets()` with 1,000 FFI sockets registered and nothing waiting
 *   (what each 5 ms timer poll between media ticks costs when there is no traffic).
 * - one media tick of 200 participants (`shared_udp_port.ts`): each sends one 172-byte
 *   datagram to its own destination. Baseline: a socket per participant (`sendto` each).
 *   Compared: 200 streams on one shared port, batched and flushed by one `sendmmsg`.
 *   And receiving one datagram from each of 200 sources: baseline 200 sockets (one
 *   `recvmmsg` each), compared one shared port (`recvmmsg` per 32, demultiplexed by source).
 * @module
 */
import dgram from "node:dgram";
import { DenoUdpSocket } from "../lib/media/deno_udp_socket.ts";
import { FfiUdpSocket } from "../lib/media/ffi_udp_socket.ts";
import { SharedUdpPort } from "../lib/media/shared_udp_port.ts";
import { flushUdpBatches, pollUdpSockets, type UdpSocket } from "../lib/media/udp_socket.ts";

const BATCH = 200;
const payload = new Uint8Array(172);
const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const sinkPort = (sink.addr as Deno.NetAddr).port;
const sinkAddr = { transport: "udp" as const, hostname: "127.0.0.1", port: sinkPort };

const node = dgram.createSocket("udp4");
await new Promise<void>((resolve) => node.bind(0, "127.0.0.1", () => resolve()));
const raw = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const denoOne = DenoUdpSocket.bind("127.0.0.1", 0);
const denoMany = Array.from({ length: 20 }, () => DenoUdpSocket.bind("127.0.0.1", 0));
const ffiOne = FfiUdpSocket.bind("127.0.0.1", 0);
const ffiMany = Array.from({ length: 20 }, () => FfiUdpSocket.bind("127.0.0.1", 0));
const to = { address: "127.0.0.1", port: sinkPort };

Deno.bench({
  name: "Deno backend: send ×200, one socket (ordered)",
  group: "udp send",
  baseline: true,
  async fn() {
    for (let i = 0; i < BATCH; i++) denoOne.send(payload, to);
    await denoOne.whenIdle();
  },
});

Deno.bench({
  name: "Deno backend: send ×200 over 20 sockets",
  group: "udp send",
  async fn() {
    for (let i = 0; i < BATCH; i++) denoMany[i % denoMany.length]!.send(payload, to);
    await Promise.all(denoMany.map((s) => s.whenIdle()));
  },
});

Deno.bench({
  name: "FFI backend: send ×200, one socket (sendto)",
  group: "udp send",
  fn() {
    for (let i = 0; i < BATCH; i++) ffiOne.send(payload, to);
  },
});

Deno.bench({
  name: "FFI backend: send ×200 over 20 sockets",
  group: "udp send",
  fn() {
    for (let i = 0; i < BATCH; i++) ffiMany[i % ffiMany.length]!.send(payload, to);
  },
});

Deno.bench({
  name: "raw Deno.DatagramConn.send ×200 (unordered)",
  group: "udp send",
  async fn() {
    const pending: Promise<number>[] = [];
    for (let i = 0; i < BATCH; i++) pending.push(raw.send(payload, sinkAddr));
    await Promise.all(pending);
  },
});

Deno.bench({
  name: "node:dgram send ×200",
  group: "udp send",
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

// ---- receive: 10 datagrams waiting in each of 20 sockets ----

const feeder = FfiUdpSocket.bind("127.0.0.1", 0);
const receivers = {
  deno: Array.from({ length: 20 }, () => DenoUdpSocket.bind("127.0.0.1", 0)),
  ffi: Array.from({ length: 20 }, () => FfiUdpSocket.bind("127.0.0.1", 0)),
};
let delivered = 0;
for (const s of [...receivers.deno, ...receivers.ffi]) s.onDatagram(() => delivered++);

function fill(sockets: readonly UdpSocket[]): void {
  for (let i = 0; i < BATCH; i++) {
    feeder.send(payload, { address: "127.0.0.1", port: sockets[i % sockets.length]!.port });
  }
}

Deno.bench({
  name: "Deno backend: receive 200 (20 sockets' receive loops)",
  group: "udp receive",
  baseline: true,
  async fn(b) {
    fill(receivers.deno);
    const want = delivered + BATCH;
    b.start();
    while (delivered < want) await new Promise<void>((resolve) => setTimeout(resolve, 0));
    b.end();
  },
});

Deno.bench({
  name: "FFI backend: receive 200 (one poll: epoll_wait + recvmmsg per socket)",
  group: "udp receive",
  fn(b) {
    fill(receivers.ffi);
    const want = delivered + BATCH;
    b.start();
    pollUdpSockets();
    b.end();
    if (delivered !== want) throw new Error(`poll delivered ${delivered - (want - BATCH)}`);
  },
});

const idle = Array.from({ length: 1000 }, () => FfiUdpSocket.bind("127.0.0.1", 0));
for (const s of idle) s.onDatagram(() => {});
Deno.bench({
  name: "FFI backend: poll with 1,040 sockets registered, nothing waiting",
  group: "udp poll",
  fn() {
    pollUdpSockets();
  },
});

// ---- one tick of 200 participants: a socket each vs one shared port ----

const PARTICIPANTS = 200;
const tickSinks = Array.from({ length: PARTICIPANTS }, () => FfiUdpSocket.bind("127.0.0.1", 0));
const tickTo = tickSinks.map((s) => ({ address: "127.0.0.1", port: s.port }));
const perSocket = Array.from({ length: PARTICIPANTS }, () => FfiUdpSocket.bind("127.0.0.1", 0));
const shared = SharedUdpPort.bind("127.0.0.1", 0, { backend: "ffi" });
const streams = Array.from({ length: PARTICIPANTS }, () => shared.openStream());
let sharedDelivered = 0;
streams.forEach((s, i) => {
  s.expectSource(tickTo[i]!);
  s.onDatagram(() => sharedDelivered++);
});

Deno.bench({
  name: "200 sockets: one sendto each",
  group: "tick send ×200",
  baseline: true,
  fn() {
    for (let i = 0; i < PARTICIPANTS; i++) perSocket[i]!.send(payload, tickTo[i]!);
  },
});

Deno.bench({
  name: "one shared port: 200 batched sends + one sendmmsg",
  group: "tick send ×200",
  fn() {
    for (let i = 0; i < PARTICIPANTS; i++) streams[i]!.send(payload, tickTo[i]!);
    flushUdpBatches();
  },
});

let perSocketDelivered = 0;
for (const s of perSocket) s.onDatagram(() => perSocketDelivered++);

Deno.bench({
  name: "200 sockets: one datagram each (epoll + recvmmsg per socket)",
  group: "tick receive ×200",
  baseline: true,
  fn(b) {
    for (let i = 0; i < PARTICIPANTS; i++) {
      tickSinks[i]!.send(payload, { address: "127.0.0.1", port: perSocket[i]!.port });
    }
    const want = perSocketDelivered + PARTICIPANTS;
    b.start();
    pollUdpSockets();
    b.end();
    if (perSocketDelivered !== want) throw new Error("per-socket receive incomplete");
  },
});

Deno.bench({
  name: "one shared port: 200 sources demultiplexed (recvmmsg per 32)",
  group: "tick receive ×200",
  fn(b) {
    for (let i = 0; i < PARTICIPANTS; i++) {
      tickSinks[i]!.send(payload, { address: "127.0.0.1", port: shared.port });
    }
    const want = sharedDelivered + PARTICIPANTS;
    b.start();
    pollUdpSockets();
    b.end();
    if (sharedDelivered !== want) throw new Error("shared receive incomplete");
  },
});

globalThis.addEventListener("unload", () => {
  void shared.close();
  for (const s of [...tickSinks, ...perSocket]) void s.close();
  node.close();
  raw.close();
  sink.close();
  for (const s of [denoOne, ...denoMany, ffiOne, ...ffiMany, feeder, ...idle]) void s.close();
  for (const s of [...receivers.deno, ...receivers.ffi]) void s.close();
});
