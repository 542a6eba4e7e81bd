import assert from "node:assert/strict";
import {
  type MediaPorts,
  parsePortRange,
  PortPool,
  PortPoolExhaustedError,
  PortSpecError,
} from "../../lib/media/port_pool.ts";

/**
 * A random even base below the kernel's ephemeral range (32768+), so concurrently running
 * tests that bind port 0 do not collide with these fixed ranges.
 */
function randomBase(): number {
  return 20000 + 2 * Math.floor(Math.random() * 5000);
}

Deno.test("port spec: 0, single port, range, spaces; errors are SyntaxErrors", () => {
  assert.deepEqual(parsePortRange("0"), { ephemeral: true });
  assert.deepEqual(parsePortRange(0), { ephemeral: true });
  assert.deepEqual(parsePortRange("7078"), { ephemeral: false, min: 7078, max: 7078 });
  assert.deepEqual(parsePortRange(" 10000 - 20000 "), { ephemeral: false, min: 10000, max: 20000 });
  for (const bad of ["", "-", "abc", "10-", "20-10", "70000", "1-65536", "1.5", "-5"]) {
    assert.throws(() => parsePortRange(bad), PortSpecError, bad);
    assert.throws(() => parsePortRange(bad), SyntaxError, bad);
  }
});

Deno.test("port pool: range hands out distinct even ports, then is exhausted", async () => {
  const base = randomBase();
  const pool = new PortPool(`${base}-${base + 5}`, { hostname: "127.0.0.1" });
  const got: MediaPorts[] = [];
  try {
    for (let i = 0; i < 3; i++) got.push(pool.allocate());
    const ports = got.map((g) => g.port);
    assert.deepEqual([...ports].sort(), [base, base + 2, base + 4]);
    for (const g of got) assert.equal(g.rtp.port, g.port);
    assert.throws(() => pool.allocate(), PortPoolExhaustedError);
    assert.throws(() => pool.allocate(), RangeError);
    assert.equal(pool.allocatedCount, 3);
    await pool.release(got.shift()!);
    assert.equal(pool.allocatedCount, 2);
    const again = pool.allocate();
    got.push(again);
    assert.equal(again.port, base, "the released port is usable again");
  } finally {
    for (const g of got) await pool.release(g);
  }
  assert.equal(pool.allocatedCount, 0);
});

Deno.test("port pool: odd range bounds round to even ports", async () => {
  const base = randomBase() + 1; // odd
  const pool = new PortPool(`${base}-${base + 4}`, { hostname: "127.0.0.1" });
  const a = pool.allocate();
  const b = pool.allocate();
  try {
    assert.deepEqual([a.port, b.port].sort(), [base + 1, base + 3]);
    assert.throws(() => pool.allocate(), PortPoolExhaustedError);
  } finally {
    await pool.release(a);
    await pool.release(b);
  }
});

Deno.test("port pool: ports held by other programs are skipped", async () => {
  const base = randomBase();
  const squatter = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: base });
  const pool = new PortPool(`${base}-${base + 3}`, { hostname: "127.0.0.1" });
  try {
    const a = pool.allocate();
    assert.equal(a.port, base + 2);
    assert.throws(() => pool.allocate(), PortPoolExhaustedError);
    await pool.release(a);
  } finally {
    squatter.close();
  }
});

Deno.test("port pool: rotation — a just-released port is reused last", async () => {
  const base = randomBase();
  const pool = new PortPool(`${base}-${base + 7}`, { hostname: "127.0.0.1" });
  const first = pool.allocate();
  await pool.release(first);
  const second = pool.allocate();
  assert.notEqual(second.port, first.port);
  await pool.release(second);
});

Deno.test("port pool: separate RTCP port binds port + 1", async () => {
  const base = randomBase();
  const pool = new PortPool(`${base}-${base + 10}`, { hostname: "127.0.0.1" });
  const ports = pool.allocate({ rtcpPort: true });
  try {
    assert.equal(ports.port % 2, 0);
    assert.equal(ports.rtcp?.port, ports.port + 1);
  } finally {
    await pool.release(ports);
  }
  // After release both are free again: bind them directly to prove it.
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: ports.port });
  const probe2 = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: ports.port + 1,
  });
  probe.close();
  probe2.close();
});

Deno.test("port pool: single configured port is a pool of one", async () => {
  const port = randomBase();
  const pool = new PortPool(String(port), { hostname: "127.0.0.1" });
  const a = pool.allocate();
  assert.equal(a.port, port);
  assert.throws(() => pool.allocate(), PortPoolExhaustedError);
  await pool.release(a);
  const b = pool.allocate();
  assert.equal(b.port, port);
  await pool.release(b);
});

Deno.test("port pool: 0 asks the kernel, keeps even ports, can pair RTCP", async () => {
  const pool = new PortPool(0, { hostname: "127.0.0.1" });
  const list = [pool.allocate(), pool.allocate(), pool.allocate({ rtcpPort: true })];
  try {
    for (const p of list) assert.equal(p.port % 2, 0);
    assert.equal(new Set(list.map((p) => p.port)).size, 3);
    assert.equal(list[2]!.rtcp?.port, list[2]!.port + 1);
  } finally {
    for (const p of list) await pool.release(p);
  }
});

Deno.test("port pool: allocated sockets really receive datagrams", async () => {
  const pool = new PortPool(0, { hostname: "127.0.0.1" });
  const ports = pool.allocate();
  const received = new Promise<string>((resolve) => {
    ports.rtp.onDatagram((data) => resolve(new TextDecoder().decode(data)));
  });
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  await sender.send(new TextEncoder().encode("hello"), {
    transport: "udp",
    hostname: "127.0.0.1",
    port: ports.port,
  });
  assert.equal(await received, "hello");
  sender.close();
  await pool.release(ports);
});
