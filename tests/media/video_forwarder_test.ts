/**
 * The switching forwarder (RFC 7667 §3.7) with injected time: SSRC, sequence number and
 * timestamp rewriting that stays continuous across source switches (RFC 3550 §5.1), no
 * self-view, key-frame requests on a switch, key-frame gating with its time bound, pinned
 * (`a=label`) selection, receiver PLI passed on rate-limited, NACK retransmission; plus the
 * VP8 descriptor (RFC 7741) and feedback packet (RFC 4585, RFC 5104) helpers it relies on.
 */
import assert from "node:assert/strict";
import { parseRtp, type RtpPacket } from "../../lib/media/rtp.ts";
import { parseRtcp, serializeRtcp } from "../../lib/media/rtcp.ts";
import { firPacket, nackPacket, pliPacket, readFeedback } from "../../lib/media/rtcp_feedback.ts";
import { VideoForwarder } from "../../lib/media/video_forwarder.ts";
import { isVp8FrameStart, isVp8KeyFrame, parseVp8Descriptor } from "../../lib/media/vp8_payload.ts";

/** VP8 payloads: a key frame start, a delta frame start, a continuation packet. */
const KEY = new Uint8Array([0x10, 0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01]);
const DELTA = new Uint8Array([0x10, 0x51, 0x00, 0x00, 0xaa, 0xbb]);
const MIDDLE = new Uint8Array([0x00, 0xcc, 0xdd]);

function packet(seq: number, ts: number, payload: Uint8Array, ssrc = 1, marker = false): RtpPacket {
  return {
    marker,
    payloadType: 100,
    sequenceNumber: seq & 0xffff,
    timestamp: ts >>> 0,
    ssrc,
    csrcs: [],
    extensions: [],
    payload,
  };
}

interface Sent {
  to: string;
  packet: RtpPacket;
}

function rig(options: { waitMs?: number; intervalMs?: number } = {}) {
  const sent: Sent[] = [];
  const requests: string[] = [];
  let r = 0;
  const fwd = new VideoForwarder({
    output: {
      send: (to, bytes) => sent.push({ to, packet: parseRtp(bytes)! }),
      requestKeyFrame: (id) => requests.push(id),
    },
    keyFrameWaitMs: options.waitMs ?? 1000,
    keyFrameRequestIntervalMs: options.intervalMs ?? 300,
    random: () => (r = (r + 0.37) % 1),
  });
  return { fwd, sent, requests };
}

/** Three participants a, b, c, each sendrecv with one stream `<x>v`. */
function threeWay(options: { waitMs?: number; intervalMs?: number } = {}) {
  const t = rig(options);
  const ssrcs: Record<string, number> = { a: 0xa0a0, b: 0xb0b0, c: 0xc0c0 };
  const pts: Record<string, number> = { a: 96, b: 97, c: 98 };
  for (const o of ["a", "b", "c"]) {
    t.fwd.setStream(`${o}v`, {
      owner: o,
      source: true,
      receiver: { ssrc: ssrcs[o]!, payloadType: pts[o]! },
    }, 0);
  }
  return { ...t, ssrcs, pts };
}

Deno.test("vp8: descriptor with extensions, key frame, frame start", () => {
  assert.deepEqual(parseVp8Descriptor(new Uint8Array([0x90, 0xe0, 0x81, 0x02, 0x07, 0x00, 0x00])), {
    startOfPartition: true,
    partitionId: 0,
    pictureId: 0x102,
    size: 6, // X, I with a 15-bit PictureID, L, T/K
  });
  assert.equal(parseVp8Descriptor(new Uint8Array([0x90, 0x80])), null, "PictureID missing");
  assert.equal(isVp8KeyFrame(KEY), true);
  assert.equal(isVp8KeyFrame(DELTA), false);
  assert.equal(isVp8KeyFrame(MIDDLE), false);
  assert.equal(isVp8FrameStart(DELTA), true);
  assert.equal(isVp8FrameStart(MIDDLE), false);
  // P = 0 but no start code: not a key frame.
  assert.equal(isVp8KeyFrame(new Uint8Array([0x10, 0x50, 0, 0, 1, 2, 3])), false);
});

Deno.test("rtcp feedback: PLI, FIR, NACK round-trip through compound RTCP", () => {
  const bytes = serializeRtcp([
    { type: "rr", ssrc: 5, reports: [] },
    pliPacket(5, 77),
    firPacket(5, 88, 3),
    nackPacket(5, 99, [100, 101, 116, 117, 300]),
  ]);
  const fbs = parseRtcp(bytes)!.map(readFeedback).filter((f) => f !== undefined);
  assert.deepEqual(fbs, [
    { kind: "pli", sender: 5, media: 77 },
    { kind: "fir", sender: 5, entries: [{ ssrc: 88, seq: 3 }] },
    { kind: "nack", sender: 5, media: 99, lost: [100, 101, 116, 117, 300] },
  ]);
});

Deno.test("forwarder: the receiver gets its own SSRC and payload type; nobody sees itself", () => {
  const { fwd, sent, ssrcs, pts } = threeWay();
  fwd.onPacket("av", packet(1000, 5000, KEY, 0xaaaa), 0);
  assert.deepEqual(sent.map((s) => s.to).sort(), ["bv", "cv"], "a's video to b and c only");
  for (const s of sent) {
    const owner = s.to[0]!;
    assert.equal(s.packet.ssrc, ssrcs[owner]);
    assert.equal(s.packet.payloadType, pts[owner]);
    assert.deepEqual(s.packet.payload, KEY);
  }
  assert.equal(fwd.viewing("av"), undefined, "a has nobody else to view yet");
  fwd.onPacket("bv", packet(7, 0, KEY, 0xbbbb), 10);
  assert.equal(fwd.viewing("av"), "bv", "a views b once b sends a key frame");
  assert.equal(fwd.viewing("cv"), "av", "c stays on the first source that sent");
});

Deno.test("forwarder: sequence numbers and timestamps continue across a switch; PLI on switch; gating until the key frame", () => {
  const { fwd, sent, requests } = threeWay();
  // a and b send; c views a (first to send), then b becomes the active speaker.
  let t = 0;
  fwd.onPacket("av", packet(1000, 90_000, KEY, 0xaaaa), t);
  fwd.onPacket("bv", packet(50_000, 7_000_000, KEY, 0xbbbb), t);
  for (let i = 1; i <= 3; i++) {
    t += 33;
    fwd.onPacket("av", packet(1000 + i, 90_000 + i * 3000, DELTA, 0xaaaa), t);
  }
  const toC = () => sent.filter((s) => s.to === "cv").map((s) => s.packet);
  const before = toC();
  assert.equal(before.length, 4);
  for (let i = 1; i < before.length; i++) {
    assert.equal(before[i]!.sequenceNumber, (before[i - 1]!.sequenceNumber + 1) & 0xffff);
    assert.equal(before[i]!.timestamp - before[i - 1]!.timestamp, 3000, "source spacing kept");
  }
  requests.length = 0;
  t += 400; // beyond the key-frame request interval since b's first packet
  fwd.setActiveSpeaker("b", t);
  assert.deepEqual(requests, ["bv"], "key frame asked from the new source at once");
  // b's delta frames are held back; a keeps flowing to c meanwhile.
  t += 20;
  fwd.onPacket("bv", packet(50_001, 7_003_000, DELTA, 0xbbbb), t);
  fwd.onPacket("av", packet(1004, 90_000 + 4 * 3000, DELTA, 0xaaaa), t);
  assert.equal(fwd.receiverState("cv")!.packetsGated, 1);
  assert.equal(fwd.viewing("cv"), "av");
  // The key frame from b switches c, 40 ms after c's last packet.
  t += 40;
  fwd.onPacket("bv", packet(50_002, 7_006_000, KEY, 0xbbbb), t);
  fwd.onPacket("bv", packet(50_003, 7_006_000, MIDDLE, 0xbbbb, true), t);
  fwd.onPacket("av", packet(1005, 90_000 + 5 * 3000, DELTA, 0xaaaa), t);
  const after = toC();
  assert.equal(after.length, 7, "4 + a's last + b's key frame (2 packets); a no longer");
  const lastA = after[4]!;
  const firstB = after[5]!;
  assert.deepEqual(firstB.payload, KEY);
  assert.equal(firstB.ssrc, lastA.ssrc, "one outgoing SSRC across sources");
  assert.equal(firstB.sequenceNumber, (lastA.sequenceNumber + 1) & 0xffff, "seq continues");
  assert.equal(
    firstB.timestamp - lastA.timestamp,
    40 * 90,
    "timestamp advances by the elapsed time",
  );
  assert.equal(after[6]!.sequenceNumber, (firstB.sequenceNumber + 1) & 0xffff);
  assert.equal(after[6]!.timestamp, firstB.timestamp, "same frame, same timestamp");
  assert.equal(after[6]!.marker, true);
  assert.equal(fwd.viewing("cv"), "bv");
  assert.equal(fwd.receiverState("cv")!.switches, 2);
  // The speaker (b) does not see itself: it keeps viewing a, the previous source.
  assert.equal(fwd.viewing("bv"), "av");
  assert.ok(sent.filter((s) => s.to === "bv").every((s) => s.packet.ssrc === 0xb0b0));
});

Deno.test("forwarder: without a key frame the switch happens at a frame start after the bound", () => {
  const { fwd, sent } = threeWay({ waitMs: 500 });
  fwd.onPacket("av", packet(1, 0, KEY), 0);
  fwd.onPacket("bv", packet(1, 0, KEY), 0);
  fwd.setActiveSpeaker("b", 100); // c: a → b
  fwd.onPacket("bv", packet(2, 3000, DELTA), 200);
  assert.equal(fwd.viewing("cv"), "av");
  fwd.onPacket("bv", packet(3, 6000, MIDDLE), 700); // past the bound but not a frame start
  assert.equal(fwd.viewing("cv"), "av");
  fwd.onPacket("bv", packet(4, 9000, DELTA), 710);
  assert.equal(fwd.viewing("cv"), "bv");
  assert.deepEqual(sent.at(-1)!.packet.payload, DELTA);
  assert.equal(fwd.receiverState("cv")!.packetsGated, 2);
});

Deno.test("forwarder: a speaker views the previous speaker; a pinned label wins over the speaker", () => {
  const { fwd } = threeWay();
  for (const s of ["av", "bv", "cv"]) fwd.onPacket(s, packet(1, 0, KEY), 0);
  fwd.setActiveSpeaker("a", 10);
  fwd.setActiveSpeaker("c", 20);
  for (const s of ["av", "bv", "cv"]) fwd.onPacket(s, packet(2, 3000, KEY), 30);
  assert.equal(fwd.viewing("av"), "cv");
  assert.equal(fwd.viewing("bv"), "cv");
  assert.equal(fwd.viewing("cv"), "av", "the speaker sees the previous speaker");
  fwd.pin("bv", "av", 40);
  for (const s of ["av", "bv", "cv"]) fwd.onPacket(s, packet(3, 6000, KEY), 50);
  assert.equal(fwd.viewing("bv"), "av", "b pinned a's stream");
  fwd.pin("bv", "bv", 60); // pinning yourself is ignored: back to the speaker
  for (const s of ["av", "bv", "cv"]) fwd.onPacket(s, packet(4, 9000, KEY), 70);
  assert.equal(fwd.viewing("bv"), "cv");
  // The viewed source leaves: the receiver moves on.
  fwd.removeStream("cv", 80);
  fwd.onPacket("av", packet(5, 12_000, KEY), 90);
  fwd.onPacket("bv", packet(5, 12_000, KEY), 90);
  assert.equal(fwd.viewing("bv"), "av");
  assert.equal(fwd.viewing("av"), "bv");
});

Deno.test("forwarder: receivers' PLI goes to the source they view, rate-limited; NACK resends from the buffer", () => {
  const { fwd, sent, requests } = threeWay({ intervalMs: 300 });
  fwd.onPacket("av", packet(10, 0, KEY), 0);
  const suppressedAtStart = fwd.sourceState("av")!.keyFrameRequestsSuppressed;
  requests.length = 0;
  fwd.onKeyFrameRequest("bv", 1000);
  fwd.onKeyFrameRequest("cv", 1100);
  fwd.onKeyFrameRequest("cv", 1350);
  assert.deepEqual(requests, ["av", "av"], "1100 suppressed (< 300 ms after 1000)");
  assert.equal(fwd.sourceState("av")!.keyFrameRequestsSuppressed, suppressedAtStart + 1);
  const out = sent.filter((s) => s.to === "bv").map((s) => s.packet);
  fwd.onPacket("av", packet(11, 3000, DELTA), 1400);
  const seq0 = out[0]!.sequenceNumber;
  const before = sent.length;
  assert.equal(fwd.onNack("bv", [seq0, (seq0 + 1) & 0xffff, (seq0 + 5) & 0xffff]), 2);
  assert.equal(sent.length, before + 2);
  assert.equal(sent.at(-2)!.packet.sequenceNumber, seq0);
  assert.deepEqual(sent.at(-2)!.packet.payload, KEY);
});

Deno.test("forwarder: a late packet from before a switch is dropped, not renumbered into the new epoch", () => {
  const { fwd, sent } = threeWay();
  fwd.onPacket("av", packet(100, 0, KEY), 0);
  fwd.onPacket("bv", packet(500, 0, KEY), 0);
  fwd.setActiveSpeaker("b", 10);
  fwd.onPacket("bv", packet(501, 3000, KEY), 20); // c switches to b
  const n = sent.filter((s) => s.to === "cv").length;
  fwd.onPacket("bv", packet(499, 0, MIDDLE), 25); // reordered, older than the switch point
  assert.equal(sent.filter((s) => s.to === "cv").length, n);
});

Deno.test("forwarder: recvonly-from-us streams are sources only, sendonly ones receivers only", () => {
  const { fwd, sent } = rig();
  fwd.setStream("cam", { owner: "x", source: true }, 0); // x only sends
  fwd.setStream("view", { owner: "y", source: false, receiver: { ssrc: 7, payloadType: 96 } }, 0);
  fwd.onPacket("cam", packet(1, 0, KEY), 0);
  fwd.onPacket("view", packet(1, 0, KEY), 0); // not a source: ignored
  assert.deepEqual(sent.map((s) => s.to), ["view"]);
  assert.deepEqual(fwd.sourceIds, ["cam"]);
  assert.deepEqual(fwd.receiverIds, ["view"]);
});
