/**
 * Video forwarding cost per incoming packet (RFC 7667 §3.7 media switching, no decoding):
 * `VideoForwarder.onPacket` for a 1,100-byte VP8 packet viewed by 1 and by 9 receivers
 * (one rewritten copy each: 12-byte header with the receiver's SSRC, sequence number,
 * timestamp and payload type, plus the payload), against the floor of the same work without
 * any forwarding logic — `Uint8Array.slice()` of the datagram once per receiver. Sockets are
 * left out (the send is a no-op) so the figure is the forwarder's own CPU.
 * @module
 */
import { parseRtp } from "../lib/media/rtp.ts";
import { serializeRtp } from "../lib/media/rtp.ts";
import { VideoForwarder } from "../lib/media/video_forwarder.ts";

const payload = new Uint8Array(1100).map((_, i) => (i * 31) & 0xff);
payload[0] = 0x10; // VP8 descriptor S=1 PID=0
payload[1] = 0x51; // inter frame (P=1)
const wire = serializeRtp({
  marker: false,
  payloadType: 96,
  sequenceNumber: 1,
  timestamp: 3000,
  ssrc: 0x5eed,
  csrcs: [],
  extensions: [],
  payload,
});
let sink = 0;

function forwarder(receivers: number): { fwd: VideoForwarder; seq: number } {
  const fwd = new VideoForwarder({
    output: { send: (_id, bytes) => void (sink += bytes.length), requestKeyFrame: () => {} },
  });
  fwd.setStream("src", { owner: "speaker", source: true }, 0);
  for (let i = 0; i < receivers; i++) {
    fwd.setStream(`r${i}`, {
      owner: `p${i}`,
      source: false,
      receiver: { ssrc: 1000 + i, payloadType: 96 + (i % 3) },
    }, 0);
  }
  // A key frame so every receiver views the source.
  const key = new Uint8Array(wire);
  key[13] = 0x50;
  key[16] = 0x9d;
  key[17] = 0x01;
  key[18] = 0x2a;
  fwd.onPacket("src", parseRtp(key)!, 0);
  return { fwd, seq: 2 };
}

for (const receivers of [1, 9]) {
  const group = `forward one packet to ${receivers}`;
  const state = forwarder(receivers);
  Deno.bench({
    name: `baseline: ${receivers} × slice() of the datagram`,
    group,
    baseline: true,
    fn() {
      for (let i = 0; i < receivers; i++) sink += wire.slice().length;
    },
  });
  Deno.bench({
    name: `VideoForwarder.onPacket (parse + ${receivers} rewritten copies)`,
    group,
    fn() {
      const bytes = new Uint8Array(wire);
      const seq = state.seq++ & 0xffff;
      bytes[2] = seq >> 8;
      bytes[3] = seq & 0xff;
      state.fwd.onPacket("src", parseRtp(bytes)!, seq);
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (sink === 42) console.log(sink);
});
