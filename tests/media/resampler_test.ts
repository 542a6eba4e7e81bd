import assert from "node:assert/strict";
import { Resampler, ResamplerError } from "../../lib/media/resampler.ts";
import { concat, db, sine, toneAmplitude } from "./codecs/signal_helpers.ts";

const AMP = 10000;

/** Streams `frames` 20 ms frames of a sine through a new resampler; returns the output after
 * the first 100 ms (filter settled). */
function response(inRate: number, outRate: number, hz: number, frames = 25): Int16Array {
  const r = new Resampler(inRate, outRate);
  const n = inRate / 50;
  const out: Int16Array[] = [];
  for (let f = 0; f < frames; f++) {
    const o = r.process(sine(hz, AMP, n, inRate, f * n));
    assert.equal(o.length, outRate / 50, "one 20 ms frame out per 20 ms frame in");
    if (f >= 5) out.push(o);
  }
  return concat(out);
}

Deno.test("48 kHz → 8 kHz: pass band at unity gain", () => {
  for (const hz of [300, 1000, 2000, 3000, 3400]) {
    const gain = db(toneAmplitude(response(48000, 8000, hz), hz, 8000), AMP);
    assert.ok(Math.abs(gain) < 0.5, `${hz} Hz gain ${gain.toFixed(2)} dB`);
  }
});

Deno.test("48 kHz → 8 kHz: tones above 4.8 kHz are removed, not aliased", () => {
  // 5 kHz would fold to 3 kHz, 6 kHz to 2 kHz, 7 kHz to 1 kHz, 11 kHz to 3 kHz.
  for (const [hz, alias] of [[5000, 3000], [6000, 2000], [7000, 1000], [11000, 3000]]) {
    const out = response(48000, 8000, hz as number);
    const att = db(toneAmplitude(out, alias as number, 8000), AMP);
    assert.ok(att <= -55, `${hz} Hz aliased to ${alias} Hz at ${att.toFixed(1)} dB`);
  }
});

Deno.test("8 kHz → 48 kHz: pass band at unity gain, spectral images suppressed", () => {
  for (const hz of [300, 1000, 3000]) {
    const out = response(8000, 48000, hz);
    const gain = db(toneAmplitude(out, hz, 48000), AMP);
    assert.ok(Math.abs(gain) < 0.5, `${hz} Hz gain ${gain.toFixed(2)} dB`);
    // Zero-stuffing by 6 creates images at k·8000 ± hz.
    for (const image of [8000 - hz, 8000 + hz, 16000 - hz, 16000 + hz, 24000 - hz]) {
      const att = db(toneAmplitude(out, image, 48000), AMP);
      assert.ok(att <= -60, `${hz} Hz image at ${image} Hz: ${att.toFixed(1)} dB`);
    }
  }
});

Deno.test("16 kHz ↔ 48 kHz: pass band and stop band", () => {
  const up = response(16000, 48000, 1000);
  assert.ok(Math.abs(db(toneAmplitude(up, 1000, 48000), AMP)) < 0.5);
  assert.ok(db(toneAmplitude(up, 15000, 48000), AMP) <= -60);
  const down = response(48000, 16000, 1000);
  assert.ok(Math.abs(db(toneAmplitude(down, 1000, 16000), AMP)) < 0.5);
  const alias = response(48000, 16000, 11000); // would fold to 5 kHz
  assert.ok(db(toneAmplitude(alias, 5000, 16000), AMP) <= -55);
});

Deno.test("Resampler: frame-by-frame output equals one-block output (state carried)", () => {
  const signal = sine(1234, 12000, 960 * 10, 48000);
  const a = new Resampler(48000, 8000);
  const framed: Int16Array[] = [];
  for (let f = 0; f < 10; f++) framed.push(a.process(signal.subarray(f * 960, (f + 1) * 960)));
  const b = new Resampler(48000, 8000);
  assert.deepEqual(concat(framed), b.process(signal));
  // Odd-sized blocks keep the fractional phase too.
  const c = new Resampler(8000, 48000);
  const small = sine(700, 9000, 1000, 8000);
  const parts = [c.process(small.subarray(0, 7)), c.process(small.subarray(7, 500))];
  parts.push(c.process(small.subarray(500)));
  const d = new Resampler(8000, 48000);
  assert.deepEqual(concat(parts), d.process(small));
});

Deno.test("Resampler: silence in gives silence out; a tone after silence is intact", () => {
  const r = new Resampler(8000, 48000);
  const zero = r.process(new Int16Array(160));
  assert.equal(zero.length, 960);
  assert.ok(zero.every((v) => v === 0));
  const ref = new Resampler(8000, 48000);
  ref.process(new Int16Array(160));
  const x = sine(1000, 8000, 160, 8000);
  assert.deepEqual(r.process(x), ref.process(x));
  // The tail of the tone rings on into the next (silent) frame: no shortcut while history is live.
  const tail = r.process(new Int16Array(160));
  assert.ok(tail.some((v) => v !== 0));
});

Deno.test("Resampler.skip keeps history and phase exactly as process would", () => {
  for (const [inRate, outRate, n] of [[8000, 48000, 160], [48000, 8000, 960], [8000, 48000, 7]]) {
    const a = new Resampler(inRate as number, outRate as number);
    const b = new Resampler(inRate as number, outRate as number);
    for (let f = 0; f < 6; f++) {
      const x = sine(700, 9000, n as number, inRate as number, f * (n as number));
      const y = a.process(x);
      if (f % 2 === 0) b.skip(x);
      else assert.deepEqual(b.process(x), y, `${inRate}→${outRate} block ${f}`);
    }
  }
});

Deno.test("Resampler: latency is small and reported", () => {
  const r = new Resampler(48000, 8000);
  assert.ok(r.delaySamples > 0 && r.delaySamples < 16, `delay ${r.delaySamples} samples at 8 kHz`);
  assert.throws(() => new Resampler(44100.5, 48000), ResamplerError);
  assert.throws(() => new Resampler(0, 48000), ResamplerError);
});
