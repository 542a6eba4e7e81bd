import assert from "node:assert/strict";
import {
  DEFAULT_TIMER_BASE,
  deriveTimers,
  isReliableTransport,
  TimerConfigError,
} from "../../lib/transaction/timers.ts";

Deno.test("timers: RFC 3261 Appendix A values for UDP", () => {
  const t = deriveTimers(DEFAULT_TIMER_BASE, false);
  assert.deepEqual(
    [t.a, t.b, t.d, t.e, t.f, t.g, t.h, t.i, t.j, t.k, t.l, t.m],
    [500, 32000, 32000, 500, 32000, 500, 32000, 5000, 32000, 5000, 32000, 32000],
  );
});

Deno.test("timers: reliable transports zero A, D, E, G, I, J, K", () => {
  const t = deriveTimers(DEFAULT_TIMER_BASE, true);
  assert.deepEqual(
    [t.a, t.b, t.d, t.e, t.f, t.g, t.h, t.i, t.j, t.k, t.l, t.m],
    [0, 32000, 0, 0, 32000, 0, 32000, 0, 0, 0, 32000, 32000],
  );
});

Deno.test("timers: derived from configured T1/T2/T4; Timer D stays >= 32 s", () => {
  const t = deriveTimers({ t1: 100, t2: 1000, t4: 2000 }, false);
  assert.equal(t.a, 100);
  assert.equal(t.b, 6400);
  assert.equal(t.d, 32000);
  assert.equal(t.i, 2000);
  assert.equal(t.k, 2000);
  assert.equal(deriveTimers({ t1: 1000, t2: 4000, t4: 5000 }, false).d, 64000);
});

Deno.test("timers: invalid bases are rejected", () => {
  assert.throws(() => deriveTimers({ t1: 0, t2: 4000, t4: 5000 }, false), TimerConfigError);
  assert.throws(() => deriveTimers({ t1: 500, t2: 100, t4: 5000 }, false), TimerConfigError);
  assert.throws(() => deriveTimers({ t1: 500, t2: 4000, t4: NaN }, true), RangeError);
});

Deno.test("timers: only UDP is unreliable", () => {
  assert.equal(isReliableTransport("udp"), false);
  assert.equal(isReliableTransport("TCP"), true);
  assert.equal(isReliableTransport("TLS"), true);
});
