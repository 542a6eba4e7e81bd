import assert from "node:assert/strict";
import { OpusDecoder, OpusEncoder, OpusError } from "../../../lib/media/codecs/opus.ts";
import { concat, db, rms, sine, toneAmplitude } from "./signal_helpers.ts";

Deno.test("Opus: 48 kHz mono round trip keeps a tone and adds nothing else", () => {
  const enc = new OpusEncoder();
  const dec = new OpusDecoder();
  try {
    assert.equal(enc.clockRate, 48000);
    assert.equal(enc.frameSamples, 960);
    assert.equal(enc.settings.complexity, 5);
    const out: Int16Array[] = [];
    for (let f = 0; f < 30; f++) {
      const packet = enc.encode(sine(1000, 8000, 960, 48000, f * 960));
      assert.ok(packet.length > 0 && packet.length < 400, `packet ${packet.length} bytes`);
      // TOC (RFC 6716 §3.1): frame-count code 0, one 20 ms frame.
      assert.equal((packet[0] as number) & 0x03, 0);
      const pcm = dec.decode(packet);
      assert.equal(pcm.length, 960);
      out.push(pcm);
    }
    const tail = concat(out.slice(10));
    const a1k = toneAmplitude(tail, 1000);
    assert.ok(Math.abs(db(a1k, 8000)) < 1.5, `1 kHz at ${db(a1k, 8000).toFixed(2)} dB`);
    for (const other of [500, 1500, 3000]) {
      assert.ok(db(toneAmplitude(tail, other), 8000) < -35, `${other} Hz leaked`);
    }
  } finally {
    enc.close();
    dec.close();
  }
});

Deno.test("Opus: concealment yields one 20 ms frame continuing the signal, then decoding resumes", () => {
  const enc = new OpusEncoder();
  const dec = new OpusDecoder();
  try {
    assert.equal(dec.conceal().length, 960, "before any packet: 20 ms of silence");
    assert.ok(dec.conceal().every((v) => v === 0));
    for (let f = 0; f < 20; f++) dec.decode(enc.encode(sine(600, 8000, 960, 48000, f * 960)));
    enc.encode(sine(600, 8000, 960, 48000, 20 * 960)); // this packet is "lost"
    const plc = dec.conceal();
    assert.equal(plc.length, 960);
    assert.ok(rms(plc) > 1000, `PLC continues the tone (rms ${rms(plc).toFixed(0)})`);
    assert.ok(toneAmplitude(plc, 600) > 2000);
    // An empty payload is treated as a loss too.
    assert.equal(dec.decode(new Uint8Array(0)).length, 960);
    const next = dec.decode(enc.encode(sine(600, 8000, 960, 48000, 21 * 960)));
    assert.equal(next.length, 960);
  } finally {
    enc.close();
    dec.close();
  }
});

Deno.test("Opus: settings, frame-size check, closed objects", () => {
  const enc = new OpusEncoder({ complexity: 12, bitrate: 16000, fec: true, packetLossPercent: 10 });
  assert.equal(enc.settings.complexity, 10);
  assert.equal(enc.settings.fec, true);
  assert.throws(() => enc.encode(new Int16Array(480)), OpusError);
  enc.close();
  assert.throws(() => enc.encode(new Int16Array(960)), OpusError);
  const narrow = new OpusEncoder({ sampleRate: 16000 });
  assert.equal(narrow.frameSamples, 320);
  assert.equal(narrow.clockRate, 48000, "RTP clock stays 48 kHz (RFC 7587 §4.1)");
  narrow.close();
  const dec = new OpusDecoder();
  assert.throws(() => dec.decode(Uint8Array.of(0xff, 0xff, 0xff)), OpusError);
  dec.close();
  assert.throws(() => new OpusEncoder({ sampleRate: 44100 as 48000 }), OpusError);
});

Deno.test("Opus: 2,000 encoder+decoder pairs coexist in the WASM heap", () => {
  const before = Deno.memoryUsage().rss;
  const pairs: [OpusEncoder, OpusDecoder][] = [];
  try {
    for (let i = 0; i < 2000; i++) pairs.push([new OpusEncoder(), new OpusDecoder()]);
    const perPair = (Deno.memoryUsage().rss - before) / 2000;
    console.log(`opus: ~${(perPair / 1024).toFixed(1)} KiB RSS per encoder+decoder pair`);
    // Every instance still works after the heap grew: first, middle and last.
    for (const i of [0, 1, 999, 1998, 1999]) {
      const [e, d] = pairs[i] as [OpusEncoder, OpusDecoder];
      let pcm: Int16Array = new Int16Array(0);
      for (let f = 0; f < 5; f++) pcm = d.decode(e.encode(sine(800, 8000, 960, 48000, f * 960)));
      assert.ok(toneAmplitude(pcm, 800) > 5000, `pair ${i} decodes its tone`);
    }
  } finally {
    for (const [e, d] of pairs) {
      e.close();
      d.close();
    }
  }
});

Deno.test("Opus: loads the WASM build and works without --allow-ffi", async () => {
  // A child Deno with read permission only: the native addon would need --allow-ffi.
  const root = new URL("../../../", import.meta.url);
  const script = `
    import { OpusDecoder, OpusEncoder } from "${new URL("lib/media/codecs/opus.ts", root).href}";
    const e = new OpusEncoder(); const d = new OpusDecoder();
    const out = d.decode(e.encode(new Int16Array(960)));
    console.log("ok", out.length, (await Deno.permissions.query({ name: "ffi" })).state);
  `;
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--config",
      new URL("deno.json", root).pathname,
      "--ext=ts",
      "-",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.equal(text.trim(), "ok 960 prompt");
});
