import assert from "node:assert/strict";
import { createEncoder } from "../../../lib/media/codecs/codec.ts";
import {
  opusActivity,
  opusFrames,
  opusPacketDurationMs,
  opusToc,
  rangeDecodeBits,
} from "../../../lib/media/codecs/opus_packet.ts";
import { sine } from "./signal_helpers.ts";

/** Speech-like bursts: 1 s of two modulated partials, 1 s of −60 dBov noise, and so on. */
function bursts(frame: number, seed = 1): Int16Array {
  const pcm = new Int16Array(960);
  let r = seed + frame * 7919;
  for (let i = 0; i < 960; i++) {
    const n = frame * 960 + i;
    r = (r * 1103515245 + 12345) & 0x7fffffff;
    const noise = (r / 0x7fffffff - 0.5) * 110;
    const talking = Math.floor(n / 48000) % 2 === 0;
    const env = 0.6 + 0.4 * Math.sin((2 * Math.PI * 4 * n) / 48000);
    const voice = env * (5000 * Math.sin((2 * Math.PI * 140 * n) / 48000) +
      2500 * Math.sin((2 * Math.PI * 434 * n) / 48000));
    pcm[i] = Math.round((talking ? voice : 0) + noise);
  }
  return pcm;
}

Deno.test("opus TOC duration (RFC 6716 §3.1)", () => {
  assert.equal(opusPacketDurationMs(Uint8Array.of((1 << 3) | 0)), 20, "SILK NB 20 ms, one frame");
  assert.equal(opusPacketDurationMs(Uint8Array.of((3 << 3) | 1)), 120, "SILK 60 ms ×2");
  assert.equal(opusPacketDurationMs(Uint8Array.of((13 << 3) | 0)), 20, "hybrid 20 ms");
  assert.equal(opusPacketDurationMs(Uint8Array.of((16 << 3) | 0)), 2.5, "CELT 2.5 ms");
  assert.equal(opusPacketDurationMs(Uint8Array.of((31 << 3) | 3, 3)), 60, "CELT 20 ms ×3 (code 3)");
  assert.equal(opusPacketDurationMs(Uint8Array.of((31 << 3) | 3)), undefined, "code 3 cut short");
  assert.equal(opusPacketDurationMs(new Uint8Array(0)), undefined);
  assert.deepEqual(opusToc(Uint8Array.of((14 << 3) | 4 | 2)), {
    config: 14,
    mode: "hybrid",
    frameMs: 10,
    stereo: true,
    code: 2,
  });
  const encoder = createEncoder("opus");
  assert.equal(opusPacketDurationMs(encoder.encode(new Int16Array(960))), 20, "our encoder");
  encoder.close();
});

Deno.test("opus frames: codes 0–3 with lengths, padding and the §3.4 size rules", () => {
  const toc = (code: number) => (15 << 3) | code; // hybrid FB 20 ms
  assert.deepEqual(opusFrames(Uint8Array.of(toc(0), 9, 9, 9)), [{ offset: 1, length: 3 }]);
  assert.deepEqual(opusFrames(Uint8Array.of(toc(0))), [{ offset: 1, length: 0 }], "DTX");
  assert.deepEqual(opusFrames(Uint8Array.of(toc(1), 1, 2, 3, 4)), [
    { offset: 1, length: 2 },
    { offset: 3, length: 2 },
  ]);
  assert.equal(opusFrames(Uint8Array.of(toc(1), 1, 2, 3)), undefined, "R3: odd size");
  assert.deepEqual(opusFrames(Uint8Array.of(toc(2), 1, 7, 8, 9)), [
    { offset: 2, length: 1 },
    { offset: 3, length: 2 },
  ]);
  assert.equal(opusFrames(Uint8Array.of(toc(2), 5, 7)), undefined, "R4: first frame too long");
  // Two-byte length: 252 + 4 × 1 = 256 bytes.
  const long = new Uint8Array(3 + 256 + 4);
  long.set([toc(2), 252, 1]);
  assert.deepEqual(opusFrames(long), [{ offset: 3, length: 256 }, { offset: 259, length: 4 }]);
  // Code 3, CBR, 3 frames of 2 bytes, with 2 bytes of padding (padding length byte 2).
  assert.deepEqual(
    opusFrames(Uint8Array.of(toc(3), 0x40 | 3, 2, 1, 1, 2, 2, 3, 3, 0, 0)),
    [{ offset: 3, length: 2 }, { offset: 5, length: 2 }, { offset: 7, length: 2 }],
  );
  // Code 3, VBR, 2 frames: first 1 byte, second the rest.
  assert.deepEqual(opusFrames(Uint8Array.of(toc(3), 0x80 | 2, 1, 5, 6, 6)), [
    { offset: 3, length: 1 },
    { offset: 4, length: 2 },
  ]);
  assert.equal(opusFrames(Uint8Array.of(toc(3), 0)), undefined, "R5: no frames");
  assert.equal(opusFrames(Uint8Array.of(toc(3), 7)), undefined, "R5: 140 ms");
  assert.equal(opusFrames(Uint8Array.of(toc(3), 2, 1, 2, 3)), undefined, "R6: CBR not divisible");
  assert.equal(opusFrames(new Uint8Array(0)), undefined);
});

Deno.test("range decoder (RFC 6716 §4.1): equiprobable bits are the leading bits", () => {
  // With rng = 2^31 after initialization and p = ½ per symbol, the range halves exactly at
  // each step, so §4.1's decoder must return the payload's leading bits, first bit first.
  for (let b0 = 0; b0 < 256; b0++) {
    const got = rangeDecodeBits(Uint8Array.of(b0, 0x5a), { offset: 0, length: 2 }, 3, 1);
    const want = (b0 >> 7 & 1) | ((b0 >> 6 & 1) << 1) | ((b0 >> 5 & 1) << 2);
    assert.equal(got, want, `first byte ${b0.toString(2).padStart(8, "0")}`);
  }
  // Ten bits: across the first renormalization (the second byte's bits follow).
  const ten = rangeDecodeBits(
    Uint8Array.of(0b10110011, 0b01000000),
    { offset: 0, length: 2 },
    10,
    1,
  );
  assert.equal(ten, reverseBits(0b1011001101, 10));
  // p = 2^−15 (the CELT silence flag): a 1 only when the first 15 bits are all ones.
  const frame = { offset: 0, length: 2 };
  assert.equal(rangeDecodeBits(Uint8Array.of(0xff, 0xfe), frame, 1, 15), 1);
  assert.equal(rangeDecodeBits(Uint8Array.of(0xff, 0xfc), frame, 1, 15), 0);
  assert.equal(rangeDecodeBits(Uint8Array.of(0x00, 0x00), frame, 1, 15), 0);
  // Bytes past the frame read as zeros (§4.1.2.1): a 1-byte frame of 0xff is not silence.
  assert.equal(rangeDecodeBits(Uint8Array.of(0xff, 0xff), { offset: 0, length: 1 }, 1, 15), 0);
});

/** `n` bits of `v` in reverse order (the decoder returns the first symbol in bit 0). */
function reverseBits(v: number, n: number): number {
  let r = 0;
  for (let i = 0; i < n; i++) r |= ((v >> (n - 1 - i)) & 1) << i;
  return r;
}

Deno.test("opus activity: the sender's SILK VAD flag, CELT silence flag and DTX frames", () => {
  // Voice bursts through our encoder at 32 kbit/s (hybrid mode): the flag follows the talk.
  const encoder = createEncoder("opus");
  const counts = { talk: { active: 0, other: 0 }, pause: { active: 0, other: 0 } };
  for (let f = 0; f < 400; f++) {
    const packet = encoder.encode(bursts(f));
    assert.equal(opusToc(packet)?.mode, "hybrid");
    const a = opusActivity(packet);
    assert.ok(a === "active" || a === "inactive", a);
    const c = Math.floor(f / 50) % 2 === 0 ? counts.talk : counts.pause;
    if (a === "active") c.active++;
    else c.other++;
  }
  encoder.close();
  assert.ok(counts.talk.active >= 180, `talking frames flagged: ${JSON.stringify(counts)}`);
  assert.ok(counts.pause.active <= 20, `pauses flagged: ${JSON.stringify(counts)}`);

  // A stationary tone: flagged at first, then SILK calls it noise (why the decoder also
  // checks the level before trusting "inactive").
  const toneEncoder = createEncoder("opus");
  const toneActivity: string[] = [];
  for (let f = 0; f < 150; f++) {
    toneActivity.push(opusActivity(toneEncoder.encode(sine(440, 6000, 960, 48000, f * 960))));
  }
  toneEncoder.close();
  assert.ok(toneActivity.slice(0, 10).includes("active"));
  assert.ok(toneActivity.slice(100).every((a) => a === "inactive"), "tone inactive after 2 s");

  // CELT-only (96 kbit/s): no VAD flag, but digital silence sets the silence flag.
  const celt = createEncoder("opus", { bitrate: 96000 });
  const silent = celt.encode(new Int16Array(960));
  const loud = celt.encode(sine(440, 6000, 960));
  assert.equal(opusToc(silent)?.mode, "celt");
  assert.equal(opusActivity(silent), "silent");
  assert.equal(opusActivity(loud), "unknown");
  celt.close();

  // DTX: the encoder emits TOC-only packets (0-byte frames) in silence.
  const dtx = createEncoder("opus", { dtx: true });
  const sizes: number[] = [];
  const activities = new Set<string>();
  for (let f = 0; f < 60; f++) {
    const packet = dtx.encode(new Int16Array(960));
    sizes.push(packet.length);
    if (packet.length === 1) activities.add(opusActivity(packet));
  }
  dtx.close();
  assert.ok(sizes.filter((s) => s === 1).length >= 40, `DTX packets: ${sizes}`);
  assert.deepEqual([...activities], ["silent"]);
  assert.equal(opusActivity(Uint8Array.of((15 << 3) | 1, 1, 2, 3)), "unknown", "malformed");
});
