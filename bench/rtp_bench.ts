/**
 * RTP parse + serialize: our value types (`lib/media/rtp.ts`) against npm:werift's
 * `RtpPacket` classes as the baseline, on a 172-byte PCMU packet carrying one RFC 6464
 * audio-level extension (RFC 3550 §5.1, RFC 8285 §4.2).
 * @module
 */
import { Buffer } from "node:buffer";
import { RtpPacket as WeriftRtpPacket } from "werift";
import { audioLevelExtension, parseRtp, readAudioLevel, serializeRtp } from "../lib/media/rtp.ts";

const payload = new Uint8Array(160).map((_, i) => (i * 37) & 0xff);
const wire = serializeRtp({
  marker: false,
  payloadType: 0,
  sequenceNumber: 4242,
  timestamp: 123456789,
  ssrc: 0xdeadbeef,
  csrcs: [],
  extensions: [audioLevelExtension(1, 30, true)],
  payload,
});
const wireBuffer = Buffer.from(wire);
const scratch = new Uint8Array(1500);
let sink = 0;

Deno.bench({
  name: "werift RtpPacket.deSerialize + serialize",
  group: "rtp parse+serialize",
  baseline: true,
  fn() {
    const packet = WeriftRtpPacket.deSerialize(wireBuffer);
    const level = packet.header.extensions[0]?.payload[0] ?? 0;
    sink += packet.serialize().length + level;
  },
});

Deno.bench({
  name: "ours parseRtp + serializeRtp (new buffer)",
  group: "rtp parse+serialize",
  fn() {
    const packet = parseRtp(wire)!;
    sink += serializeRtp(packet).length + (readAudioLevel(packet, 1)?.level ?? 0);
  },
});

Deno.bench({
  name: "ours parseRtp + serializeRtp (reused buffer)",
  group: "rtp parse+serialize",
  fn() {
    const packet = parseRtp(wire)!;
    sink += serializeRtp(packet, scratch).length + (readAudioLevel(packet, 1)?.level ?? 0);
  },
});

Deno.bench({
  name: "werift RtpHeader.deSerialize (parse only)",
  group: "rtp parse",
  baseline: true,
  fn() {
    sink += WeriftRtpPacket.deSerialize(wireBuffer).header.sequenceNumber;
  },
});

Deno.bench({
  name: "ours parseRtp (parse only)",
  group: "rtp parse",
  fn() {
    sink += parseRtp(wire)!.sequenceNumber;
  },
});

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
