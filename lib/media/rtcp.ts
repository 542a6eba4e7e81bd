/**
 * RTCP packets as plain values (RFC 3550 §6.4–§6.6): sender and receiver reports, SDES
 * (CNAME), BYE, compound packets (§6.1), and the rtcp-mux demultiplexing rule (RFC 5761 §4).
 * Other packet types (APP, feedback) are kept raw so a compound packet round-trips.
 * @module
 */

import { readU32, writeU32 } from "./rtp.ts";

/** RTCP packet type numbers (RFC 3550 §12.1, RFC 4585 §6.1). */
export const RtcpType = {
  SR: 200,
  RR: 201,
  SDES: 202,
  BYE: 203,
  APP: 204,
  RTPFB: 205,
  PSFB: 206,
} as const;

/** SDES item types (RFC 3550 §6.5). */
export const SdesItemType = {
  CNAME: 1,
  NAME: 2,
  EMAIL: 3,
  PHONE: 4,
  LOC: 5,
  TOOL: 6,
  NOTE: 7,
  PRIV: 8,
} as const;

/** A reception report block (RFC 3550 §6.4.1). */
export interface ReportBlock {
  /** The source this block reports on. */
  readonly ssrc: number;
  /** Fraction lost since the previous report, as a fixed-point 0–255 (loss × 256). */
  readonly fractionLost: number;
  /** Cumulative number of packets lost (signed 24-bit; duplicates can make it negative). */
  readonly cumulativeLost: number;
  /** Extended highest sequence number received (cycles << 16 | max seq). */
  readonly highestSequence: number;
  /** Interarrival jitter in timestamp units (RFC 3550 §6.4.1, A.8). */
  readonly jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last SR received from `ssrc` (0 if none). */
  readonly lastSr: number;
  /** Delay since that SR, in 1/65536 s units. */
  readonly delaySinceLastSr: number;
}

/** A 64-bit NTP timestamp split into seconds and fraction (RFC 3550 §4). */
export interface NtpTimestamp {
  readonly seconds: number;
  readonly fraction: number;
}

/** Sender report (RFC 3550 §6.4.1). */
export interface SenderReport {
  readonly type: "sr";
  readonly ssrc: number;
  readonly ntp: NtpTimestamp;
  readonly rtpTimestamp: number;
  readonly packetCount: number;
  readonly octetCount: number;
  readonly reports: readonly ReportBlock[];
}

/** Receiver report (RFC 3550 §6.4.2). */
export interface ReceiverReport {
  readonly type: "rr";
  readonly ssrc: number;
  readonly reports: readonly ReportBlock[];
}

/** One SDES item (RFC 3550 §6.5). */
export interface SdesItem {
  readonly type: number;
  readonly value: string;
}

/** One SDES chunk: a source and its items. */
export interface SdesChunk {
  readonly ssrc: number;
  readonly items: readonly SdesItem[];
}

/** Source description (RFC 3550 §6.5). */
export interface SourceDescription {
  readonly type: "sdes";
  readonly chunks: readonly SdesChunk[];
}

/** Goodbye (RFC 3550 §6.6). */
export interface Goodbye {
  readonly type: "bye";
  readonly ssrcs: readonly number[];
  readonly reason?: string;
}

/** Any other RTCP packet, kept as its header fields and raw body (after the 4-byte header). */
export interface OtherRtcp {
  readonly type: "other";
  readonly packetType: number;
  /** The 5-bit count/format field. */
  readonly count: number;
  readonly body: Uint8Array;
}

/** Any RTCP packet value. */
export type RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | OtherRtcp;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * RFC 5761 §4: with RTP and RTCP on one port, a datagram whose second octet is 192–223
 * (RTP payload type 64–95 with the marker bit, which RTP must not use) is RTCP.
 */
export function isRtcpPacket(bytes: Uint8Array): boolean {
  if (bytes.length < 4 || bytes[0]! >> 6 !== 2) return false;
  const b1 = bytes[1]!;
  return b1 >= 192 && b1 <= 223;
}

/**
 * Parses a (compound) RTCP datagram (RFC 3550 §6.1) into its packets. Returns `null` if any
 * packet header is malformed (wrong version, length running past the datagram, bad padding).
 */
export function parseRtcp(bytes: Uint8Array): RtcpPacket[] | null {
  const packets: RtcpPacket[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) return null;
    const b0 = bytes[offset]!;
    if (b0 >> 6 !== 2) return null;
    const count = b0 & 0x1f;
    const packetType = bytes[offset + 1]!;
    const length = (((bytes[offset + 2]! << 8) | bytes[offset + 3]!) + 1) * 4;
    const end = offset + length;
    if (end > bytes.length) return null;
    let bodyEnd = end;
    if (b0 & 0x20) {
      const padding = bytes[end - 1]!;
      if (padding === 0 || padding > length - 4) return null;
      bodyEnd = end - padding;
    }
    const packet = parseOne(packetType, count, bytes.subarray(offset + 4, bodyEnd));
    if (!packet) return null;
    packets.push(packet);
    offset = end;
  }
  return packets;
}

function parseOne(packetType: number, count: number, body: Uint8Array): RtcpPacket | null {
  switch (packetType) {
    case RtcpType.SR: {
      if (body.length < 24 + count * 24) return null;
      return {
        type: "sr",
        ssrc: readU32(body, 0),
        ntp: { seconds: readU32(body, 4), fraction: readU32(body, 8) },
        rtpTimestamp: readU32(body, 12),
        packetCount: readU32(body, 16),
        octetCount: readU32(body, 20),
        reports: parseReportBlocks(body, 24, count),
      };
    }
    case RtcpType.RR: {
      if (body.length < 4 + count * 24) return null;
      return { type: "rr", ssrc: readU32(body, 0), reports: parseReportBlocks(body, 4, count) };
    }
    case RtcpType.SDES:
      return parseSdes(body, count);
    case RtcpType.BYE: {
      if (body.length < count * 4) return null;
      const ssrcs: number[] = [];
      for (let i = 0; i < count; i++) ssrcs.push(readU32(body, i * 4));
      const rest = count * 4;
      if (rest < body.length) {
        const len = body[rest]!;
        if (rest + 1 + len > body.length) return null;
        return {
          type: "bye",
          ssrcs,
          reason: decoder.decode(body.subarray(rest + 1, rest + 1 + len)),
        };
      }
      return { type: "bye", ssrcs };
    }
    default:
      return { type: "other", packetType, count, body };
  }
}

function parseReportBlocks(body: Uint8Array, offset: number, count: number): ReportBlock[] {
  const reports: ReportBlock[] = [];
  for (let i = 0; i < count; i++) {
    const o = offset + i * 24;
    const lostRaw = (body[o + 5]! << 16) | (body[o + 6]! << 8) | body[o + 7]!;
    reports.push({
      ssrc: readU32(body, o),
      fractionLost: body[o + 4]!,
      cumulativeLost: lostRaw & 0x800000 ? lostRaw - 0x1000000 : lostRaw,
      highestSequence: readU32(body, o + 8),
      jitter: readU32(body, o + 12),
      lastSr: readU32(body, o + 16),
      delaySinceLastSr: readU32(body, o + 20),
    });
  }
  return reports;
}

/** RFC 3550 §6.5: chunks of SSRC + items, each chunk ended by a null octet and 32-bit padded. */
function parseSdes(body: Uint8Array, count: number): SourceDescription | null {
  const chunks: SdesChunk[] = [];
  let o = 0;
  for (let c = 0; c < count; c++) {
    if (o + 4 > body.length) return null;
    const ssrc = readU32(body, o);
    o += 4;
    const items: SdesItem[] = [];
    for (;;) {
      if (o >= body.length) return null;
      const itemType = body[o]!;
      if (itemType === 0) {
        o = (o + 4) & ~3; // null octet(s) up to the next word boundary
        break;
      }
      if (o + 2 > body.length) return null;
      const len = body[o + 1]!;
      if (o + 2 + len > body.length) return null;
      items.push({ type: itemType, value: decoder.decode(body.subarray(o + 2, o + 2 + len)) });
      o += 2 + len;
    }
    chunks.push({ ssrc, items });
  }
  return { type: "sdes", chunks };
}

/** Raised when an RTCP value cannot be encoded (field out of range). */
export class RtcpEncodeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "RtcpEncodeError";
  }
}

/** Serializes packets into one compound RTCP datagram (RFC 3550 §6.1). */
export function serializeRtcp(packets: readonly RtcpPacket[]): Uint8Array {
  const parts = packets.map(serializeOne);
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function header(buf: Uint8Array, count: number, packetType: number): void {
  if (count > 31) throw new RtcpEncodeError(`RTCP count ${count} exceeds 31`);
  buf[0] = 0x80 | count;
  buf[1] = packetType;
  const words = buf.length / 4 - 1;
  buf[2] = (words >> 8) & 0xff;
  buf[3] = words & 0xff;
}

function serializeOne(packet: RtcpPacket): Uint8Array {
  switch (packet.type) {
    case "sr": {
      const buf = new Uint8Array(28 + packet.reports.length * 24);
      header(buf, packet.reports.length, RtcpType.SR);
      writeU32(buf, 4, packet.ssrc);
      writeU32(buf, 8, packet.ntp.seconds);
      writeU32(buf, 12, packet.ntp.fraction);
      writeU32(buf, 16, packet.rtpTimestamp);
      writeU32(buf, 20, packet.packetCount);
      writeU32(buf, 24, packet.octetCount);
      writeReportBlocks(buf, 28, packet.reports);
      return buf;
    }
    case "rr": {
      const buf = new Uint8Array(8 + packet.reports.length * 24);
      header(buf, packet.reports.length, RtcpType.RR);
      writeU32(buf, 4, packet.ssrc);
      writeReportBlocks(buf, 8, packet.reports);
      return buf;
    }
    case "sdes":
      return serializeSdes(packet);
    case "bye": {
      const reason = packet.reason === undefined ? undefined : encoder.encode(packet.reason);
      if (reason && reason.length > 255) throw new RtcpEncodeError("BYE reason over 255 bytes");
      const raw = 4 + packet.ssrcs.length * 4 + (reason ? 1 + reason.length : 0);
      const buf = new Uint8Array((raw + 3) & ~3);
      header(buf, packet.ssrcs.length, RtcpType.BYE);
      packet.ssrcs.forEach((ssrc, i) => writeU32(buf, 4 + i * 4, ssrc));
      if (reason) {
        const o = 4 + packet.ssrcs.length * 4;
        buf[o] = reason.length;
        buf.set(reason, o + 1);
      }
      return buf;
    }
    case "other": {
      const buf = new Uint8Array(4 + ((packet.body.length + 3) & ~3));
      header(buf, packet.count, packet.packetType);
      buf.set(packet.body, 4);
      return buf;
    }
  }
}

function writeReportBlocks(buf: Uint8Array, offset: number, reports: readonly ReportBlock[]): void {
  reports.forEach((r, i) => {
    const o = offset + i * 24;
    writeU32(buf, o, r.ssrc);
    buf[o + 4] = Math.max(0, Math.min(255, r.fractionLost));
    const lost = Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost)) & 0xffffff;
    buf[o + 5] = lost >> 16;
    buf[o + 6] = (lost >> 8) & 0xff;
    buf[o + 7] = lost & 0xff;
    writeU32(buf, o + 8, r.highestSequence);
    writeU32(buf, o + 12, r.jitter);
    writeU32(buf, o + 16, r.lastSr);
    writeU32(buf, o + 20, r.delaySinceLastSr);
  });
}

function serializeSdes(packet: SourceDescription): Uint8Array {
  const encoded = packet.chunks.map((chunk) => {
    const items = chunk.items.map((item) => {
      const value = encoder.encode(item.value);
      if (value.length > 255) throw new RtcpEncodeError("SDES item over 255 bytes");
      return { type: item.type, value };
    });
    let size = 4;
    for (const item of items) size += 2 + item.value.length;
    size = (size + 4) & ~3; // at least one null octet, then pad to a word
    return { ssrc: chunk.ssrc, items, size };
  });
  let total = 4;
  for (const chunk of encoded) total += chunk.size;
  const buf = new Uint8Array(total);
  header(buf, encoded.length, RtcpType.SDES);
  let o = 4;
  for (const chunk of encoded) {
    writeU32(buf, o, chunk.ssrc);
    let i = o + 4;
    for (const item of chunk.items) {
      buf[i] = item.type;
      buf[i + 1] = item.value.length;
      buf.set(item.value, i + 2);
      i += 2 + item.value.length;
    }
    o += chunk.size; // the rest of the chunk is already zero
  }
  return buf;
}

/** Builds an SDES packet carrying only a CNAME for `ssrc` (RFC 3550 §6.5.1). */
export function cnameSdes(ssrc: number, cname: string): SourceDescription {
  return { type: "sdes", chunks: [{ ssrc, items: [{ type: SdesItemType.CNAME, value: cname }] }] };
}

/** Finds the CNAME of `ssrc` in a parsed compound packet, if any. */
export function findCname(packets: readonly RtcpPacket[], ssrc: number): string | undefined {
  for (const packet of packets) {
    if (packet.type !== "sdes") continue;
    for (const chunk of packet.chunks) {
      if (chunk.ssrc !== ssrc) continue;
      for (const item of chunk.items) if (item.type === SdesItemType.CNAME) return item.value;
    }
  }
  return undefined;
}

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 868. */
export const NTP_UNIX_OFFSET_SECONDS = 2_208_988_800;

/** Converts Unix-epoch milliseconds to an NTP timestamp (RFC 3550 §4). */
export function ntpFromUnixMs(unixMs: number): NtpTimestamp {
  const totalSeconds = unixMs / 1000 + NTP_UNIX_OFFSET_SECONDS;
  const seconds = Math.floor(totalSeconds);
  const fraction = Math.floor((totalSeconds - seconds) * 0x1_0000_0000);
  return { seconds: seconds >>> 0, fraction: fraction >>> 0 };
}

/** The middle 32 bits of an NTP timestamp, as used in LSR and DLSR (RFC 3550 §6.4.1). */
export function ntpMiddle32(ntp: NtpTimestamp): number {
  return (((ntp.seconds & 0xffff) << 16) | (ntp.fraction >>> 16)) >>> 0;
}
