/**
 * RTP packets as plain values (RFC 3550 §5.1), with RFC 8285 header extensions (one-byte and
 * two-byte forms) and the RFC 6464 client-to-mixer audio level.
 *
 * Why our own value types and not npm:werift's `RtpPacket`/`RtpHeader` classes: measured with
 * `bench/rtp_bench.ts` (Deno 2.9, one shared core, a 172-byte PCMU packet with one audio
 * level extension, two runs): parse alone takes ~0.12 µs here against ~2.3 µs for werift's
 * `RtpPacket.deSerialize` (≈19×); parse + serialize ~0.3 µs into a reused buffer (~0.9–1.8 µs
 * allocating) against ~4–6 µs for werift (6–18×). The payload stays a zero-copy view of the
 * datagram, the header is read with plain byte arithmetic (no `Buffer`, no class instances
 * per field), and {@link serializeRtp} can write into a caller's buffer. Importing `werift`
 * would also pull its whole WebRTC stack (DTLS, SCTP, ICE) into the server's module graph
 * for a few dozen lines of header code. So werift is only the benchmark baseline.
 * @module
 */

/** RFC 8285 §4.2 one-byte header profile value ("defined by profile" field). */
export const ONE_BYTE_PROFILE = 0xbede;
/** RFC 8285 §4.3 two-byte header profile value (upper 12 bits; low 4 bits are appbits). */
export const TWO_BYTE_PROFILE = 0x1000;
/** Fixed RTP header length in bytes (RFC 3550 §5.1). */
export const RTP_HEADER_SIZE = 12;

/** One RFC 8285 header extension element: local identifier and its data bytes. */
export interface RtpHeaderExtension {
  /** Local identifier negotiated with `a=extmap` (1–14 one-byte form, 1–255 two-byte form). */
  readonly id: number;
  /** Extension data (a view into the parsed datagram when parsed). */
  readonly data: Uint8Array;
}

/**
 * An RTP packet (RFC 3550 §5.1). `payload` excludes padding. When the X bit carries a
 * profile other than RFC 8285's, the block is kept raw in `rawExtension`.
 */
export interface RtpPacket {
  /** M bit: for audio, the first packet of a talk-spurt (RFC 3551 §4.1). */
  readonly marker: boolean;
  /** Payload type, 0–127. */
  readonly payloadType: number;
  /** 16-bit sequence number. */
  readonly sequenceNumber: number;
  /** 32-bit RTP timestamp (unsigned). */
  readonly timestamp: number;
  /** Synchronization source (unsigned 32-bit). */
  readonly ssrc: number;
  /** Contributing sources (at most 15). */
  readonly csrcs: readonly number[];
  /** RFC 8285 extension elements (empty when none). */
  readonly extensions: readonly RtpHeaderExtension[];
  /** A non-RFC 8285 header extension block, kept as is. */
  readonly rawExtension?: { readonly profile: number; readonly data: Uint8Array };
  /** Payload bytes (a view into the parsed datagram when parsed). */
  readonly payload: Uint8Array;
  /** Number of padding bytes to add (serialize) or that were present (parse). 0 = no P bit. */
  readonly paddingSize?: number;
}

/** The empty CSRC list (shared: packets without contributing sources). */
export const NO_CSRCS: readonly number[] = Object.freeze([]);
const EMPTY_EXTENSIONS: readonly RtpHeaderExtension[] = Object.freeze([]);

/**
 * Parses one RTP packet (RFC 3550 §5.1). Returns `null` for anything that is not a well-formed
 * version-2 RTP packet (short, bad padding, extension overrunning the packet). The payload and
 * extension data are views into `bytes`: copy them if `bytes` is reused.
 */
export function parseRtp(bytes: Uint8Array): RtpPacket | null {
  const length = bytes.length;
  if (length < RTP_HEADER_SIZE) return null;
  const b0 = bytes[0]!;
  if (b0 >> 6 !== 2) return null;
  const b1 = bytes[1]!;
  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_SIZE + csrcCount * 4;
  if (offset > length) return null;
  let csrcs = NO_CSRCS;
  if (csrcCount > 0) {
    const list: number[] = [];
    for (let i = RTP_HEADER_SIZE; i < offset; i += 4) list.push(readU32(bytes, i));
    csrcs = list;
  }
  let extensions = EMPTY_EXTENSIONS;
  let rawExtension: { profile: number; data: Uint8Array } | undefined;
  if (b0 & 0x10) {
    if (offset + 4 > length) return null;
    const profile = (bytes[offset]! << 8) | bytes[offset + 1]!;
    const words = (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
    const start = offset + 4;
    const end = start + words * 4;
    if (end > length) return null;
    const twoByte = (profile & 0xfff0) === TWO_BYTE_PROFILE;
    if (profile === ONE_BYTE_PROFILE || twoByte) {
      const parsed = parseExtensions(bytes, start, end, twoByte);
      if (!parsed) return null;
      extensions = parsed;
    } else {
      rawExtension = { profile, data: bytes.subarray(start, end) };
    }
    offset = end;
  }
  let payloadEnd = length;
  let paddingSize = 0;
  if (b0 & 0x20) {
    paddingSize = bytes[length - 1]!;
    if (paddingSize === 0 || offset + paddingSize > length) return null;
    payloadEnd = length - paddingSize;
  }
  const packet: {
    marker: boolean;
    payloadType: number;
    sequenceNumber: number;
    timestamp: number;
    ssrc: number;
    csrcs: readonly number[];
    extensions: readonly RtpHeaderExtension[];
    payload: Uint8Array;
    rawExtension?: { profile: number; data: Uint8Array };
    paddingSize?: number;
  } = {
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequenceNumber: (bytes[2]! << 8) | bytes[3]!,
    timestamp: readU32(bytes, 4),
    ssrc: readU32(bytes, 8),
    csrcs,
    extensions,
    payload: bytes.subarray(offset, payloadEnd),
  };
  if (rawExtension) packet.rawExtension = rawExtension;
  if (paddingSize) packet.paddingSize = paddingSize;
  return packet;
}

/**
 * RFC 8285 header extension elements. One-byte form (§4.2): ID (4 bits), L (4 bits,
 * length − 1), ID 15 stops parsing. Two-byte form (§4.3): ID (8 bits), length (8 bits, may
 * be 0). In both, a zero byte where an element would start is padding.
 */
function parseExtensions(
  bytes: Uint8Array,
  start: number,
  end: number,
  twoByte: boolean,
): RtpHeaderExtension[] | null {
  const list: RtpHeaderExtension[] = [];
  let i = start;
  while (i < end) {
    const byte = bytes[i]!;
    if (byte === 0) {
      i++;
      continue;
    }
    let id: number;
    let len: number;
    let header: number;
    if (twoByte) {
      if (i + 2 > end) return null;
      id = byte;
      len = bytes[i + 1]!;
      header = 2;
    } else {
      id = byte >> 4;
      if (id === 15) break;
      len = (byte & 0x0f) + 1;
      header = 1;
    }
    if (i + header + len > end) return null;
    list.push({ id, data: bytes.subarray(i + header, i + header + len) });
    i += header + len;
  }
  return list;
}

/** True when the extensions fit the one-byte form (RFC 8285 §4.2: IDs 1–14, 1–16 bytes). */
function fitsOneByte(extensions: readonly RtpHeaderExtension[]): boolean {
  for (const ext of extensions) {
    if (ext.id < 1 || ext.id > 14 || ext.data.length < 1 || ext.data.length > 16) return false;
  }
  return true;
}

function extensionBodySize(extensions: readonly RtpHeaderExtension[], oneByte: boolean): number {
  let size = 0;
  for (const ext of extensions) size += (oneByte ? 1 : 2) + ext.data.length;
  return (size + 3) & ~3;
}

/** Number of bytes {@link serializeRtp} will write for `packet`. */
export function rtpPacketSize(packet: RtpPacket): number {
  let size = RTP_HEADER_SIZE + packet.csrcs.length * 4;
  if (packet.extensions.length > 0) {
    size += 4 + extensionBodySize(packet.extensions, fitsOneByte(packet.extensions));
  } else if (packet.rawExtension) {
    size += 4 + ((packet.rawExtension.data.length + 3) & ~3);
  }
  return size + packet.payload.length + (packet.paddingSize ?? 0);
}

/** Raised when a packet value cannot be encoded (RFC 3550 §5.1 field ranges). */
export class RtpEncodeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "RtpEncodeError";
  }
}

/**
 * Serializes an RTP packet (RFC 3550 §5.1). Extensions use the RFC 8285 one-byte form when
 * every element fits it, otherwise the two-byte form (§4.3). When `out` is given the packet
 * is written at its start and a view of the written bytes is returned (no allocation).
 */
export function serializeRtp(packet: RtpPacket, out?: Uint8Array): Uint8Array {
  const size = rtpPacketSize(packet);
  const csrcCount = packet.csrcs.length;
  if (csrcCount > 15) throw new RtpEncodeError("more than 15 CSRCs");
  const padding = packet.paddingSize ?? 0;
  if (padding < 0 || padding > 255) throw new RtpEncodeError(`bad padding size ${padding}`);
  let buf: Uint8Array;
  if (out) {
    if (out.length < size) throw new RtpEncodeError(`buffer too small: ${out.length} < ${size}`);
    buf = out;
  } else {
    buf = new Uint8Array(size);
  }
  const hasExt = packet.extensions.length > 0 || packet.rawExtension !== undefined;
  buf[0] = 0x80 | (padding ? 0x20 : 0) | (hasExt ? 0x10 : 0) | csrcCount;
  buf[1] = (packet.marker ? 0x80 : 0) | (packet.payloadType & 0x7f);
  buf[2] = (packet.sequenceNumber >> 8) & 0xff;
  buf[3] = packet.sequenceNumber & 0xff;
  writeU32(buf, 4, packet.timestamp);
  writeU32(buf, 8, packet.ssrc);
  let offset = RTP_HEADER_SIZE;
  for (const csrc of packet.csrcs) {
    writeU32(buf, offset, csrc);
    offset += 4;
  }
  if (packet.extensions.length > 0) {
    offset = writeExtensions(buf, offset, packet.extensions);
  } else if (packet.rawExtension) {
    const { profile, data } = packet.rawExtension;
    const words = (data.length + 3) >> 2;
    buf[offset] = (profile >> 8) & 0xff;
    buf[offset + 1] = profile & 0xff;
    buf[offset + 2] = (words >> 8) & 0xff;
    buf[offset + 3] = words & 0xff;
    buf.set(data, offset + 4);
    buf.fill(0, offset + 4 + data.length, offset + 4 + words * 4);
    offset += 4 + words * 4;
  }
  buf.set(packet.payload, offset);
  offset += packet.payload.length;
  if (padding) {
    buf.fill(0, offset, offset + padding - 1);
    buf[offset + padding - 1] = padding;
    offset += padding;
  }
  return out ? buf.subarray(0, offset) : buf;
}

/**
 * Serializes a plain RTP packet — the fixed 12-byte header (RFC 3550 §5.1: version 2, no
 * padding, no extension), the CSRC list when given (a mixer's contributing sources, §7.1),
 * then `payload` — into a new array. Byte for byte what {@link serializeRtp} writes for the
 * same packet, without building a packet value: the media path sends one of these per
 * listener every 20 ms.
 */
export function serializePlainRtp(
  marker: boolean,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
  payload: Uint8Array,
  csrcs: readonly number[] = NO_CSRCS,
): Uint8Array {
  const buf = new Uint8Array(RTP_HEADER_SIZE + csrcs.length * 4 + payload.length);
  writePlainRtp(buf, marker, payloadType, sequenceNumber, timestamp, ssrc, payload, csrcs);
  return buf;
}

/**
 * Writes what {@link serializePlainRtp} returns into `out` (at least 12 + 4 × CSRCs +
 * payload bytes long) and returns the packet's length: for a caller that reuses one buffer.
 */
export function writePlainRtp(
  out: Uint8Array,
  marker: boolean,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
  payload: Uint8Array,
  csrcs: readonly number[] = NO_CSRCS,
): number {
  const count = csrcs.length;
  if (count > 15) throw new RtpEncodeError("more than 15 CSRCs");
  out[0] = 0x80 | count;
  out[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  out[2] = (sequenceNumber >> 8) & 0xff;
  out[3] = sequenceNumber & 0xff;
  writeU32(out, 4, timestamp);
  writeU32(out, 8, ssrc);
  let offset = RTP_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    writeU32(out, offset, csrcs[i] as number);
    offset += 4;
  }
  out.set(payload, offset);
  return offset + payload.length;
}

function writeExtensions(
  buf: Uint8Array,
  offset: number,
  extensions: readonly RtpHeaderExtension[],
): number {
  const oneByte = fitsOneByte(extensions);
  const body = extensionBodySize(extensions, oneByte);
  const profile = oneByte ? ONE_BYTE_PROFILE : TWO_BYTE_PROFILE;
  buf[offset] = profile >> 8;
  buf[offset + 1] = profile & 0xff;
  buf[offset + 2] = (body >> 10) & 0xff;
  buf[offset + 3] = (body >> 2) & 0xff;
  let i = offset + 4;
  for (const ext of extensions) {
    if (oneByte) {
      buf[i++] = (ext.id << 4) | (ext.data.length - 1);
    } else {
      if (ext.id < 1 || ext.id > 255 || ext.data.length > 255) {
        throw new RtpEncodeError(`extension id ${ext.id} / length ${ext.data.length} out of range`);
      }
      buf[i++] = ext.id;
      buf[i++] = ext.data.length;
    }
    buf.set(ext.data, i);
    i += ext.data.length;
  }
  const end = offset + 4 + body;
  buf.fill(0, i, end);
  return end;
}

/** Finds the data of the extension element with local identifier `id`, if present. */
export function findRtpExtension(packet: RtpPacket, id: number): Uint8Array | undefined {
  for (const ext of packet.extensions) if (ext.id === id) return ext.data;
  return undefined;
}

/** An RFC 6464 client-to-mixer audio level. */
export interface AudioLevel {
  /** Level in −dBov, 0 (loudest) to 127 (silence). */
  readonly level: number;
  /** The V flag: the sender's voice activity decision. */
  readonly voiceActivity: boolean;
}

/**
 * Reads the RFC 6464 §3 audio level (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`) carried
 * under the negotiated extension `id`. Returns `undefined` if absent or empty.
 */
export function readAudioLevel(packet: RtpPacket, id: number): AudioLevel | undefined {
  const data = findRtpExtension(packet, id);
  if (!data || data.length < 1) return undefined;
  const byte = data[0]!;
  return { level: byte & 0x7f, voiceActivity: (byte & 0x80) !== 0 };
}

/** Builds the RFC 6464 §3 extension element (one data byte: V flag + level in −dBov). */
export function audioLevelExtension(
  id: number,
  level: number,
  voiceActivity: boolean,
): RtpHeaderExtension {
  const clamped = Math.max(0, Math.min(127, Math.round(level)));
  return { id, data: Uint8Array.of((voiceActivity ? 0x80 : 0) | clamped) };
}

/** Reads an unsigned big-endian 32-bit integer. */
export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}

/** Writes an unsigned big-endian 32-bit integer. */
export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = (value >>> 24) & 0xff;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}
