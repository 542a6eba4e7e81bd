import assert from "node:assert/strict";
import { type UdpAddress, type UdpBackendName, UdpSocket } from "../../lib/media/udp_socket.ts";

/** What a socket's handler received, awaited one datagram at a time. */
class Inbox {
  readonly #items: { data: Uint8Array; from: UdpAddress }[] = [];
  readonly #waiters: (() => void)[] = [];
  readonly handler = (data: Uint8Array, from: UdpAddress): void => {
    this.#items.push({ data, from });
    this.#waiters.shift()?.();
  };
  async next(): Promise<{ data: Uint8Array; from: UdpAddress }> {
    if (this.#items.length === 0) await new Promise<void>((r) => this.#waiters.push(r));
    return this.#items.shift()!;
  }
}

function rawSocket(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
}

function portOf(conn: Deno.DatagramConn): number {
  return (conn.addr as Deno.NetAddr).port;
}

for (const backend of ["deno", "ffi"] as const satisfies readonly UdpBackendName[]) {
  Deno.test(`udp socket (${backend}): each datagram is an exact, independent copy (RFC 3550 §11 transport)`, async () => {
    const socket = UdpSocket.bind("127.0.0.1", 0, backend);
    const peer = rawSocket();
    const inbox = new Inbox();
    socket.onDatagram(inbox.handler);
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: socket.port };
    await peer.send(Uint8Array.of(1, 2, 3, 4, 5), to);
    await peer.send(Uint8Array.of(9, 8), to);
    const got = [(await inbox.next()).data, (await inbox.next()).data];
    assert.deepEqual([...got[0]!], [1, 2, 3, 4, 5]);
    assert.deepEqual([...got[1]!], [9, 8]);
    // The receive loop reuses its buffer: the first datagram must not have been overwritten,
    // and the arrays own exactly their bytes.
    assert.notEqual(got[0]!.buffer, got[1]!.buffer);
    assert.equal(got[0]!.buffer.byteLength, 5);
    assert.equal(socket.stats.received, 2);
    peer.close();
    await socket.close();
  });

  Deno.test(`udp socket (${backend}): the source address object is kept while the source stays the same`, async () => {
    const socket = UdpSocket.bind("127.0.0.1", 0, backend);
    const a = rawSocket();
    const b = rawSocket();
    const inbox = new Inbox();
    socket.onDatagram(inbox.handler);
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: socket.port };
    const froms: UdpAddress[] = [];
    for (const [conn, byte] of [[a, 1], [a, 2], [b, 3], [a, 4]] as const) {
      await conn.send(Uint8Array.of(byte), to);
      const { data, from } = await inbox.next();
      assert.equal(data[0], byte);
      froms.push(from);
    }
    const [f1, f2, f3, f4] = froms as [UdpAddress, UdpAddress, UdpAddress, UdpAddress];
    assert.deepEqual(f1, { address: "127.0.0.1", port: portOf(a) });
    assert.equal(f2, f1, "same source: the same (immutable) object");
    assert.deepEqual(f3, { address: "127.0.0.1", port: portOf(b) }, "a new source is reported");
    assert.deepEqual(f4, { address: "127.0.0.1", port: portOf(a) }, "and the old one again");
    assert.deepEqual(f1, { address: "127.0.0.1", port: portOf(a) }, "earlier objects unchanged");
    a.close();
    b.close();
    await socket.close();
  });

  Deno.test(`udp socket (${backend}): sends arrive in order, to the destination of each call`, async () => {
    const socket = UdpSocket.bind("127.0.0.1", 0, backend);
    const first = rawSocket();
    const second = rawSocket();
    const toFirst = { address: "127.0.0.1", port: portOf(first) };
    const toSecond = { address: "127.0.0.1", port: portOf(second) };
    // Back to back without awaiting (the first sends of a socket are the ones Deno reorders).
    for (let i = 0; i < 20; i++) socket.send(Uint8Array.of(i), toFirst);
    for (let i = 0; i < 5; i++) socket.send(Uint8Array.of(100 + i), { ...toSecond });
    socket.send(Uint8Array.of(42), toFirst);
    await socket.whenIdle();
    const read = async (conn: Deno.DatagramConn, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await conn.receive())[0][0]!);
      return out;
    };
    assert.deepEqual(await read(first, 21), [...Array.from({ length: 20 }, (_, i) => i), 42]);
    assert.deepEqual(await read(second, 5), [100, 101, 102, 103, 104]);
    assert.deepEqual(socket.stats, { sent: 26, sendErrors: 0, received: 0 });
    first.close();
    second.close();
    await socket.close();
  });

  Deno.test(`udp socket (${backend}): a failed send is counted, later sends still go out`, async () => {
    const socket = UdpSocket.bind("127.0.0.1", 0, backend);
    const peer = rawSocket();
    // Port 0 is not a valid destination: the send fails.
    socket.send(Uint8Array.of(1), { address: "127.0.0.1", port: 0 });
    socket.send(Uint8Array.of(2), { address: "127.0.0.1", port: portOf(peer) });
    await socket.whenIdle();
    const [data] = await peer.receive();
    assert.deepEqual([...data], [2]);
    assert.deepEqual(socket.stats, { sent: 1, sendErrors: 1, received: 0 });
    peer.close();
    await socket.close();
    socket.send(Uint8Array.of(3), { address: "127.0.0.1", port: portOf(peer) });
    assert.equal(socket.stats.sent, 1, "nothing is sent after close");
  });
}
