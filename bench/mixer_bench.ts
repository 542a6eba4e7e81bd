/**
 * One conference of 1,000 participants (500 Opus, 500 PCMU listeners) with 3 speakers
 * (2 Opus, 1 PCMU), on one core: the cost of one 20 ms mixer tick — mix, encode, and an
 * RTP packet per listener serialized into a buffer (12-byte RFC 3550 header + payload; the
 * RTP half owns the sockets, see `udp_bench.ts` for their cost).
 *
 * Baseline: the same conference with per-listener encoding (the FreeSWITCH/Janus way:
 * every listener gets its own encode). Compared: the shared design (own encodes only for
 * the selected speakers, one shared encode per codec group).
 *
 * Second group: the same tick including the input side — every participant's incoming
 * packet decoded (Opus decode, or PCMU table + 8→48 kHz resampling) before mixing, against
 * lazy inputs (`LazyAudioDecoder`, the codec half of the conference's receive path: PCMU
 * level measured on the 8 kHz samples; Opus level from RFC 6464, or — without it — from
 * the packet's SILK VAD flag and the last measured level; only mixed speakers, and Opus
 * streams that may be speech, are decoded). The 997 silent participants send −60 dBov
 * microphone noise (not digital silence), so nothing here is free.
 *
 * Memory per participant is printed before the benches run.
 * @module
 */
import { AudioMixer, MIXER_FRAME, type MixerTickStats } from "../lib/media/audio_mixer.ts";
import {
  type AudioCodecName,
  type AudioDecoder,
  createDecoder,
  createEncoder,
} from "../lib/media/codecs/codec.ts";
import { LazyAudioDecoder } from "../lib/media/codecs/lazy_decoder.ts";
import { frameLevelDbov } from "../lib/media/voice_activity.ts";

const N = 1000;
const SPEAKERS = new Set([0, 1, 500]); // two Opus, one PCMU
const CYCLE = 50; // pre-generated frames per stream, played in a loop

const codecOf = (i: number): AudioCodecName => (i < N / 2 ? "opus" : "pcmu");

/** Speech-like test signal: two partials with a 4 Hz syllabic envelope and a little noise. */
function speechFrames(seed: number): Int16Array[] {
  const frames: Int16Array[] = [];
  let r = seed;
  const f0 = 140 + seed * 37;
  for (let f = 0; f < CYCLE; f++) {
    const pcm = new Int16Array(MIXER_FRAME);
    for (let i = 0; i < MIXER_FRAME; i++) {
      const n = f * MIXER_FRAME + i;
      const env = 0.6 + 0.4 * Math.sin((2 * Math.PI * 4 * n) / 48000);
      r = (r * 1103515245 + 12345) & 0x7fffffff;
      const noise = (r / 0x7fffffff - 0.5) * 600;
      pcm[i] = Math.round(
        env * (5000 * Math.sin((2 * Math.PI * f0 * n) / 48000) +
              2500 * Math.sin((2 * Math.PI * 3.1 * f0 * n) / 48000)) + noise,
      );
    }
    frames.push(pcm);
  }
  return frames;
}

/** Microphone noise around −60 dBov: what a silent participant sends. */
function noiseFrames(seed: number): Int16Array[] {
  const frames: Int16Array[] = [];
  let r = seed;
  for (let f = 0; f < CYCLE; f++) {
    const pcm = new Int16Array(MIXER_FRAME);
    for (let i = 0; i < MIXER_FRAME; i++) {
      r = (r * 1103515245 + 12345) & 0x7fffffff;
      pcm[i] = Math.round((r / 0x7fffffff - 0.5) * 110);
    }
    frames.push(pcm);
  }
  return frames;
}

const speech = new Map<number, Int16Array[]>();
// Speaker k gets f0 = 177, 214, 251 Hz: voice-band partials that survive G.711's 8 kHz.
for (const [k, i] of [...SPEAKERS].entries()) speech.set(i, speechFrames(k + 1));
const quiet = noiseFrames(99);
const framesOf = (i: number): Int16Array[] => speech.get(i) ?? quiet;

/** Encoded input packets per codec and source, as they would arrive over RTP. */
function encodeCycle(codec: AudioCodecName, frames: Int16Array[]): Uint8Array[] {
  const enc = createEncoder(codec);
  const out = frames.map((f) => enc.encode(f));
  enc.close();
  return out;
}
const packets = new Map<string, Uint8Array[]>();
const packetsOf = (i: number): Uint8Array[] => {
  const key = `${codecOf(i)}/${SPEAKERS.has(i) ? i : "quiet"}`;
  let p = packets.get(key);
  if (!p) packets.set(key, p = encodeCycle(codecOf(i), framesOf(i)));
  return p;
};

/** The "loopback sink": writes a 12-byte RTP header and the payload into a send buffer. */
function rtpSink(ssrc: number) {
  const buf = new Uint8Array(1500);
  const view = new DataView(buf.buffer);
  let seq = 0;
  let ts = 0;
  return (payload: Uint8Array) => {
    buf[0] = 0x80;
    buf[1] = 0;
    view.setUint16(2, seq = (seq + 1) & 0xffff);
    view.setUint32(4, ts = (ts + 960) >>> 0);
    view.setUint32(8, ssrc);
    buf.set(payload, 12);
    sentBytes += 12 + payload.length;
  };
}
let sentBytes = 0;

function buildMixer(encoding: "shared" | "per-listener"): AudioMixer {
  const mixer = new AudioMixer({ encoding });
  for (let i = 0; i < N; i++) mixer.addParticipant(`p${i}`, { codec: codecOf(i) }, rtpSink(i));
  return mixer;
}

let tickNo = 0;

/** Pushes decoded 48 kHz frames for everyone (decoding assumed done elsewhere) and ticks. */
function tickDecoded(mixer: AudioMixer): MixerTickStats {
  const k = tickNo++ % CYCLE;
  for (let i = 0; i < N; i++) mixer.pushFrame(`p${i}`, framesOf(i)[k] as Int16Array);
  return mixer.tick();
}

/** One decoder per participant, decoding to 48 kHz. */
function buildDecoders(): AudioDecoder[] {
  return Array.from({ length: N }, (_, i) => createDecoder(codecOf(i)));
}

/** One lazy decoder per participant. */
function buildLazyDecoders(): LazyAudioDecoder[] {
  return Array.from({ length: N }, (_, i) => new LazyAudioDecoder(codecOf(i)));
}

/** Decodes every participant's packet to 48 kHz, then ticks. */
function tickEager(mixer: AudioMixer, decoders: AudioDecoder[]): void {
  const k = tickNo++ % CYCLE;
  for (let i = 0; i < N; i++) {
    const pcm = (decoders[i] as AudioDecoder).decode(packetsOf(i)[k] as Uint8Array);
    mixer.pushFrame(`p${i}`, pcm);
  }
  mixer.tick();
}

/**
 * Lazy inputs: PCMU level measured at 8 kHz; Opus level from RFC 6464 (here: the level of
 * the source frame) when `withLevel`, else from the packet's VAD bits and the last measured
 * level. Only the mixed speakers are interpolated/decoded.
 */
function tickLazy(mixer: AudioMixer, decoders: LazyAudioDecoder[], withLevel: boolean): void {
  const k = tickNo++ % CYCLE;
  for (let i = 0; i < N; i++) {
    const packet = packetsOf(i)[k] as Uint8Array;
    const level = withLevel && codecOf(i) === "opus" ? rfc6464Level(i, k) : undefined;
    mixer.pushLazyFrame(`p${i}`, (decoders[i] as LazyAudioDecoder).frame(packet, level));
  }
  mixer.tick();
}

const levelCache = new Map<string, number>();
function rfc6464Level(i: number, k: number): number {
  const key = `${SPEAKERS.has(i) ? i : "q"}/${k}`;
  let l = levelCache.get(key);
  if (l === undefined) {
    levelCache.set(key, l = Math.min(127, Math.round(-frameLevelDbov(framesOf(i)[k]!))));
  }
  return l;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

// ---- memory per participant ----
// Measured in a child Deno with `--expose-gc` (a full GC before each reading), running this
// file with MIXER_BENCH_MEMORY=1: RSS and heap deltas of the parent would be GC noise.

const MEMORY_PARTS = {
  "shared mixer": "shared",
  "per-listener mixer (baseline)": "per-listener",
  "input decoder (Opus, or PCMU + 8→48 kHz resampler)": "decoders",
  "lazy input decoder": "lazy",
} as const;
type MemoryPart = (typeof MEMORY_PARTS)[keyof typeof MEMORY_PARTS];

/** Builds one part for all N participants in a fresh process; returns bytes per participant. */
function measureMemory(part: MemoryPart): { rss: number; heap: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  const read = () => {
    gc();
    gc();
    const m = Deno.memoryUsage();
    return { rss: m.rss, heap: m.heapUsed + m.external };
  };
  for (let i = 0; i < N; i++) packetsOf(i);
  const before = read();
  let keep: unknown;
  if (part === "shared" || part === "per-listener") {
    const mixer = new AudioMixer({ encoding: part });
    for (let i = 0; i < N; i++) mixer.addParticipant(`p${i}`, { codec: codecOf(i) }, () => {});
    for (let t = 0; t < 60; t++) tickDecoded(mixer);
    keep = mixer;
  } else {
    keep = part === "decoders" ? buildDecoders() : buildLazyDecoders();
  }
  const after = read();
  if (keep === undefined) throw new Error("unreachable");
  return { rss: (after.rss - before.rss) / N, heap: (after.heap - before.heap) / N };
}

const memoryPart = Deno.env.get("MIXER_BENCH_MEMORY");
if (memoryPart) {
  console.log(JSON.stringify(measureMemory(memoryPart as MemoryPart)));
  Deno.exit(0);
}

{
  const lines = [`mixer_bench: ${N} participants (500 Opus + 500 PCMU), 3 speakers`];
  for (const [what, part] of Object.entries(MEMORY_PARTS)) {
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--v8-flags=--expose-gc", new URL(import.meta.url).pathname],
      env: { MIXER_BENCH_MEMORY: part },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!child.success) {
      lines.push(`  memory/participant, ${what}: measurement failed (see stderr)`);
      continue;
    }
    const m = JSON.parse(new TextDecoder().decode(child.stdout)) as { rss: number; heap: number };
    lines.push(`  memory/participant, ${what}: rss ${kib(m.rss)}, JS heap+external ${kib(m.heap)}`);
  }
  console.log(lines.join("\n"));
}

const shared = buildMixer("shared");
const perListener = buildMixer("per-listener");
const sharedLazy = buildMixer("shared");
const baselineFull = buildMixer("per-listener");
const sharedEager = buildMixer("shared");
const inputsA = buildDecoders();
const inputsB = buildLazyDecoders();
const inputsC = buildDecoders();
const sharedLazyNoLevel = buildMixer("shared");
const inputsD = buildLazyDecoders();
{
  const s = tickDecoded(shared);
  tickNo--;
  const p = tickDecoded(perListener);
  console.log(
    `  encodes/tick: shared ${s.ownEncodes} own + ${s.sharedEncodes} shared ` +
      `(${s.sharedSends}/${s.sends} sends shared); per-listener ${p.ownEncodes} own`,
  );
}

const MIX = "tick, 1000 participants, 3 speakers: mix + encode + RTP serialize";
Deno.bench({
  name: "per-listener encoding (FreeSWITCH/Janus way)",
  group: MIX,
  baseline: true,
  n: 40,
  warmup: 5,
  fn: () => void tickDecoded(perListener),
});
Deno.bench({
  name: "shared encodes + top-N",
  group: MIX,
  n: 1000,
  warmup: 100,
  fn: () => void tickDecoded(shared),
});

const FULL = "tick incl. decoding 1000 inputs";
Deno.bench({
  name: "decode all + per-listener encoding",
  group: FULL,
  baseline: true,
  n: 40,
  warmup: 5,
  fn: () => tickEager(baselineFull, inputsA),
});
Deno.bench({
  name: "decode all + shared encodes",
  group: FULL,
  n: 200,
  warmup: 20,
  fn: () => tickEager(sharedEager, inputsC),
});
Deno.bench({
  name: "lazy inputs (G.711 level at 8 kHz, Opus RFC 6464) + shared encodes",
  group: FULL,
  n: 1000,
  warmup: 100,
  fn: () => tickLazy(sharedLazy, inputsB, true),
});
Deno.bench({
  name: "lazy inputs, Opus WITHOUT RFC 6464 (VAD bit + last level) + shared encodes",
  group: FULL,
  n: 1000,
  warmup: 100,
  fn: () => tickLazy(sharedLazyNoLevel, inputsD, false),
});

Deno.bench({
  name: "opus encode 20 ms (complexity 5, speech-like)",
  group: "unit costs",
  baseline: true,
  fn: (() => {
    const enc = createEncoder("opus");
    const frames = framesOf(0);
    let k = 0;
    return () => void enc.encode(frames[k++ % CYCLE] as Int16Array);
  })(),
});
Deno.bench({
  name: "opus decode 20 ms",
  group: "unit costs",
  fn: (() => {
    const dec = createDecoder("opus");
    const p = packetsOf(0);
    let k = 0;
    return () => void dec.decode(p[k++ % CYCLE] as Uint8Array);
  })(),
});
Deno.bench({
  name: "pcmu encode 20 ms from 48 kHz (resample + table)",
  group: "unit costs",
  fn: (() => {
    const enc = createEncoder("pcmu");
    const frames = framesOf(500);
    let k = 0;
    return () => void enc.encode(frames[k++ % CYCLE] as Int16Array);
  })(),
});
Deno.bench({
  name: "pcmu decode 20 ms to 48 kHz (table + resample)",
  group: "unit costs",
  fn: (() => {
    const dec = createDecoder("pcmu");
    const p = packetsOf(500);
    let k = 0;
    return () => void dec.decode(p[k++ % CYCLE] as Uint8Array);
  })(),
});
Deno.bench({
  name: "frame level (VAD energy, 960 samples)",
  group: "unit costs",
  fn: () => void frameLevelDbov(framesOf(0)[tickNo++ % CYCLE] as Int16Array),
});

globalThis.addEventListener("unload", () => {
  const line = (what: string, decoders: LazyAudioDecoder[]) => {
    const sum = { opus: { decoded: 0, skipped: 0 }, pcmu: { decoded: 0, skipped: 0 } };
    decoders.forEach((d, i) => {
      const s = sum[codecOf(i) === "opus" ? "opus" : "pcmu"];
      s.decoded += d.counts.decoded;
      s.skipped += d.counts.skipped;
    });
    return `  ${what}: Opus ${sum.opus.decoded} decoded / ${sum.opus.skipped} skipped; ` +
      `PCMU ${sum.pcmu.decoded} table-decoded, ${sum.pcmu.skipped} not interpolated`;
  };
  console.log(
    `mixer_bench lazy inputs over the run:\n${line("with RFC 6464", inputsB)}\n` +
      line("Opus without RFC 6464", inputsD),
  );
});
