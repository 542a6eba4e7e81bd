/**
 * The one media clock of the server: a single 20 ms tick (RFC 3551 §4.2 default packet
 * time) that drives every conference's mixing, instead of a timer per participant.
 *
 * Ticks are scheduled on absolute deadlines (`start + n × interval`), so timer lateness does
 * not accumulate (no drift). When the process falls behind by more than `maxCatchUpTicks`,
 * the missed ticks are skipped and counted rather than fired in a burst. Time comes from an
 * injected `Clock`: tests advance a `FakeClock` by 20 ms per tick, or call `tickNow()`.
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";
import { createLogger } from "../config/log.ts";
import { flushUdpBatches, pollUdpSockets } from "./udp_socket.ts";

const log = createLogger("media.ticker");

/** Called once per tick with the clock time and the tick number. */
export type TickListener = (now: number, tick: number) => void;

/** Options of {@link MediaTicker}. */
export interface MediaTickerOptions {
  readonly clock: Clock;
  /** Tick interval. Default 20 ms. */
  readonly intervalMs?: number;
  /** Missed ticks fired back to back before skipping. Default 5. */
  readonly maxCatchUpTicks?: number;
  /** Clock for measuring the work of a tick (CPU cost). Default `performance.now`. */
  readonly measure?: () => number;
  /**
   * Runs at the start of every tick, before the listeners. Default: deliver the datagrams
   * waiting on libc media sockets (`pollUdpSockets`), so the mix includes everything that
   * arrived before the tick.
   */
  readonly beforeTick?: () => void;
  /**
   * Runs at the end of every tick, after the listeners. Default: send the datagrams the
   * tick batched on shared media ports (`flushUdpBatches`: one `sendmmsg` per port).
   */
  readonly afterTick?: () => void;
}

/** Counters of a {@link MediaTicker}. */
export interface MediaTickerStats {
  readonly ticks: number;
  readonly skippedTicks: number;
  /** Work time of the last tick, ms. */
  readonly lastTickMs: number;
  /** Longest tick work time seen, ms. */
  readonly maxTickMs: number;
  /** Mean tick work time, ms. */
  readonly meanTickMs: number;
}

/**
 * A drift-corrected periodic tick shared by all conferences. It runs while it has listeners:
 * the first {@link add} starts it, removing the last stops it (no timer left behind).
 */
export class MediaTicker {
  readonly intervalMs: number;
  readonly #clock: Clock;
  readonly #maxCatchUp: number;
  readonly #measure: () => number;
  readonly #beforeTick: () => void;
  readonly #afterTick: () => void;
  readonly #listeners = new Set<TickListener>();
  #timer: TimerHandle | undefined;
  #firing = false;
  #origin = 0;
  #scheduled = 0;
  #ticks = 0;
  #skipped = 0;
  #lastTickMs = 0;
  #maxTickMs = 0;
  #totalTickMs = 0;

  constructor(options: MediaTickerOptions) {
    this.#clock = options.clock;
    this.intervalMs = options.intervalMs ?? 20;
    this.#maxCatchUp = options.maxCatchUpTicks ?? 5;
    this.#measure = options.measure ?? (() => performance.now());
    this.#beforeTick = options.beforeTick ?? pollUdpSockets;
    this.#afterTick = options.afterTick ?? flushUdpBatches;
  }

  /** True while the timer runs. */
  get running(): boolean {
    return this.#timer !== undefined || this.#firing;
  }

  /** Number of listeners. */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /** Counters. */
  get stats(): MediaTickerStats {
    return {
      ticks: this.#ticks,
      skippedTicks: this.#skipped,
      lastTickMs: this.#lastTickMs,
      maxTickMs: this.#maxTickMs,
      meanTickMs: this.#ticks === 0 ? 0 : this.#totalTickMs / this.#ticks,
    };
  }

  /** Adds a listener (starting the ticker if idle); returns its removal function. */
  add(listener: TickListener): () => void {
    this.#listeners.add(listener);
    if (!this.#timer && !this.#firing) this.#start();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stop();
    };
  }

  #start(): void {
    this.#origin = this.#clock.now();
    this.#scheduled = 0;
    this.#arm();
  }

  #stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #arm(): void {
    const due = this.#origin + (this.#scheduled + 1) * this.intervalMs;
    this.#timer = this.#clock.setTimer(due - this.#clock.now(), () => this.#onTimer());
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#firing = true;
    const now = this.#clock.now();
    const elapsedTicks = Math.floor((now - this.#origin) / this.intervalMs);
    let due = elapsedTicks - this.#scheduled;
    if (due > this.#maxCatchUp) {
      this.#skipped += due - 1;
      this.#scheduled += due - 1;
      due = 1;
      log.warn("media tick fell behind; skipping", { skipped: this.#skipped });
    }
    for (let i = 0; i < due && this.#listeners.size > 0; i++) {
      this.#scheduled++;
      this.tickNow();
    }
    this.#firing = false;
    if (this.#listeners.size > 0) this.#arm();
  }

  /** Runs one tick immediately (the timer path calls this; tests may call it directly). */
  tickNow(): void {
    const now = this.#clock.now();
    const tick = this.#ticks++;
    const started = this.#measure();
    try {
      this.#beforeTick();
    } catch (error) {
      log.error("media tick preparation failed", { error });
    }
    // A snapshot: listeners added during the tick start on the next one; removed ones stop.
    for (const listener of [...this.#listeners]) {
      if (!this.#listeners.has(listener)) continue;
      try {
        listener(now, tick);
      } catch (error) {
        log.error("media tick listener failed", { error });
      }
    }
    try {
      this.#afterTick();
    } catch (error) {
      log.error("media tick flush failed", { error });
    }
    const spent = this.#measure() - started;
    this.#lastTickMs = spent;
    this.#totalTickMs += spent;
    if (spent > this.#maxTickMs) this.#maxTickMs = spent;
  }
}
