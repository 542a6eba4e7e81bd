/**
 * The core of the video Selective Forwarding Unit: a media-switching mixer (RFC 7667 §3.7)
 * that never decodes. Pure logic over packet values and an injected `now`; no sockets.
 *
 * Streams are video m-lines of participants ("owners"). A stream is a **source** when the
 * participant sends us video and a **receiver** when we send video to it (both for sendrecv).
 * Each receiver gets exactly one forwarded stream under its own SSRC (the one we announced to
 * it), and views one source at a time:
 * 1. the source it pinned (`a=label` on a recvonly line selects a participant's stream);
 * 2. else the most recent active speaker that has video and is not itself (a speaker never
 *    receives its own video, so it keeps viewing the previous speaker);
 * 3. else the first other source (one that has sent packets first).
 *
 * Rewriting (RFC 3550 §5.1, §8; RFC 7667 §3.7): the receiver's packets carry our SSRC for it,
 * sequence numbers that continue by one across source switches and timestamps that continue
 * by the wall time elapsed since the last forwarded packet (at the 90 kHz video clock), and the
 * receiver's payload type number. The header is rebuilt without CSRCs, header extensions and
 * padding (none is negotiated for video), so every receiver gets its own 12-byte header plus
 * the payload: one copy per receiver, done the moment the packet arrives (not on the tick).
 *
 * Switching: the new source gets a key-frame request at once (the caller sends PLI or FIR,
 * RFC 4585 §6.3.1, RFC 5104 §4.3.1); meanwhile the receiver keeps getting the old source, and
 * the new one is forwarded from its first key frame (RFC 7741 §4.3 for VP8), or — when no key
 * frame came within `keyFrameWaitMs` — from its next frame start (the receiver's own PLI then
 * repairs the picture). Key-frame requests from receivers go to the source they view, at most
 * one per source per `keyFrameRequestIntervalMs`. Generic NACKs are answered from a small
 * per-receiver buffer of the packets last sent to it.
 * @module
 */

import type { RtpPacket } from "./rtp.ts";
import { isVp8FrameStart, isVp8KeyFrame } from "./vp8_payload.ts";

/** Where the forwarder's decisions go. */
export interface VideoForwarderOutput {
  /** Sends a rewritten packet (12-byte header + payload; owned by the callee) to a receiver. */
  send(receiverId: string, packet: Uint8Array, timestamp: number, payloadSize: number): void;
  /** Asks a source for a key frame (PLI, or FIR when only that was negotiated). */
  requestKeyFrame(sourceId: string): void;
}

/** Options of {@link VideoForwarder}. */
export interface VideoForwarderOptions {
  readonly output: VideoForwarderOutput;
  /** RTP clock rate of the forwarded codec (90 kHz for video, RFC 7741 §6.1). */
  readonly clockRate?: number;
  /** Longest wait for a key frame of a new source before switching anyway (default 1000 ms). */
  readonly keyFrameWaitMs?: number;
  /** Key-frame requests to one source are at least this far apart (default 300 ms). */
  readonly keyFrameRequestIntervalMs?: number;
  /** Packets kept per receiver for NACK retransmission (default 128, a power of two). */
  readonly retransmitBufferSize?: number;
  /** Random source in [0, 1) for the initial sequence numbers and timestamps. */
  readonly random?: () => number;
  /** Key-frame test (default VP8, RFC 7741 §4.3). */
  readonly isKeyFrame?: (payload: Uint8Array) => boolean;
  /** Frame-start test (default VP8 S=1 PID=0). */
  readonly isFrameStart?: (payload: Uint8Array) => boolean;
}

/** What a stream does in the conference. */
export interface VideoStreamRole {
  /** The participant the stream belongs to (matches active-speaker ids). */
  readonly owner: string;
  /** We receive video on it (our direction recvonly or sendrecv). */
  readonly source: boolean;
  /** We send video on it: our SSRC and the receiver's payload type number. */
  readonly receiver?: { readonly ssrc: number; readonly payloadType: number };
  /** The source stream the receiver asked for (`a=label`), if any. */
  readonly pin?: string;
}

/** Counters and state of one receiving stream. */
export interface ForwardedStreamState {
  /** The source forwarded now. */
  readonly viewing: string | undefined;
  /** The source waited for (key frame pending). */
  readonly switchingTo: string | undefined;
  readonly packetsForwarded: number;
  /** Packets of a new source held back while waiting for its key frame. */
  readonly packetsGated: number;
  readonly switches: number;
  readonly retransmitted: number;
}

/** Counters of one source stream. */
export interface VideoSourceState {
  readonly packets: number;
  readonly lastPacketAt: number | undefined;
  readonly keyFrameRequests: number;
  /** Requests not sent because one went out less than the interval ago. */
  readonly keyFrameRequestsSuppressed: number;
}

interface Source {
  readonly id: string;
  owner: string;
  packets: number;
  lastPacketAt: number | undefined;
  requestedAt: number;
  requests: number;
  suppressed: number;
}

interface Receiver {
  readonly id: string;
  owner: string;
  ssrc: number;
  payloadType: number;
  pin: string | undefined;
  current: string | undefined;
  pending: string | undefined;
  pendingSince: number;
  /** The next forwarded packet starts a new epoch (first packet, or first after a switch). */
  rebase: boolean;
  started: boolean;
  seqOffset: number;
  tsOffset: number;
  epochSeq: number;
  highestSeq: number;
  lastSeq: number;
  lastTs: number;
  lastAt: number;
  readonly ring: (Uint8Array | undefined)[];
  forwarded: number;
  gated: number;
  switches: number;
  retransmitted: number;
}

/** Signed 16-bit distance a − b between sequence numbers (RFC 3550 A.1 style). */
function seqDelta(a: number, b: number): number {
  return (((a - b) & 0xffff) << 16) >> 16;
}

/** How many speakers are remembered for "view the previous speaker". */
const SPEAKER_HISTORY = 16;

/** The switching forwarder; see the module documentation. */
export class VideoForwarder {
  readonly #out: VideoForwarderOutput;
  readonly #clockRate: number;
  readonly #waitMs: number;
  readonly #intervalMs: number;
  readonly #ringSize: number;
  readonly #random: () => number;
  readonly #isKeyFrame: (payload: Uint8Array) => boolean;
  readonly #isFrameStart: (payload: Uint8Array) => boolean;
  readonly #sources = new Map<string, Source>();
  readonly #receivers = new Map<string, Receiver>();
  /** Owners, most recent speaker first. */
  #speakers: string[] = [];

  constructor(options: VideoForwarderOptions) {
    this.#out = options.output;
    this.#clockRate = options.clockRate ?? 90000;
    this.#waitMs = options.keyFrameWaitMs ?? 1000;
    this.#intervalMs = options.keyFrameRequestIntervalMs ?? 300;
    const size = options.retransmitBufferSize ?? 128;
    this.#ringSize = 2 ** Math.max(0, Math.round(Math.log2(Math.max(1, size))));
    this.#random = options.random ?? Math.random;
    this.#isKeyFrame = options.isKeyFrame ?? isVp8KeyFrame;
    this.#isFrameStart = options.isFrameStart ?? isVp8FrameStart;
  }

  /** Source stream ids, in the order they were added. */
  get sourceIds(): string[] {
    return [...this.#sources.keys()];
  }

  /** Receiving stream ids. */
  get receiverIds(): string[] {
    return [...this.#receivers.keys()];
  }

  /** Adds a stream or changes its role (a re-INVITE); a receiver keeps its numbering. */
  setStream(id: string, role: VideoStreamRole, now: number): void {
    if (role.source) {
      const s = this.#sources.get(id);
      if (s) s.owner = role.owner;
      else {
        this.#sources.set(id, {
          id,
          owner: role.owner,
          packets: 0,
          lastPacketAt: undefined,
          requestedAt: -Infinity,
          requests: 0,
          suppressed: 0,
        });
      }
    } else if (this.#sources.delete(id)) {
      this.#forgetSource(id);
    }
    if (role.receiver) {
      const r = this.#receivers.get(id);
      if (r) {
        r.owner = role.owner;
        r.ssrc = role.receiver.ssrc;
        r.payloadType = role.receiver.payloadType;
        r.pin = role.pin;
      } else {
        this.#receivers.set(id, this.#newReceiver(id, role));
      }
    } else {
      this.#receivers.delete(id);
    }
    this.#retarget(now);
  }

  #newReceiver(id: string, role: VideoStreamRole): Receiver {
    return {
      id,
      owner: role.owner,
      ssrc: role.receiver!.ssrc,
      payloadType: role.receiver!.payloadType,
      pin: role.pin,
      current: undefined,
      pending: undefined,
      pendingSince: 0,
      rebase: true,
      started: false,
      seqOffset: 0,
      tsOffset: 0,
      epochSeq: 0,
      highestSeq: 0,
      // RFC 3550 §5.1: random initial sequence number and timestamp.
      lastSeq: Math.floor(this.#random() * 0x10000),
      lastTs: Math.floor(this.#random() * 0x1_0000_0000) >>> 0,
      lastAt: 0,
      ring: new Array(this.#ringSize),
      forwarded: 0,
      gated: 0,
      switches: 0,
      retransmitted: 0,
    };
  }

  /** Removes a stream (the participant left or disabled the m-line). */
  removeStream(id: string, now: number): void {
    this.#receivers.delete(id);
    if (this.#sources.delete(id)) this.#forgetSource(id);
    this.#retarget(now);
  }

  #forgetSource(id: string): void {
    for (const r of this.#receivers.values()) {
      if (r.current === id) {
        r.current = undefined;
        r.rebase = true;
      }
      if (r.pending === id) r.pending = undefined;
    }
  }

  /** The dominant speaker changed (an owner id; null keeps the current views). */
  setActiveSpeaker(owner: string | null, now: number): void {
    if (owner === null) return;
    this.#speakers = [owner, ...this.#speakers.filter((o) => o !== owner)].slice(
      0,
      SPEAKER_HISTORY,
    );
    this.#retarget(now);
  }

  /** A receiver pins a source stream (`a=label`), or goes back to the active speaker. */
  pin(receiverId: string, sourceId: string | undefined, now: number): void {
    const r = this.#receivers.get(receiverId);
    if (!r || r.pin === sourceId) return;
    r.pin = sourceId;
    this.#retarget(now);
  }

  #firstSourceOf(owner: string): Source | undefined {
    let fallback: Source | undefined;
    for (const s of this.#sources.values()) {
      if (s.owner !== owner) continue;
      if (s.lastPacketAt !== undefined) return s;
      fallback ??= s;
    }
    return fallback;
  }

  #targetOf(r: Receiver): string | undefined {
    if (r.pin !== undefined) {
      const pinned = this.#sources.get(r.pin);
      if (pinned && pinned.owner !== r.owner) return pinned.id;
    }
    for (const owner of this.#speakers) {
      if (owner === r.owner) continue;
      const s = this.#firstSourceOf(owner);
      if (s) return s.id;
    }
    let fallback: string | undefined;
    for (const s of this.#sources.values()) {
      if (s.owner === r.owner) continue;
      if (s.lastPacketAt !== undefined) return s.id;
      fallback ??= s.id;
    }
    return fallback;
  }

  #retarget(now: number): void {
    for (const r of this.#receivers.values()) {
      const target = this.#targetOf(r);
      if (target === r.current) {
        r.pending = undefined;
        continue;
      }
      if (target === r.pending) continue;
      r.pending = target;
      r.pendingSince = now;
      if (target !== undefined) this.#requestKeyFrame(target, now);
    }
  }

  /** The source a receiver views now (undefined: nothing yet). */
  viewing(receiverId: string): string | undefined {
    return this.#receivers.get(receiverId)?.current;
  }

  /**
   * A validated RTP packet from a source stream: forwarded at once to every receiver viewing
   * it, or to receivers switching to it once it brings a key frame.
   */
  onPacket(sourceId: string, packet: RtpPacket, now: number): void {
    const s = this.#sources.get(sourceId);
    if (!s) return;
    const first = s.lastPacketAt === undefined;
    s.lastPacketAt = now;
    s.packets++;
    if (first) this.#retarget(now);
    let key: boolean | undefined;
    for (const r of this.#receivers.values()) {
      if (r.pending === sourceId) {
        key ??= this.#isKeyFrame(packet.payload);
        const late = now - r.pendingSince >= this.#waitMs;
        if (key || (late && this.#isFrameStart(packet.payload))) {
          r.current = sourceId;
          r.pending = undefined;
          r.rebase = true;
          r.switches++;
          this.#forward(r, packet, now);
        } else {
          r.gated++;
          this.#requestKeyFrame(sourceId, now);
        }
      } else if (r.current === sourceId) {
        this.#forward(r, packet, now);
      }
    }
  }

  #forward(r: Receiver, p: RtpPacket, now: number): void {
    if (r.rebase) {
      if (r.started) {
        // RFC 7667 §3.7: continue the outgoing numbering; the timestamp advances with the time
        // that passed since the last packet we sent (at least one tick).
        const elapsed = Math.max(1, Math.round((now - r.lastAt) * this.#clockRate / 1000));
        r.seqOffset = (r.lastSeq + 1 - p.sequenceNumber) & 0xffff;
        r.tsOffset = (r.lastTs + elapsed - p.timestamp) >>> 0;
      } else {
        r.seqOffset = (r.lastSeq - p.sequenceNumber) & 0xffff;
        r.tsOffset = (r.lastTs - p.timestamp) >>> 0;
      }
      r.epochSeq = p.sequenceNumber;
      r.highestSeq = p.sequenceNumber;
      r.rebase = false;
    } else {
      const sinceEpoch = seqDelta(p.sequenceNumber, r.epochSeq);
      // Early in an epoch, a packet older than its first one belongs to the time before the
      // switch: its outgoing number would collide with what the old source had.
      if (sinceEpoch < 0 && seqDelta(r.highestSeq, r.epochSeq) < 0x4000) return;
      if (seqDelta(p.sequenceNumber, r.highestSeq) > 0) r.highestSeq = p.sequenceNumber;
    }
    const seq = (p.sequenceNumber + r.seqOffset) & 0xffff;
    const ts = (p.timestamp + r.tsOffset) >>> 0;
    const payload = p.payload;
    const out = new Uint8Array(12 + payload.length);
    out[0] = 0x80;
    out[1] = (p.marker ? 0x80 : 0) | (r.payloadType & 0x7f);
    out[2] = seq >> 8;
    out[3] = seq & 0xff;
    out[4] = ts >>> 24;
    out[5] = (ts >>> 16) & 0xff;
    out[6] = (ts >>> 8) & 0xff;
    out[7] = ts & 0xff;
    const ssrc = r.ssrc;
    out[8] = ssrc >>> 24;
    out[9] = (ssrc >>> 16) & 0xff;
    out[10] = (ssrc >>> 8) & 0xff;
    out[11] = ssrc & 0xff;
    out.set(payload, 12);
    if (!r.started || seqDelta(seq, r.lastSeq) > 0) {
      r.lastSeq = seq;
      r.lastTs = ts;
      r.lastAt = now;
    }
    r.started = true;
    r.forwarded++;
    r.ring[seq & (this.#ringSize - 1)] = out;
    this.#out.send(r.id, out, ts, payload.length);
  }

  #requestKeyFrame(sourceId: string, now: number): void {
    const s = this.#sources.get(sourceId);
    if (!s) return;
    if (now - s.requestedAt < this.#intervalMs) {
      s.suppressed++;
      return;
    }
    s.requestedAt = now;
    s.requests++;
    this.#out.requestKeyFrame(sourceId);
  }

  /** A receiver's PLI or FIR: passed on to the source it views (or switches to), rate-limited. */
  onKeyFrameRequest(receiverId: string, now: number): void {
    const r = this.#receivers.get(receiverId);
    const source = r?.pending ?? r?.current;
    if (source !== undefined) this.#requestKeyFrame(source, now);
  }

  /**
   * A receiver's generic NACK (RFC 4585 §6.2.1): resends the packets still in its buffer.
   * Returns how many were resent.
   */
  onNack(receiverId: string, lost: readonly number[]): number {
    const r = this.#receivers.get(receiverId);
    if (!r) return 0;
    let resent = 0;
    for (const seq of lost) {
      const bytes = r.ring[seq & (this.#ringSize - 1)];
      if (!bytes || ((bytes[2]! << 8) | bytes[3]!) !== seq) continue;
      const ts = ((bytes[4]! << 24) | (bytes[5]! << 16) | (bytes[6]! << 8) | bytes[7]!) >>> 0;
      this.#out.send(r.id, bytes, ts, bytes.length - 12);
      resent++;
    }
    r.retransmitted += resent;
    return resent;
  }

  /** State of a receiving stream, or undefined. */
  receiverState(id: string): ForwardedStreamState | undefined {
    const r = this.#receivers.get(id);
    if (!r) return undefined;
    return {
      viewing: r.current,
      switchingTo: r.pending,
      packetsForwarded: r.forwarded,
      packetsGated: r.gated,
      switches: r.switches,
      retransmitted: r.retransmitted,
    };
  }

  /** State of a source stream, or undefined. */
  sourceState(id: string): VideoSourceState | undefined {
    const s = this.#sources.get(id);
    if (!s) return undefined;
    return {
      packets: s.packets,
      lastPacketAt: s.lastPacketAt,
      keyFrameRequests: s.requests,
      keyFrameRequestsSuppressed: s.suppressed,
    };
  }
}
