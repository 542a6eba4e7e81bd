import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import {
  JitterBuffer,
  type JitterOutput,
  type JitterPacket,
} from "../../lib/media/jitter_buffer.ts";

interface P extends JitterPacket {
  readonly id: string;
}

function pkt(seq: number, ssrc = 1, ts?: number, marker = false): P {
  const s = seq & 0xffff;
  return {
    sequenceNumber: s,
    timestamp: (ts ?? seq * 160) >>> 0,
    ssrc,
    marker,
    id: `${ssrc}:${s}`,
  };
}

function describe(out: JitterOutput<P>): string {
  if (out.kind === "packet") return out.packet.id;
  if (out.kind === "lost") return `lost:${out.sequenceNumber}`;
  return "empty";
}

/**
 * Drives a buffer for `durationMs`: packets arrive at their given times (ms), one pop every
 * 20 ms at `popPhase`. Returns the pop outputs that are not "empty" before playout started.
 */
function simulate(
  jb: JitterBuffer<P>,
  clock: FakeClock,
  arrivals: readonly { at: number; packet: P }[],
  durationMs: number,
  popPhase = 10,
): string[] {
  const sorted = [...arrivals].sort((a, b) => a.at - b.at);
  const out: string[] = [];
  let i = 0;
  const start = clock.now();
  for (let t = 0; t <= durationMs; t++) {
    while (i < sorted.length && sorted[i]!.at <= t) jb.push(sorted[i++]!.packet);
    if (t % 20 === popPhase) out.push(describe(jb.pop()));
    clock.advance(1);
  }
  assert.equal(clock.now(), start + durationMs + 1);
  return out;
}

function played(outputs: string[]): string[] {
  // Drop leading "empty" (buffering) outputs.
  const first = outputs.findIndex((o) => o !== "empty");
  return first < 0 ? [] : outputs.slice(first);
}

Deno.test("jitter buffer: steady stream plays in order without loss after the target delay", () => {
  const clock = new FakeClock(1000);
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  const arrivals = Array.from({ length: 50 }, (_, k) => ({ at: k * 20, packet: pkt(100 + k) }));
  const out = simulate(jb, clock, arrivals, 50 * 20 - 1);
  const seq = played(out).filter((o) => o !== "empty");
  assert.deepEqual(seq.slice(0, 45), Array.from({ length: 45 }, (_, k) => `1:${100 + k}`));
  assert.equal(jb.stats.lost, 0);
  assert.equal(jb.stats.targetMs, 20, "no jitter: minimum target");
  assert.ok(out.indexOf("1:100") <= 2, "starts after about one frame of buffering");
});

Deno.test("jitter buffer: reordered packets come out in sequence order", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000, minDelayMs: 60 });
  const order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8, 10, 11];
  const arrivals = order.map((k, i) => ({ at: i * 20, packet: pkt(k) }));
  const out = played(simulate(jb, clock, arrivals, 12 * 20 + 40));
  assert.deepEqual(out.slice(0, 12), order.slice().sort((a, b) => a - b).map((k) => `1:${k}`));
  assert.equal(jb.stats.lost, 0);
  assert.equal(jb.stats.late, 0);
});

Deno.test("jitter buffer: duplicates are dropped and counted", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  assert.equal(jb.push(pkt(5)), "accepted");
  assert.equal(jb.push(pkt(5)), "duplicate");
  assert.equal(jb.push(pkt(6)), "accepted");
  assert.equal(jb.push(pkt(6)), "duplicate");
  clock.advance(40);
  assert.equal(describe(jb.pop()), "1:5");
  assert.equal(describe(jb.pop()), "1:6");
  assert.equal(jb.stats.duplicates, 2);
  assert.equal(jb.push(pkt(5)), "late", "already played");
});

Deno.test("jitter buffer: a missing packet is reported lost exactly once, then late", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  const arrivals = [0, 1, 2, 4, 5, 6].map((k) => ({ at: k * 20, packet: pkt(k) }));
  const out = played(simulate(jb, clock, arrivals, 7 * 20));
  assert.deepEqual(out.slice(0, 6), ["1:0", "1:1", "1:2", "lost:3", "1:4", "1:5"]);
  assert.equal(jb.stats.lost, 1);
  assert.equal(jb.push(pkt(3)), "late");
  assert.equal(jb.stats.late, 1);
});

Deno.test("jitter buffer: sequence wrap-around is continuous", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  const arrivals = Array.from({ length: 10 }, (_, k) => ({
    at: k * 20,
    packet: pkt(65530 + k, 1, (0xffffff00 + k * 160) >>> 0),
  }));
  const out = played(simulate(jb, clock, arrivals, 10 * 20 + 20));
  assert.deepEqual(
    out.slice(0, 10),
    Array.from({ length: 10 }, (_, k) => `1:${(65530 + k) & 0xffff}`),
  );
  assert.equal(jb.stats.lost, 0);
  assert.ok(jb.stats.jitterMs < 1, "timestamp wrap does not look like jitter");
});

Deno.test("jitter buffer: target delay adapts to jitter, within bounds", () => {
  // Deterministic pseudo-random network delay 0..79 ms.
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000, maxDelayMs: 160 });
  const arrivals = Array.from({ length: 300 }, (_, k) => ({
    at: k * 20 + Math.floor(rand() * 80),
    packet: pkt(k),
  }));
  const out = played(simulate(jb, clock, arrivals, 300 * 20 + 200));
  const stats = jb.stats;
  assert.ok(stats.jitterMs > 10, `jitter measured: ${stats.jitterMs}`);
  assert.ok(stats.targetMs > 40 && stats.targetMs <= 160, `target adapted: ${stats.targetMs}`);
  const lost = out.filter((o) => o.startsWith("lost")).length;
  assert.ok(lost < 30, `adaptive delay keeps loss low: ${lost} of 300`);
  // Compare with a buffer held at the minimum delay: it loses far more.
  const clock2 = new FakeClock();
  const fixed = new JitterBuffer<P>({ clock: clock2, clockRate: 8000, maxDelayMs: 20 });
  const out2 = played(simulate(fixed, clock2, arrivals, 300 * 20 + 200));
  const lost2 = out2.filter((o) => o.startsWith("lost")).length +
    fixed.stats.late + fixed.stats.discarded;
  assert.ok(lost2 > lost * 2, `fixed 20 ms buffer loses more (${lost2} vs ${lost})`);
  assert.equal(fixed.stats.targetMs, 20, "bounded by maxDelayMs");
});

Deno.test("jitter buffer: a burst after a stall is trimmed back toward the target", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000, maxDelayMs: 100 });
  // 20 packets on time, then 15 packets held 300 ms and delivered together, then steady.
  const arrivals = Array.from({ length: 60 }, (_, k) => ({
    at: k >= 20 && k < 35 ? 35 * 20 : k * 20,
    packet: pkt(k),
  }));
  simulate(jb, clock, arrivals, 60 * 20 + 100);
  assert.ok(jb.stats.discarded > 0, "old packets were discarded");
  assert.ok(jb.stats.depthMs <= 100);
  assert.ok(jb.size <= 5, `buffer drained, holds ${jb.size}`);
});

Deno.test("jitter buffer: bounded capacity while nobody pops", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000, capacity: 32 });
  for (let k = 0; k < 500; k++) jb.push(pkt(k));
  assert.ok(jb.size <= 32, `size ${jb.size}`);
  assert.ok(jb.stats.discarded >= 500 - 32);
});

Deno.test("jitter buffer: SSRC change resynchronises", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  jb.push(pkt(10, 1));
  jb.push(pkt(11, 1));
  clock.advance(40);
  assert.equal(describe(jb.pop()), "1:10");
  assert.equal(jb.push(pkt(5000, 2)), "resync");
  jb.push(pkt(5001, 2));
  clock.advance(40);
  assert.equal(describe(jb.pop()), "2:5000");
  assert.equal(describe(jb.pop()), "2:5001");
  assert.equal(jb.stats.resyncs, 1);
});

Deno.test("jitter buffer: a big sequence jump needs a second packet to resync (RFC 3550 A.1)", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  for (let k = 0; k < 3; k++) jb.push(pkt(k));
  assert.equal(jb.push(pkt(30000)), "ignored", "one stray packet is not believed");
  assert.equal(jb.push(pkt(3)), "accepted");
  assert.equal(jb.push(pkt(40000)), "ignored");
  assert.equal(jb.push(pkt(40001)), "resync");
  jb.push(pkt(40002));
  clock.advance(60);
  assert.equal(describe(jb.pop()), "1:40001");
  assert.equal(describe(jb.pop()), "1:40002");
});

Deno.test("jitter buffer: underrun conceals briefly, then pauses; DTX resume is not late", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000, maxConcealFrames: 2 });
  // Talk-spurt 0..9, silence (no packets) for 200 ms, talk-spurt 10..19 with continuous
  // sequence numbers and a timestamp jump (RFC 3551 §4.1 silence suppression).
  const arrivals = [
    ...Array.from({ length: 10 }, (_, k) => ({ at: k * 20, packet: pkt(k) })),
    ...Array.from({ length: 10 }, (_, k) => ({
      at: 400 + k * 20,
      packet: pkt(10 + k, 1, (10 + k) * 160 + 1600, k === 0),
    })),
  ];
  const out = played(simulate(jb, clock, arrivals, 700));
  const firstGap = out.indexOf("1:9") + 1;
  assert.deepEqual(out.slice(firstGap, firstGap + 3), ["lost:10", "lost:10", "empty"]);
  assert.ok(out.includes("1:10") && out.includes("1:19"), out.join(","));
  const resumed = out.slice(out.indexOf("1:10"));
  assert.deepEqual(resumed.slice(0, 10), Array.from({ length: 10 }, (_, k) => `1:${10 + k}`));
  assert.equal(jb.stats.late, 0);
  assert.equal(jb.stats.lost, 0, "a pause is not loss");
  assert.equal(jb.stats.underruns, 2, "one for the pause, one at the end of the stream");
});

Deno.test("jitter buffer: packets delayed by a spike are still played (delay grows)", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  // From packet 5 on, the network adds 45 ms: the buffer conceals meanwhile, then plays
  // packet 5 and the rest instead of dropping them as late.
  const arrivals = Array.from({ length: 12 }, (_, k) => ({
    at: k >= 5 ? k * 20 + 45 : k * 20,
    packet: pkt(k),
  }));
  const out = played(simulate(jb, clock, arrivals, 12 * 20 + 40));
  const idx = out.indexOf("1:5");
  assert.ok(idx > 0, out.join(","));
  assert.deepEqual(out.slice(idx - 2, idx), ["lost:5", "lost:5"], "concealed while waiting");
  assert.deepEqual(out.slice(idx, idx + 7), ["1:5", "1:6", "1:7", "1:8", "1:9", "1:10", "1:11"]);
  assert.equal(jb.stats.late, 0);
  assert.equal(jb.stats.lost, 0);
  assert.equal(jb.stats.concealed, 2);
});

Deno.test("jitter buffer: a packet whose successor is already there is lost, not waited for", () => {
  const clock = new FakeClock();
  const jb = new JitterBuffer<P>({ clock, clockRate: 8000 });
  const arrivals = Array.from({ length: 12 }, (_, k) => ({
    at: k === 5 ? 5 * 20 + 45 : k * 20,
    packet: pkt(k),
  }));
  const out = played(simulate(jb, clock, arrivals, 12 * 20));
  const idx = out.indexOf("lost:5");
  assert.deepEqual(out.slice(idx, idx + 3), ["lost:5", "1:6", "1:7"]);
  assert.equal(jb.stats.lost, 1);
  assert.equal(jb.stats.late, 1, "packet 5 came after its turn");
});
