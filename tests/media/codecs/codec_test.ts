import assert from "node:assert/strict";
import {
  type AudioCodecName,
  codecClockRate,
  CodecError,
  createDecoder,
  createEncoder,
} from "../../../lib/media/codecs/codec.ts";
import { concat, db, sine, toneAmplitude } from "./signal_helpers.ts";

const CODECS: readonly AudioCodecName[] = ["opus", "pcmu", "pcma"];

Deno.test("createEncoder/createDecoder: 48 kHz PCM in and out for every codec", () => {
  for (const codec of CODECS) {
    const enc = createEncoder(codec);
    const dec = createDecoder(codec);
    try {
      assert.equal(enc.codec, codec);
      assert.equal(enc.sampleRate, 48000);
      assert.equal(enc.frameSamples, 960);
      assert.equal(dec.frameSamples, 960);
      assert.equal(enc.clockRate, codecClockRate(codec));
      assert.equal(dec.clockRate, codec === "opus" ? 48000 : 8000);
      const out: Int16Array[] = [];
      for (let f = 0; f < 20; f++) {
        const payload = enc.encode(sine(1000, 9000, 960, 48000, f * 960));
        // G.711 payload: one byte per 8 kHz sample (RFC 3551 §4.5.14).
        if (codec !== "opus") assert.equal(payload.length, 160);
        const pcm = dec.decode(payload);
        assert.equal(pcm.length, 960);
        out.push(pcm);
      }
      const tail = concat(out.slice(5));
      const gain = db(toneAmplitude(tail, 1000), 9000);
      assert.ok(Math.abs(gain) < 1.5, `${codec}: 1 kHz at ${gain.toFixed(2)} dB`);
      assert.ok(db(toneAmplitude(tail, 7000), 9000) < -40, `${codec}: image at 7 kHz`);
      assert.equal(dec.conceal().length, 960);
    } finally {
      enc.close();
      dec.close();
    }
  }
});

Deno.test("createEncoder/createDecoder: native 8 kHz G.711 on request", () => {
  const enc = createEncoder("pcmu", { sampleRate: 8000 });
  const dec = createDecoder("pcma", { sampleRate: 8000 });
  assert.equal(enc.frameSamples, 160);
  assert.equal(dec.sampleRate, 8000);
  assert.equal(enc.encode(new Int16Array(160))[0], 0xff, "µ-law silence is 0xFF");
  assert.equal(createEncoder("pcma", { sampleRate: 8000 }).encode(new Int16Array(1))[0], 0xd5);
  assert.equal(dec.decode(Uint8Array.of(0xd5, 0x55)).join(), "8,-8");
  assert.throws(() => createEncoder("pcmu", { sampleRate: 44100 }), CodecError);
  assert.throws(() => createDecoder("opus", { sampleRate: 22050 }), CodecError);
  assert.throws(() => createEncoder("g722" as AudioCodecName), CodecError);
});
