import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import {
  AudioConference,
  type AudioConferenceOptions,
  type MediaDirection,
} from "../../lib/media/audio_conference.ts";
import type { AudioCodecName } from "../../lib/media/codecs/codec.ts";
import { MediaTicker } from "../../lib/media/media_ticker.ts";
import { serializeTelephoneEvent } from "../../lib/media/telephone_event.ts";
import { UdpSocket } from "../../lib/media/udp_socket.ts";
import { heardPowers, Phone, runTicks, seeded, until } from "../_helpers/media_phone.ts";

interface Setup {
  readonly clock: FakeClock;
  readonly ticker: MediaTicker;
  readonly conference: AudioConference;
  readonly phones: Phone[];
  /** The conference's socket for each phone (what the engine would take from the pool). */
  readonly sockets: UdpSocket[];
  close(): Promise<void>;
}

function setup(
  specs: { codec: AudioCodecName; freq: number; pt: number; direction?: MediaDirection }[],
  options: Partial<AudioConferenceOptions> = {},
  extra: { telephoneEventPt?: number; audioLevelExtId?: number } = {},
): Setup {
  const clock = new FakeClock(0);
  const ticker = new MediaTicker({ clock });
  const conference = new AudioConference({ clock, ticker, random: seeded(42), ...options });
  const phones = specs.map((s, i) => new Phone(`p${i}`, s.codec, s.freq, s.pt));
  const sockets = phones.map(() => UdpSocket.bind("127.0.0.1", 0));
  for (const [i, phone] of phones.entries()) {
    phone.target = sockets[i]!.port;
    conference.addParticipant(phone.id, {
      socket: sockets[i]!,
      remote: { address: "127.0.0.1", port: phone.peer.port },
      payloadType: phone.payloadType,
      codec: phone.codec,
      direction: specs[i]!.direction ?? "sendrecv",
      ...extra,
    });
  }
  return {
    clock,
    ticker,
    conference,
    phones,
    sockets,
    async close() {
      conference.close();
      for (const phone of phones) await phone.close();
      for (const socket of sockets) await socket.close();
      assert.equal(clock.pendingTimers, 0, "no timer left behind");
    },
  };
}

/** Runs `ticks` steps: phones send, the conference receives, time moves 20 ms. */
async function run(
  s: Setup,
  ticks: number,
  send?: (phone: Phone, tick: number) => Promise<void> | undefined,
): Promise<void> {
  await runTicks(
    s.phones,
    ticks,
    (i) => s.sockets[i]!.stats.received,
    () => s.clock.advance(20),
    send,
  );
  // The last tick's packets have left the conference's sockets.
  await Promise.all(s.sockets.map((socket) => socket.whenIdle()));
}

const heard = heardPowers;

Deno.test("audio conference: three PCMU phones each hear the other two tones, never their own", async () => {
  const freqs = [440, 800, 1300];
  const s = setup(freqs.map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })));
  try {
    await run(s, 60);
    const conferencePackets = s.phones.map((p) => s.conference.participantStats(p.id).rtp);
    for (const [i, phone] of s.phones.entries()) {
      await until(() => phone.peer.rtp.size >= 55, `${phone.id} receives the mix`);
      const powers = heard(phone, freqs);
      const others = powers.filter((_, j) => j !== i);
      const own = powers[i]!;
      for (const p of others) {
        // A full-level 8000-amplitude tone has power (8000 / 2)² = 1.6e7.
        assert.ok(
          p > 4e6,
          `${phone.id} hears the others: ${powers.map((x) => x.toExponential(1))}`,
        );
        assert.ok(own < p / 10_000, `${phone.id} must not hear itself (−40 dB): ${powers}`);
      }
      assert.equal(conferencePackets[i]!.packetsLost, 0);
    }
    const totals = s.conference.mixer.totals;
    assert.equal(totals.ticks, 60);
    assert.ok(s.ticker.stats.ticks === 60);
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: sequence/timestamp continuity per listener, distinct SSRCs", async () => {
  const s = setup([440, 800, 1300].map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })));
  try {
    await run(s, 20);
    const ssrcs = new Set<number>();
    for (const phone of s.phones) {
      await until(() => phone.peer.rtp.size >= 15, "packets");
      const packets = phone.peer.rtp.drain();
      ssrcs.add(packets[0]!.ssrc);
      for (let k = 1; k < packets.length; k++) {
        assert.equal(packets[k]!.ssrc, packets[0]!.ssrc);
        assert.equal(packets[k]!.sequenceNumber, (packets[k - 1]!.sequenceNumber + 1) & 0xffff);
        assert.equal(packets[k]!.timestamp, (packets[k - 1]!.timestamp + 160) >>> 0);
        assert.equal(packets[k]!.payload.length, 160);
      }
      assert.equal(packets[0]!.marker, true);
    }
    assert.equal(ssrcs.size, 3);
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: mixed codecs — Opus and PCMU phones hear each other", async () => {
  const freqs = [500, 1000, 1500];
  const s = setup([
    { codec: "opus", freq: freqs[0]!, pt: 111 },
    { codec: "pcmu", freq: freqs[1]!, pt: 0 },
    { codec: "pcma", freq: freqs[2]!, pt: 8 },
  ]);
  try {
    await run(s, 50);
    for (const [i, phone] of s.phones.entries()) {
      await until(() => phone.peer.rtp.size >= 45, `${phone.id} receives`);
      const powers = heard(phone, freqs);
      for (const [j, p] of powers.entries()) {
        if (j === i) continue;
        assert.ok(p > 4e6, `${phone.codec} phone hears ${freqs[j]} Hz: ${powers}`);
        assert.ok(powers[i]! < p / 10_000, `${phone.codec} phone does not hear itself: ${powers}`);
      }
    }
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: 10 ms and 40 ms packets are re-framed into 20 ms ticks", async () => {
  const freqs = [440, 800, 1300];
  const s = setup(freqs.map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })));
  try {
    // p0 sends two 10 ms packets per tick; p1 one 40 ms packet every other tick; p2 20 ms.
    const before = s.sockets.map((socket) => socket.stats.received);
    for (let t = 0; t < 60; t++) {
      const p0 = s.phones[0]!;
      await p0.sendFrame({ samples: 80 });
      await p0.sendFrame({ samples: 80 });
      if (t % 2 === 0) await s.phones[1]!.sendFrame({ samples: 320 });
      await s.phones[2]!.sendFrame();
      await until(
        () =>
          s.sockets[0]!.stats.received >= before[0]! + 2 * (t + 1) &&
          s.sockets[1]!.stats.received >= before[1]! + Math.floor(t / 2) + 1 &&
          s.sockets[2]!.stats.received >= before[2]! + t + 1,
        "received",
      );
      s.clock.advance(20);
    }
    await Promise.all(s.sockets.map((socket) => socket.whenIdle()));
    await until(() => s.phones[2]!.peer.rtp.size >= 55, "p2 receives");
    const p2 = heard(s.phones[2]!, freqs);
    assert.ok(p2[0]! > 4e6 && p2[1]! > 4e6, `p2 hears both re-framed streams: ${p2}`);
    assert.ok(p2[2]! < p2[0]! / 10_000);
    for (const id of ["p0", "p1"]) {
      const stats = s.conference.participantStats(id);
      assert.ok(stats.framesConcealed <= 3, `${id} concealed ${stats.framesConcealed}`);
      assert.equal(stats.jitter.lost, 0);
    }
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: hold (inactive) silences both ways; resume restores", async () => {
  const freqs = [440, 800, 1300];
  const s = setup(freqs.map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })));
  try {
    await run(s, 10);
    s.conference.updateParticipant("p2", { direction: "inactive" });
    const sentBefore = s.conference.participantStats("p2").rtp.packetsSent;
    for (const phone of s.phones) phone.peer.rtp.drain();
    await run(s, 60);
    assert.equal(
      s.conference.participantStats("p2").rtp.packetsSent,
      sentBefore,
      "p2 gets nothing",
    );
    await until(() => s.phones[0]!.peer.rtp.size >= 55, "p0 receives");
    const p0 = heard(s.phones[0]!, freqs);
    assert.ok(p0[1]! > 4e6, "p0 still hears p1");
    assert.ok(p0[2]! < p0[1]! / 10_000, `p0 no longer hears the held p2: ${p0}`);
    // Resume: p2 hears again, and its first packet after the gap is a talk-spurt start whose
    // timestamp kept advancing with time (RFC 3550 §5.1).
    for (const phone of s.phones) phone.peer.rtp.drain();
    const tsBefore = s.conference.participantStats("p2").rtp.packetsSent;
    s.conference.updateParticipant("p2", { direction: "sendrecv" });
    await run(s, 5);
    await until(() => s.phones[2]!.peer.rtp.size >= 3, "p2 receives again");
    const first = s.phones[2]!.peer.rtp.drain()[0]!;
    assert.equal(first.marker, true);
    assert.ok(s.conference.participantStats("p2").rtp.packetsSent > tsBefore);
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: focus mute removes a participant from everyone's mix", async () => {
  const freqs = [440, 800, 1300];
  const s = setup(freqs.map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })));
  try {
    s.conference.setMuted("p0", true);
    assert.equal(s.conference.isMuted("p0"), true);
    await run(s, 60);
    await until(() => s.phones[1]!.peer.rtp.size >= 55, "p1 receives");
    const p1 = heard(s.phones[1]!, freqs);
    assert.ok(p1[2]! > 4e6, "p1 hears p2");
    assert.ok(p1[0]! < p1[2]! / 10_000, `p1 does not hear muted p0: ${p1}`);
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: DTMF digits and active speaker surface as callbacks", async () => {
  const digits: string[] = [];
  const speakers: (string | null)[] = [];
  const s = setup(
    [440, 800, 1300].map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })),
    {
      onDtmf: (id, e) => digits.push(`${id}:${e.digit}`),
      onActiveSpeakerChange: (id) => speakers.push(id),
    },
    { telephoneEventPt: 101, audioLevelExtId: 1 },
  );
  try {
    // Only p1 talks (its RFC 6464 level says voice), the others send silence.
    await run(s, 30, (phone) => phone.sendFrame({ silent: phone.id !== "p1", levelExtId: 1 }));
    assert.equal(s.conference.activeSpeaker, "p1");
    assert.deepEqual(speakers, ["p1"]);
    // p0 types *6: start, update and three end packets per digit (RFC 4733 §2.5.1.4).
    const p0 = s.phones[0]!;
    let eventTs = 90000;
    for (const event of [10, 6]) {
      for (
        const [end, duration] of [[false, 160], [false, 320], [true, 480], [true, 480], [
          true,
          480,
        ]] as const
      ) {
        await p0.peer.sendRtp(p0.target, {
          sequenceNumber: p0.seq++ & 0xffff,
          timestamp: eventTs,
          payloadType: 101,
          ssrc: 0x1000 + p0.freq,
          payload: serializeTelephoneEvent({ event, end, volume: 10, duration }),
        });
      }
      eventTs += 2000;
    }
    await until(() => digits.length >= 2, "digits");
    assert.deepEqual(digits, ["p0:*", "p0:6"]);
    assert.equal(
      s.conference.participantStats("p0").jitter.pushed,
      30,
      "events bypass the jitter buffer",
    );
  } finally {
    await s.close();
  }
});

Deno.test("audio conference: removing a participant sends RTCP BYE; close cleans up", async () => {
  const s = setup([440, 800].map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })));
  try {
    await run(s, 3);
    assert.equal(s.conference.removeParticipant("p1", "left"), true);
    assert.equal(s.conference.removeParticipant("p1"), false);
    for (;;) {
      const rtcp = await s.phones[1]!.peer.nextRtcp();
      const bye = rtcp.packets.find((p) => p.type === "bye");
      if (bye && bye.type === "bye") {
        assert.equal(bye.reason, "left");
        break;
      }
    }
    assert.deepEqual(s.conference.participantIds, ["p0"]);
  } finally {
    await s.close();
  }
  assert.equal(s.conference.closed, true);
  assert.equal(s.ticker.running, false, "the conference left the ticker");
});

Deno.test("audio conference: mixed packets list the speakers' SSRCs as CSRCs (never the listener's); sources are reported", async () => {
  const seen = new Map<string, number>();
  const s = setup(
    [440, 800, 1300].map((freq) => ({ codec: "pcmu" as const, freq, pt: 0 })),
    { onSourceId: (id, ssrc) => seen.set(id, ssrc) },
  );
  try {
    // p0 and p1 talk, p2 is silent.
    await run(s, 40, (phone) => phone.sendFrame({ silent: phone.id === "p2" }));
    // The phones send SSRC 0x1000 + their tone frequency.
    const ssrcOf = (p: Phone) => 0x1000 + p.freq;
    assert.deepEqual(
      [...seen.entries()].sort(),
      s.phones.map((p) => [p.id, ssrcOf(p)]),
    );
    const [p0, p1, p2] = s.phones as [Phone, Phone, Phone];
    for (const phone of s.phones) await until(() => phone.peer.rtp.size >= 35, "packets");
    const lastCsrcs = (p: Phone) => [...p.peer.rtp.drain().at(-1)!.csrcs].sort();
    assert.deepEqual(lastCsrcs(p0), [ssrcOf(p1)]);
    assert.deepEqual(lastCsrcs(p1), [ssrcOf(p0)]);
    assert.deepEqual(lastCsrcs(p2), [ssrcOf(p0), ssrcOf(p1)].sort());
  } finally {
    await s.close();
  }
});
