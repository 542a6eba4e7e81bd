import assert from "node:assert/strict";
import { createDecoder, createEncoder } from "../../../lib/media/codecs/codec.ts";
import { LazyAudioDecoder } from "../../../lib/media/codecs/lazy_decoder.ts";
import { sine, toneAmplitude } from "./signal_helpers.ts";

Deno.test("LazyAudioDecoder G.711: frames asked for equal the eager decoder's, level known up front", () => {
  for (const codec of ["pcmu", "pcma"] as const) {
    const enc = createEncoder(codec, { sampleRate: 8000 });
    const eager = createDecoder(codec);
    const lazy = new LazyAudioDecoder(codec);
    for (let f = 0; f < 12; f++) {
      const payload = enc.encode(sine(700, 10000, 160, 8000, f * 160));
      const want = eager.decode(payload);
      const frame = lazy.frame(payload);
      // A 700 Hz sine of amplitude 10000: RMS −13.3 dBov.
      assert.ok(Math.abs(frame.audioLevel - 13) <= 1, `level ${frame.audioLevel}`);
      if (f % 3 === 2) {
        const got = frame.pcm48();
        assert.deepEqual(got, want, `${codec} frame ${f} equals the eager decode`);
        assert.equal(frame.pcm48(), got, "decoded once");
      }
    }
    assert.deepEqual(lazy.counts, { decoded: 4, skipped: 8 });
    // Loss: concealment, at 48 kHz when asked.
    const lost = lazy.frame(null);
    assert.equal(lost.pcm48().length, 960);
    assert.ok(toneAmplitude(lost.pcm48(), 700) > 3000);
    // An RFC 6464 level from the packet wins over the measured one.
    assert.equal(lazy.frame(enc.encode(new Int16Array(160)), 42, false).audioLevel, 42);
    lazy.close();
  }
});

Deno.test("LazyAudioDecoder Opus: with an RFC 6464 level only mixed frames are decoded", () => {
  const enc = createEncoder("opus");
  const lazy = new LazyAudioDecoder("opus");
  const packets = Array.from(
    { length: 20 },
    (_, f) => enc.encode(sine(500, 8000, 960, 48000, f * 960)),
  );
  for (let f = 0; f < 10; f++) {
    const frame = lazy.frame(packets[f] as Uint8Array, 20, true);
    assert.equal(frame.audioLevel, 20);
    assert.equal(frame.voice, true);
  }
  assert.deepEqual(lazy.counts, { decoded: 0, skipped: 10 });
  // Mixed from frame 10 on: the decoder picks the stream up and settles within a few frames.
  let last: Int16Array = new Int16Array(0);
  for (let f = 10; f < 20; f++) last = lazy.frame(packets[f] as Uint8Array, 20).pcm48();
  assert.deepEqual(lazy.counts, { decoded: 10, skipped: 10 });
  assert.ok(Math.abs(toneAmplitude(last, 500) - 8000) < 800);
  // Without a level the packet is decoded at once and measured (−20 dBov for this tone).
  const measured = lazy.frame(enc.encode(sine(500, 4634, 960, 48000, 20 * 960)));
  assert.ok(Math.abs(measured.audioLevel - 20) <= 2, `measured ${measured.audioLevel}`);
  assert.deepEqual(lazy.counts, { decoded: 11, skipped: 10 });
  assert.equal(lazy.frame(null).pcm48().length, 960, "lost: Opus PLC");
  lazy.close();
  enc.close();
});
