import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { FfiUdpSocket, udpPoller } from "../../lib/media/ffi_udp_socket.ts";
import { libc } from "../../lib/media/libc_udp.ts";
import { MediaTicker } from "../../lib/media/media_ticker.ts";
import { pollUdpSockets, type UdpAddress, UdpSocket } from "../../lib/media/udp_socket.ts";

const ignore = libc() === null;

interface Received {
  readonly data: number[];
  readonly from: UdpAddress;
}

function collect(socket: FfiUdpSocket): Received[] {
  const got: Received[] = [];
  socket.onDatagram((data, from) => got.push({ data: [...data], from }));
  return got;
}

/** Polls until `done()` (datagrams on loopback are queued by the sending system call). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i > 1000) throw new Error("datagrams did not arrive");
    pollUdpSockets();
    if (!done()) await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}

/** The socket inodes (`socket:[N]`) open in this process. */
function openSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      if (target.startsWith("socket:")) inodes.add(target);
    } catch {
      // closed meanwhile (other tests run in this process too)
    }
  }
  return inodes;
}

/** The inode behind one of our descriptors. */
function inodeOf(fd: number): string {
  return Deno.readLinkSync(`/proc/self/fd/${fd}`);
}

function ipv6Loopback(): boolean {
  try {
    const probe = FfiUdpSocket.bind("::1", 0);
    void probe.close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "ffi udp: auto picks libc sockets with --allow-ffi; deno stays selectable",
  ignore,
  async fn() {
    const auto = UdpSocket.bind("127.0.0.1", 0);
    const deno = UdpSocket.bind("127.0.0.1", 0, "deno");
    assert.equal(auto.backend, "ffi");
    assert.equal(deno.backend, "deno");
    await auto.close();
    await deno.close();
  },
});

Deno.test({
  name: "ffi udp: one poll delivers a batch larger than recvmmsg's, in order, with the source",
  ignore,
  async fn() {
    const a = FfiUdpSocket.bind("127.0.0.1", 0);
    const b = FfiUdpSocket.bind("127.0.0.1", 0);
    const got = collect(b);
    for (let i = 0; i < 100; i++) {
      a.send(Uint8Array.of(i, i ^ 0xff), { address: "127.0.0.1", port: b.port });
    }
    assert.deepEqual(a.stats, { sent: 100, sendErrors: 0, received: 0 });
    pollUdpSockets();
    assert.equal(got.length, 100, "all queued datagrams in one poll (32 per recvmmsg)");
    assert.deepEqual(got.map((r) => r.data), Array.from({ length: 100 }, (_, i) => [i, i ^ 0xff]));
    for (const r of got) assert.equal(r.from, got[0]!.from, "one source: one address object");
    assert.deepEqual(got[0]!.from, { address: "127.0.0.1", port: a.port });
    assert.equal(b.stats.received, 100);
    await a.close();
    await b.close();
  },
});

Deno.test({
  name: "ffi udp: datagrams are exact copies that later receives do not overwrite",
  ignore,
  async fn() {
    const a = FfiUdpSocket.bind("127.0.0.1", 0);
    const b = FfiUdpSocket.bind("127.0.0.1", 0);
    const arrays: Uint8Array[] = [];
    b.onDatagram((data) => arrays.push(data));
    a.send(Uint8Array.of(1, 2, 3, 4, 5), { address: "127.0.0.1", port: b.port });
    pollUdpSockets();
    a.send(Uint8Array.of(9, 8), { address: "127.0.0.1", port: b.port });
    pollUdpSockets();
    assert.deepEqual(arrays.map((x) => [...x]), [[1, 2, 3, 4, 5], [9, 8]]);
    assert.equal(arrays[0]!.buffer.byteLength, 5, "owns exactly its bytes");
    const big = new Uint8Array(1500).map((_, i) => i & 0xff);
    a.send(big, { address: "127.0.0.1", port: b.port });
    await until(() => arrays.length === 3);
    assert.deepEqual(arrays[2], big);
    await a.close();
    await b.close();
  },
});

Deno.test({
  name: "ffi udp: talks with Deno sockets both ways; each source is reported (symmetric RTP)",
  ignore,
  async fn() {
    const ours = FfiUdpSocket.bind("127.0.0.1", 0);
    const got = collect(ours);
    const p1 = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const p2 = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: ours.port };
    await p1.send(Uint8Array.of(1), to);
    await until(() => got.length === 1);
    await p2.send(Uint8Array.of(2), to);
    await until(() => got.length === 2);
    await p1.send(Uint8Array.of(3), to);
    await until(() => got.length === 3);
    const port = (c: Deno.DatagramConn) => (c.addr as Deno.NetAddr).port;
    assert.deepEqual(got.map((r) => r.from), [
      { address: "127.0.0.1", port: port(p1) },
      { address: "127.0.0.1", port: port(p2) },
      { address: "127.0.0.1", port: port(p1) },
    ]);
    // Reply to the address seen (latching): the Deno socket receives it from our port.
    ours.send(Uint8Array.of(42), got[1]!.from);
    const [data, from] = await p2.receive();
    assert.deepEqual([...data], [42]);
    assert.equal((from as Deno.NetAddr).port, ours.port);
    p1.close();
    p2.close();
    await ours.close();
  },
});

Deno.test({
  name: "ffi udp: IPv6 loopback, and IPv4 peers on a dual-stack socket as ::ffff:a.b.c.d",
  ignore: ignore || !ipv6Loopback(),
  async fn() {
    const a = FfiUdpSocket.bind("::1", 0);
    const b = FfiUdpSocket.bind("::", 0);
    const v4 = FfiUdpSocket.bind("127.0.0.1", 0);
    assert.equal(a.hostname, "::1");
    assert.equal(b.hostname, "::");
    const got = collect(b);
    a.send(Uint8Array.of(6), { address: "::1", port: b.port });
    v4.send(Uint8Array.of(4), { address: "127.0.0.1", port: b.port });
    await until(() => got.length === 2);
    const froms = got.sort((x, y) => x.data[0]! - y.data[0]!).map((r) => r.from);
    assert.deepEqual(froms, [
      { address: "::ffff:127.0.0.1", port: v4.port },
      { address: "::1", port: a.port },
    ]);
    // Replies to both sources, as seen: the IPv4-mapped one reaches the IPv4 socket.
    const back = collect(v4);
    const backV6 = collect(a);
    b.send(Uint8Array.of(44), froms[0]!);
    b.send(Uint8Array.of(66), froms[1]!);
    b.send(Uint8Array.of(45), { address: "127.0.0.1", port: v4.port }); // plain IPv4: mapped
    await until(() => back.length === 2 && backV6.length === 1);
    assert.deepEqual(back.map((r) => r.data[0]), [44, 45]);
    assert.deepEqual(backV6[0], { data: [66], from: { address: "::1", port: b.port } });
    await Promise.all([a.close(), b.close(), v4.close()]);
  },
});

Deno.test({
  name: "ffi udp: failed sends are counted, never thrown; a closed port is no error",
  ignore,
  async fn() {
    const a = FfiUdpSocket.bind("127.0.0.1", 0);
    const peer = FfiUdpSocket.bind("127.0.0.1", 0);
    const closedPort = peer.port;
    await peer.close();
    a.send(Uint8Array.of(1), { address: "127.0.0.1", port: closedPort });
    a.send(Uint8Array.of(1), { address: "127.0.0.1", port: closedPort });
    assert.deepEqual(a.stats, { sent: 2, sendErrors: 0, received: 0 }, "the kernel took them");
    a.send(Uint8Array.of(2), { address: "127.0.0.1", port: 0 }); // EINVAL
    a.send(Uint8Array.of(3), { address: "sip.example.invalid", port: 5004 }); // no literal
    a.send(Uint8Array.of(4), { address: "::1", port: 5004 }); // IPv6 from an IPv4 socket
    assert.deepEqual(a.stats, { sent: 2, sendErrors: 3, received: 0 });
    const b = FfiUdpSocket.bind("127.0.0.1", 0);
    const got = collect(b);
    a.send(Uint8Array.of(5), { address: "127.0.0.1", port: b.port });
    await until(() => got.length === 1);
    assert.deepEqual(got[0]!.data, [5], "later sends still go out");
    // ICMP port unreachable from the closed port must not break receiving.
    await a.close();
    a.send(Uint8Array.of(6), { address: "127.0.0.1", port: b.port });
    assert.equal(a.stats.sent, 3, "nothing is sent after close");
    await b.close();
  },
});

Deno.test({
  name: "ffi udp: binding a taken port throws AddrInUse (taken by ours or by Deno's)",
  ignore,
  async fn() {
    const ours = FfiUdpSocket.bind("127.0.0.1", 0);
    const theirs = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    assert.throws(() => FfiUdpSocket.bind("127.0.0.1", ours.port), Deno.errors.AddrInUse);
    assert.throws(
      () => FfiUdpSocket.bind("127.0.0.1", (theirs.addr as Deno.NetAddr).port),
      Deno.errors.AddrInUse,
    );
    assert.throws(() => FfiUdpSocket.bind("localhost", 0), TypeError);
    theirs.close();
    await ours.close();
  },
});

Deno.test({
  name: "ffi udp: closing closes the file descriptor (no fd leak over many sockets)",
  ignore,
  async fn() {
    const warm = FfiUdpSocket.bind("127.0.0.1", 0); // the poller's epoll fd exists from here
    warm.onDatagram(() => {});
    // Other test files run in this process at the same time, so the check follows our own
    // sockets' inodes rather than counting every descriptor.
    const sockets = Array.from({ length: 300 }, () => FfiUdpSocket.bind("127.0.0.1", 0));
    sockets.forEach((s, i) => i % 2 === 0 && s.onDatagram(() => {}));
    const ours = sockets.map((s) => inodeOf(s.fd));
    assert.equal(new Set(ours).size, 300, "300 distinct sockets");
    const opened = openSocketInodes();
    for (const inode of ours) assert.ok(opened.has(inode));
    for (const s of sockets) warm.send(Uint8Array.of(1), { address: "127.0.0.1", port: s.port });
    await Promise.all(sockets.map((s) => s.close()));
    await sockets[0]!.close(); // idempotent
    const open = openSocketInodes();
    assert.equal(ours.filter((inode) => open.has(inode)).length, 0, "every fd closed");
    assert.equal(udpPoller(false)?.socketCount, 1, "only the warm socket stays registered");
    pollUdpSockets(); // events of closed sockets are not delivered
    await warm.close();
    assert.equal(udpPoller(false)?.socketCount, 0);
  },
});

Deno.test({
  name: "ffi udp: a handler closing its socket or throwing does not disturb the poll",
  ignore,
  async fn() {
    const sender = FfiUdpSocket.bind("127.0.0.1", 0);
    const closing = FfiUdpSocket.bind("127.0.0.1", 0);
    const throwing = FfiUdpSocket.bind("127.0.0.1", 0);
    let closingGot = 0;
    closing.onDatagram(() => {
      closingGot++;
      void closing.close();
    });
    let throwingGot = 0;
    throwing.onDatagram(() => {
      throwingGot++;
      throw new Error("handler bug");
    });
    for (let i = 0; i < 5; i++) {
      sender.send(Uint8Array.of(i), { address: "127.0.0.1", port: closing.port });
      sender.send(Uint8Array.of(i), { address: "127.0.0.1", port: throwing.port });
    }
    pollUdpSockets();
    assert.equal(closingGot, 1, "nothing is delivered after close");
    assert.equal(throwingGot, 5);
    await Promise.all([sender.close(), throwing.close()]);
  },
});

Deno.test({
  name: "ffi udp: a datagram longer than 2 KiB is dropped and counted",
  ignore,
  async fn() {
    const a = FfiUdpSocket.bind("127.0.0.1", 0);
    const b = FfiUdpSocket.bind("127.0.0.1", 0);
    const got = collect(b);
    a.send(new Uint8Array(3000), { address: "127.0.0.1", port: b.port });
    a.send(Uint8Array.of(7), { address: "127.0.0.1", port: b.port });
    pollUdpSockets();
    assert.deepEqual(got.map((r) => r.data), [[7]]);
    assert.equal(b.truncated, 1);
    await a.close();
    await b.close();
  },
});

Deno.test({
  name: "ffi udp: the media ticker delivers waiting datagrams before its listeners run",
  ignore,
  async fn() {
    const clock = new FakeClock(0);
    const ticker = new MediaTicker({ clock });
    const a = FfiUdpSocket.bind("127.0.0.1", 0);
    const b = FfiUdpSocket.bind("127.0.0.1", 0);
    const got = collect(b);
    const seen: number[] = [];
    const remove = ticker.add(() => seen.push(got.length));
    a.send(Uint8Array.of(1), { address: "127.0.0.1", port: b.port });
    a.send(Uint8Array.of(2), { address: "127.0.0.1", port: b.port });
    clock.advance(20);
    a.send(Uint8Array.of(3), { address: "127.0.0.1", port: b.port });
    clock.advance(20);
    assert.deepEqual(seen, [2, 3]);
    remove();
    await a.close();
    await b.close();
  },
});
