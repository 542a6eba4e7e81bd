import assert from "node:assert/strict";
import {
  DominantSpeaker,
  frameLevelDbov,
  rfc6464ToDbov,
  SILENCE_DBOV,
  VoiceActivityDetector,
} from "../../lib/media/voice_activity.ts";
import { sine } from "./codecs/signal_helpers.ts";

Deno.test("frameLevelDbov: full-scale sine ≈ −3 dBov, square 0 dBov, silence −127", () => {
  assert.ok(Math.abs(frameLevelDbov(sine(1000, 32767, 960)) - -3.01) < 0.05);
  assert.ok(Math.abs(frameLevelDbov(sine(1000, 3277, 960)) - -23.01) < 0.05);
  assert.equal(frameLevelDbov(new Int16Array(960).fill(-32768)), 0);
  assert.equal(frameLevelDbov(new Int16Array(960)), SILENCE_DBOV);
  assert.equal(frameLevelDbov(new Int16Array(0)), SILENCE_DBOV);
});

Deno.test("rfc6464ToDbov: 0 … 127 means 0 … −127 dBov (RFC 6464 §3), clamped", () => {
  assert.equal(rfc6464ToDbov(0), 0);
  assert.equal(rfc6464ToDbov(30), -30);
  assert.equal(rfc6464ToDbov(127), -127);
  assert.equal(rfc6464ToDbov(200), -127);
  assert.equal(rfc6464ToDbov(-5), 0);
});

Deno.test("VAD: speech starts at once and lasts the hangover after it stops", () => {
  const vad = new VoiceActivityDetector({ hangoverFrames: 5 });
  assert.equal(vad.update(undefined).active, false);
  assert.equal(vad.update(new Int16Array(960)).active, false);
  const loud = sine(300, 6000, 960);
  assert.equal(vad.update(loud).active, true);
  for (let i = 0; i < 5; i++) assert.equal(vad.update(undefined).active, true, `hangover ${i}`);
  assert.equal(vad.update(undefined).active, false);
});

Deno.test("VAD: quiet frames below the threshold are not speech", () => {
  const vad = new VoiceActivityDetector({ thresholdDbov: -50 });
  // −60 dBov: above the (empty) noise floor but below the absolute threshold.
  const faint = sine(300, 32768 * Math.SQRT2 * 10 ** (-60 / 20), 960);
  for (let i = 0; i < 10; i++) assert.equal(vad.update(faint).active, false);
});

Deno.test("VAD: a steady noise becomes the floor and stops counting as speech", () => {
  const vad = new VoiceActivityDetector({ hangoverFrames: 2, floorRiseDb: 0.5 });
  const noise = new Int16Array(960);
  let seed = 1;
  for (let i = 0; i < 960; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    noise[i] = ((seed / 0x7fffffff) - 0.5) * 2000; // ≈ −35 dBov
  }
  vad.update(new Int16Array(960)); // floor starts at silence
  assert.equal(vad.update(noise).active, true, "a new sound is speech at first");
  let frames = 0;
  while (vad.update(noise).active && frames < 1000) frames++;
  assert.ok(frames > 20 && frames < 400, `noise adapted after ${frames} frames`);
  assert.ok(vad.noiseFloor > -35 - 10 - 2, `floor ${vad.noiseFloor}`); // within the margin
  // Speech well above that floor is still detected.
  assert.equal(vad.update(sine(300, 12000, 960)).active, true);
});

Deno.test("VAD: RFC 6464 level and V flag take precedence over the samples", () => {
  const vad = new VoiceActivityDetector({ hangoverFrames: 0 });
  const loud = sine(300, 20000, 960);
  const v1 = vad.update(loud, 127); // sender says silence
  assert.equal(v1.level, -127);
  assert.equal(v1.active, false);
  const v2 = vad.update(undefined, 20); // −20 dBov without samples
  assert.equal(v2.level, -20);
  assert.equal(v2.active, true);
  assert.equal(vad.update(undefined, 20, false).active, false, "V = 0: not voice");
  assert.equal(vad.update(undefined, 60, true).active, true, "V = 1: voice even if quiet");
});

Deno.test("VAD: smoothed level rises fast and falls slowly", () => {
  const vad = new VoiceActivityDetector({ attack: 0.5, release: 0.1 });
  vad.update(undefined, 127);
  const up = vad.update(undefined, 20).smoothedLevel; // halfway from −127 to −20
  assert.ok(Math.abs(up - -73.5) < 1e-9);
  for (let i = 0; i < 20; i++) vad.update(undefined, 20);
  const top = vad.smoothedLevel;
  const down = vad.update(undefined, 127).smoothedLevel;
  assert.ok(top - down < 0.15 * (top - -127), "release is slower than attack");
  vad.reset();
  assert.equal(vad.smoothedLevel, SILENCE_DBOV);
  assert.equal(vad.active, false);
});

Deno.test("DominantSpeaker: takes over at once from a silent speaker, else after a held lead", () => {
  const d = new DominantSpeaker({ marginDb: 3, holdTicks: 3 });
  const s = (id: string, level: number, active = true) => ({ id, level, active });
  assert.equal(d.update(undefined, undefined), false);
  assert.equal(d.update(s("a", -30), undefined), true);
  assert.equal(d.current, "a");
  assert.equal(d.update(s("b", -28), s("a", -30)), false, "lead below the margin");
  assert.equal(d.update(s("b", -20), s("a", -30)), false);
  assert.equal(d.update(s("b", -20), s("a", -30)), false);
  assert.equal(d.update(s("b", -20), s("a", -30)), true, "third tick in the lead");
  assert.equal(d.current, "b");
  assert.equal(d.update(s("a", -30), s("b", -40, false)), true, "b stopped: at once");
  assert.equal(d.update(undefined, s("a", -127, false)), false, "nobody speaks: a stays");
  assert.equal(d.current, "a");
  assert.equal(d.remove("a", null), true);
  assert.equal(d.current, null);
});

Deno.test("VAD: feed() moves the detector exactly as update() does", () => {
  const a = new VoiceActivityDetector({ hangoverFrames: 3 });
  const b = new VoiceActivityDetector({ hangoverFrames: 3 });
  const frames: [Int16Array | undefined, number | undefined, boolean | undefined][] = [
    [undefined, undefined, undefined],
    [sine(300, 6000, 960), undefined, undefined],
    [undefined, 30, true],
    [new Int16Array(960), undefined, undefined],
    [undefined, 90, false],
    [undefined, undefined, undefined],
    [undefined, undefined, undefined],
    [undefined, undefined, undefined],
    [undefined, undefined, undefined],
  ];
  for (const [frame, level, voice] of frames) {
    const snapshot = a.update(frame, level, voice);
    b.feed(frame, level, voice);
    assert.equal(b.active, snapshot.active);
    assert.equal(b.level, snapshot.level);
    assert.equal(b.smoothedLevel, snapshot.smoothedLevel);
    assert.equal(b.noiseFloor, a.noiseFloor);
  }
  assert.equal(b.active, false, "the hangover ran out");
});
