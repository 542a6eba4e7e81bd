/**
 * One 20 ms media tick of a 1,000-participant conference through the whole RTP path
 * (`AudioConference`: jitter buffers → decode → mixer → per-listener RTP header → real UDP
 * sends on loopback, one socket per participant, RFC 3550), 500 Opus + 500 PCMU listeners,
 * 3 speakers (2 Opus, 1 PCMU). Measured: the tick plus the time until every datagram has
 * been handed to the kernel. Feeding the speakers' packets is not measured.
 *
 * Baseline: the same conference with per-listener encoding (the FreeSWITCH/Janus way).
 * Compared: the shared-encode design. Second group: the other 997 participants also send
 * a quiet packet every tick (the SIPp load-test shape); the Opus senders attach an RFC 6464
 * level (as Linphone does), so inputs stay lazy (`audio_input.ts`). Opus inputs WITHOUT a
 * level are decoded every tick (~25–60 µs each here), which this bench does not show.
 * Memory per participant (RSS and JS heap growth while building the conference) is
 * printed before the benches run.
 * @module
 */
import { FakeClock } from "../lib/config/clock.ts";
import { AudioConference } from "../lib/media/audio_conference.ts";
import { type AudioCodecName, createEncoder } from "../lib/media/codecs/codec.ts";
import { MediaTicker } from "../lib/media/media_ticker.ts";
import { audioLevelExtension, serializeRtp } from "../lib/media/rtp.ts";
import { UdpSocket } from "../lib/media/udp_socket.ts";

const N = 1000;
const SPEAKERS = [0, 1, 500];
const CYCLE = 50;
const codecOf = (i: number): AudioCodecName => (i < N / 2 ? "opus" : "pcmu");
const ptOf = (codec: AudioCodecName) => (codec === "opus" ? 111 : 0);
const rateOf = (codec: AudioCodecName) => (codec === "opus" ? 48000 : 8000);

/** Pre-encoded 20 ms payloads of a tone (or silence) for one codec, played in a loop. */
function payloads(codec: AudioCodecName, freq: number | undefined): Uint8Array[] {
  const fs = rateOf(codec);
  const encoder = createEncoder(codec, { sampleRate: fs });
  const out: Uint8Array[] = [];
  for (let f = 0; f < CYCLE; f++) {
    const pcm = new Int16Array(fs / 50);
    if (freq !== undefined) {
      for (let i = 0; i < pcm.length; i++) {
        pcm[i] = Math.round(6000 * Math.sin((2 * Math.PI * freq * (f * pcm.length + i)) / fs));
      }
    } else {
      for (let i = 0; i < pcm.length; i++) pcm[i] = ((i * 7919) % 61) - 30; // ≈ −60 dBov
    }
    out.push(encoder.encode(pcm).slice());
  }
  encoder.close();
  return out;
}

const tonePayloads = {
  opus: payloads("opus", 440),
  pcmu: payloads("pcmu", 700),
  pcma: [] as Uint8Array[],
};
const silentPayloads = { opus: payloads("opus", undefined), pcmu: payloads("pcmu", undefined) };

interface Rig {
  readonly clock: FakeClock;
  readonly ticker: MediaTicker;
  readonly conference: AudioConference;
  readonly sockets: UdpSocket[];
  readonly feeder: Deno.DatagramConn;
  frame: number;
}

const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const sinkPort = (sink.addr as Deno.NetAddr).port;

function buildRig(encoding: "shared" | "per-listener"): Rig {
  const clock = new FakeClock(0);
  const ticker = new MediaTicker({ clock });
  const conference = new AudioConference({ clock, ticker, mixer: { encoding } });
  const sockets: UdpSocket[] = [];
  for (let i = 0; i < N; i++) {
    const socket = UdpSocket.bind("127.0.0.1", 0);
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
  const feeder = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  return { clock, ticker, conference, sockets, feeder, frame: 0 };
}

/** Sends this tick's input packets and waits until the conference has them. */
async function feed(rig: Rig, everyone: boolean): Promise<void> {
  const k = rig.frame++;
  const senders = everyone ? rig.sockets.map((_, i) => i) : SPEAKERS;
  const before = senders.map((i) => rig.sockets[i]!.stats.received);
  const sends: Promise<number>[] = [];
  for (const i of senders) {
    const codec = codecOf(i);
    const speaking = SPEAKERS.includes(i);
    const list = speaking
      ? (codec === "opus" ? tonePayloads.opus : tonePayloads.pcmu)
      : (codec === "opus" ? silentPayloads.opus : silentPayloads.pcmu);
    const bytes = serializeRtp({
      marker: k === 0,
      payloadType: ptOf(codec),
      sequenceNumber: k & 0xffff,
      timestamp: (k * (rateOf(codec) / 50)) >>> 0,
      ssrc: 1000 + i,
      csrcs: [],
      extensions: codec === "opus" ? [audioLevelExtension(1, speaking ? 20 : 60, speaking)] : [],
      payload: list[k % CYCLE]!,
    });
    sends.push(rig.feeder.send(bytes, {
      transport: "udp",
      hostname: "127.0.0.1",
      port: rig.sockets[i]!.port,
    }));
  }
  await Promise.all(sends);
  while (senders.some((i, j) => rig.sockets[i]!.stats.received <= before[j]!)) {
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}

async function tick(rig: Rig, b: Deno.BenchContext): Promise<void> {
  b.start();
  rig.clock.advance(20); // the shared ticker fires: pull, mix, encode, packetize, send
  await Promise.all(rig.sockets.map((s) => s.whenIdle()));
  b.end();
}

function memory(): { rss: number; heap: number } {
  const m = Deno.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

const before = memory();
const shared = buildRig("shared");
const after = memory();
const perListener = buildRig("per-listener");
console.log(
  `memory per participant (conference side, incl. socket, session, jitter buffer, decoder): ` +
    `RSS ${((after.rss - before.rss) / N / 1024).toFixed(1)} KiB, ` +
    `JS heap ${((after.heap - before.heap) / N / 1024).toFixed(1)} KiB`,
);

Deno.bench({
  name: "per-listener encoding, 3 speakers, 997 in DTX",
  group: "1000-participant tick with RTP over UDP",
  baseline: true,
  async fn(b) {
    await feed(perListener, false);
    await tick(perListener, b);
  },
});

Deno.bench({
  name: "shared encodes, 3 speakers, 997 in DTX",
  group: "1000-participant tick with RTP over UDP",
  async fn(b) {
    await feed(shared, false);
    await tick(shared, b);
  },
});

Deno.bench({
  name: "per-listener encoding, 3 speakers + 997 sending quiet packets",
  group: "1000-participant tick, every participant sending",
  baseline: true,
  async fn(b) {
    await feed(perListener, true);
    await tick(perListener, b);
  },
});

Deno.bench({
  name: "shared encodes, 3 speakers + 997 sending quiet packets",
  group: "1000-participant tick, every participant sending",
  async fn(b) {
    await feed(shared, true);
    await tick(shared, b);
  },
});

globalThis.addEventListener("unload", () => {
  for (const rig of [shared, perListener]) {
    const t = rig.ticker.stats;
    console.log(
      `${rig === shared ? "shared" : "per-listener"}: ${t.ticks} ticks, synchronous part ` +
        `(pull, decode, mix, encode, packetize, queue sends) mean ${t.meanTickMs.toFixed(2)} ms, ` +
        `max ${t.maxTickMs.toFixed(2)} ms; mixer ${JSON.stringify(rig.conference.mixer.totals)}`,
    );
    rig.conference.close();
    rig.feeder.close();
  }
  sink.close();
});
