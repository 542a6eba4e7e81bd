/**
 * Reception statistics for one remote RTP source: extended sequence numbers (RFC 3550 A.1),
 * loss and fraction lost (A.3), interarrival jitter (A.8) and the LSR/DLSR bookkeeping for
 * reception report blocks (§6.4.1).
 * @module
 */

import type { ReportBlock } from "./rtcp.ts";

const RTP_SEQ_MOD = 0x10000;
/** RFC 3550 A.1: a forward jump at or beyond this is a dropout, not a sequence. */
const MAX_DROPOUT = 3000;
/** RFC 3550 A.1: packets this far behind are treated as reordered or duplicates. */
const MAX_MISORDER = 100;

/**
 * Per-source counters. A source is valid from its first packet (latching already filters
 * strangers); a sequence jump beyond MAX_DROPOUT needs two consecutive packets (A.1 `bad_seq`)
 * to restart the count, as after a sender restart.
 */
export class ReceiveStatistics {
  readonly clockRate: number;
  #initialized = false;
  #baseSeq = 0;
  #maxSeq = 0;
  #badSeq = RTP_SEQ_MOD + 1;
  #cycles = 0;
  #received = 0;
  #bytes = 0;
  #receivedPrior = 0;
  #expectedPrior = 0;
  #transit: number | undefined;
  #jitter = 0;
  #lastSrMiddle = 0;
  #lastSrArrivalMs: number | undefined;

  constructor(clockRate: number) {
    this.clockRate = clockRate;
  }

  #initSeq(seq: number): void {
    this.#baseSeq = seq;
    this.#maxSeq = seq;
    this.#badSeq = RTP_SEQ_MOD + 1;
    this.#cycles = 0;
    this.#received = 0;
    this.#receivedPrior = 0;
    this.#expectedPrior = 0;
  }

  /**
   * Accounts one packet (RFC 3550 A.1 `update_seq`). Returns false for a packet that only
   * armed a resynchronisation (a jump beyond MAX_DROPOUT seen once). `updateJitter` is false
   * for packets whose timestamps are not media-paced (RFC 4733 events).
   */
  update(
    seq: number,
    timestamp: number,
    arrivalMs: number,
    payloadBytes: number,
    updateJitter = true,
  ): boolean {
    if (!this.#initialized) {
      this.#initialized = true;
      this.#initSeq(seq);
    } else {
      const udelta = (seq - this.#maxSeq + RTP_SEQ_MOD) % RTP_SEQ_MOD;
      if (udelta < MAX_DROPOUT) {
        if (seq < this.#maxSeq) this.#cycles += RTP_SEQ_MOD;
        this.#maxSeq = seq;
      } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
        if (seq === this.#badSeq) {
          this.#initSeq(seq);
          this.#transit = undefined;
        } else {
          this.#badSeq = (seq + 1) % RTP_SEQ_MOD;
          return false;
        }
      }
      // else: duplicate or reordered packet, counted below.
    }
    this.#received++;
    this.#bytes += payloadBytes;
    if (updateJitter) {
      // RFC 3550 A.8: transit time in timestamp units; J += (|D| − J) / 16.
      const arrival = arrivalMs * this.clockRate / 1000;
      const transit = arrival - timestamp;
      if (this.#transit !== undefined) {
        let d = transit - this.#transit;
        // Timestamps wrap at 2^32: fold the difference into (−2^31, 2^31].
        if (d > 0x8000_0000) d -= 0x1_0000_0000;
        else if (d < -0x8000_0000) d += 0x1_0000_0000;
        this.#jitter += (Math.abs(d) - this.#jitter) / 16;
      }
      this.#transit = transit;
    }
    return true;
  }

  /** Records a sender report from this source (for LSR/DLSR, RFC 3550 §6.4.1). */
  onSenderReport(ntpMiddle32: number, arrivalMs: number): void {
    this.#lastSrMiddle = ntpMiddle32;
    this.#lastSrArrivalMs = arrivalMs;
  }

  /** True once a packet was counted. */
  get active(): boolean {
    return this.#initialized;
  }

  /** Packets counted (including duplicates, as RFC 3550 A.3 does). */
  get packetsReceived(): number {
    return this.#received;
  }

  /** Payload octets counted. */
  get bytesReceived(): number {
    return this.#bytes;
  }

  /** Extended highest sequence number (cycles + max seq). */
  get extendedHighestSequence(): number {
    return this.#cycles + this.#maxSeq;
  }

  /** Packets expected from the first to the highest sequence number (A.3). */
  get packetsExpected(): number {
    return this.#initialized ? this.extendedHighestSequence - this.#baseSeq + 1 : 0;
  }

  /** Cumulative packets lost (A.3; negative when duplicates outnumber losses). */
  get packetsLost(): number {
    return this.packetsExpected - this.#received;
  }

  /** Interarrival jitter estimate in timestamp units (A.8). */
  get jitter(): number {
    return this.#jitter;
  }

  /** Interarrival jitter in milliseconds. */
  get jitterMs(): number {
    return this.#jitter * 1000 / this.clockRate;
  }

  /**
   * Builds the report block for this source and starts a new reporting interval (A.3 fraction
   * lost is per interval).
   */
  reportBlock(ssrc: number, nowMs: number): ReportBlock {
    const expected = this.packetsExpected;
    const expectedInterval = expected - this.#expectedPrior;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#expectedPrior = expected;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost = expectedInterval === 0 || lostInterval <= 0
      ? 0
      : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    const dlsr = this.#lastSrArrivalMs === undefined
      ? 0
      : Math.round(((nowMs - this.#lastSrArrivalMs) / 1000) * 65536) >>> 0;
    return {
      ssrc,
      fractionLost,
      cumulativeLost: this.packetsLost,
      highestSequence: this.extendedHighestSequence >>> 0,
      jitter: Math.floor(this.#jitter) >>> 0,
      lastSr: this.#lastSrMiddle,
      delaySinceLastSr: dlsr,
    };
  }
}
