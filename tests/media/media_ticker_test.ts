import assert from "node:assert/strict";
import { type Clock, FakeClock, type TimerHandle } from "../../lib/config/clock.ts";
import { setLogSink } from "../../lib/config/log.ts";
import { MediaTicker } from "../../lib/media/media_ticker.ts";

Deno.test("media ticker: one tick per 20 ms for all listeners, stepped by a FakeClock", () => {
  const clock = new FakeClock(500);
  const ticker = new MediaTicker({ clock });
  const a: number[] = [];
  const b: number[] = [];
  const removeA = ticker.add((now) => a.push(now));
  const removeB = ticker.add((now) => b.push(now));
  assert.ok(ticker.running);
  clock.advance(19);
  assert.deepEqual(a, []);
  clock.advance(1);
  assert.deepEqual(a, [520]);
  clock.advance(100);
  assert.deepEqual(a, [520, 540, 560, 580, 600, 620]);
  assert.deepEqual(b, a, "same tick drives every listener");
  assert.equal(clock.pendingTimers, 1, "one timer, not one per listener");
  removeA();
  clock.advance(20);
  assert.equal(a.length, 6);
  assert.equal(b.length, 7);
  removeB();
  assert.equal(ticker.running, false);
  assert.equal(clock.pendingTimers, 0, "stops when the last listener leaves");
  assert.equal(ticker.stats.ticks, 7);
});

/** A clock whose timers fire late by a fixed amount, to show drift correction. */
class LateClock implements Clock {
  readonly inner = new FakeClock(0);
  constructor(readonly lateMs: number) {}
  now(): number {
    return this.inner.now();
  }
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    return this.inner.setTimer(delayMs + this.lateMs, callback);
  }
}

Deno.test("media ticker: deadlines are absolute, so timer lateness does not drift", () => {
  const clock = new LateClock(3);
  const ticker = new MediaTicker({ clock });
  const at: number[] = [];
  const remove = ticker.add((now) => at.push(now));
  clock.inner.advance(2000);
  // A naive "setTimeout(20) after each tick" would tick every 23 ms: 86 ticks in 2 s.
  assert.ok(at.length >= 99 && at.length <= 100, `ticks: ${at.length}`);
  for (let i = 0; i < at.length; i++) assert.equal(at[i], (i + 1) * 20 + 3);
  remove();
});

/** A clock whose time jumps without firing timers until told (a frozen process). */
class ManualClock implements Clock {
  t = 0;
  readonly timers: { due: number; callback: () => void; live: boolean }[] = [];
  now(): number {
    return this.t;
  }
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer = { due: this.t + delayMs, callback, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }
  /** Sets the time to `to`, then fires the timers that are due. */
  jump(to: number): void {
    this.t = to;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.due <= this.t);
      if (due.length === 0) return;
      for (const timer of due) {
        timer.live = false;
        timer.callback();
      }
    }
  }
}

Deno.test("media ticker: a long stall skips missed ticks instead of bursting", () => {
  const clock = new ManualClock();
  const ticker = new MediaTicker({ clock, maxCatchUpTicks: 5 });
  const at: number[] = [];
  const remove = ticker.add((now) => at.push(now));
  clock.jump(20);
  assert.deepEqual(at, [20]);
  clock.jump(1000); // frozen for ~1 s: 49 ticks are due at once
  assert.deepEqual(at, [20, 1000], "one tick for the whole stall");
  assert.equal(ticker.stats.skippedTicks, 48);
  clock.jump(1020);
  assert.deepEqual(at, [20, 1000, 1020], "back on the 20 ms grid");
  // A short delay (3 ticks late) is caught up tick by tick.
  clock.jump(1080);
  assert.deepEqual(at.slice(3), [1080, 1080, 1080]);
  assert.equal(ticker.stats.skippedTicks, 48);
  remove();
});

Deno.test("media ticker: a listener may remove itself or add another during a tick", () => {
  const clock = new FakeClock(0);
  const ticker = new MediaTicker({ clock });
  const seen: string[] = [];
  let removeSelf: () => void = () => {};
  let removeLate: () => void = () => {};
  removeSelf = ticker.add(() => {
    seen.push("self");
    removeSelf();
    removeLate = ticker.add(() => seen.push("late"));
  });
  clock.advance(20);
  clock.advance(20);
  assert.deepEqual(seen, ["self", "late"]);
  assert.equal(clock.pendingTimers, 1);
  removeLate();
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("media ticker: a throwing listener does not stop the others", () => {
  const clock = new FakeClock(0);
  const ticker = new MediaTicker({ clock });
  let ok = 0;
  const lines: string[] = [];
  const previous = setLogSink((line) => lines.push(line));
  try {
    const r1 = ticker.add(() => {
      throw new Error("boom");
    });
    const r2 = ticker.add(() => ok++);
    clock.advance(60);
    r1();
    r2();
  } finally {
    setLogSink(previous);
  }
  assert.equal(ok, 3);
  assert.equal(lines.filter((l) => l.includes("listener failed") && l.includes("boom")).length, 3);
});

Deno.test("media ticker: tickNow runs a tick manually and measures its work", () => {
  let t = 0;
  const clock = new FakeClock(0);
  const ticker = new MediaTicker({ clock, measure: () => t });
  const remove = ticker.add(() => {
    t += 4;
  });
  ticker.tickNow();
  ticker.tickNow();
  assert.equal(ticker.stats.ticks, 2);
  assert.equal(ticker.stats.lastTickMs, 4);
  assert.equal(ticker.stats.meanTickMs, 4);
  remove();
});
