/**
 * RTCP feedback messages a video forwarder sends and answers, as plain values over the raw
 * `other` packets of `rtcp.ts`: Picture Loss Indication (RFC 4585 §6.3.1), Full Intra Request
 * (RFC 5104 §4.3.1) and Generic NACK (RFC 4585 §6.2.1).
 * @module
 */

import { type RtcpPacket, RtcpType } from "./rtcp.ts";
import { readU32, writeU32 } from "./rtp.ts";

/** Feedback message types (FMT) of payload-specific feedback (RFC 4585 §6.3, RFC 5104 §4.3). */
export const PsfbFormat = { PLI: 1, FIR: 4 } as const;
/** Feedback message types of transport-layer feedback (RFC 4585 §6.2). */
export const RtpfbFormat = { NACK: 1 } as const;

/** One FIR request entry (RFC 5104 §4.3.1.1): the target SSRC and the command sequence number. */
export interface FirEntry {
  readonly ssrc: number;
  readonly seq: number;
}

/** A feedback message we act on. */
export type FeedbackMessage =
  | { readonly kind: "pli"; readonly sender: number; readonly media: number }
  | { readonly kind: "fir"; readonly sender: number; readonly entries: readonly FirEntry[] }
  | {
    readonly kind: "nack";
    readonly sender: number;
    readonly media: number;
    /** Lost sequence numbers (PID plus the bits of BLP), in order. */
    readonly lost: readonly number[];
  };

/**
 * Reads a PLI, FIR or generic NACK out of a parsed RTCP packet; `undefined` for anything else
 * or a body too short for its FCI.
 */
export function readFeedback(packet: RtcpPacket): FeedbackMessage | undefined {
  if (packet.type !== "other" || packet.body.length < 8) return undefined;
  const body = packet.body;
  const sender = readU32(body, 0);
  const media = readU32(body, 4);
  if (packet.packetType === RtcpType.PSFB && packet.count === PsfbFormat.PLI) {
    return { kind: "pli", sender, media };
  }
  if (packet.packetType === RtcpType.PSFB && packet.count === PsfbFormat.FIR) {
    const entries: FirEntry[] = [];
    for (let o = 8; o + 8 <= body.length; o += 8) {
      entries.push({ ssrc: readU32(body, o), seq: body[o + 4]! });
    }
    return entries.length === 0 ? undefined : { kind: "fir", sender, entries };
  }
  if (packet.packetType === RtcpType.RTPFB && packet.count === RtpfbFormat.NACK) {
    const lost: number[] = [];
    for (let o = 8; o + 4 <= body.length; o += 4) {
      const pid = (body[o]! << 8) | body[o + 1]!;
      const blp = (body[o + 2]! << 8) | body[o + 3]!;
      lost.push(pid);
      for (let bit = 0; bit < 16; bit++) {
        if (blp & (1 << bit)) lost.push((pid + bit + 1) & 0xffff);
      }
    }
    return lost.length === 0 ? undefined : { kind: "nack", sender, media, lost };
  }
  return undefined;
}

/** A Picture Loss Indication from `sender` about `media` (RFC 4585 §6.3.1: no FCI). */
export function pliPacket(sender: number, media: number): RtcpPacket {
  const body = new Uint8Array(8);
  writeU32(body, 0, sender);
  writeU32(body, 4, media);
  return { type: "other", packetType: RtcpType.PSFB, count: PsfbFormat.PLI, body };
}

/**
 * A Full Intra Request (RFC 5104 §4.3.1): media source SSRC 0, one FCI entry naming the target
 * and a command sequence number the sender increments for each new request.
 */
export function firPacket(sender: number, target: number, seq: number): RtcpPacket {
  const body = new Uint8Array(16);
  writeU32(body, 0, sender);
  writeU32(body, 8, target);
  body[12] = seq & 0xff;
  return { type: "other", packetType: RtcpType.PSFB, count: PsfbFormat.FIR, body };
}

/** A generic NACK (RFC 4585 §6.2.1) for `lost` sequence numbers, packed into PID/BLP pairs. */
export function nackPacket(sender: number, media: number, lost: readonly number[]): RtcpPacket {
  const pairs: Array<[number, number]> = [];
  for (const seq of lost) {
    const last = pairs[pairs.length - 1];
    const distance = last === undefined ? -1 : (seq - last[0]) & 0xffff;
    if (last !== undefined && distance >= 1 && distance <= 16) {
      last[1] |= 1 << (distance - 1);
    } else if (last === undefined || distance !== 0) {
      pairs.push([seq & 0xffff, 0]);
    }
  }
  const body = new Uint8Array(8 + pairs.length * 4);
  writeU32(body, 0, sender);
  writeU32(body, 4, media);
  pairs.forEach(([pid, blp], i) => {
    const o = 8 + i * 4;
    body[o] = pid >> 8;
    body[o + 1] = pid & 0xff;
    body[o + 2] = blp >> 8;
    body[o + 3] = blp & 0xff;
  });
  return { type: "other", packetType: RtcpType.RTPFB, count: RtpfbFormat.NACK, body };
}
