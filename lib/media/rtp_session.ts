/**
 * One RTP stream endpoint over UDP (RFC 3550): receives and validates packets, latches to
 * the source actually seen (symmetric RTP, RFC 4961), sends one outgoing stream with its own
 * SSRC and continuous sequence numbers and timestamps, multiplexes RTCP on the RTP port
 * (RFC 5761) or uses a separate RTCP socket, sends periodic SR/RR + SDES CNAME (§6.2–§6.5)
 * and BYE on close (§6.6), and keeps RFC 3550 A.1/A.3/A.8 statistics.
 *
 * No SIP, no SDP: the caller passes plain negotiated values. Time comes from a `Clock`.
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";
import {
  cnameSdes,
  isRtcpPacket,
  ntpFromUnixMs,
  ntpMiddle32,
  parseRtcp,
  type ReportBlock,
  type RtcpPacket,
  serializeRtcp,
} from "./rtcp.ts";
import {
  NO_CSRCS,
  parseRtp,
  RTP_HEADER_SIZE,
  type RtpHeaderExtension,
  type RtpPacket,
  serializePlainRtp,
  serializeRtp,
  writePlainRtp,
} from "./rtp.ts";
import { ReceiveStatistics } from "./rtp_receive_stats.ts";
import type { UdpAddress, UdpSocket } from "./udp_socket.ts";

/**
 * Symmetric RTP policy (RFC 4961 §4 and common SBC practice):
 * - `off`: always send to the signalled address, accept packets from anywhere;
 * - `once`: follow the first source seen, then drop packets from any other source;
 * - `follow`: like `once`, but move to a new source after it sent `relatchPackets`
 *   consecutive packets with no packet from the current one in between (NAT rebinding).
 */
export type LatchingPolicy = "off" | "once" | "follow";

/** Options of {@link RtpSession}. */
export interface RtpSessionOptions {
  /** Socket for RTP (and RTCP when `rtcpMux`). Not closed by the session. */
  readonly socket: UdpSocket;
  /** Separate RTCP socket (port + 1) when not multiplexed. Not closed by the session. */
  readonly rtcpSocket?: UdpSocket;
  readonly clock: Clock;
  /** Clock rate of the negotiated audio payload type (for jitter and SR timestamps). */
  readonly clockRate: number;
  /** Default outgoing payload type. */
  readonly payloadType: number;
  /** RFC 4733 payload type: its packets are not used for jitter. */
  readonly telephoneEventPt?: number;
  /** Signalled remote RTP address; `undefined` or `0.0.0.0` waits for latching. */
  readonly remote?: UdpAddress;
  /** Signalled remote RTCP address (`a=rtcp`); default: RTP port + 1 when not muxed. */
  readonly remoteRtcp?: UdpAddress;
  /** RTP and RTCP on one port (RFC 5761). Default true. */
  readonly rtcpMux?: boolean;
  /** Default `follow`. */
  readonly latching?: LatchingPolicy;
  /** Consecutive packets from a new source before `follow` moves to it. Default 3. */
  readonly relatchPackets?: number;
  /** Our SSRC; default random (RFC 3550 §8). */
  readonly ssrc?: number;
  /** Our CNAME (RFC 3550 §6.5.1); default derived from the SSRC. */
  readonly cname?: string;
  /** Nominal RTCP report interval. Default 5000 ms (RFC 3550 §6.2 minimum). */
  readonly rtcpIntervalMs?: number;
  /** Random source in [0, 1) for initial SSRC/sequence/timestamp and RTCP dithering. */
  readonly random?: () => number;
  /** Unix time in ms for NTP timestamps; default derived from `clock` at creation. */
  readonly unixTimeMs?: () => number;
  /** Called for each accepted RTP packet (from the latched source). */
  readonly onRtp?: (packet: RtpPacket, from: UdpAddress) => void;
  /** Called for each parsed (compound) RTCP datagram. */
  readonly onRtcp?: (packets: readonly RtcpPacket[], from: UdpAddress) => void;
}

/** Options of one {@link RtpSession.sendFrame} call. */
export interface SendFrameOptions {
  /** Force the marker bit (otherwise set on the first packet after silence). */
  readonly marker?: boolean;
  /** Payload type for this packet (default: the session's). */
  readonly payloadType?: number;
  readonly extensions?: readonly RtpHeaderExtension[];
  /** Contributing sources (RFC 3550 §5.1 CSRC list, at most 15), e.g. the mixed speakers. */
  readonly csrcs?: readonly number[];
}

/** A snapshot of one session's counters. */
export interface RtpSessionStats {
  readonly ssrc: number;
  readonly remoteSsrc: number | undefined;
  /** Where RTP is sent now (latched or signalled). */
  readonly remote: UdpAddress | undefined;
  /** True once the session follows an observed source. */
  readonly latched: boolean;
  readonly packetsSent: number;
  /** Payload octets sent (RFC 3550 §6.4.1 sender's octet count). */
  readonly bytesSent: number;
  readonly packetsReceived: number;
  readonly bytesReceived: number;
  /** Cumulative loss (RFC 3550 A.3). */
  readonly packetsLost: number;
  /** Interarrival jitter in ms (RFC 3550 A.8). */
  readonly jitterMs: number;
  /** Packets dropped: unparseable, or from an unlatched source. */
  readonly packetsDropped: number;
  /** Clock time of the last accepted RTP packet (for no-RTP timeouts). */
  readonly lastRtpAt: number | undefined;
  /** Round-trip time from the peer's last report block about us (RFC 3550 §6.4.1). */
  readonly rttMs: number | undefined;
  /** Last report block the peer sent about our stream. */
  readonly remoteReport: ReportBlock | undefined;
}

/** Largest payload sent through {@link SCRATCH}. */
const MAX_SCRATCH_PAYLOAD = 1500;
/**
 * One buffer for outgoing RTP packets without header extensions (up to 15 CSRCs) on sockets
 * whose `send` is done with the data when it returns (the libc backend): no allocation per
 * packet. Views of each length are kept, so a steady stream allocates nothing at all.
 */
const SCRATCH = new Uint8Array(RTP_HEADER_SIZE + 15 * 4 + MAX_SCRATCH_PAYLOAD);
const scratchViews: (Uint8Array | undefined)[] = [];

function scratchView(length: number): Uint8Array {
  return scratchViews[length] ??= SCRATCH.subarray(0, length);
}

function isUnspecified(addr: UdpAddress | undefined): boolean {
  return !addr || addr.port === 0 || addr.address === "0.0.0.0" || addr.address === "::";
}

function sameAddress(a: UdpAddress | undefined, b: UdpAddress): boolean {
  return a !== undefined && a.port === b.port && a.address === b.address;
}

/** One RTP stream endpoint; see the module documentation. */
export class RtpSession {
  readonly ssrc: number;
  readonly cname: string;
  readonly clockRate: number;
  readonly #o: RtpSessionOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #unixTimeMs: () => number;
  readonly #latching: LatchingPolicy;
  readonly #relatchPackets: number;
  readonly #rtcpMux: boolean;
  readonly #rtcpIntervalMs: number;
  #payloadType: number;
  #signalled: UdpAddress | undefined;
  #signalledRtcp: UdpAddress | undefined;
  #latchedTo: UdpAddress | undefined;
  #latchedRtcp: UdpAddress | undefined;
  #candidate: UdpAddress | undefined;
  #candidateCount = 0;
  // Outgoing stream (RFC 3550 §5.1: random initial sequence number and timestamp).
  #seq: number;
  #timestamp: number;
  #needMarker = true;
  #packetsSent = 0;
  #bytesSent = 0;
  #lastSentTimestamp: number | undefined;
  #lastSentAt = 0;
  #sentSinceReport = 0;
  // Incoming.
  #remoteSsrc: number | undefined;
  #stats: ReceiveStatistics;
  #dropped = 0;
  #lastRtpAt: number | undefined;
  #rttMs: number | undefined;
  #remoteReport: ReportBlock | undefined;
  #timer: TimerHandle | undefined;
  #started = false;
  #closed = false;

  constructor(options: RtpSessionOptions) {
    this.#o = options;
    this.#clock = options.clock;
    this.#random = options.random ?? Math.random;
    const epochOffset = Date.now() - options.clock.now();
    this.#unixTimeMs = options.unixTimeMs ?? (() => epochOffset + options.clock.now());
    this.#latching = options.latching ?? "follow";
    this.#relatchPackets = Math.max(1, options.relatchPackets ?? 3);
    this.#rtcpMux = options.rtcpMux ?? true;
    this.#rtcpIntervalMs = options.rtcpIntervalMs ?? 5000;
    this.clockRate = options.clockRate;
    this.#payloadType = options.payloadType;
    this.ssrc = options.ssrc ?? this.#random32();
    this.cname = options.cname ?? `conclave-${this.ssrc.toString(16)}`;
    this.#seq = Math.floor(this.#random() * 0x10000);
    this.#timestamp = this.#random32();
    this.#stats = new ReceiveStatistics(options.clockRate);
    this.setRemote(options.remote, options.remoteRtcp);
  }

  #random32(): number {
    return Math.floor(this.#random() * 0x1_0000_0000) >>> 0;
  }

  /** Starts receiving and the RTCP report timer. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#o.socket.onDatagram((data, from) => this.#onDatagram(data, from, false));
    this.#o.rtcpSocket?.onDatagram((data, from) => this.#onDatagram(data, from, true));
    // RFC 3550 §6.2: the first report goes out after half the minimum interval.
    this.#scheduleReport(this.#rtcpIntervalMs / 2);
  }

  /**
   * Sets the signalled remote addresses (SDP answer or re-INVITE). A new signalled address
   * drops a latch obtained earlier, so a moved peer is followed again.
   */
  setRemote(remote: UdpAddress | undefined, remoteRtcp?: UdpAddress): void {
    const changed = !remote || !this.#signalled || !sameAddress(this.#signalled, remote);
    this.#signalled = isUnspecified(remote) ? undefined : remote;
    this.#signalledRtcp = remoteRtcp ??
      (this.#signalled && !this.#rtcpMux
        ? { address: this.#signalled.address, port: this.#signalled.port + 1 }
        : undefined);
    // A shared port demultiplexes by the signalled sources (RFC 4961 symmetric RTP).
    this.#o.socket.expectSource?.(this.#signalled);
    if (!this.#rtcpMux) this.#o.rtcpSocket?.expectSource?.(this.#signalledRtcp);
    if (changed) {
      this.#latchedTo = undefined;
      this.#latchedRtcp = undefined;
      this.#candidate = undefined;
      this.#candidateCount = 0;
    }
  }

  /** Changes the default outgoing payload type (codec change by re-INVITE). */
  setPayloadType(payloadType: number): void {
    this.#payloadType = payloadType;
  }

  /** Where RTP goes now: the latched source, else the signalled address. */
  get remote(): UdpAddress | undefined {
    if (this.#latching !== "off" && this.#latchedTo) return this.#latchedTo;
    return this.#signalled;
  }

  /** Where RTCP goes now. */
  get remoteRtcp(): UdpAddress | undefined {
    if (this.#rtcpMux) return this.remote;
    return this.#latchedRtcp ?? this.#signalledRtcp;
  }

  /** Clock time of the last accepted RTP packet. */
  get lastPacketAt(): number | undefined {
    return this.#lastRtpAt;
  }

  /** The timestamp the next sent frame will carry. */
  get nextTimestamp(): number {
    return this.#timestamp;
  }

  /** The sequence number the next sent packet will carry. */
  get nextSequenceNumber(): number {
    return this.#seq;
  }

  /**
   * Sends one media frame of `samples` timestamp units, then advances the timestamp by that
   * much (RFC 3550 §5.1). The marker bit is set on the first packet and on the first packet
   * after {@link skipFrame} (start of a talk-spurt, RFC 3551 §4.1). Returns false if there
   * is nowhere to send yet.
   */
  sendFrame(payload: Uint8Array, samples: number, options?: SendFrameOptions): boolean {
    if (this.#closed) return false;
    const to = this.remote;
    const timestamp = this.#timestamp;
    this.#timestamp = (this.#timestamp + samples) >>> 0;
    if (!to) {
      this.#needMarker = true;
      return false;
    }
    const marker = options?.marker ?? this.#needMarker;
    this.#needMarker = false;
    const payloadType = options?.payloadType ?? this.#payloadType;
    const extensions = options?.extensions;
    const csrcs = options?.csrcs ?? NO_CSRCS;
    const socket = this.#o.socket;
    const bytes = extensions !== undefined && extensions.length > 0
      ? serializeRtp({
        marker,
        payloadType,
        sequenceNumber: this.#seq,
        timestamp,
        ssrc: this.ssrc,
        csrcs,
        extensions,
        payload,
      })
      : socket.synchronousSend && payload.length <= MAX_SCRATCH_PAYLOAD
      ? scratchView(
        writePlainRtp(
          SCRATCH,
          marker,
          payloadType,
          this.#seq,
          timestamp,
          this.ssrc,
          payload,
          csrcs,
        ),
      )
      : serializePlainRtp(marker, payloadType, this.#seq, timestamp, this.ssrc, payload, csrcs);
    this.#seq = (this.#seq + 1) & 0xffff;
    socket.send(bytes, to);
    this.#packetsSent++;
    this.#bytesSent += payload.length;
    this.#sentSinceReport++;
    this.#lastSentTimestamp = timestamp;
    this.#lastSentAt = this.#clock.now();
    return true;
  }

  /**
   * Sends an RTP packet built elsewhere (a forwarder's rewritten packet, RFC 7667 §3.7) that
   * already carries our SSRC, sequence number and `timestamp`; it counts for our sender
   * reports (RFC 3550 §6.4.1) like a packet of {@link sendFrame}. Returns false if there is
   * nowhere to send yet.
   */
  sendPacket(bytes: Uint8Array, timestamp: number, payloadSize: number): boolean {
    if (this.#closed) return false;
    const to = this.remote;
    if (!to) return false;
    this.#o.socket.send(bytes, to);
    this.#packetsSent++;
    this.#bytesSent += payloadSize;
    this.#sentSinceReport++;
    this.#lastSentTimestamp = timestamp;
    this.#lastSentAt = this.#clock.now();
    return true;
  }

  /**
   * Sends RTCP feedback (PLI, FIR, NACK) at once, in a compound packet after our report and
   * SDES (RFC 4585 §3.1: feedback is sent as compound RTCP unless reduced size is agreed).
   */
  sendFeedback(packets: readonly RtcpPacket[]): void {
    if (this.#closed) return;
    this.#sendReport(packets);
  }

  /**
   * Lets `samples` of silence pass without sending (discontinuous transmission): the
   * timestamp keeps advancing with the media clock and the next sent packet gets the marker
   * bit, while sequence numbers stay continuous (RFC 3551 §4.1).
   */
  skipFrame(samples: number): void {
    this.#timestamp = (this.#timestamp + samples) >>> 0;
    this.#needMarker = true;
  }

  #onDatagram(data: Uint8Array, from: UdpAddress, viaRtcpSocket: boolean): void {
    if (this.#closed) return;
    if (viaRtcpSocket || isRtcpPacket(data)) {
      this.#onRtcp(data, from, viaRtcpSocket);
      return;
    }
    const packet = parseRtp(data);
    if (!packet || !this.#acceptSource(from)) {
      this.#dropped++;
      return;
    }
    const now = this.#clock.now();
    if (packet.ssrc !== this.#remoteSsrc) {
      // RFC 3550 §8.2: a new SSRC (restart, transfer): statistics start over.
      this.#remoteSsrc = packet.ssrc;
      this.#stats = new ReceiveStatistics(this.clockRate);
    }
    const paced = packet.payloadType !== this.#o.telephoneEventPt;
    if (
      !this.#stats.update(
        packet.sequenceNumber,
        packet.timestamp,
        now,
        packet.payload.length,
        paced,
      )
    ) {
      this.#dropped++;
      return;
    }
    this.#lastRtpAt = now;
    this.#o.onRtp?.(packet, from);
  }

  /** RFC 4961 symmetric RTP: decides whether `from` may deliver media, latching as needed. */
  #acceptSource(from: UdpAddress): boolean {
    switch (this.#latching) {
      case "off":
        return true;
      case "once":
        if (!this.#latchedTo) this.#latchedTo = from;
        return sameAddress(this.#latchedTo, from);
      case "follow":
        if (!this.#latchedTo) {
          this.#latchedTo = from;
          return true;
        }
        if (sameAddress(this.#latchedTo, from)) {
          this.#candidate = undefined;
          this.#candidateCount = 0;
          return true;
        }
        if (sameAddress(this.#candidate, from)) {
          this.#candidateCount++;
        } else {
          this.#candidate = from;
          this.#candidateCount = 1;
        }
        if (this.#candidateCount >= this.#relatchPackets) {
          this.#latchedTo = from;
          this.#candidate = undefined;
          this.#candidateCount = 0;
          return true;
        }
        return false;
    }
  }

  #onRtcp(data: Uint8Array, from: UdpAddress, viaRtcpSocket: boolean): void {
    const packets = parseRtcp(data);
    if (!packets) {
      this.#dropped++;
      return;
    }
    if (viaRtcpSocket && this.#latching !== "off") this.#latchedRtcp = from;
    const now = this.#clock.now();
    for (const packet of packets) {
      if (packet.type === "sr" || packet.type === "rr") {
        if (packet.type === "sr" && packet.ssrc === this.#remoteSsrc) {
          this.#stats.onSenderReport(ntpMiddle32(packet.ntp), now);
        }
        for (const block of packet.reports) {
          if (block.ssrc !== this.ssrc) continue;
          this.#remoteReport = block;
          if (block.lastSr !== 0) {
            // RFC 3550 §6.4.1: RTT = A − LSR − DLSR in 1/65536 s.
            const arrival = ntpMiddle32(ntpFromUnixMs(this.#unixTimeMs()));
            const rtt = (arrival - block.lastSr - block.delaySinceLastSr) >>> 0;
            if (rtt < 0x8000_0000) this.#rttMs = (rtt / 65536) * 1000;
          }
        }
      }
    }
    this.#o.onRtcp?.(packets, from);
  }

  #scheduleReport(delayMs: number): void {
    this.#timer = this.#clock.setTimer(delayMs, () => {
      this.#timer = undefined;
      if (this.#closed) return;
      this.#sendReport([]);
      // RFC 3550 §6.3.1: randomize to [0.5, 1.5] × T, divided by e − 3/2.
      this.#scheduleReport(this.#rtcpIntervalMs * (0.5 + this.#random()) / 1.21828);
    });
  }

  /** Builds our compound RTCP: SR if we sent media since the last report, else RR; SDES. */
  buildReport(): RtcpPacket[] {
    const now = this.#clock.now();
    const reports: ReportBlock[] = [];
    if (this.#remoteSsrc !== undefined && this.#stats.active) {
      reports.push(this.#stats.reportBlock(this.#remoteSsrc, now));
    }
    const packets: RtcpPacket[] = [];
    if (this.#sentSinceReport > 0 && this.#lastSentTimestamp !== undefined) {
      const rtpTimestamp = (this.#lastSentTimestamp +
        Math.round((now - this.#lastSentAt) * this.clockRate / 1000)) >>> 0;
      packets.push({
        type: "sr",
        ssrc: this.ssrc,
        ntp: ntpFromUnixMs(this.#unixTimeMs()),
        rtpTimestamp,
        packetCount: this.#packetsSent >>> 0,
        octetCount: this.#bytesSent >>> 0,
        reports,
      });
    } else {
      packets.push({ type: "rr", ssrc: this.ssrc, reports });
    }
    this.#sentSinceReport = 0;
    packets.push(cnameSdes(this.ssrc, this.cname));
    return packets;
  }

  #sendReport(extra: readonly RtcpPacket[]): void {
    const to = this.remoteRtcp;
    if (!to) return;
    const socket = this.#rtcpMux ? this.#o.socket : (this.#o.rtcpSocket ?? this.#o.socket);
    socket.send(serializeRtcp([...this.buildReport(), ...extra]), to);
  }

  /** A snapshot of the counters. */
  get stats(): RtpSessionStats {
    return {
      ssrc: this.ssrc,
      remoteSsrc: this.#remoteSsrc,
      remote: this.remote,
      latched: this.#latching !== "off" && this.#latchedTo !== undefined,
      packetsSent: this.#packetsSent,
      bytesSent: this.#bytesSent,
      packetsReceived: this.#stats.packetsReceived,
      bytesReceived: this.#stats.bytesReceived,
      packetsLost: this.#stats.packetsLost,
      jitterMs: this.#stats.jitterMs,
      packetsDropped: this.#dropped,
      lastRtpAt: this.#lastRtpAt,
      rttMs: this.#rttMs,
      remoteReport: this.#remoteReport,
    };
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops the session: sends a final report with BYE (RFC 3550 §6.6, if we ever sent or
   * received anything), cancels the timer and ignores further datagrams. Sockets stay open:
   * their owner (the port pool allocation) closes them.
   */
  close(reason?: string): void {
    if (this.#closed) return;
    if (this.#started && (this.#packetsSent > 0 || this.#stats.active)) {
      this.#sendReport([
        reason === undefined
          ? { type: "bye", ssrcs: [this.ssrc] }
          : { type: "bye", ssrcs: [this.ssrc], reason },
      ]);
    }
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}
