/**
 * One 20 ms media tick of a 1,000-participant conference through the whole RTP path
 * (`AudioConference`: jitter buffers → lazy decode → mixer → per-listener RTP header → real
 * UDP sends on loopback, one socket per participant, RFC 3550), 500 Opus + 500 PCMU
 * listeners, 3 speakers (2 Opus, 1 PCMU). Measured: the tick plus the time until every
 * datagram has been handed to the kernel. Feeding the input packets is not measured.
 *
 * Sockets use the libc/FFI backend (`lib/media/ffi_udp_socket.ts`, the server's default on
 * Linux); the shared design is also run on the Deno backend (`Deno.listenDatagram`) to show
 * what the socket layer costs.
 *
 * Baseline: the same conference with per-listener encoding (the FreeSWITCH/Janus way).
 * Compared: the shared-encode design.
 * - First group: the other 997 participants are in DTX (send nothing).
 * - Second group: the other 997 each send a packet of −60 dBov microphone noise every tick
 *   (the SIPp load-test shape). Once with the Opus senders attaching an RFC 6464 level (as
 *   Linphone does), once without it (as baresip and SIPp do): then the input side reads the
 *   packet's SILK VAD flag and its last measured level (`codecs/lazy_decoder.ts`).
 * Memory per participant (RSS, and JS heap + external) is measured in child processes with
 * `--expose-gc`, a full GC before each reading, once the conference is built and again after
 * 200 ticks of everyone sending (the feeder runs in the same process; the RSS then holds the
 * allocator's high-water mark). Baseline: the same number of bare Deno UDP sockets sending
 * the same number of datagrams, no Conclave code. Printed before the benches run.
 * @module
 */
import { FakeClock } from "../lib/config/clock.ts";
import { AudioConference } from "../lib/media/audio_conference.ts";
import { type AudioCodecName, createEncoder } from "../lib/media/codecs/codec.ts";
import { MediaTicker } from "../lib/media/media_ticker.ts";
import { audioLevelExtension, serializeRtp } from "../lib/media/rtp.ts";
import { pollUdpSockets, type UdpBackendName, UdpSocket } from "../lib/media/udp_socket.ts";

const N = 1000;
const SPEAKERS = [0, 1, 500];
const CYCLE = 50;
const codecOf = (i: number): AudioCodecName => (i < N / 2 ? "opus" : "pcmu");
const ptOf = (codec: AudioCodecName) => (codec === "opus" ? 111 : 0);
const rateOf = (codec: AudioCodecName) => (codec === "opus" ? 48000 : 8000);

/** Pre-encoded 20 ms payloads of a tone (or −60 dBov noise) for one codec, played in a loop. */
function payloads(codec: AudioCodecName, freq: number | undefined): Uint8Array[] {
  const fs = rateOf(codec);
  const encoder = createEncoder(codec, { sampleRate: fs });
  const out: Uint8Array[] = [];
  let r = 7;
  for (let f = 0; f < CYCLE; f++) {
    const pcm = new Int16Array(fs / 50);
    for (let i = 0; i < pcm.length; i++) {
      if (freq !== undefined) {
        pcm[i] = Math.round(6000 * Math.sin((2 * Math.PI * freq * (f * pcm.length + i)) / fs));
      } else {
        r = (r * 1103515245 + 12345) & 0x7fffffff;
        pcm[i] = Math.round((r / 0x7fffffff - 0.5) * 110);
      }
    }
    out.push(encoder.encode(pcm).slice());
  }
  encoder.close();
  return out;
}

const tonePayloads = { opus: payloads("opus", 440), pcmu: payloads("pcmu", 700) };
const quietPayloads = { opus: payloads("opus", undefined), pcmu: payloads("pcmu", undefined) };

interface Rig {
  readonly clock: FakeClock;
  readonly ticker: MediaTicker;
  readonly conference: AudioConference;
  readonly sockets: UdpSocket[];
  readonly feeder: UdpSocket;
  frame: number;
}

const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const sinkPort = (sink.addr as Deno.NetAddr).port;

function buildRig(encoding: "shared" | "per-listener", backend: UdpBackendName = "ffi"): Rig {
  const clock = new FakeClock(0);
  const ticker = new MediaTicker({ clock });
  const conference = new AudioConference({ clock, ticker, mixer: { encoding } });
  const sockets: UdpSocket[] = [];
  for (let i = 0; i < N; i++) {
    const socket = UdpSocket.bind("127.0.0.1", 0, backend);
    sockets.push(socket);
    const codec = codecOf(i);
    conference.addParticipant(`p${i}`, {
      socket,
      remote: { address: "127.0.0.1", port: sinkPort },
      latching: "off",
      audioLevelExtId: 1,
      payloadType: ptOf(codec),
      codec,
      direction: "sendrecv",
    });
  }
  const feeder = UdpSocket.bind("127.0.0.1", 0, "ffi");
  return { clock, ticker, conference, sockets, feeder, frame: 0 };
}

/**
 * Sends this tick's input packets and waits until the conference has them. `everyone`:
 * the quiet participants send too; `level`: Opus packets carry the RFC 6464 extension.
 */
async function feed(rig: Rig, everyone: boolean, level: boolean): Promise<void> {
  const k = rig.frame++;
  const senders = everyone ? rig.sockets.map((_, i) => i) : SPEAKERS;
  const before = senders.map((i) => rig.sockets[i]!.stats.received);
  for (const i of senders) {
    const codec = codecOf(i);
    const speaking = SPEAKERS.includes(i);
    const list = speaking
      ? (codec === "opus" ? tonePayloads.opus : tonePayloads.pcmu)
      : (codec === "opus" ? quietPayloads.opus : quietPayloads.pcmu);
    const bytes = serializeRtp({
      marker: k === 0,
      payloadType: ptOf(codec),
      sequenceNumber: k & 0xffff,
      timestamp: (k * (rateOf(codec) / 50)) >>> 0,
      ssrc: 1000 + i,
      csrcs: [],
      extensions: codec === "opus" && level
        ? [audioLevelExtension(1, speaking ? 18 : 60, speaking)]
        : [],
      payload: list[k % CYCLE]!,
    });
    rig.feeder.send(bytes, { address: "127.0.0.1", port: rig.sockets[i]!.port });
  }
  pollUdpSockets();
  while (senders.some((i, j) => rig.sockets[i]!.stats.received <= before[j]!)) {
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    pollUdpSockets();
  }
}

async function tick(rig: Rig, b: Deno.BenchContext): Promise<void> {
  b.start();
  rig.clock.advance(20); // the shared ticker fires: pull, mix, encode, packetize, send
  await Promise.all(rig.sockets.map((s) => s.whenIdle()));
  b.end();
}

function closeRig(rig: Rig): void {
  rig.conference.close();
  void rig.feeder.close();
  for (const s of rig.sockets) void s.close();
}

// ---- memory per participant, in a child process with --expose-gc ----

const MEMORY_TICKS = 200;

/** Runs in the child: bytes per participant for one part (see the module comment). */
async function measureMemory(part: string): Promise<Record<string, number>> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  const read = () => {
    gc();
    gc();
    const m = Deno.memoryUsage();
    return { rss: m.rss, heap: m.heapUsed + m.external, committed: m.heapTotal };
  };
  type Reading = ReturnType<typeof read>;
  const per = (a: Reading, b: Reading) => ({
    rss: (b.rss - a.rss) / N,
    heap: (b.heap - a.heap) / N,
    committed: (b.committed - a.committed) / N,
  });
  const before = read();
  if (part === "raw-udp") {
    // Baseline: Deno's UDP path alone, same traffic — a socket per participant with a
    // receive loop into a 2 KiB buffer, fed one datagram per tick by a feeder socket, and
    // sending one 172-byte datagram per tick; no Conclave code.
    const conns = Array.from(
      { length: N },
      () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
    );
    let received = 0;
    for (const c of conns) {
      (async () => {
        const buffer = new Uint8Array(2048);
        for (;;) {
          const [data] = await c.receive(buffer);
          received++;
          data.slice();
        }
      })().catch(() => {});
    }
    const feeder = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const built = read();
    const data = new Uint8Array(172);
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: sinkPort };
    for (let t = 0; t < MEMORY_TICKS; t++) {
      const want = received + N;
      await Promise.all(conns.map((c) =>
        feeder.send(data, {
          transport: "udp",
          hostname: "127.0.0.1",
          port: (c.addr as Deno.NetAddr).port,
        })
      ));
      while (received < want) await new Promise<void>((resolve) => setTimeout(resolve, 0));
      await Promise.all(conns.map((c) => c.send(data, to)));
    }
    const after = read();
    const b = per(before, built);
    const a = per(before, after);
    return {
      builtRss: b.rss,
      builtHeap: b.heap,
      afterRss: a.rss,
      afterHeap: a.heap,
      afterCommitted: a.committed,
    };
  }
  const rig = buildRig("shared", part === "conference-deno" ? "deno" : "ffi");
  const built = read();
  for (let t = 0; t < MEMORY_TICKS; t++) {
    await feed(rig, true, false);
    rig.clock.advance(20);
    await Promise.all(rig.sockets.map((s) => s.whenIdle()));
  }
  const after = read();
  const b = per(before, built);
  const a = per(before, after);
  return {
    builtRss: b.rss,
    builtHeap: b.heap,
    afterRss: a.rss,
    afterHeap: a.heap,
    afterCommitted: a.committed,
  };
}

const memoryPart = Deno.env.get("CONFERENCE_BENCH_MEMORY");
if (memoryPart) {
  console.log(JSON.stringify(await measureMemory(memoryPart)));
  Deno.exit(0);
}

{
  const lines = [`audio_conference_bench: memory per participant (${N}, GC'd child process)`];
  const parts = {
    "raw Deno UDP sockets (baseline)": "raw-udp",
    "conference participant (FFI sockets)": "conference",
    "conference participant (Deno sockets)": "conference-deno",
  };
  for (const [what, part] of Object.entries(parts)) {
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--unstable-net",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
      ],
      env: { CONFERENCE_BENCH_MEMORY: part },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!child.success) {
      lines.push(`  ${what}: measurement failed (see stderr)`);
      continue;
    }
    const m = JSON.parse(new TextDecoder().decode(child.stdout)) as Record<string, number>;
    const k = (v: number | undefined) => `${((v ?? NaN) / 1024).toFixed(1)} KiB`;
    lines.push(
      `  ${what}: built RSS ${k(m.builtRss)} (JS heap+external ${k(m.builtHeap)}); ` +
        `after ${MEMORY_TICKS} ticks of everyone sending RSS ${k(m.afterRss)} ` +
        `(JS heap+external ${k(m.afterHeap)}, V8 heap committed ${k(m.afterCommitted)})`,
    );
  }
  console.log(lines.join("\n"));
}

const shared = buildRig("shared");
const sharedNoLevel = buildRig("shared");
const perListener = buildRig("per-listener");
const sharedDeno = buildRig("shared", "deno");

const DTX = "1000-participant tick with RTP over UDP: 3 speakers, 997 in DTX";
Deno.bench({
  name: "per-listener encoding",
  group: DTX,
  baseline: true,
  n: 20,
  warmup: 3,
  async fn(b) {
    await feed(perListener, false, true);
    await tick(perListener, b);
  },
});
Deno.bench({
  name: "shared encodes",
  group: DTX,
  n: 200,
  warmup: 20,
  async fn(b) {
    await feed(shared, false, true);
    await tick(shared, b);
  },
});
Deno.bench({
  name: "shared encodes, Deno sockets",
  group: DTX,
  n: 200,
  warmup: 20,
  async fn(b) {
    await feed(sharedDeno, false, true);
    await tick(sharedDeno, b);
  },
});

const ALL = "1000-participant tick with RTP over UDP: 3 speakers + 997 sending −60 dBov noise";
Deno.bench({
  name: "per-listener encoding (Opus with RFC 6464)",
  group: ALL,
  baseline: true,
  n: 20,
  warmup: 3,
  async fn(b) {
    await feed(perListener, true, true);
    await tick(perListener, b);
  },
});
Deno.bench({
  name: "shared encodes (Opus with RFC 6464)",
  group: ALL,
  n: 200,
  warmup: 20,
  async fn(b) {
    await feed(shared, true, true);
    await tick(shared, b);
  },
});
Deno.bench({
  name: "shared encodes (Opus with RFC 6464), Deno sockets",
  group: ALL,
  n: 200,
  warmup: 20,
  async fn(b) {
    await feed(sharedDeno, true, true);
    await tick(sharedDeno, b);
  },
});
Deno.bench({
  name: "shared encodes (Opus without RFC 6464: VAD bit + last level)",
  group: ALL,
  n: 200,
  warmup: 20,
  async fn(b) {
    await feed(sharedNoLevel, true, false);
    await tick(sharedNoLevel, b);
  },
});

globalThis.addEventListener("unload", () => {
  const rigs = {
    shared,
    "shared, Opus without level": sharedNoLevel,
    "per-listener": perListener,
    "shared, Deno sockets": sharedDeno,
  };
  for (const [what, rig] of Object.entries(rigs)) {
    const t = rig.ticker.stats;
    let opusDecoded = 0;
    let opusSkipped = 0;
    for (let i = 0; i < N / 2; i++) {
      const s = rig.conference.participantStats(`p${i}`);
      opusDecoded += s.framesDecoded;
      opusSkipped += s.framesSkipped;
    }
    console.log(
      `${what}: ${t.ticks} ticks, synchronous part (pull, decode, mix, encode, packetize, ` +
        `queue sends) mean ${t.meanTickMs.toFixed(2)} ms, max ${t.maxTickMs.toFixed(2)} ms; ` +
        `Opus inputs ${opusDecoded} decoded / ${opusSkipped} skipped; ` +
        `mixer ${JSON.stringify(rig.conference.mixer.totals)}`,
    );
    closeRig(rig);
  }
  sink.close();
});
