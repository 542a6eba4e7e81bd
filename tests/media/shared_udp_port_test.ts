import assert from "node:assert/strict";
import { type MediaPorts, PortPool } from "../../lib/media/port_pool.ts";
import {
  type SharedPortStream,
  SharedUdpPort,
  SOCKET_BUFFER_BYTES,
} from "../../lib/media/shared_udp_port.ts";
import { SEND_BATCH_SIZE } from "../../lib/media/udp_send_batch.ts";
import {
  flushUdpBatches,
  pollUdpSockets,
  type UdpAddress,
  UdpSocket,
} from "../../lib/media/udp_socket.ts";

const HOST = "127.0.0.1";

/** An RTP packet (RFC 3550 §5.1) with `ssrc` whose payload is `tag` as text. */
function rtp(ssrc: number, seq: number, tag: string): Uint8Array {
  const payload = new TextEncoder().encode(tag);
  const p = new Uint8Array(12 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 0;
  v.setUint16(2, seq);
  v.setUint32(4, seq * 160);
  v.setUint32(8, ssrc);
  p.set(payload, 12);
  return p;
}

function tagOf(data: Uint8Array): string {
  return new TextDecoder().decode(data.subarray(12));
}

/** A peer: its own libc socket, recording what it receives (tags, in order). */
class Peer {
  readonly socket = UdpSocket.bind(HOST, 0, "ffi");
  readonly got: string[] = [];
  constructor() {
    this.socket.onDatagram((data) => this.got.push(tagOf(data)));
  }
  get address(): UdpAddress {
    return { address: HOST, port: this.socket.port };
  }
  send(to: number, data: Uint8Array): void {
    this.socket.send(data, { address: HOST, port: to });
  }
}

/** A stream's receive log: `tag@port` of each datagram. */
function listen(stream: SharedPortStream): string[] {
  const got: string[] = [];
  stream.onDatagram((data, from) => got.push(`${tagOf(data)}@${from.port}`));
  return got;
}

async function withPort(
  fn: (port: SharedUdpPort, clock: { now: number }) => Promise<void> | void,
): Promise<void> {
  const clock = { now: 1000 };
  const port = SharedUdpPort.bind(HOST, 0, { backend: "ffi", now: () => clock.now });
  try {
    await fn(port, clock);
  } finally {
    await port.close();
  }
}

Deno.test("shared port: many peers on one port, each stream gets exactly its peer's datagrams", async () => {
  await withPort(async (port) => {
    const peers = Array.from({ length: 20 }, () => new Peer());
    const streams = peers.map(() => port.openStream());
    const logs = streams.map(listen);
    streams.forEach((s, i) => s.expectSource(peers[i]!.address));
    for (let round = 0; round < 3; round++) {
      peers.forEach((p, i) => p.send(port.port, rtp(0x100 + i, round, `p${i}r${round}`)));
    }
    pollUdpSockets();
    logs.forEach((log, i) => {
      const from = peers[i]!.socket.port;
      assert.deepEqual(log, [`p${i}r0@${from}`, `p${i}r1@${from}`, `p${i}r2@${from}`]);
    });
    assert.equal(port.stats.unmatched, 0);
    assert.equal(port.stats.received, 60);
    assert.equal(port.stats.learned, 0, "exact sources only");
    for (const p of peers) await p.socket.close();
  });
});

Deno.test("shared port: a stray source is dropped and counted, delivered to nobody", async () => {
  await withPort(async (port) => {
    const a = new Peer();
    const b = new Peer();
    const stray = new Peer();
    const sa = port.openStream();
    const sb = port.openStream();
    const la = listen(sa);
    const lb = listen(sb);
    sa.expectSource(a.address);
    sb.expectSource(b.address);
    a.send(port.port, rtp(1, 1, "a"));
    b.send(port.port, rtp(2, 1, "b"));
    pollUdpSockets();
    // Both streams heard: the stray (same IP, unknown port, unknown SSRC) matches no rule.
    stray.send(port.port, rtp(3, 1, "stray"));
    stray.send(port.port, new Uint8Array([1, 2, 3])); // not even RTP
    pollUdpSockets();
    assert.deepEqual(la, [`a@${a.socket.port}`]);
    assert.deepEqual(lb, [`b@${b.socket.port}`]);
    assert.equal(port.stats.unmatched, 2);
    for (const p of [a, b, stray]) await p.socket.close();
  });
});

Deno.test("shared port: two waiting streams with the stray's IP are ambiguous: dropped", async () => {
  await withPort(async (port) => {
    const stray = new Peer();
    const s1 = port.openStream();
    const s2 = port.openStream();
    const l1 = listen(s1);
    const l2 = listen(s2);
    s1.expectSource({ address: HOST, port: 9 });
    s2.expectSource({ address: HOST, port: 11 });
    stray.send(port.port, rtp(7, 1, "x"));
    pollUdpSockets();
    assert.deepEqual([l1, l2], [[], []]);
    assert.equal(port.stats.unmatched, 1);
    await stray.socket.close();
  });
});

Deno.test("shared port: NAT rule: same IP, private SDP address, SSRC after rebinding, window", async () => {
  await withPort(async (port, clock) => {
    // Rule 3: one waiting stream signalled this IP with another port.
    const wrongPort = port.openStream();
    const lw = listen(wrongPort);
    wrongPort.expectSource({ address: HOST, port: 9 });
    const p1 = new Peer();
    p1.send(port.port, rtp(0xaaa, 1, "p1"));
    pollUdpSockets();
    assert.deepEqual(lw, [`p1@${p1.socket.port}`]);

    // Rule 4: a private SDP address (RFC 1918): the lone waiting such stream.
    const natted = port.openStream();
    const ln = listen(natted);
    natted.expectSource({ address: "192.168.1.20", port: 4000 });
    const p2 = new Peer();
    p2.send(port.port, rtp(0xbbb, 1, "p2"));
    pollUdpSockets();
    assert.deepEqual(ln, [`p2@${p2.socket.port}`]);

    // Rule 2: p2 rebinds (new source port, same SSRC): still natted's stream.
    const p2b = new Peer();
    p2b.send(port.port, rtp(0xbbb, 2, "p2b"));
    // …and a new source with p1's SSRC goes to p1's stream, not to anyone waiting.
    const p1b = new Peer();
    p1b.send(port.port, rtp(0xaaa, 2, "p1b"));
    pollUdpSockets();
    assert.deepEqual(ln, [`p2@${p2.socket.port}`, `p2b@${p2b.socket.port}`]);
    assert.deepEqual(lw, [`p1@${p1.socket.port}`, `p1b@${p1b.socket.port}`]);
    assert.equal(port.stats.learned, 4);

    // Learn window: a stream waiting longer than 10 s is no candidate any more.
    const late = port.openStream();
    const ll = listen(late);
    late.expectSource({ address: "0.0.0.0", port: 0 });
    clock.now += 10_001;
    const p3 = new Peer();
    p3.send(port.port, rtp(0xccc, 1, "p3"));
    pollUdpSockets();
    assert.deepEqual(ll, []);
    // A re-INVITE (new signalled address) starts a new window.
    late.expectSource({ address: "10.1.2.3", port: 5000 });
    p3.send(port.port, rtp(0xccc, 2, "p3again"));
    pollUdpSockets();
    assert.deepEqual(ll, [`p3again@${p3.socket.port}`]);
    for (const p of [p1, p2, p2b, p1b, p3]) await p.socket.close();
  });
});

Deno.test("shared port: a re-INVITE moves the exact source; close unregisters", async () => {
  await withPort(async (port) => {
    const a = new Peer();
    const a2 = new Peer();
    const b = new Peer();
    const sa = port.openStream();
    const sb = port.openStream();
    const la = listen(sa);
    listen(sb);
    sa.expectSource(a.address);
    sb.expectSource(b.address);
    b.send(port.port, rtp(2, 1, "b"));
    a.send(port.port, rtp(1, 1, "a"));
    pollUdpSockets();
    sa.expectSource(a2.address);
    a2.send(port.port, rtp(5, 1, "a2"));
    a.send(port.port, rtp(1, 2, "old")); // the old address and its SSRC are nobody's now
    pollUdpSockets();
    assert.deepEqual(la, [`a@${a.socket.port}`, `a2@${a2.socket.port}`]);
    assert.equal(port.stats.unmatched, 1);

    await sa.close();
    assert.equal(port.streamCount, 1);
    a2.send(port.port, rtp(5, 2, "after close"));
    pollUdpSockets();
    assert.equal(la.length, 2);
    assert.equal(port.stats.unmatched, 2);
    for (const p of [a, a2, b]) await p.socket.close();
  });
});

Deno.test("shared port: sends are batched (one sendmmsg per 1024), order kept per destination", async () => {
  await withPort(async (port) => {
    const x = new Peer();
    const y = new Peer();
    const sx = port.openStream();
    const sy = port.openStream();
    const before = port.batchStats!.calls;
    // 200 each: a receiver's default socket buffer (212,992 bytes) holds ~256 small datagrams.
    for (let i = 0; i < 200; i++) {
      sx.send(rtp(1, i, `x${i}`), x.address);
      sy.send(rtp(2, i, `y${i}`), y.address);
    }
    assert.equal(sx.queuedSends, 400, "nothing left before the flush");
    flushUdpBatches();
    assert.equal(port.batchStats!.calls - before, 1, "400 datagrams, one system call");
    pollUdpSockets();
    assert.deepEqual(x.got, Array.from({ length: 200 }, (_, i) => `x${i}`));
    assert.deepEqual(y.got, Array.from({ length: 200 }, (_, i) => `y${i}`));
    assert.equal(sx.stats.sent, 200);

    // More than a batch: it leaves when full, then the rest at the flush.
    const calls = port.batchStats!.calls;
    for (let i = 0; i < SEND_BATCH_SIZE + 10; i++) sx.send(rtp(1, i, `z${i}`), x.address);
    flushUdpBatches();
    assert.equal(port.batchStats!.calls - calls, 2);
    // A datagram the socket cannot address is counted, the rest still leave.
    sx.send(rtp(1, 0, "bad"), { address: "not-an-ip", port: 1 });
    assert.equal(sx.stats.sendErrors, 1);
    await x.socket.close();
    await y.socket.close();
  });
});

Deno.test("shared port: the kernel buffers are raised (up to net.core.rmem_max)", async () => {
  await withPort((port) => {
    const max = Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_max").trim());
    // Linux doubles the value asked (capped at rmem_max) for its own bookkeeping.
    assert.equal(port.receiveBufferBytes, 2 * Math.min(max, SOCKET_BUFFER_BYTES));
  });
});

Deno.test("shared port: sends outside a tick leave at the end of the task (microtask flush)", async () => {
  await withPort(async (port) => {
    const x = new Peer();
    const s = port.openStream();
    s.send(rtp(1, 1, "now"), x.address);
    await Promise.resolve();
    await Promise.resolve();
    pollUdpSockets();
    assert.deepEqual(x.got, ["now"]);
    await x.socket.close();
  });
});

Deno.test("port pool sharing: one port for all, RTCP on port + 1, closed with the last stream", async () => {
  const base = 20000 + 2 * Math.floor(Math.random() * 5000);
  const pool = new PortPool(String(base), { hostname: HOST, sharing: "auto", backend: "ffi" });
  assert.equal(pool.sharedPort, base);
  const a = new Peer();
  const aRtcp = new Peer();
  const b = new Peer();
  const got: MediaPorts[] = [];
  try {
    got.push(pool.allocate({ rtcpPort: true }), pool.allocate(), pool.allocate());
    assert.deepEqual(got.map((g) => g.port), [base, base, base]);
    assert.equal(got[0]!.rtcp?.port, base + 1);
    assert.equal(pool.allocatedCount, 3);
    const [ga, gb] = got;
    const rtcpLog: string[] = [];
    ga!.rtcp!.onDatagram((data, from) => rtcpLog.push(`${data[1]}@${from.port}`));
    ga!.rtcp!.expectSource?.(aRtcp.address);
    const lb = listen(gb!.rtp as SharedPortStream);
    gb!.rtp.expectSource?.(b.address);
    // An RTCP RR (PT 201) from a's RTCP port reaches a's RTCP stream only.
    aRtcp.send(base + 1, new Uint8Array([0x80, 201, 0, 1, 0, 0, 0, 1]));
    b.send(base, rtp(2, 1, "b"));
    pollUdpSockets();
    assert.deepEqual(rtcpLog, [`201@${aRtcp.socket.port}`]);
    assert.deepEqual(lb, [`b@${b.socket.port}`]);

    for (const g of got.splice(0)) await pool.release(g);
    assert.equal(pool.allocatedCount, 0);
    assert.equal(pool.shared, undefined, "shared socket closed with the last stream");
    // Both ports are free again.
    const again = UdpSocket.bind(HOST, base, "ffi");
    const againRtcp = UdpSocket.bind(HOST, base + 1, "ffi");
    await again.close();
    await againRtcp.close();
  } finally {
    for (const g of got) await pool.release(g);
    for (const p of [a, aRtcp, b]) await p.socket.close();
  }
});

Deno.test("port pool sharing: off keeps one stream per single port; on shares a range's first even port", async () => {
  const base = 20000 + 2 * Math.floor(Math.random() * 5000);
  const off = new PortPool(String(base), { hostname: HOST, sharing: "off" });
  assert.equal(off.sharedPort, undefined);
  const on = new PortPool(`${base + 3}-${base + 9}`, { hostname: HOST, sharing: "on" });
  assert.equal(on.sharedPort, base + 4);
  const auto = new PortPool(`${base}-${base + 9}`, { hostname: HOST, sharing: "auto" });
  assert.equal(auto.sharedPort, undefined, "auto: a range keeps a socket per stream");
  const x = on.allocate();
  const y = on.allocate();
  assert.equal(x.rtp.port, base + 4);
  assert.equal(y.rtp.port, base + 4);
  await on.release(x);
  await on.release(x); // twice: no harm
  assert.equal(on.allocatedCount, 1);
  await on.release(y);
  assert.equal(on.allocatedCount, 0);
});

Deno.test("shared port: streams signalling one source (SIPp: all calls from one port) are split by SSRC", async () => {
  await withPort(async (port) => {
    const device = new Peer();
    const other = new Peer();
    const s1 = port.openStream();
    const s2 = port.openStream();
    const s3 = port.openStream();
    const [l1, l2, l3] = [listen(s1), listen(s2), listen(s3)];
    s1.expectSource(device.address);
    s2.expectSource(device.address);
    s3.expectSource(other.address);
    device.send(port.port, rtp(0xa, 1, "A1"));
    device.send(port.port, rtp(0xb, 1, "B1"));
    device.send(port.port, rtp(0xa, 2, "A2"));
    device.send(port.port, rtp(0xc, 1, "C1")); // a third call's SSRC: no stream left for it
    other.send(port.port, rtp(0xa, 1, "other")); // same SSRC as A, another device: its own stream
    pollUdpSockets();
    const d = device.socket.port;
    assert.deepEqual(l1, [`A1@${d}`, `A2@${d}`]);
    assert.deepEqual(l2, [`B1@${d}`]);
    assert.deepEqual(l3, [`other@${other.socket.port}`]);
    assert.equal(port.stats.unmatched, 1);
    assert.equal(port.stats.sharedSources, 1);
    // The first call ends: B still reaches the second.
    await s1.close();
    device.send(port.port, rtp(0xb, 2, "B2"));
    pollUdpSockets();
    assert.deepEqual(l2, [`B1@${d}`, `B2@${d}`]);
    await device.socket.close();
    await other.socket.close();
  });
});

Deno.test("shared port on the Deno socket backend: same demux, sends without batching", async () => {
  const port = SharedUdpPort.bind(HOST, 0, { backend: "deno" });
  const a = new Peer();
  const b = new Peer();
  try {
    assert.equal(port.socket.backend, "deno");
    assert.equal(port.batchStats, undefined);
    const sa = port.openStream();
    const sb = port.openStream();
    const la = listen(sa);
    const lb = listen(sb);
    sa.expectSource(a.address);
    sb.expectSource(b.address);
    a.send(port.port, rtp(1, 1, "a"));
    b.send(port.port, rtp(2, 1, "b"));
    for (let i = 0; i < 10_000 && la.length + lb.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    assert.deepEqual(la, [`a@${a.socket.port}`]);
    assert.deepEqual(lb, [`b@${b.socket.port}`]);
    sb.send(rtp(3, 1, "to b"), b.address);
    await sb.whenIdle();
    for (let i = 0; i < 10_000 && b.got.length < 1; i++) {
      pollUdpSockets();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    assert.deepEqual(b.got, ["to b"]);
  } finally {
    await a.socket.close();
    await b.socket.close();
    await port.close();
  }
});
