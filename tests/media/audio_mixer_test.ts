import assert from "node:assert/strict";
import {
  AudioMixer,
  type AudioMixerOptions,
  MIXER_FRAME,
  MixerError,
} from "../../lib/media/audio_mixer.ts";
import { softClipSample } from "../../lib/media/soft_clip.ts";
import {
  type AudioCodecName,
  type AudioDecoder,
  createDecoder,
} from "../../lib/media/codecs/codec.ts";
import { concat, db, sine, toneAmplitude } from "./codecs/signal_helpers.ts";

/** One participant as the test sees it: what it sends, and what it hears (decoded). */
interface Peer {
  readonly id: string;
  readonly codec: AudioCodecName;
  readonly decoder: AudioDecoder;
  /** Decoded frame per tick number (only ticks where something arrived). */
  readonly heard: Map<number, Int16Array>;
  readonly shared: Map<number, boolean>;
  readonly payloads: Map<number, Uint8Array>;
  readonly csrcs: Map<number, readonly number[]>;
}

/** A mixer plus decoding peers; `tick()` advances the mixer and records what each heard. */
class Conference {
  readonly mixer: AudioMixer;
  readonly peers = new Map<string, Peer>();
  tickNo = 0;

  constructor(options: AudioMixerOptions = {}) {
    this.mixer = new AudioMixer(options);
  }

  add(id: string, codec: AudioCodecName, complexity?: number): Peer {
    const peer: Peer = {
      id,
      codec,
      decoder: createDecoder(codec),
      heard: new Map(),
      shared: new Map(),
      payloads: new Map(),
      csrcs: new Map(),
    };
    this.peers.set(id, peer);
    const encoderOptions = complexity === undefined ? {} : { complexity };
    this.mixer.addParticipant(id, { codec, encoderOptions }, (payload, info) => {
      const tick = this.tickNo + 1;
      peer.payloads.set(tick, payload);
      peer.shared.set(tick, info.shared);
      peer.csrcs.set(tick, [...info.csrcs]);
      peer.heard.set(tick, peer.decoder.decode(payload));
    });
    return peer;
  }

  /** Pushes a tone frame for each `speakers` entry (id → [hz, amplitude]) and ticks. */
  tick(speakers: Record<string, [number, number]> = {}) {
    for (const [id, [hz, amp]] of Object.entries(speakers)) {
      this.mixer.pushFrame(id, sine(hz, amp, MIXER_FRAME, 48000, this.tickNo * MIXER_FRAME));
    }
    const stats = this.mixer.tick();
    this.tickNo++;
    return stats;
  }

  /** What `id` heard over ticks [from, to] (inclusive), concatenated. */
  heard(id: string, from: number, to: number): Int16Array {
    const peer = this.peers.get(id) as Peer;
    const frames: Int16Array[] = [];
    for (let t = from; t <= to; t++) frames.push(peer.heard.get(t) ?? new Int16Array(MIXER_FRAME));
    return concat(frames);
  }

  close(): void {
    this.mixer.close();
    for (const p of this.peers.values()) p.decoder.close();
  }
}

// Frequencies chosen so that no third-order intermodulation product of three of them
// (2·f1 − f2, f1 + f2 − f3) lands on another one.
const TONES: Record<string, number> = { a: 430, b: 710, c: 1130, d: 1570, e: 2090, f: 2630 };

Deno.test("N−1: each speaker hears every other speaker and never itself, across codecs", () => {
  const conf = new Conference();
  try {
    const codecs: Record<string, AudioCodecName> = {
      a: "opus",
      b: "pcmu",
      c: "opus",
      d: "pcma",
      x: "opus",
      y: "pcmu",
    };
    for (const [id, codec] of Object.entries(codecs)) conf.add(id, codec);
    const speaking: Record<string, [number, number]> = {};
    for (const id of ["a", "b", "c", "d"]) speaking[id] = [TONES[id] as number, 5000];
    for (let t = 0; t < 40; t++) conf.tick(speaking);
    for (const id of Object.keys(codecs)) {
      const out = conf.heard(id, 11, 40);
      for (const s of ["a", "b", "c", "d"]) {
        const level = db(toneAmplitude(out, TONES[s] as number), 5000);
        if (s === id) {
          assert.ok(level < -40, `${id} hears itself at ${level.toFixed(1)} dB`);
        } else {
          assert.ok(Math.abs(level) < 2, `${id} hears ${s} at ${level.toFixed(1)} dB`);
        }
      }
    }
  } finally {
    conf.close();
  }
});

Deno.test("top-N: only the N loudest active speakers are mixed", () => {
  const conf = new Conference({ maxSpeakers: 3 });
  try {
    const amps: Record<string, number> = { a: 1500, b: 9000, c: 3000, d: 12000, e: 6000, f: 800 };
    for (const id of Object.keys(amps)) conf.add(id, "pcmu");
    conf.add("listener", "pcmu");
    const speaking: Record<string, [number, number]> = {};
    for (const [id, amp] of Object.entries(amps)) speaking[id] = [TONES[id] as number, amp];
    let stats = conf.tick(speaking);
    for (let t = 1; t < 30; t++) stats = conf.tick(speaking);
    assert.deepEqual(stats.selected, ["d", "b", "e"]);
    assert.deepEqual(conf.mixer.selectedSpeakers, ["d", "b", "e"]);
    const out = conf.heard("listener", 11, 30);
    for (const [id, amp] of Object.entries(amps)) {
      const level = db(toneAmplitude(out, TONES[id] as number), amp);
      if (["d", "b", "e"].includes(id)) assert.ok(Math.abs(level) < 1.5, `${id}: ${level}`);
      else assert.ok(db(toneAmplitude(out, TONES[id] as number), amp) < -30, `${id} not mixed`);
    }
    // A quieter speaker ("a") is heard as soon as a selected one stops.
    delete speaking["d"];
    for (let t = 0; t < 40; t++) stats = conf.tick(speaking);
    assert.deepEqual(stats.selected, ["b", "e", "c"]);
  } finally {
    conf.close();
  }
});

Deno.test("shared encodes: 100 listeners + 3 speakers = 3 own + 1 per codec group", () => {
  const conf = new Conference();
  try {
    for (let i = 0; i < 50; i++) conf.add(`o${i}`, "opus");
    for (let i = 0; i < 50; i++) conf.add(`u${i}`, "pcmu");
    conf.add("s1", "opus");
    conf.add("s2", "opus");
    conf.add("s3", "pcmu");
    const speaking = { s1: [440, 4000], s2: [620, 4000], s3: [860, 4000] } as Record<
      string,
      [number, number]
    >;
    for (let t = 0; t < 5; t++) {
      const stats = conf.tick(speaking);
      assert.equal(stats.ownEncodes, 3);
      assert.equal(stats.sharedEncodes, 2);
      assert.equal(stats.sends, 103);
      assert.equal(stats.sharedSends, 100);
    }
    const t = conf.tickNo;
    const opusPayload = conf.peers.get("o0")?.payloads.get(t);
    const pcmuPayload = conf.peers.get("u0")?.payloads.get(t);
    for (let i = 0; i < 50; i++) {
      assert.equal(conf.peers.get(`o${i}`)?.payloads.get(t), opusPayload, "same object");
      assert.equal(conf.peers.get(`u${i}`)?.payloads.get(t), pcmuPayload, "same object");
      assert.equal(conf.peers.get(`o${i}`)?.shared.get(t), true);
    }
    assert.notEqual(conf.peers.get("s1")?.payloads.get(t), opusPayload);
    assert.equal(conf.peers.get("s1")?.shared.get(t), false);
    assert.equal(conf.mixer.totals.ownEncoders, 3);
    assert.equal(conf.mixer.totals.groups, 2);

    // Listeners with other encoder settings form their own group; more listeners cost nothing.
    conf.add("hq", "opus", 9);
    for (let i = 50; i < 150; i++) conf.add(`o${i}`, "opus");
    const stats = conf.tick(speaking);
    assert.equal(stats.ownEncodes, 3);
    assert.equal(stats.sharedEncodes, 3);
    assert.equal(stats.sharedSends, 201);

    // The baseline mode encodes for every listener.
    const base = new Conference({ encoding: "per-listener" });
    try {
      for (let i = 0; i < 20; i++) base.add(`l${i}`, i % 2 ? "opus" : "pcmu");
      base.add("s1", "opus");
      const s = base.tick({ s1: [440, 4000] });
      assert.equal(s.ownEncodes, 21);
      assert.equal(s.sharedEncodes, 0);
      assert.equal(s.sharedSends, 0);
    } finally {
      base.close();
    }
  } finally {
    conf.close();
  }
});

Deno.test("mute by focus, gain and hold", () => {
  const conf = new Conference();
  try {
    conf.add("a", "pcmu");
    conf.add("b", "pcmu");
    conf.add("c", "pcma");
    conf.add("l", "pcmu");
    const speaking = { a: [440, 6000], b: [620, 6000] } as Record<string, [number, number]>;
    conf.mixer.setMuted("a", true);
    conf.mixer.setGain("b", 0.5);
    for (let t = 0; t < 20; t++) conf.tick(speaking);
    let out = conf.heard("l", 6, 20);
    assert.ok(toneAmplitude(out, 440) < 20, "muted a is not heard");
    const half = db(toneAmplitude(out, 620), 6000);
    assert.ok(Math.abs(half - -6.02) < 0.6, `b at gain 0.5: ${half.toFixed(2)} dB`);
    assert.ok(toneAmplitude(conf.heard("a", 6, 20), 620) > 2500, "muted a still hears b");
    assert.deepEqual(conf.mixer.selectedSpeakers, ["b"]);

    conf.mixer.setMuted("a", false);
    conf.mixer.setGain("b", 1);
    conf.mixer.setListening("c", false); // hold: c gets nothing, and its group no encode
    let stats = conf.tick(speaking);
    for (let t = 0; t < 19; t++) stats = conf.tick(speaking);
    assert.equal(stats.sends, 3);
    assert.equal(stats.sharedEncodes, 1, "PCMA group is on hold: not encoded");
    const cHeard = conf.peers.get("c")?.heard as Map<number, Int16Array>;
    assert.ok(![...cHeard.keys()].some((k) => k > 20), "nothing sent while on hold");
    out = conf.heard("l", 26, 40);
    assert.ok(Math.abs(db(toneAmplitude(out, 440), 6000)) < 1, "unmuted a is heard");
    assert.ok(Math.abs(db(toneAmplitude(out, 620), 6000)) < 1, "gain back to 1");
    conf.mixer.setListening("c", true);
    conf.tick(speaking);
    assert.ok(cHeard.has(conf.tickNo), "resumed");
    assert.throws(() => conf.mixer.setGain("a", -1), MixerError);
    assert.throws(() => conf.mixer.setMuted("nobody", true), MixerError);
  } finally {
    conf.close();
  }
});

Deno.test("clipping: soft knee is transparent below −2.5 dBFS, bounded and monotonic above", () => {
  assert.equal(softClipSample(24576), 24576);
  assert.equal(softClipSample(-24576), -24576);
  assert.equal(softClipSample(1234.7), 1234);
  let prev = -Infinity;
  for (let x = -200000; x <= 200000; x += 37) {
    const y = softClipSample(x);
    assert.ok(y >= -32767 && y <= 32767, `x=${x} → ${y}`);
    assert.ok(y >= prev, `monotonic at ${x}`);
    prev = y;
  }
  // Continuous slope at the knee (no corner): one step above it adds ≈ one.
  assert.ok(softClipSample(24586) - softClipSample(24576) >= 9);

  // In the mixer: four in-phase full-scale speakers do not wrap around.
  const conf = new Conference();
  try {
    for (const id of ["a", "b", "c", "d"]) conf.add(id, "opus");
    conf.add("l", "pcmu");
    const loud = { a: [200, 30000], b: [200, 30000], c: [200, 30000], d: [200, 30000] } as Record<
      string,
      [number, number]
    >;
    for (let t = 0; t < 10; t++) conf.tick(loud);
    const out = conf.heard("l", 4, 10);
    const ref = concat(
      Array.from({ length: 7 }, (_, k) => sine(200, 1, 960, 48000, (k + 3) * 960)),
    );
    // Compare signs where the sine is far from zero; the resampler's delay is ~1.3 ms.
    const lag = Math.round(0.0026 * 48000);
    let agree = 0;
    let total = 0;
    for (let i = lag; i < out.length; i++) {
      const r = ref[i - lag] as number;
      if (Math.abs(r) > 0.5) {
        total++;
        if (Math.sign(out[i] as number) === Math.sign(r)) agree++;
      }
    }
    assert.ok(agree / total > 0.99, `sign agreement ${agree}/${total}`);
    let peak = 0;
    for (const v of out) peak = Math.max(peak, Math.abs(v));
    assert.ok(peak > 28000, `saturates near full scale (${peak})`);
  } finally {
    conf.close();
  }
});

Deno.test("active speaker: loudest with hysteresis, events only on change", () => {
  const conf = new Conference({ activeSpeakerHoldTicks: 5, activeSpeakerMarginDb: 3 });
  const events: (string | null)[] = [];
  const off = conf.mixer.onActiveSpeakerChange((id) => events.push(id));
  const frame = new Int16Array(MIXER_FRAME);
  const step = (levels: Record<string, number>) => {
    for (const [id, level] of Object.entries(levels)) conf.mixer.pushFrame(id, frame, level);
    conf.mixer.tick();
  };
  try {
    conf.add("a", "pcmu");
    conf.add("b", "pcmu");
    conf.add("c", "pcmu");
    for (let t = 0; t < 10; t++) step({ a: 30 }); // a at −30 dBov
    assert.deepEqual(events, ["a"]);
    // b only 1 dB louder: no switch.
    for (let t = 0; t < 30; t++) step({ a: 30, b: 29 });
    assert.deepEqual(events, ["a"]);
    // b 15 dB louder: switches once it held the lead for 5 ticks, not before.
    let ticksToSwitch = 0;
    while (events.length === 1 && ticksToSwitch < 50) {
      step({ a: 30, b: 15 });
      ticksToSwitch++;
    }
    assert.deepEqual(events, ["a", "b"]);
    assert.ok(ticksToSwitch >= 5 && ticksToSwitch <= 8, `switched after ${ticksToSwitch} ticks`);
    // b stops: after its hangover a takes over without waiting.
    let after = 0;
    while (events.length === 2 && after < 60) {
      step({ a: 30 });
      after++;
    }
    assert.deepEqual(events, ["a", "b", "a"]);
    assert.equal(conf.mixer.activeSpeaker, "a");
    // Everyone silent: the last dominant speaker stays; removing it clears it.
    for (let t = 0; t < 30; t++) step({});
    assert.equal(conf.mixer.activeSpeaker, "a");
    conf.mixer.removeParticipant("a");
    assert.deepEqual(events, ["a", "b", "a", null]);
    off();
    for (let t = 0; t < 5; t++) step({ c: 10 });
    assert.equal(conf.mixer.activeSpeaker, "c");
    assert.equal(events.length, 4, "unsubscribed");
  } finally {
    conf.close();
  }
});

Deno.test("RFC 6464 levels rank speakers instead of frame energy", () => {
  const conf = new Conference({ maxSpeakers: 1 });
  try {
    conf.add("a", "pcmu");
    conf.add("b", "pcmu");
    conf.add("l", "pcmu");
    for (let t = 0; t < 20; t++) {
      // Same samples; the header extension says b is much louder.
      conf.mixer.pushFrame("a", sine(440, 6000, MIXER_FRAME, 48000, t * MIXER_FRAME), 50);
      conf.mixer.pushFrame("b", sine(620, 6000, MIXER_FRAME, 48000, t * MIXER_FRAME), 10);
      conf.mixer.tick();
      conf.tickNo++;
    }
    assert.deepEqual(conf.mixer.selectedSpeakers, ["b"]);
    const out = conf.heard("l", 5, 20);
    assert.ok(toneAmplitude(out, 620) > 5000 && toneAmplitude(out, 440) < 20);
  } finally {
    conf.close();
  }
});

Deno.test("lazy frames: only the mixed speakers are decoded", () => {
  const conf = new Conference({ maxSpeakers: 2 });
  try {
    const levels: Record<string, number> = { a: 20, b: 25, c: 40, d: 127 };
    const calls: Record<string, number> = { a: 0, b: 0, c: 0, d: 0 };
    for (const id of Object.keys(levels)) conf.add(id, "pcmu");
    for (let t = 0; t < 20; t++) {
      for (const [id, audioLevel] of Object.entries(levels)) {
        conf.mixer.pushLazyFrame(id, {
          audioLevel,
          pcm48: () => {
            calls[id] = (calls[id] as number) + 1;
            return sine(TONES[id] as number, 5000, MIXER_FRAME, 48000, t * MIXER_FRAME);
          },
        });
      }
      conf.mixer.tick();
      conf.tickNo++;
    }
    assert.deepEqual(calls, { a: 20, b: 20, c: 0, d: 0 });
    const out = conf.heard("d", 5, 20);
    assert.ok(Math.abs(db(toneAmplitude(out, TONES["a"] as number), 5000)) < 1);
    assert.ok(Math.abs(db(toneAmplitude(out, TONES["b"] as number), 5000)) < 1);
    assert.ok(toneAmplitude(out, TONES["c"] as number) < 20);
  } finally {
    conf.close();
  }
});

Deno.test("Opus shared ↔ own encoder switches keep the stream decodable", () => {
  const conf = new Conference({ ownEncoderIdleTicks: 30, vad: { hangoverFrames: 5 } });
  try {
    conf.add("a", "opus");
    const l = conf.add("l", "opus");
    conf.add("m", "opus");
    const phases: [number, number, boolean][] = [[0, 25, false], [25, 50, true], [50, 80, false]];
    phases.push([80, 105, true], [105, 130, false]);
    for (const [from, to, lSpeaks] of phases) {
      for (let t = from; t < to; t++) {
        const speaking: Record<string, [number, number]> = { a: [500, 6000] };
        if (lSpeaks) speaking["l"] = [900, 6000];
        conf.tick(speaking);
      }
    }
    // l was shared, then own (fresh), shared, own again (reset after idle), shared.
    const flags = [...l.shared.entries()].sort(([x], [y]) => x - y).map(([, s]) => s);
    const switches = flags.filter((s, i) => i > 0 && s !== flags[i - 1]).length;
    assert.equal(switches, 4, `switch count in ${flags.join("")}`);
    assert.equal(l.heard.size, 130, "a frame every tick");
    for (const f of l.heard.values()) assert.equal(f.length, 960);
    // While l speaks it hears a's tone at full level and never its own voice.
    for (const [from, to, lSpeaks] of phases) {
      if (!lSpeaks) continue;
      const out = conf.heard("l", from + 2, to);
      const a = db(toneAmplitude(out, 500), 6000);
      assert.ok(Math.abs(a) < 1.5, `phase from ${from}: a at ${a.toFixed(2)} dB`);
      assert.ok(db(toneAmplitude(out, 900), 6000) < -35, `phase from ${from}: own voice`);
    }
    // Back on the shared stream, l's decoder output equals that of m (who never left it)
    // from the frame after the switch: the switch frame was coded independently.
    const m = conf.peers.get("m") as (typeof l);
    for (const [from, to, lSpeaks] of phases) {
      if (lSpeaks || from === 0) continue;
      for (let t = from + 2; t <= to; t++) {
        const x = l.heard.get(t) as Int16Array;
        const y = m.heard.get(t) as Int16Array;
        let err = 0;
        let ref = 0;
        for (let i = 0; i < 960; i++) {
          err += ((x[i] as number) - (y[i] as number)) ** 2;
          ref += (y[i] as number) ** 2;
        }
        const snr = 10 * Math.log10(ref / Math.max(err, 1e-9));
        assert.ok(snr > 40, `tick ${t}: l vs m ${snr.toFixed(1)} dB`);
      }
    }
    // No burst at the switch points beyond the shared stream's own transient.
    for (const [from] of phases) {
      let peak = 0;
      for (const v of l.heard.get(from + 1) as Int16Array) peak = Math.max(peak, Math.abs(v));
      assert.ok(peak < 6000 * 1.8, `switch at ${from}: peak ${peak}`);
    }
    // m heard l while it spoke.
    assert.ok(toneAmplitude(conf.heard("m", 33, 50), 900) > 4500);
  } finally {
    conf.close();
  }
});

Deno.test("own encoders are created lazily and closed when idle", () => {
  const conf = new Conference({ ownEncoderIdleTicks: 10, vad: { hangoverFrames: 2 } });
  try {
    for (const id of ["a", "b", "c"]) conf.add(id, "opus");
    conf.tick();
    assert.equal(conf.mixer.totals.ownEncoders, 0);
    for (let t = 0; t < 5; t++) conf.tick({ a: [440, 5000] });
    assert.equal(conf.mixer.totals.ownEncoders, 1);
    for (let t = 0; t < 10; t++) conf.tick();
    assert.equal(conf.mixer.totals.ownEncoders, 1, "still within the idle allowance");
    conf.tick();
    assert.equal(conf.mixer.totals.ownEncoders, 0);
    assert.equal(conf.mixer.removeParticipant("a"), true);
    assert.equal(conf.mixer.removeParticipant("a"), false);
    conf.mixer.removeParticipant("b");
    conf.mixer.removeParticipant("c");
    assert.equal(conf.mixer.totals.groups, 0);
  } finally {
    conf.close();
  }
});

Deno.test("tones: to everyone, to one participant, disabled, automatic announcements", () => {
  const conf = new Conference();
  try {
    conf.add("a", "opus");
    conf.add("b", "pcmu");
    conf.add("c", "pcmu");
    conf.mixer.playTone("join"); // 660 Hz then 880 Hz
    const s1 = conf.tick();
    assert.equal(s1.ownEncodes, 0, "a tone for everyone is still shared");
    for (let t = 0; t < 14; t++) conf.tick();
    for (const id of ["a", "b", "c"]) {
      assert.ok(toneAmplitude(conf.heard(id, 2, 5), 660) > 2000, `${id} hears join`);
    }
    conf.mixer.playTone("alone", "b"); // 440 Hz beeps to b only
    const s2 = conf.tick();
    assert.equal(s2.ownEncodes, 1);
    assert.equal(conf.peers.get("b")?.shared.get(conf.tickNo), false);
    for (let t = 0; t < 30; t++) conf.tick();
    const from = conf.tickNo - 30;
    assert.ok(toneAmplitude(conf.heard("b", from, from + 4), 440) > 1500, "b hears alone");
    assert.ok(toneAmplitude(conf.heard("c", from - 1, from + 4), 440) < 20, "c does not");
    assert.equal(conf.tick().ownEncodes, 0, "back to shared once the tone is over");
  } finally {
    conf.close();
  }

  const quiet = new Conference({ tones: false, announcements: true });
  try {
    quiet.add("a", "pcmu");
    quiet.add("b", "pcmu");
    quiet.mixer.playTone("join");
    for (let t = 0; t < 5; t++) quiet.tick();
    assert.ok(quiet.heard("a", 1, 5).every((v) => v === 0), "tones off: silence");
  } finally {
    quiet.close();
  }

  const auto = new Conference({ announcements: { leave: false } });
  try {
    auto.add("a", "pcmu");
    auto.tick();
    assert.ok(toneAmplitude(auto.heard("a", 1, 1), 440) > 1000, "alone, to the first one");
    for (let t = 0; t < 30; t++) auto.tick();
    auto.add("b", "pcmu");
    for (let t = 0; t < 4; t++) auto.tick();
    const n = auto.tickNo;
    assert.ok(toneAmplitude(auto.heard("a", n - 3, n - 1), 660) > 2000, "join to everyone");
    auto.mixer.removeParticipant("b");
    for (let t = 0; t < 3; t++) auto.tick();
    const m = auto.tickNo;
    assert.ok(toneAmplitude(auto.heard("a", m - 2, m), 880) < 100, "no leave tone");
    assert.ok(toneAmplitude(auto.heard("a", m - 2, m), 440) > 1000, "alone again");
  } finally {
    auto.close();
  }
});

Deno.test("mixer input validation and lifecycle", () => {
  const mixer = new AudioMixer();
  mixer.addParticipant("a", { codec: "pcmu" }, () => {});
  assert.throws(() => mixer.addParticipant("a", { codec: "pcmu" }, () => {}), MixerError);
  assert.throws(() => mixer.pushFrame("a", new Int16Array(160)), MixerError);
  assert.throws(() => mixer.pushFrame("zz", new Int16Array(960)), MixerError);
  // A failing sink does not stop the others.
  let got = 0;
  mixer.addParticipant("bad", { codec: "pcmu" }, () => {
    throw new Error("boom");
  });
  mixer.addParticipant("good", { codec: "pcmu" }, () => got++);
  const stats = mixer.tick();
  assert.equal(got, 1);
  assert.equal(stats.sends, 3);
  assert.equal(mixer.size, 3);
  assert.equal(mixer.has("good"), true);
  mixer.close();
  assert.throws(() => mixer.tick(), MixerError);
});

Deno.test("CSRC lists: each payload names the speakers mixed into it, never the listener (RFC 3550 §7.1)", () => {
  const conf = new Conference({ maxSpeakers: 2 });
  try {
    for (const id of ["a", "b", "c", "x", "y"]) conf.add(id, id === "y" ? "opus" : "pcmu");
    const ssrc: Record<string, number> = { a: 0xa1, b: 0xb2, c: 0xc3, x: 0xfffffff0 };
    for (const [id, value] of Object.entries(ssrc)) conf.mixer.setSourceId(id, value);
    const speaking: Record<string, [number, number]> = {
      a: [TONES.a as number, 9000],
      b: [TONES.b as number, 6000],
      c: [TONES.c as number, 1000],
    };
    for (let t = 0; t < 30; t++) conf.tick(speaking);
    const sorted = (id: string) => [...(conf.peers.get(id)!.csrcs.get(conf.tickNo) ?? [])].sort();
    // Top-2 are a and b: c is not mixed, so it is not listed.
    assert.deepEqual(sorted("x"), [0xa1, 0xb2]);
    assert.deepEqual(sorted("y"), [0xa1, 0xb2]);
    assert.deepEqual(sorted("c"), [0xa1, 0xb2]);
    assert.deepEqual(sorted("a"), [0xb2]);
    assert.deepEqual(sorted("b"), [0xa1]);
    // Nobody speaking: empty lists.
    for (let t = 0; t < 60; t++) conf.tick({});
    assert.deepEqual(sorted("x"), []);
    // A speaker without a known source id is mixed but not listed.
    conf.mixer.setSourceId("a", undefined);
    for (let t = 0; t < 30; t++) conf.tick({ a: [TONES.a as number, 9000] });
    assert.deepEqual(sorted("x"), []);
    // Never more than 15 (the 4-bit CSRC count).
    const big = new Conference({ maxSpeakers: 20 });
    try {
      const loud: Record<string, [number, number]> = {};
      for (let i = 0; i < 18; i++) {
        big.add(`s${i}`, "pcmu");
        big.mixer.setSourceId(`s${i}`, 1000 + i);
        loud[`s${i}`] = [300 + 97 * i, 4000];
      }
      big.add("l", "pcmu");
      for (let t = 0; t < 30; t++) big.tick(loud);
      assert.equal(big.peers.get("l")!.csrcs.get(big.tickNo)?.length, 15);
    } finally {
      big.close();
    }
  } finally {
    conf.close();
  }
});
