import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { AudioInput } from "../../lib/media/audio_input.ts";
import { AudioMixer } from "../../lib/media/audio_mixer.ts";
import { type AudioCodecName, createEncoder } from "../../lib/media/codecs/codec.ts";
import { audioLevelExtension, type RtpPacket } from "../../lib/media/rtp.ts";
import { tone } from "../_helpers/media_phone.ts";

interface Rig {
  readonly clock: FakeClock;
  readonly mixer: AudioMixer;
  readonly inputs: Map<string, AudioInput>;
  readonly heard: Uint8Array[];
  readonly encoders: Map<string, ReturnType<typeof createEncoder>>;
  seq: number;
}

/** A mixer with one listener `l` and inputs with the given codec and tone amplitude. */
function rig(specs: { id: string; codec: AudioCodecName; amp: number; levelExt?: boolean }[]): Rig {
  const clock = new FakeClock();
  const mixer = new AudioMixer({ maxSpeakers: 1 });
  const heard: Uint8Array[] = [];
  mixer.addParticipant("l", { codec: "pcmu" }, (payload) => heard.push(payload));
  const inputs = new Map<string, AudioInput>();
  const encoders = new Map<string, ReturnType<typeof createEncoder>>();
  for (const s of specs) {
    mixer.addParticipant(s.id, { codec: s.codec }, () => {});
    inputs.set(
      s.id,
      new AudioInput({
        clock,
        codec: s.codec,
        payloadType: s.codec === "opus" ? 111 : 0,
        ...(s.levelExt ? { audioLevelExtId: 1 } : {}),
      }),
    );
    encoders.set(s.id, createEncoder(s.codec, { sampleRate: s.codec === "opus" ? 48000 : 8000 }));
  }
  return { clock, mixer, inputs, heard, encoders, seq: 0 };
}

function packet(
  codec: AudioCodecName,
  seq: number,
  payload: Uint8Array,
  level?: number,
  pt?: number,
): RtpPacket {
  const samples = codec === "opus" ? 960 : 160;
  return {
    marker: seq === 0,
    payloadType: pt ?? (codec === "opus" ? 111 : 0),
    sequenceNumber: seq,
    timestamp: seq * samples,
    ssrc: 7,
    csrcs: [],
    extensions: level === undefined ? [] : [audioLevelExtension(1, level, true)],
    payload,
  };
}

/** Runs `ticks` ticks: each input gets its tone's next packet, then feed and tick. */
function run(r: Rig, specs: { id: string; codec: AudioCodecName; amp: number }[], ticks: number) {
  for (let t = 0; t < ticks; t++) {
    const seq = r.seq++;
    for (const s of specs) {
      const fs = s.codec === "opus" ? 48000 : 8000;
      const pcm = tone(300 + s.amp / 10, fs, seq * (fs / 50), fs / 50, s.amp);
      const payload = r.encoders.get(s.id)!.encode(pcm).slice();
      const level = Math.round(-20 * Math.log10(s.amp / Math.SQRT2 / 32768));
      r.inputs.get(s.id)!.push(packet(s.codec, seq, payload, level));
    }
    r.clock.advance(20);
    for (const s of specs) r.inputs.get(s.id)!.feed(r.mixer, s.id);
    r.mixer.tick();
  }
}

function close(r: Rig): void {
  for (const input of r.inputs.values()) input.close();
  for (const encoder of r.encoders.values()) encoder.close();
  r.mixer.close();
}

Deno.test("audio input: G.711 inputs not mixed skip the 48 kHz resampling", () => {
  const specs = [
    { id: "loud", codec: "pcmu" as const, amp: 12000 },
    { id: "quiet", codec: "pcmu" as const, amp: 2000 },
  ];
  const r = rig(specs);
  try {
    run(r, specs, 50);
    assert.deepEqual(r.mixer.selectedSpeakers, ["loud"]);
    const loud = r.inputs.get("loud")!.stats;
    const quiet = r.inputs.get("quiet")!.stats;
    assert.equal(loud.framesDecoded, 50, "G.711 is always table-decoded (for its level)");
    assert.equal(quiet.framesDecoded, 50);
    assert.ok(loud.framesSkipped <= 2, `loud is resampled when mixed: ${loud.framesSkipped}`);
    assert.ok(quiet.framesSkipped >= 45, `quiet is not resampled: ${quiet.framesSkipped}`);
    assert.equal(r.heard.length, 50);
  } finally {
    close(r);
  }
});

Deno.test("audio input: Opus decoded only when mixed (RFC 6464 level) or when it may be speech", () => {
  const specs = [
    { id: "loud", codec: "opus" as const, amp: 12000, levelExt: true },
    { id: "quiet", codec: "opus" as const, amp: 2000, levelExt: true },
    { id: "nolevel", codec: "opus" as const, amp: 1000 },
    { id: "hush", codec: "opus" as const, amp: 30 },
  ];
  const r = rig(specs);
  try {
    run(r, specs, 40);
    assert.deepEqual(r.mixer.selectedSpeakers, ["loud"]);
    const s = (id: string) => r.inputs.get(id)!.stats;
    assert.ok(s("loud").framesDecoded >= 38, `loud decoded: ${s("loud").framesDecoded}`);
    assert.ok(
      s("quiet").framesDecoded <= 2,
      `quiet mostly not decoded: ${s("quiet").framesDecoded}`,
    );
    assert.ok(s("quiet").framesSkipped >= 38);
    // Without a level: a stream measured loud (−33 dBov) is decoded every tick, even once
    // SILK's VAD flag calls the steady tone inactive; a quiet one (−64 dBov) is not.
    assert.equal(s("nolevel").framesDecoded, 40, "loud stream without a level: every tick");
    assert.ok(
      s("hush").framesDecoded <= 2,
      `quiet stream without a level: ${s("hush").framesDecoded}`,
    );
    assert.ok(s("hush").framesSkipped >= 38);
  } finally {
    close(r);
  }
});

Deno.test("audio input: loss is concealed, comfort noise plays as silence, empty pushes nothing", () => {
  const clock = new FakeClock();
  const input = new AudioInput({ clock, codec: "pcmu", payloadType: 0 });
  const encoder = createEncoder("pcmu", { sampleRate: 8000 });
  const mixer = new AudioMixer();
  const pushed: string[] = [];
  mixer.addParticipant("x", { codec: "pcmu" }, () => {});
  const original = mixer.pushLazyFrame.bind(mixer);
  mixer.pushLazyFrame = (id, frame) => {
    pushed.push(`${id}:${frame.audioLevel}`);
    original(id, frame);
  };
  try {
    const payload = encoder.encode(tone(500, 8000, 0, 160)).slice();
    const arrivals: (RtpPacket | undefined)[] = [
      packet("pcmu", 0, payload),
      packet("pcmu", 1, payload),
      undefined, // 2 is lost
      packet("pcmu", 3, payload),
      packet("pcmu", 4, Uint8Array.of(40), undefined, 13), // RFC 3389 comfort noise
    ];
    for (let t = 0; t < 9; t++) {
      const arriving = arrivals[t];
      if (arriving) input.push(arriving);
      clock.advance(20);
      input.feed(mixer, "x");
      mixer.tick();
      clock.advance(20);
    }
    const st = input.stats;
    assert.equal(st.framesDecoded, 3);
    assert.ok(st.framesConcealed >= 1, "packet 2 concealed");
    assert.equal(st.jitter.lost, 1);
    const levels = pushed.map((p) => Number(p.split(":")[1]));
    assert.deepEqual(levels.slice(0, 2).map((l) => l < 20), [true, true], `tone: ${levels}`);
    assert.ok(levels[2]! < 30, `concealed frame repeats the tone, fading: ${levels}`);
    assert.ok(levels[3]! < 20, `packet 3: ${levels}`);
    assert.equal(levels[4], 127, "comfort noise → digital silence");
    // Then the stream is empty: a few concealed frames at most, then nothing is pushed.
    assert.ok(pushed.length <= 5 + 3, `pushes: ${pushed.length}`);
  } finally {
    input.close();
    encoder.close();
    mixer.close();
  }
});
