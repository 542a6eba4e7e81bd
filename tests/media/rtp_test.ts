import assert from "node:assert/strict";
import {
  audioLevelExtension,
  findRtpExtension,
  parseRtp,
  readAudioLevel,
  RtpEncodeError,
  type RtpPacket,
  rtpPacketSize,
  serializePlainRtp,
  serializeRtp,
  writePlainRtp,
} from "../../lib/media/rtp.ts";

function base(overrides: Partial<RtpPacket> = {}): RtpPacket {
  return {
    marker: false,
    payloadType: 0,
    sequenceNumber: 1,
    timestamp: 160,
    ssrc: 0x11223344,
    csrcs: [],
    extensions: [],
    payload: Uint8Array.of(1, 2, 3, 4, 5),
    ...overrides,
  };
}

function same(a: RtpPacket, b: RtpPacket): void {
  assert.equal(a.marker, b.marker);
  assert.equal(a.payloadType, b.payloadType);
  assert.equal(a.sequenceNumber, b.sequenceNumber);
  assert.equal(a.timestamp, b.timestamp);
  assert.equal(a.ssrc, b.ssrc);
  assert.deepEqual([...a.csrcs], [...b.csrcs]);
  assert.deepEqual(
    a.extensions.map((e) => [e.id, [...e.data]]),
    b.extensions.map((e) => [e.id, [...e.data]]),
  );
  assert.deepEqual([...a.payload], [...b.payload]);
}

Deno.test("rtp: fixed header bytes match RFC 3550 §5.1 layout", () => {
  const bytes = serializeRtp(base({
    marker: true,
    payloadType: 96,
    sequenceNumber: 0xabcd,
    timestamp: 0xdeadbeef,
    ssrc: 0xcafebabe,
  }));
  assert.deepEqual(
    [...bytes.subarray(0, 12)],
    [0x80, 0x80 | 96, 0xab, 0xcd, 0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe],
  );
  assert.deepEqual([...bytes.subarray(12)], [1, 2, 3, 4, 5]);
});

Deno.test("rtp: parse of hand-written packet with CSRCs and one-byte extension", () => {
  const bytes = Uint8Array.of(
    0x92, // V=2, X=1, CC=2
    0x00, // PT 0
    0x00,
    0x07,
    0x00,
    0x00,
    0x01,
    0x40,
    0x00,
    0x00,
    0x00,
    0x2a,
    0x00,
    0x00,
    0x00,
    0x01, // CSRC 1
    0x00,
    0x00,
    0x00,
    0x02, // CSRC 2
    0xbe,
    0xde,
    0x00,
    0x01, // one-byte profile, 1 word
    0x10,
    0xd5, // id 1, len 1, value 0xd5 (V=1, level 85)
    0x00,
    0x00, // padding
    0xff,
    0xfe,
  );
  const p = parseRtp(bytes);
  assert.ok(p);
  assert.equal(p.sequenceNumber, 7);
  assert.equal(p.timestamp, 320);
  assert.equal(p.ssrc, 42);
  assert.deepEqual([...p.csrcs], [1, 2]);
  assert.equal(p.extensions.length, 1);
  assert.deepEqual(readAudioLevel(p, 1), { level: 85, voiceActivity: true });
  assert.equal(readAudioLevel(p, 2), undefined);
  assert.deepEqual([...p.payload], [0xff, 0xfe]);
});

Deno.test("rtp: round trip with CSRCs, one-byte extensions and padding", () => {
  const packet = base({
    csrcs: [1, 0xffffffff, 3],
    extensions: [
      audioLevelExtension(1, 30, true),
      { id: 3, data: Uint8Array.of(1, 2, 3) },
      { id: 14, data: new Uint8Array(16).fill(7) },
    ],
    paddingSize: 4,
  });
  const bytes = serializeRtp(packet);
  assert.equal(bytes.length, rtpPacketSize(packet));
  assert.equal(bytes[0]! & 0x20, 0x20, "P bit");
  assert.equal((bytes[24]! << 8) | bytes[25]!, 0xbede);
  const parsed = parseRtp(bytes);
  assert.ok(parsed);
  same(parsed, packet);
  assert.equal(parsed.paddingSize, 4);
  assert.deepEqual(readAudioLevel(parsed, 1), { level: 30, voiceActivity: true });
});

Deno.test("rtp: two-byte extensions are used when one-byte cannot carry them", () => {
  for (
    const extensions of [
      [{ id: 20, data: Uint8Array.of(9) }],
      [{ id: 2, data: new Uint8Array(0) }],
      [{ id: 2, data: new Uint8Array(17).fill(3) }, { id: 5, data: Uint8Array.of(1) }],
    ]
  ) {
    const packet = base({ extensions });
    const bytes = serializeRtp(packet);
    assert.equal((bytes[12]! << 8) | bytes[13]!, 0x1000);
    const parsed = parseRtp(bytes);
    assert.ok(parsed);
    same(parsed, packet);
  }
});

Deno.test("rtp: two-byte extension with appbits and padding bytes parses", () => {
  const bytes = Uint8Array.of(
    0x90,
    0x08,
    0,
    1,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    1,
    0x10,
    0x03, // profile 0x1003 (appbits 3)
    0,
    2, // 2 words
    0, // padding byte
    7,
    2,
    0xaa,
    0xbb, // id 7 len 2
    0,
    0,
    0,
    0x55,
  );
  const p = parseRtp(bytes);
  assert.ok(p);
  assert.deepEqual([...findRtpExtension(p, 7)!], [0xaa, 0xbb]);
  assert.equal(p.payloadType, 8);
  assert.deepEqual([...p.payload], [0x55]);
});

Deno.test("rtp: unknown extension profile is kept raw and round-trips", () => {
  const packet = base({ rawExtension: { profile: 0x1234, data: Uint8Array.of(1, 2, 3, 4) } });
  const parsed = parseRtp(serializeRtp(packet));
  assert.ok(parsed);
  assert.equal(parsed.rawExtension?.profile, 0x1234);
  assert.deepEqual([...parsed.rawExtension!.data], [1, 2, 3, 4]);
  assert.equal(parsed.extensions.length, 0);
  assert.deepEqual([...parsed.payload], [1, 2, 3, 4, 5]);
});

Deno.test("rtp: serialize into a reusable buffer writes the same bytes", () => {
  const packet = base({ extensions: [audioLevelExtension(5, 127, false)] });
  const out = new Uint8Array(1500).fill(0xee);
  const view = serializeRtp(packet, out);
  assert.equal(view.buffer, out.buffer);
  assert.deepEqual([...view], [...serializeRtp(packet)]);
  assert.throws(() => serializeRtp(packet, new Uint8Array(10)), RtpEncodeError);
});

Deno.test("rtp: serializePlainRtp writes what serializeRtp writes for a plain packet", () => {
  const cases: RtpPacket[] = [
    base(),
    base({ marker: true, payloadType: 111, sequenceNumber: 0xffff, timestamp: 0xffffffff }),
    base({ payloadType: 8, sequenceNumber: 0, timestamp: 0, ssrc: 0xffffffff }),
    base({ payload: new Uint8Array(160).map((_, i) => (i * 7) & 0xff) }),
    base({ payload: new Uint8Array(0) }),
    base({ csrcs: [0xb0b01234] }),
    base({ csrcs: Array.from({ length: 15 }, (_, i) => 0xffffff00 + i), marker: true }),
  ];
  for (const p of cases) {
    const plain = serializePlainRtp(
      p.marker,
      p.payloadType,
      p.sequenceNumber,
      p.timestamp,
      p.ssrc,
      p.payload,
      p.csrcs,
    );
    assert.deepEqual([...plain], [...serializeRtp(p)]);
    same(parseRtp(plain)!, p);
    // Into a reused buffer (the libc socket path): same bytes, stale bytes beyond ignored.
    const reused = new Uint8Array(400).fill(0xee);
    const length = writePlainRtp(
      reused,
      p.marker,
      p.payloadType,
      p.sequenceNumber,
      p.timestamp,
      p.ssrc,
      p.payload,
      p.csrcs,
    );
    assert.deepEqual([...reused.subarray(0, length)], [...plain]);
  }
  assert.throws(
    () => serializePlainRtp(false, 0, 0, 0, 0, new Uint8Array(1), new Array(16).fill(1)),
    /15 CSRCs/,
  );
});

Deno.test("rtp: malformed packets are rejected", () => {
  const good = serializeRtp(base({ extensions: [{ id: 1, data: Uint8Array.of(1) }] }));
  assert.ok(parseRtp(good));
  assert.equal(parseRtp(good.subarray(0, 11)), null, "short");
  const v1 = good.slice();
  v1[0] = (v1[0]! & 0x3f) | 0x40;
  assert.equal(parseRtp(v1), null, "version 1");
  const longExt = good.slice();
  longExt[15] = 200; // extension length in words runs past the end
  assert.equal(parseRtp(longExt), null, "extension overrun");
  const badPad = good.slice();
  badPad[0] = badPad[0]! | 0x20;
  badPad[badPad.length - 1] = 0;
  assert.equal(parseRtp(badPad), null, "zero padding count");
  const manyCsrc = Uint8Array.of(0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
  assert.equal(parseRtp(manyCsrc), null, "CSRC list past the end");
  const overrunElement = Uint8Array.of(
    0x90,
    0,
    0,
    1,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    1,
    0xbe,
    0xde,
    0,
    1,
    0x1f,
  );
  assert.equal(parseRtp(Uint8Array.of(...overrunElement, 0, 0, 0)), null, "element overrun");
});

Deno.test("rtp: wrap-around values and 32-bit unsigned fields survive", () => {
  const packet = base({ sequenceNumber: 65535, timestamp: 0xffffffff, ssrc: 0x80000000 });
  const parsed = parseRtp(serializeRtp(packet));
  assert.ok(parsed);
  same(parsed, packet);
  assert.ok(parsed.timestamp > 0 && parsed.ssrc > 0);
});

Deno.test("rtp: audio level extension clamps and encodes V flag (RFC 6464 §3)", () => {
  assert.deepEqual([...audioLevelExtension(1, 200, true).data], [0x80 | 127]);
  assert.deepEqual([...audioLevelExtension(1, -3, false).data], [0]);
  assert.deepEqual([...audioLevelExtension(1, 42, false).data], [42]);
});
