import assert from "node:assert/strict";
import {
  ALAW_DECODE_TABLE,
  alawToLinear,
  G711Decoder,
  G711Encoder,
  linearToAlaw,
  linearToUlaw,
  ULAW_DECODE_TABLE,
  ulawToLinear,
} from "../../../lib/media/codecs/g711.ts";

// Reference values from ITU-T G.711 Table 2a (µ-law) and Table 1a (A-law). The tables give
// the decoder output in 14-bit (µ-law, max 8031) and 13-bit (A-law, max 4032) units; the
// 16-bit values below are those ×4 and ×8. Codes are as transmitted (µ-law all bits
// inverted, A-law even bits inverted).

Deno.test("µ-law decoder: first value of each segment and full scale (Table 2a)", () => {
  const cases: [number, number][] = [
    [0xff, 0], // segment 1, "11111111": 0
    [0xfe, 2 * 4],
    [0xf0, 30 * 4], // last value of segment 1
    [0xef, 33 * 4], // segment 2 starts at 33
    [0xdf, 99 * 4], // segment 3
    [0xcf, 231 * 4], // segment 4
    [0xbf, 495 * 4], // segment 5
    [0xaf, 1023 * 4], // segment 6
    [0x9f, 2079 * 4], // segment 7
    [0x8f, 4191 * 4], // segment 8
    [0x80, 8031 * 4], // full scale
    [0x00, -8031 * 4], // negative full scale
    [0x7f, 0], // negative zero
    [0x7e, -2 * 4],
    [0x6f, -33 * 4],
  ];
  for (const [code, value] of cases) {
    assert.equal(ulawToLinear(code), value, `code 0x${code.toString(16)}`);
  }
});

Deno.test("µ-law encoder: decision values at segment boundaries (Table 2a)", () => {
  // 14-bit input x → expected output value; x·4 is the 16-bit input.
  const cases: [number, number][] = [
    [0, 0],
    [1, 2], // decision value 1 → output 2
    [2, 2],
    [3, 4], // decision value 3
    [30, 30],
    [31, 33], // decision value 31 starts segment 2
    [94, 93],
    [95, 99], // decision value 95 starts segment 3
    [222, 219],
    [223, 231],
    [4062, 3999],
    [4063, 4191], // decision value 4063 starts segment 8
    [8158, 8031],
    [8191, 8031], // beyond 8159: clipped to the top code
  ];
  for (const [x, out] of cases) {
    assert.equal(ulawToLinear(linearToUlaw(x * 4)), out * 4, `x14=${x}`);
    assert.equal(ulawToLinear(linearToUlaw(-x * 4)), -out * 4 || 0, `x14=-${x}`);
  }
  assert.equal(linearToUlaw(0), 0xff);
  assert.equal(linearToUlaw(32767), 0x80);
  assert.equal(linearToUlaw(-32768), 0x00);
  // Sign handling: a small negative value uses the inverted sign bit (0x7x).
  assert.equal(linearToUlaw(-8), 0x7e);
});

Deno.test("A-law decoder: even-bit inversion, segment starts, full scale (Table 1a)", () => {
  const cases: [number, number][] = [
    [0xd5, 1 * 8], // "1 0000 000" XOR 0x55: smallest positive value
    [0x55, -1 * 8],
    [0xda, 31 * 8], // last value of segment 1
    [0xc5, 33 * 8], // segment 2 starts at 33
    [0xf5, 66 * 8], // segment 3
    [0xe5, 132 * 8], // segment 4
    [0x95, 264 * 8], // segment 5
    [0x85, 528 * 8], // segment 6
    [0xb5, 1056 * 8], // segment 7
    [0xa5, 2112 * 8], // segment 8
    [0xaa, 4032 * 8], // full scale
    [0x2a, -4032 * 8],
    [0x80, 688 * 8], // 0x80 ^ 0x55 = 0xd5: segment 6, step 5
  ];
  for (const [code, value] of cases) {
    assert.equal(alawToLinear(code), value, `code 0x${code.toString(16)}`);
  }
});

Deno.test("A-law encoder: decision values and sign (Table 1a)", () => {
  // 13-bit input → expected output value.
  const cases: [number, number][] = [
    [0, 1],
    [1, 1],
    [2, 3], // decision value 2
    [31, 31],
    [32, 33], // decision value 32 starts segment 2
    [63, 63],
    [64, 66], // segment 3, steps of 4
    [2047, 2016],
    [2048, 2112], // segment 8, steps of 128
    [4095, 4032],
  ];
  for (const [x, out] of cases) {
    assert.equal(alawToLinear(linearToAlaw(x * 8)), out * 8, `x13=${x}`);
    // Negative inputs: A-law is symmetric about −½ LSB, so −x−1 mirrors x.
    assert.equal(alawToLinear(linearToAlaw((-x - 1) * 8)), -out * 8, `x13=${-x - 1}`);
  }
  assert.equal(linearToAlaw(0), 0xd5);
  assert.equal(linearToAlaw(-1), 0x55);
  assert.equal(linearToAlaw(32767), 0xaa);
  assert.equal(linearToAlaw(-32768), 0x2a);
});

Deno.test("G.711: every code survives decode → encode; decode tables are monotonic", () => {
  for (let c = 0; c < 256; c++) {
    const u = linearToUlaw(ulawToLinear(c));
    assert.equal(u, c === 0x7f ? 0xff : c, `µ-law code 0x${c.toString(16)}`);
    assert.equal(linearToAlaw(alawToLinear(c)), c, `A-law code 0x${c.toString(16)}`);
  }
  const sortedU = [...ULAW_DECODE_TABLE].sort((a, b) => a - b);
  const sortedA = [...ALAW_DECODE_TABLE].sort((a, b) => a - b);
  assert.equal(new Set(sortedU).size, 255); // ±0 coincide
  assert.equal(new Set(sortedA).size, 256);
});

Deno.test("G.711: every 16-bit input lands within half a step of its level", () => {
  // The level chosen for x is the middle of the quantisation interval holding x, so the
  // error is at most half that interval (the larger gap next to the level) plus the input
  // truncation to 14 (µ-law) or 13 (A-law) bits.
  const halfStep = (levels: number[]): Map<number, number> => {
    const m = new Map<number, number>();
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i] as number;
      const below = i > 0 ? l - (levels[i - 1] as number) : 0;
      const above = i + 1 < levels.length ? (levels[i + 1] as number) - l : 0;
      m.set(l, Math.max(below, above) / 2);
    }
    return m;
  };
  const uHalf = halfStep([...new Set(ULAW_DECODE_TABLE)].sort((a, b) => a - b));
  const aHalf = halfStep([...new Set(ALAW_DECODE_TABLE)].sort((a, b) => a - b));
  for (let x = -32768; x <= 32767; x++) {
    const u = ulawToLinear(linearToUlaw(x));
    if (Math.abs(x) <= 32124) {
      assert.ok(Math.abs(u - x) <= (uHalf.get(u) as number) + 4, `µ-law x=${x} → ${u}`);
    } else {
      assert.equal(Math.abs(u), 32124, `µ-law clips x=${x}`);
    }
    const a = alawToLinear(linearToAlaw(x));
    if (Math.abs(x) <= 32256) {
      assert.ok(Math.abs(a - x) <= (aHalf.get(a) as number) + 8, `A-law x=${x} → ${a}`);
    } else {
      assert.equal(Math.abs(a), 32256, `A-law clips x=${x}`);
    }
  }
});

Deno.test("G711Encoder/Decoder: frame round trip and shape", () => {
  for (const law of ["pcmu", "pcma"] as const) {
    const enc = new G711Encoder(law);
    const dec = new G711Decoder(law);
    assert.equal(enc.clockRate, 8000);
    assert.equal(enc.frameSamples, 160);
    const pcm = Int16Array.from({ length: 160 }, (_, i) => Math.round(9000 * Math.sin(i / 3)));
    const payload = enc.encode(pcm);
    assert.equal(payload.length, 160);
    const out = dec.decode(payload);
    for (let i = 0; i < 160; i++) {
      assert.ok(Math.abs((out[i] as number) - (pcm[i] as number)) <= 300, `${law} sample ${i}`);
    }
  }
});

Deno.test("G711Decoder.conceal: repeats the last frame fading out, then silence", () => {
  const dec = new G711Decoder("pcmu");
  const enc = new G711Encoder("pcmu");
  const pcm = new Int16Array(160).fill(8000);
  const good = dec.decode(enc.encode(pcm));
  const level = good[0] as number;
  const c1 = dec.conceal();
  const c2 = dec.conceal();
  const c3 = dec.conceal();
  const c4 = dec.conceal();
  const c5 = dec.conceal();
  assert.equal(c1.length, 160);
  // Gain ramps 1 → 0.8, 0.8 → 0.5, 0.5 → 0.25, 0.25 → 0, then silence.
  assert.ok(Math.abs((c1[159] as number) - level * 0.8) <= 1);
  assert.ok(Math.abs((c2[159] as number) - level * 0.5) <= 1);
  assert.ok(Math.abs((c3[159] as number) - level * 0.25) <= 1);
  assert.ok((c1[0] as number) > (c1[159] as number));
  assert.equal(c4[159], 0);
  assert.ok((c4[0] as number) > 0);
  assert.ok(c5.every((v) => v === 0));
  // A good frame ends concealment and resets the fade.
  dec.decode(enc.encode(pcm));
  assert.ok(Math.abs((dec.conceal()[159] as number) - level * 0.8) <= 1);
});

Deno.test("G711Decoder.decodeInto: same samples as decode, into the caller's array", () => {
  for (const law of ["pcmu", "pcma"] as const) {
    const enc = new G711Encoder(law);
    const pcm = Int16Array.from({ length: 160 }, (_, i) => Math.round(7000 * Math.sin(i / 5)));
    const payload = enc.encode(pcm);
    const want = new G711Decoder(law).decode(payload);
    const dec = new G711Decoder(law);
    const out = new Int16Array(160).fill(123);
    const got = dec.decodeInto(payload, out);
    assert.equal(got, out, "a full-size array is filled and returned as is");
    assert.deepEqual(got, want);
    // A larger array: the decoded samples are a view at its start, the rest untouched.
    const big = new Int16Array(200).fill(7);
    const view = dec.decodeInto(payload.subarray(0, 80), big);
    assert.equal(view.length, 80);
    assert.equal(view.buffer, big.buffer);
    assert.deepEqual(view, want.subarray(0, 80));
    assert.equal(big[80], 7);
    assert.throws(() => dec.decodeInto(payload, new Int16Array(100)), RangeError);
  }
});

Deno.test("G711Decoder.decodeInto: concealment repeats the frame decoded last", () => {
  const enc = new G711Encoder("pcmu");
  const a = new Int16Array(160);
  const b = new Int16Array(160);
  const dec = new G711Decoder("pcmu");
  dec.decodeInto(enc.encode(new Int16Array(160).fill(2000)), a);
  const second = dec.decodeInto(enc.encode(new Int16Array(160).fill(8000)), b);
  const c1 = dec.conceal();
  assert.ok(Math.abs((c1[159] as number) - (second[0] as number) * 0.8) <= 1);
  assert.notEqual(c1, b, "concealment is a new array; the caller's stays as decoded");
});
