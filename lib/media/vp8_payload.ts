/**
 * The bits of a VP8 RTP payload a forwarder needs (RFC 7741), read without decoding: the
 * payload descriptor (§4.2) and, on the first packet of a frame, the key-frame flag of the VP8
 * payload header (§4.3). A switching SFU waits for a key frame before it starts forwarding a
 * new source, so the receiver's decoder never gets a delta frame it has no reference for.
 * @module
 */

/** What the payload descriptor says (RFC 7741 §4.2). */
export interface Vp8Descriptor {
  /** S bit: the packet starts a VP8 partition. */
  readonly startOfPartition: boolean;
  /** PID: the partition index (0 = the first partition of a frame). */
  readonly partitionId: number;
  /** 7- or 15-bit PictureID when present (I bit). */
  readonly pictureId?: number;
  /** Descriptor length in bytes: the VP8 payload starts after it. */
  readonly size: number;
}

/**
 * Parses the VP8 payload descriptor (RFC 7741 §4.2). Returns `null` when the payload is too
 * short for the extensions its flags announce.
 */
export function parseVp8Descriptor(payload: Uint8Array): Vp8Descriptor | null {
  if (payload.length < 1) return null;
  const b0 = payload[0]!;
  let size = 1;
  let pictureId: number | undefined;
  if (b0 & 0x80) { // X: extended control bits follow
    if (payload.length < 2) return null;
    const x = payload[1]!;
    size = 2;
    if (x & 0x80) { // I: PictureID
      if (payload.length < size + 1) return null;
      const p = payload[size]!;
      if (p & 0x80) { // M: 15-bit PictureID
        if (payload.length < size + 2) return null;
        pictureId = ((p & 0x7f) << 8) | payload[size + 1]!;
        size += 2;
      } else {
        pictureId = p;
        size += 1;
      }
    }
    if (x & 0x40) size += 1; // L: TL0PICIDX
    if (x & 0x30) size += 1; // T or K: TID/Y/KEYIDX
    if (payload.length < size) return null;
  }
  return {
    startOfPartition: (b0 & 0x10) !== 0,
    partitionId: b0 & 0x07,
    ...(pictureId === undefined ? {} : { pictureId }),
    size,
  };
}

/**
 * True when the packet carries the start of a VP8 frame: S = 1 and PID = 0 (RFC 7741 §4.2,
 * "the first packet of a frame"). A forwarder may switch sources only at such a packet.
 */
export function isVp8FrameStart(payload: Uint8Array): boolean {
  const d = parseVp8Descriptor(payload);
  return d !== null && d.startOfPartition && d.partitionId === 0 && d.size < payload.length;
}

/**
 * True when the packet starts a VP8 key frame (RFC 7741 §4.3): the first packet of a frame
 * whose payload header has P = 0 (inverse key frame flag), confirmed by the key frame start
 * code 0x9d 0x01 0x2a when those bytes are present (RFC 6386 §9.1).
 */
export function isVp8KeyFrame(payload: Uint8Array): boolean {
  const d = parseVp8Descriptor(payload);
  if (d === null || !d.startOfPartition || d.partitionId !== 0) return false;
  const h = d.size;
  if (h >= payload.length) return false;
  if ((payload[h]! & 0x01) !== 0) return false; // P = 1: interframe
  if (payload.length >= h + 6) {
    return payload[h + 3] === 0x9d && payload[h + 4] === 0x01 && payload[h + 5] === 0x2a;
  }
  return true;
}
