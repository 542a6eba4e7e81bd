import assert from "node:assert/strict";
import { createDecoder, createEncoder } from "../../../lib/media/codecs/codec.ts";
import { LazyAudioDecoder, OPUS_RECHECK_PACKETS } from "../../../lib/media/codecs/lazy_decoder.ts";
import { frameLevelDbov } from "../../../lib/media/voice_activity.ts";
import { sine, toneAmplitude } from "./signal_helpers.ts";

/** Microphone noise around −60 dBov (48 kHz, 20 ms). */
function noise(frame: number): Int16Array {
  const pcm = new Int16Array(960);
  let r = 4242 + frame * 7919;
  for (let i = 0; i < 960; i++) {
    r = (r * 1103515245 + 12345) & 0x7fffffff;
    pcm[i] = Math.round((r / 0x7fffffff - 0.5) * 110);
  }
  return pcm;
}

/** Speech-like: two modulated partials plus the noise above. */
function voice(frame: number): Int16Array {
  const pcm = noise(frame);
  for (let i = 0; i < 960; i++) {
    const n = frame * 960 + i;
    const env = 0.6 + 0.4 * Math.sin((2 * Math.PI * 4 * n) / 48000);
    pcm[i] = (pcm[i] as number) + Math.round(
      env * (5000 * Math.sin((2 * Math.PI * 140 * n) / 48000) +
        2500 * Math.sin((2 * Math.PI * 434 * n) / 48000)),
    );
  }
  return pcm;
}

Deno.test("LazyAudioDecoder G.711: frames asked for equal the eager decoder's, level known up front", () => {
  for (const codec of ["pcmu", "pcma"] as const) {
    const enc = createEncoder(codec, { sampleRate: 8000 });
    const eager = createDecoder(codec);
    const lazy = new LazyAudioDecoder(codec);
    assert.equal(lazy.frameSamples, 160);
    for (let f = 0; f < 12; f++) {
      const payload = enc.encode(sine(700, 10000, 160, 8000, f * 160));
      assert.equal(lazy.durationMs(payload), 20);
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
    assert.deepEqual(lazy.counts, { decoded: 12, concealed: 0, skipped: 8 });
    // Loss: concealment, at 48 kHz when asked.
    const lost = lazy.frame(null);
    assert.equal(lost.pcm48().length, 960);
    assert.ok(toneAmplitude(lost.pcm48(), 700) > 3000);
    assert.equal(lazy.counts.concealed, 1);
    // An RFC 6464 level from the packet wins over the measured one.
    assert.equal(lazy.frame(enc.encode(new Int16Array(160)), 42, false).audioLevel, 42);
    // Re-framed PCM (from 10 ms packets) is interpolated lazily too.
    const half = lazy.decode(enc.encode(sine(700, 10000, 80, 8000)));
    assert.equal(half.length, 80);
    assert.equal(lazy.durationMs(new Uint8Array(80)), 10);
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
  assert.deepEqual(lazy.counts, { decoded: 0, concealed: 0, skipped: 10 });
  // Mixed from frame 10 on: the decoder picks the stream up and settles within a few frames.
  let last: Int16Array = new Int16Array(0);
  for (let f = 10; f < 20; f++) last = lazy.frame(packets[f] as Uint8Array, 20).pcm48();
  assert.deepEqual(lazy.counts, { decoded: 10, concealed: 0, skipped: 10 });
  assert.ok(Math.abs(toneAmplitude(last, 500) - 8000) < 800);
  // Loss: PLC only if asked, the level carried meanwhile.
  const lost = lazy.frame(null, 20);
  assert.equal(lost.audioLevel, 20);
  assert.deepEqual(lazy.counts, { decoded: 10, concealed: 0, skipped: 11 });
  assert.equal(lost.pcm48().length, 960, "Opus PLC");
  assert.deepEqual(lazy.counts, { decoded: 10, concealed: 1, skipped: 10 });
  // A loss without a level carries on the level handed out last, not a guess.
  lazy.frame(packets[0] as Uint8Array, 70, false);
  assert.equal(lazy.frame(null).audioLevel, 70);
  const fresh = new LazyAudioDecoder("opus");
  assert.equal(fresh.frame(null).audioLevel, 127, "nothing received yet: silence");
  fresh.close();
  lazy.close();
  enc.close();
});

Deno.test("LazyAudioDecoder Opus without a level: quiet streams skipped, re-measured periodically", () => {
  const enc = createEncoder("opus");
  const lazy = new LazyAudioDecoder("opus");
  const ticks = 3 * OPUS_RECHECK_PACKETS;
  const levels: number[] = [];
  for (let f = 0; f < ticks; f++) levels.push(lazy.frame(enc.encode(noise(f))).audioLevel);
  const { decoded, skipped } = lazy.counts;
  // The first packet (nothing measured yet), then one per OPUS_RECHECK_PACKETS.
  assert.ok(decoded >= 2 && decoded <= 5, `decoded ${decoded} of ${ticks}`);
  assert.equal(decoded + skipped, ticks);
  // The level reported for skipped packets is the one measured: the noise, −60 dBov.
  for (const l of levels.slice(5)) assert.ok(Math.abs(l - 60) <= 4, `level ${l}`);
  // A skipped frame is still decoded if the mixer asks.
  const asked = lazy.frame(enc.encode(noise(ticks)));
  assert.equal(asked.pcm48().length, 960);
  assert.equal(lazy.counts.decoded, decoded + 1);
  lazy.close();
  enc.close();
});

Deno.test("LazyAudioDecoder Opus without a level: a tone SILK calls inactive is still decoded", () => {
  const enc = createEncoder("opus");
  const lazy = new LazyAudioDecoder("opus");
  const ticks = 150; // SILK's VAD flag stops after ~0.7 s of a stationary tone
  let last = 0;
  for (let f = 0; f < ticks; f++) {
    last = lazy.frame(enc.encode(sine(440, 6000, 960, 48000, f * 960))).audioLevel;
  }
  assert.equal(lazy.counts.decoded, ticks, "loud stream: every packet decoded and measured");
  // Amplitude 6000: RMS 4243, −17.8 dBov.
  assert.ok(Math.abs(last - 18) <= 2, `level ${last}`);
  lazy.close();
  enc.close();
});

Deno.test("LazyAudioDecoder Opus without a level: talk-spurts decoded from their first packet", () => {
  const enc = createEncoder("opus");
  const eager = createDecoder("opus");
  const lazy = new LazyAudioDecoder("opus");
  let pauseDecoded = 0;
  let talkDecoded = 0;
  const errors: number[] = [];
  for (let f = 0; f < 400; f++) {
    const talking = Math.floor(f / 50) % 2 === 1; // 1 s pause, 1 s talk, …
    const packet = enc.encode(talking ? voice(f) : noise(f));
    const truth = Math.round(-frameLevelDbov(eager.decode(packet)));
    const before = lazy.counts.decoded;
    const frame = lazy.frame(packet);
    const decoded = lazy.counts.decoded - before;
    if (talking) {
      talkDecoded += decoded;
      if (f % 50 < 3) assert.equal(decoded, 1, `onset frame ${f} decoded`);
      errors.push(Math.abs(frame.audioLevel - truth));
    } else if (f >= 50) {
      pauseDecoded += decoded;
    }
  }
  assert.ok(talkDecoded >= 190, `talk decoded ${talkDecoded}/200`);
  assert.ok(pauseDecoded <= 15, `pause decoded ${pauseDecoded}/150`);
  // Levels of talk frames, onsets after a skipped stretch included, match an eager decoder's.
  assert.ok(Math.max(...errors) <= 3, `level errors ${errors}`);
  lazy.close();
  eager.close();
  enc.close();
});

Deno.test("LazyAudioDecoder Opus without a level: DTX and CELT digital silence are not decoded", () => {
  const lazy = new LazyAudioDecoder("opus");
  const dtx = createEncoder("opus", { dtx: true });
  const celt = createEncoder("opus", { bitrate: 96000 });
  for (let f = 0; f < 60; f++) {
    const p = dtx.encode(new Int16Array(960));
    if (p.length === 1) assert.equal(lazy.frame(p).audioLevel, 127);
  }
  const decodedAfterDtx = lazy.counts.decoded;
  assert.ok(decodedAfterDtx <= 3, `decoded ${decodedAfterDtx}`);
  for (let f = 0; f < 20; f++) {
    assert.equal(lazy.frame(celt.encode(new Int16Array(960))).audioLevel, 127);
  }
  assert.equal(lazy.counts.decoded, decodedAfterDtx, "CELT silence flag: no decode");
  // CELT-only carries no VAD flag: a sound is decoded and measured.
  const loud = lazy.frame(celt.encode(sine(440, 6000, 960)));
  assert.equal(lazy.counts.decoded, decodedAfterDtx + 1);
  assert.ok(loud.audioLevel < 40, `level ${loud.audioLevel}`);
  lazy.close();
  dtx.close();
  celt.close();
});

Deno.test("LazyAudioDecoder G.711: frames decoded into reused arrays stay right through skips and losses", () => {
  // Pattern per frame: a = asked for (mixed), s = not asked for, l = lost and asked for,
  // m = lost and not asked for. Every asked frame must equal what an eager 48 kHz decoder
  // fed the same packets and losses produces, whatever was skipped in between.
  const pattern = "aasaslasssaammasaslslaa";
  for (const codec of ["pcmu", "pcma"] as const) {
    const enc = createEncoder(codec, { sampleRate: 8000 });
    const eager = createDecoder(codec);
    const lazy = new LazyAudioDecoder(codec);
    const asked: Int16Array[] = [];
    for (let f = 0; f < pattern.length; f++) {
      const step = pattern[f]!;
      const lost = step === "l" || step === "m";
      const payload = enc.encode(sine(300 + 50 * f, 9000, 160, 8000, f * 160));
      const want = lost ? eager.conceal() : eager.decode(payload);
      const frame = lazy.frame(lost ? null : payload);
      if (step === "a" || step === "l") {
        const got = frame.pcm48();
        assert.deepEqual(got, want, `${codec} frame ${f} (${step})`);
        asked.push(got);
      }
    }
    // Frames handed to the mixer earlier are not overwritten by later decodes.
    assert.equal(new Set(asked).size, asked.length, "every asked frame is its own array");
    lazy.close();
    eager.close();
  }
});
