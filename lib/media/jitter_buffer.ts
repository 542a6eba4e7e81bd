/**
 * An adaptive, bounded jitter buffer for one audio RTP stream (RFC 3550 §5.1 sequence numbers
 * order the packets; A.8-style interarrival jitter sizes the playout delay).
 *
 * The consumer calls {@link JitterBuffer.pop} once per frame it needs (the media tick):
 * - `packet`: the next packet in sequence order;
 * - `lost`: that packet is missing — the decoder conceals one frame (Opus PLC, G.711 fade);
 * - `empty`: nothing to play (before playout starts, or the stream paused: DTX, hold).
 *
 * Playout starts once the buffered media reaches the target delay (or the first packet has
 * waited that long). The target is `packet duration + jitterFactor × jitter`, clamped to
 * [minDelayMs, maxDelayMs]; it grows at each talk-spurt start (rebuffering after an
 * underrun) and the buffer shrinks by discarding a packet when it runs well above target.
 * Duplicates and packets whose turn has passed are dropped; an SSRC change or a sequence jump
 * beyond the window (confirmed by a second packet, as RFC 3550 A.1 does) resynchronises.
 * @module
 */

import type { Clock } from "../config/clock.ts";

/** The fields the buffer needs from an RTP packet. */
export interface JitterPacket {
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly marker: boolean;
}

/** What {@link JitterBuffer.pop} hands out for one frame. */
export type JitterOutput<T extends JitterPacket> =
  | { readonly kind: "packet"; readonly packet: T }
  | { readonly kind: "lost"; readonly sequenceNumber: number }
  | { readonly kind: "empty" };

/** Outcome of {@link JitterBuffer.push}. */
export type JitterPushResult =
  | "accepted"
  | "duplicate"
  | "late"
  /** Out of the window once: kept back until a second packet confirms the jump. */
  | "ignored"
  /** The buffer was reset (new SSRC or confirmed jump) and the packet accepted. */
  | "resync";

/** Options of {@link JitterBuffer}. */
export interface JitterBufferOptions {
  readonly clock: Clock;
  /** RTP clock rate of the stream. */
  readonly clockRate: number;
  /** Nominal packet duration until measured. Default 20 ms. */
  readonly frameMs?: number;
  /** Lower bound of the target delay. Default 20 ms. */
  readonly minDelayMs?: number;
  /** Upper bound of the target delay and of buffered media. Default 200 ms. */
  readonly maxDelayMs?: number;
  /** Slots (packets) held at most; rounded up to a power of two. Default 64. */
  readonly capacity?: number;
  /** Target = packet duration + jitterFactor × jitter. Default 3. */
  readonly jitterFactor?: number;
  /** Concealed frames handed out on underrun before declaring the stream paused. Default 3. */
  readonly maxConcealFrames?: number;
}

/** Counters of a {@link JitterBuffer}. */
export interface JitterBufferStats {
  readonly pushed: number;
  readonly played: number;
  /** Sequence numbers that never arrived in time. */
  readonly lost: number;
  /** Frames concealed while the buffer ran dry (a packet may still have come). */
  readonly concealed: number;
  readonly duplicates: number;
  readonly late: number;
  /** Packets dropped to shrink the delay or to make room. */
  readonly discarded: number;
  readonly resyncs: number;
  readonly underruns: number;
  readonly jitterMs: number;
  readonly targetMs: number;
  /** Media buffered ahead of the playout point, in ms. */
  readonly depthMs: number;
}

/** RFC 3550 A.1: packets this far behind the playout point may be a sender restart. */
const MAX_MISORDER = 100;
/** First extended sequence number: keeps extended values positive. */
const EXT_BASE = 1 << 20;
/** Longest packet duration believed when measuring (Opus allows 120 ms). */
const MAX_PACKET_MS = 120;
/** The one `empty` output (it carries nothing, so every pop can hand out the same object). */
const EMPTY: JitterOutput<never> = Object.freeze({ kind: "empty" });

/** An adaptive jitter buffer; see the module documentation. */
export class JitterBuffer<T extends JitterPacket = JitterPacket> {
  readonly #clock: Clock;
  readonly #clockRate: number;
  readonly #minDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #jitterFactor: number;
  readonly #maxConceal: number;
  readonly #mask: number;
  /**
   * Ring of packets indexed by extended sequence number & mask, with the extended number
   * of each slot's packet beside it (two flat arrays: no object per stored packet).
   */
  readonly #slots: (T | undefined)[];
  readonly #slotExt: Float64Array;
  readonly #defaultFrameMs: number;
  #packetMs: number;
  #ssrc: number | undefined;
  #highest: number | undefined;
  #highestTs = 0;
  #next: number | undefined;
  #count = 0;
  #playing = false;
  #bufferingSince: number | undefined;
  #concealRun = 0;
  #badSeq: number | undefined;
  #lastArrival: number | undefined;
  #lastTs = 0;
  #jitterMs = 0;
  #pushed = 0;
  #played = 0;
  #lost = 0;
  #concealed = 0;
  #duplicates = 0;
  #late = 0;
  #discarded = 0;
  #resyncs = 0;
  #underruns = 0;

  constructor(options: JitterBufferOptions) {
    this.#clock = options.clock;
    this.#clockRate = options.clockRate;
    this.#defaultFrameMs = options.frameMs ?? 20;
    this.#packetMs = this.#defaultFrameMs;
    this.#minDelayMs = options.minDelayMs ?? 20;
    this.#maxDelayMs = Math.max(this.#minDelayMs, options.maxDelayMs ?? 200);
    this.#jitterFactor = options.jitterFactor ?? 3;
    this.#maxConceal = options.maxConcealFrames ?? 3;
    let size = 8;
    while (size < (options.capacity ?? 64)) size *= 2;
    this.#mask = size - 1;
    this.#slots = new Array(size).fill(undefined);
    this.#slotExt = new Float64Array(size).fill(-1);
  }

  /** Current target playout delay in ms. */
  get targetMs(): number {
    const raw = this.#packetMs + this.#jitterFactor * this.#jitterMs;
    return Math.min(this.#maxDelayMs, Math.max(this.#minDelayMs, raw));
  }

  /** Buffered media ahead of the playout point, in ms. */
  get depthMs(): number {
    if (this.#count === 0 || this.#highest === undefined) return 0;
    const from = this.#next ?? this.#lowest();
    return (this.#highest - from + 1) * this.#packetMs;
  }

  /** True while frames are being played out (not buffering). */
  get playing(): boolean {
    return this.#playing;
  }

  /** Packets currently held. */
  get size(): number {
    return this.#count;
  }

  /** Counters. */
  get stats(): JitterBufferStats {
    return {
      pushed: this.#pushed,
      played: this.#played,
      lost: this.#lost,
      concealed: this.#concealed,
      duplicates: this.#duplicates,
      late: this.#late,
      discarded: this.#discarded,
      resyncs: this.#resyncs,
      underruns: this.#underruns,
      jitterMs: this.#jitterMs,
      targetMs: this.targetMs,
      depthMs: this.depthMs,
    };
  }

  /** Forgets every packet and the stream position (keeps counters and the jitter estimate). */
  reset(): void {
    this.#slots.fill(undefined);
    this.#slotExt.fill(-1);
    this.#count = 0;
    this.#highest = undefined;
    this.#next = undefined;
    this.#playing = false;
    this.#bufferingSince = undefined;
    this.#concealRun = 0;
    this.#badSeq = undefined;
    this.#lastArrival = undefined;
    this.#packetMs = this.#defaultFrameMs;
  }

  #extend(seq: number, reference: number): number {
    const delta = ((seq - (reference & 0xffff) + 0x18000) & 0xffff) - 0x8000;
    return reference + delta;
  }

  #lowest(): number {
    const highest = this.#highest!;
    for (let ext = highest - this.#mask; ext <= highest; ext++) {
      if (this.#slotExt[ext & this.#mask] === ext) return ext;
    }
    return highest;
  }

  /** Adds one arrived packet. */
  push(packet: T): JitterPushResult {
    this.#pushed++;
    let result: JitterPushResult = "accepted";
    if (this.#ssrc !== undefined && packet.ssrc !== this.#ssrc) {
      this.reset();
      this.#resyncs++;
      result = "resync";
    }
    this.#ssrc = packet.ssrc;
    if (this.#highest === undefined) {
      const ext = EXT_BASE + packet.sequenceNumber;
      this.#store(ext, packet);
      return result;
    }
    const ext = this.#extend(packet.sequenceNumber, this.#highest);
    const floor = this.#next ?? this.#highest - this.#mask;
    const tooOld = ext < floor;
    const tooNew = ext > this.#highest + this.#mask;
    if ((tooOld && floor - ext > MAX_MISORDER) || tooNew) {
      // RFC 3550 A.1: a big jump is believed only when the next packet continues it.
      if (this.#badSeq === packet.sequenceNumber) {
        this.reset();
        this.#resyncs++;
        this.#ssrc = packet.ssrc;
        this.#store(EXT_BASE + packet.sequenceNumber, packet);
        return "resync";
      }
      this.#badSeq = (packet.sequenceNumber + 1) & 0xffff;
      return "ignored";
    }
    this.#badSeq = undefined;
    if (tooOld) {
      this.#late++;
      return "late";
    }
    if (this.#slotExt[ext & this.#mask] === ext) {
      this.#duplicates++;
      return "duplicate";
    }
    this.#store(ext, packet);
    return result;
  }

  #store(ext: number, packet: T): void {
    const now = this.#clock.now();
    // Make room: a slot still holding an older packet (window overrun) is discarded.
    const index = ext & this.#mask;
    if (this.#slots[index] !== undefined) {
      this.#slots[index] = undefined;
      this.#count--;
      this.#discarded++;
    }
    if (this.#next !== undefined && this.#next <= ext - this.#mask - 1) {
      this.#next = ext - this.#mask;
    }
    this.#slots[index] = packet;
    this.#slotExt[index] = ext;
    this.#count++;
    if (this.#lastArrival !== undefined) {
      // Interarrival jitter as RFC 3550 A.8, in ms: D = (Rj − Ri) − (Sj − Si).
      const dts = (packet.timestamp - this.#lastTs) | 0; // int32: survives the 2^32 wrap
      const d = (now - this.#lastArrival) - (dts * 1000) / this.#clockRate;
      this.#jitterMs += (Math.abs(d) - this.#jitterMs) / 16;
    }
    this.#lastArrival = now;
    this.#lastTs = packet.timestamp;
    if (this.#highest === undefined || ext > this.#highest) {
      if (this.#highest !== undefined && ext === this.#highest + 1 && !packet.marker) {
        const ms = (((packet.timestamp - this.#highestTs) | 0) * 1000) / this.#clockRate;
        if (ms > 0 && ms <= MAX_PACKET_MS) this.#packetMs = ms;
      }
      this.#highest = ext;
      this.#highestTs = packet.timestamp;
    }
    if (!this.#playing && this.#bufferingSince === undefined) this.#bufferingSince = now;
  }

  /** Takes what should be played for the next frame; see {@link JitterOutput}. */
  pop(): JitterOutput<T> {
    const now = this.#clock.now();
    if (!this.#playing) {
      if (this.#count === 0) return EMPTY;
      const target = this.targetMs;
      const waited = now - (this.#bufferingSince ?? now);
      if (this.#depthFromLowest() < target && waited < target) return EMPTY;
      const lowest = this.#lowest();
      if (this.#next === undefined || lowest > this.#next) this.#next = lowest;
      this.#playing = true;
      this.#bufferingSince = undefined;
    }
    if (this.#count === 0) {
      // Underrun: conceal a few frames (a late packet may still come), then pause playout so
      // the next talk-spurt rebuffers to the (possibly larger) target.
      if (this.#concealRun < this.#maxConceal) {
        this.#concealRun++;
        this.#concealed++;
        return { kind: "lost", sequenceNumber: this.#next! & 0xffff };
      }
      this.#playing = false;
      this.#underruns++;
      this.#concealRun = 0;
      return EMPTY;
    }
    this.#shrink();
    const next = this.#next!;
    const index = next & this.#mask;
    const packet = this.#slots[index];
    this.#next = next + 1;
    if (packet !== undefined && this.#slotExt[index] === next) {
      this.#slots[index] = undefined;
      this.#slotExt[index] = -1;
      this.#count--;
      this.#played++;
      this.#concealRun = 0;
      return { kind: "packet", packet };
    }
    if (this.#concealRun > 0) {
      // Frames already concealed during the underrun stood in for this sequence number.
      this.#concealRun--;
      this.#lost++;
      return this.pop();
    }
    this.#lost++;
    return { kind: "lost", sequenceNumber: next & 0xffff };
  }

  /** Media from the lowest buffered packet to the highest, in ms. */
  #depthFromLowest(): number {
    if (this.#count === 0 || this.#highest === undefined) return 0;
    return (this.#highest - this.#lowest() + 1) * this.#packetMs;
  }

  /** Discards the oldest packets while the buffer runs well above target (or max). */
  #shrink(): void {
    const target = this.targetMs;
    const high = Math.min(this.#maxDelayMs, target + 3 * this.#packetMs);
    if (this.depthMs <= high) return;
    const goal = target + this.#packetMs;
    while (this.#count > 1 && this.depthMs > goal) {
      const next = this.#next!;
      const index = next & this.#mask;
      if (this.#slots[index] !== undefined && this.#slotExt[index] === next) {
        this.#slots[index] = undefined;
        this.#slotExt[index] = -1;
        this.#count--;
        this.#discarded++;
      }
      this.#next = next + 1;
    }
  }
}
