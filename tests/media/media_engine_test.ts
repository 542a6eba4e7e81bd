import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { MediaEngine, MediaEngineError } from "../../lib/media/media_engine.ts";
import { PortPoolExhaustedError } from "../../lib/media/port_pool.ts";
import { heardPowers, Phone, runTicks, seeded, until } from "../_helpers/media_phone.ts";

function engine(clock: FakeClock, audioPort: string | number = 0): MediaEngine {
  return new MediaEngine({ clock, bindAddress: "127.0.0.1", audioPort, random: seeded(3) });
}

Deno.test("media engine: allocate → start → mix → stats → stop, over real UDP", async () => {
  const clock = new FakeClock(1000);
  const media = engine(clock);
  const freqs = [600, 1200];
  const phones = freqs.map((f, i) => new Phone(`p${i}`, "pcmu", f, 0));
  const speakers: (string | null)[] = [];
  try {
    media.createConference("conf", { onActiveSpeakerChange: (id) => speakers.push(id) });
    const endpoints = phones.map(() => media.allocateAudioEndpoint());
    assert.equal(media.endpointCount, 2);
    for (const [i, ep] of endpoints.entries()) {
      assert.equal(ep.address, "127.0.0.1");
      assert.equal(ep.port % 2, 0, "RTP on an even port");
      phones[i]!.target = ep.port;
      media.startAudio(ep.id, "conf", {
        remote: { address: "127.0.0.1", port: phones[i]!.peer.port },
        payloadType: 0,
        codec: "pcmu",
        direction: "sendrecv",
      });
    }
    const received = (i: number) => media.audioStats(endpoints[i]!.id)!.audio!.rtp.packetsReceived;
    await runTicks(phones, 50, received, () => clock.advance(20));
    for (const [i, phone] of phones.entries()) {
      await until(() => phone.peer.rtp.size >= 45, "mix received");
      const powers = heardPowers(phone, freqs);
      const other = powers[1 - i]!;
      assert.ok(other > 4e6, `${phone.id} hears the other: ${powers}`);
      assert.ok(powers[i]! < other / 10_000, `${phone.id} does not hear itself: ${powers}`);
    }
    const stats = media.audioStats(endpoints[0]!.id)!;
    assert.equal(stats.conferenceId, "conf");
    assert.equal(stats.startedAt, 1000);
    assert.equal(stats.lastRtpAt, 1000 + 49 * 20, "clock time of the last packet");
    assert.equal(stats.audio?.codec, "pcmu");
    assert.ok(media.tickerStats.ticks >= 50);
    assert.ok(media.mixerTotals("conf").ticks >= 50);
    assert.ok(speakers.length >= 1);

    await media.stopAudio(endpoints[1]!.id, "bye");
    assert.equal(media.endpointCount, 1);
    assert.equal(media.audioStats(endpoints[1]!.id), undefined);
    // The port really is free again.
    const probe = Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.1",
      port: endpoints[1]!.port,
    });
    probe.close();
    await media.closeConference("conf");
    assert.equal(media.endpointCount, 0);
    assert.equal(media.hasConference("conf"), false);
  } finally {
    await media.close();
    for (const phone of phones) await phone.close();
  }
  assert.equal(clock.pendingTimers, 0, "ticker and RTCP timers stopped");
});

Deno.test("media engine: state errors and idempotence", async () => {
  const clock = new FakeClock();
  const media = engine(clock);
  try {
    const ep = media.allocateAudioEndpoint({ rtcpPort: true });
    assert.equal(ep.rtcpPort, ep.port + 1);
    assert.throws(
      () =>
        media.startAudio(ep.id, "nope", { payloadType: 0, codec: "pcmu", direction: "sendrecv" }),
      MediaEngineError,
    );
    assert.throws(
      () =>
        media.startAudio("a999", "nope", { payloadType: 0, codec: "pcmu", direction: "sendrecv" }),
      MediaEngineError,
    );
    assert.throws(() => media.setMuted(ep.id, true), MediaEngineError, "not started");
    media.createConference("c");
    media.createConference("c"); // idempotent
    media.startAudio(ep.id, "c", { payloadType: 0, codec: "pcmu", direction: "recvonly" });
    assert.throws(
      () => media.startAudio(ep.id, "c", { payloadType: 0, codec: "pcmu", direction: "sendrecv" }),
      MediaEngineError,
    );
    media.setMuted(ep.id, true);
    assert.equal(media.isMuted(ep.id), true);
    assert.equal(media.audioStats(ep.id)?.lastRtpAt, undefined, "no RTP yet");
    await media.stopAudio("unknown"); // ignored
    const never = media.allocateAudioEndpoint();
    await media.stopAudio(never.id); // allocated, never started: released
    assert.equal(media.endpointCount, 1);
  } finally {
    await media.close();
  }
  assert.throws(() => media.allocateAudioEndpoint(), MediaEngineError);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("media engine: audio-port range is honoured and exhausts", async () => {
  const clock = new FakeClock();
  const base = 20000 + 2 * Math.floor(Math.random() * 5000);
  const media = engine(clock, `${base}-${base + 3}`);
  try {
    const a = media.allocateAudioEndpoint();
    const b = media.allocateAudioEndpoint();
    assert.deepEqual([a.port, b.port].sort(), [base, base + 2]);
    assert.throws(() => media.allocateAudioEndpoint(), PortPoolExhaustedError);
    await media.stopAudio(a.id);
    assert.equal(media.allocateAudioEndpoint().port, a.port);
  } finally {
    await media.close();
  }
});

Deno.test("media engine: codec change by re-INVITE — same clock keeps the SSRC, new clock renews it", async () => {
  const clock = new FakeClock();
  const media = engine(clock);
  const phone = new Phone("p", "pcmu", 700, 0);
  const other = new Phone("q", "pcmu", 900, 0);
  try {
    media.createConference("c");
    const eps = [phone, other].map((ph) => {
      const ep = media.allocateAudioEndpoint();
      ph.target = ep.port;
      media.startAudio(ep.id, "c", {
        remote: { address: "127.0.0.1", port: ph.peer.port },
        payloadType: 0,
        codec: "pcmu",
        direction: "sendrecv",
      });
      return ep;
    });
    const received = (i: number) => media.audioStats(eps[i]!.id)!.audio!.rtp.packetsReceived;
    const tickFor = (n: number) => runTicks([phone, other], n, received, () => clock.advance(20));
    await tickFor(3);
    await until(() => phone.peer.rtp.size >= 3, "pcmu packets");
    const before = phone.peer.rtp.drain();
    media.updateAudio(eps[0]!.id, { codec: "pcma", payloadType: 8 });
    clock.advance(20);
    clock.advance(20);
    await until(() => phone.peer.rtp.size >= 2, "pcma packets");
    const after = phone.peer.rtp.drain();
    assert.ok(after.every((p) => p.payloadType === 8));
    assert.equal(after[0]!.ssrc, before[0]!.ssrc, "G.711 → G.711: same stream");
    assert.equal(after[0]!.sequenceNumber, (before.at(-1)!.sequenceNumber + 1) & 0xffff);
    media.updateAudio(eps[0]!.id, { codec: "opus", payloadType: 111 });
    clock.advance(20);
    clock.advance(20);
    await until(() => phone.peer.rtp.size >= 2, "opus packets");
    const opus = phone.peer.rtp.drain();
    assert.ok(opus.every((p) => p.payloadType === 111));
    assert.notEqual(opus[0]!.ssrc, before[0]!.ssrc, "48 kHz clock: a new SSRC");
    assert.equal((opus[1]!.timestamp - opus[0]!.timestamp) >>> 0, 960);
    assert.equal(media.audioStats(eps[0]!.id)?.audio?.codec, "opus");
  } finally {
    await media.close();
    await phone.close();
    await other.close();
  }
});
