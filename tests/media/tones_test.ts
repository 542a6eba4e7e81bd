import assert from "node:assert/strict";
import { generateTone, TONE_NAMES, toneNotes, TonePlayer } from "../../lib/media/tones.ts";
import { toneAmplitude } from "./codecs/signal_helpers.ts";

Deno.test("tones: each note sounds at its frequency, in order, for its duration", () => {
  for (const name of TONE_NAMES) {
    const pcm = generateTone(name);
    const notes = toneNotes(name);
    const totalMs = notes.reduce((s, n) => s + n.ms, 0);
    assert.equal(pcm.length, (totalMs * 48000) / 1000, `${name} length`);
    let at = 0;
    for (const note of notes) {
      const len = (note.ms * 48000) / 1000;
      const part = pcm.subarray(at, at + len);
      if (note.hz === 0) {
        assert.ok(part.every((v) => v === 0), `${name}: pause is silent`);
      } else {
        const a = toneAmplitude(part, note.hz);
        assert.ok(a > 5000, `${name}: ${note.hz} Hz at ${a.toFixed(0)}`);
        // The other notes' frequencies are absent from this one.
        for (const other of notes) {
          if (other.hz !== 0 && other.hz !== note.hz) {
            assert.ok(toneAmplitude(part, other.hz) < a / 20);
          }
        }
      }
      at += len;
    }
  }
});

Deno.test("tones: no clicks (edges start and end near zero), peak at the amplitude", () => {
  for (const name of TONE_NAMES) {
    const pcm = generateTone(name, { amplitude: 0.5 });
    assert.ok(Math.abs(pcm[0] as number) < 50 && Math.abs(pcm[pcm.length - 1] as number) < 50);
    let peak = 0;
    let jump = 0;
    for (let i = 0; i < pcm.length; i++) {
      peak = Math.max(peak, Math.abs(pcm[i] as number));
      if (i > 0) jump = Math.max(jump, Math.abs((pcm[i] as number) - (pcm[i - 1] as number)));
    }
    assert.ok(peak <= 16384 && peak > 16000, `${name} peak ${peak}`);
    // A sine of f Hz at 16384 moves at most 2π·f/48000·16384 per sample (1887 at 880 Hz).
    const top = Math.max(...toneNotes(name).map((n) => n.hz));
    assert.ok(jump < (2 * Math.PI * top / 48000) * 16384 * 1.01, `${name} max step ${jump}`);
  }
});

Deno.test("tones: cached per parameters; other sample rates", () => {
  assert.equal(generateTone("join"), generateTone("join"));
  assert.notEqual(generateTone("join"), generateTone("join", { amplitude: 0.1 }));
  const narrow = generateTone("leave", { sampleRate: 8000 });
  assert.equal(narrow.length, generateTone("leave").length / 6);
  assert.ok(toneAmplitude(narrow.subarray(0, 880), 880, 8000) > 5000);
});

Deno.test("TonePlayer: overlapping tones mix, advance per frame and end", () => {
  const player = new TonePlayer();
  player.play(Int16Array.from({ length: 25 }, () => 100));
  player.play(Int16Array.from({ length: 10 }, () => 1000));
  const a = new Float32Array(10);
  player.mixInto(a, 0.5);
  assert.deepEqual([...a], Array(10).fill(550));
  assert.equal(player.active, true);
  const b = new Float32Array(10);
  player.mixInto(b);
  assert.deepEqual([...b], Array(10).fill(100));
  const c = new Float32Array(10);
  player.mixInto(c);
  assert.deepEqual([...c], [100, 100, 100, 100, 100, 0, 0, 0, 0, 0]);
  assert.equal(player.active, false);
  player.play(new Int16Array(0));
  assert.equal(player.active, false);
});
