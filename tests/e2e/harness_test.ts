/**
 * Proves the end-to-end harness against the real peers themselves, before any Conclave
 * server exists: loopback namespaces, SIPp (built-in and our scenarios against SIPp
 * stand-ins, including runs that must fail), baresip (Opus and PCMU tone exchange, RTP echo,
 * ctrl_tcp), linphonec (StreamsRunning against an RTP-echoing SIPp), and the WAV/tone tools.
 *
 * Peer scenarios run inside `unshare -n` via `harness_scenarios.ts`. A missing binary or no
 * namespace support marks those tests ignored with a loud warning, unless
 * `CONCLAVE_REQUIRE_SERVICES=1`, in which case they run and fail.
 */

import assert from "node:assert/strict";
import {
  delay,
  denoRunCommand,
  hasBinary,
  loopbackNamespaceProblem,
  runInLoopbackNamespace,
} from "../_helpers/netns.ts";
import { loggedMessages, parseSippStats } from "../_helpers/sipp.ts";
import {
  analyzeTones,
  analyzeWavTones,
  describeTones,
  fft,
  toneProblems,
} from "../_helpers/tones.ts";
import {
  decodeUlaw,
  durationSeconds,
  encodeWav,
  parseWav,
  readWav,
  sineWave,
  toMono,
  WavFormatError,
} from "../_helpers/wav.ts";

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const DRIVER = new URL("./harness_scenarios.ts", import.meta.url).pathname;

async function unavailable(binaries: readonly string[]): Promise<string | undefined> {
  const problems: string[] = [];
  const ns = await loopbackNamespaceProblem();
  if (ns) problems.push(ns);
  for (const binary of binaries) {
    if (!(await hasBinary(binary))) problems.push(`${binary} not installed`);
  }
  return problems.length > 0 ? problems.join("; ") : undefined;
}

/** `ignore` flag for a test needing `binaries`; warns loudly when it skips. */
async function ignoreUnless(name: string, binaries: readonly string[]): Promise<boolean> {
  const problem = await unavailable(binaries);
  if (problem === undefined) return false;
  if (REQUIRE) return false; // run it and let it fail
  console.warn(
    `\n!!! ${name}: IGNORED — ${problem}. Set CONCLAVE_REQUIRE_SERVICES=1 to make this fail.\n`,
  );
  return true;
}

const noNamespace = await ignoreUnless("loopback namespace tests", []);
const noSipp = await ignoreUnless("SIPp tests", ["sipp", "sox"]);
const noBaresip = await ignoreUnless("baresip tests", ["baresip", "sipp"]);
const noLinphone = await ignoreUnless("linphonec tests", ["linphonec", "sipp"]);

interface ScenarioRun<T> {
  readonly value: T;
  readonly dir: string;
}

/** Runs one harness scenario in a fresh loopback namespace and returns its result.json. */
async function scenario<T>(name: string): Promise<ScenarioRun<T>> {
  const run = await runInLoopbackNamespace({
    script: denoRunCommand(DRIVER, [name]),
    timeoutMs: 120_000,
  });
  assert.equal(run.timedOut, false, `${name} hit the safety timeout; dir ${run.dir}`);
  let parsed: { value?: T; error?: string };
  try {
    parsed = JSON.parse(await Deno.readTextFile(`${run.dir}/result.json`));
  } catch {
    throw new Error(`${name}: no result.json (code ${run.code})\n${run.stdout}\n${run.stderr}`);
  }
  if (parsed.error !== undefined || parsed.value === undefined) {
    throw new Error(`${name} failed: ${parsed.error}\n${run.stderr}`);
  }
  return { value: parsed.value, dir: run.dir };
}

/**
 * Runs a scenario and hands its result to `check`; the scenario's files are removed when the
 * check passes and kept (path in the error) when it fails.
 */
async function checkScenario<T>(
  name: string,
  check: (value: T) => Promise<void> | void,
): Promise<void> {
  const { value, dir } = await scenario<T>(name);
  try {
    await check(value);
  } catch (error) {
    if (error instanceof Error) error.message += `\n(scenario files kept in ${dir})`;
    throw error;
  }
  await Deno.remove(dir, { recursive: true });
}

interface SippSummary {
  readonly code: number;
  readonly logs: string;
  readonly errors: string;
  readonly messages: string;
  readonly stdoutTail: string;
}

function sent(summary: SippSummary, startLine: RegExp): number {
  return loggedMessages(summary.messages).filter((m) =>
    m.direction === "sent" && startLine.test(m.text)
  ).length;
}

function received(summary: SippSummary, startLine: RegExp): number {
  return loggedMessages(summary.messages).filter((m) =>
    m.direction === "received" && startLine.test(m.text)
  ).length;
}

function explain(summary: SippSummary): string {
  return `code ${summary.code}\nerrors: ${summary.errors}\nstdout: ${summary.stdoutTail}`;
}

// ---------------------------------------------------------------- pure helpers (no peers)

Deno.test("wav: encode/parse round trip keeps rate, channels and samples", () => {
  const samples = new Int16Array([0, 1, -1, 32767, -32768, 1234, -4321, 7]);
  const audio = parseWav(encodeWav({ sampleRate: 8000, channels: 2, samples }));
  assert.equal(audio.sampleRate, 8000);
  assert.equal(audio.channels, 2);
  assert.deepEqual([...audio.samples], [...samples]);
  assert.equal(durationSeconds(audio), 4 / 8000);
  const mono = toMono(audio);
  const expected = [1, 32766, -31534, -4314].map((sum) => sum / 2 / 32768);
  assert.equal(mono.length, 4);
  mono.forEach((x, i) => assert.ok(Math.abs(x - expected[i]!) < 1e-6, `frame ${i}: ${x}`));
});

Deno.test("wav: a truncated data chunk (recorder killed) reads to the end of the file", () => {
  const bytes = encodeWav({ sampleRate: 16000, channels: 1, samples: new Int16Array(100) });
  new DataView(bytes.buffer).setUint32(40, 0xffffffff, true);
  assert.equal(parseWav(bytes).samples.length, 100);
  assert.throws(() => parseWav(new TextEncoder().encode("RIFF....WAVEjunk")), WavFormatError);
});

Deno.test("wav: our mu-law expander matches sox's on a sox-encoded tone", {
  ignore: noSipp,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave-ulaw-" });
  try {
    const run = (args: string[]) => new Deno.Command("sox", { args, stderr: "piped" }).output();
    assert.ok(
      (await run(["-n", "-r", "8000", "-c", "1", "-t", "ul", `${dir}/t.ul`, "synth", "0.5"]
        .concat(["sine", "440", "vol", "0.9"]))).success,
    );
    assert.ok(
      (await run(["-t", "ul", "-r", "8000", "-c", "1", `${dir}/t.ul`, "-b", "16"]
        .concat(["-e", "signed-integer", `${dir}/t.wav`]))).success,
    );
    const ours = decodeUlaw(await Deno.readFile(`${dir}/t.ul`));
    const theirs = (await readWav(`${dir}/t.wav`)).samples;
    assert.equal(ours.length, 4000);
    assert.deepEqual([...ours], [...theirs]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tones: fft of a unit impulse is flat; analysis separates a three-tone mix", () => {
  const re = new Float64Array(8);
  const im = new Float64Array(8);
  re[0] = 1;
  fft(re, im);
  assert.deepEqual([...re], [1, 1, 1, 1, 1, 1, 1, 1]);
  const mix = sineWave({ freqs: [440, 1000, 1500], seconds: 2, sampleRate: 48000 });
  const analysis = analyzeTones(toMono(mix), 48000, [440, 1000, 1500, 600, 2000]);
  for (const f of [440, 1000, 1500]) {
    const share = analysis.energies.get(f)!;
    assert.ok(share > 0.3 && share < 0.37, `${f} Hz share ${share}`);
  }
  assert.ok(analysis.energies.get(600)! < 0.001);
  assert.deepEqual(toneProblems(analysis, { present: [440, 1000, 1500], absent: [600, 2000] }), []);
  assert.equal(toneProblems(analysis, { present: [600], absent: [1000] }).length, 2);
  const silence = analyzeTones(new Float32Array(48000), 48000, [1000]);
  assert.equal(toneProblems(silence, { present: [], absent: [1000] }).length, 1, "silence flagged");
});

// ---------------------------------------------------------------- namespaces

Deno.test("netns: only lo exists, files go in and out, Deno runs with cached npm packages", {
  ignore: noNamespace,
}, async () => {
  const probe = `import { parse } from "sdp-transform";\n` +
    `const sdp = parse("v=0\\r\\nm=audio 4000 RTP/AVP 0\\r\\n");\n` +
    `await Deno.writeTextFile("probe.json", JSON.stringify(sdp.media[0]));\n`;
  const dir = await Deno.makeTempDir({ prefix: "conclave-netns-probe-" });
  const run = await runInLoopbackNamespace({
    dir,
    files: { "probe.ts": probe, "in/input.txt": "hello" },
    script: [
      "ip -o link show | awk -F': ' '{print $2}' > links.txt",
      "ip route get 192.0.2.1 > route.txt 2>&1; echo $? > route_code.txt",
      "cat in/input.txt > echo.txt",
      denoRunCommand(`${dir}/probe.ts`),
    ].join("\n"),
    timeoutMs: 60_000,
  });
  assert.equal(run.timedOut, false);
  assert.equal((await Deno.readTextFile(`${run.dir}/links.txt`)).trim(), "lo");
  assert.notEqual((await Deno.readTextFile(`${run.dir}/route_code.txt`)).trim(), "0");
  assert.equal(await Deno.readTextFile(`${run.dir}/echo.txt`), "hello");
  const media = JSON.parse(await Deno.readTextFile(`${run.dir}/probe.json`));
  assert.equal(media.port, 4000, run.stderr);
  assert.equal(media.type, "audio");
});

Deno.test("netns: the safety timeout SIGKILLs every process of the namespace", {
  ignore: noNamespace,
}, async () => {
  const marker = String(900000 + Math.floor(Math.random() * 99999));
  const run = await runInLoopbackNamespace({
    script: `sleep ${marker} & sleep ${marker} &\necho started > started.txt\nwait`,
    timeoutMs: 1500,
  });
  assert.equal(run.timedOut, true);
  assert.notEqual(run.code, 0);
  assert.equal((await Deno.readTextFile(`${run.dir}/started.txt`)).trim(), "started");
  const survivors = async () => {
    let count = 0;
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
        if (cmdline.includes(`sleep\0${marker}`)) count++;
      } catch {
        // process went away while scanning
      }
    }
    return count;
  };
  for (let i = 0; i < 100 && (await survivors()) > 0; i++) await delay(50);
  assert.equal(await survivors(), 0, "sleep processes outlived the namespace");
});

// ---------------------------------------------------------------- SIPp

for (const transport of ["tcp", "udp"] as const) {
  Deno.test(`sipp: built-in uac completes 3 calls against built-in uas over ${transport}`, {
    ignore: noSipp,
  }, async () => {
    await checkScenario<{ uac: SippSummary; uas: SippSummary }>(
      `sipp-builtin-${transport}`,
      (value) => {
        assert.equal(value.uac.code, 0, explain(value.uac));
        assert.equal(sent(value.uac, /^INVITE /), 3);
        assert.equal(sent(value.uac, /^BYE /), 3);
        assert.equal(received(value.uas, /^INVITE /), 3);
        assert.equal(received(value.uas, /^BYE /), 3);
      },
    );
  });
}

Deno.test("sipp: factory_invite.xml follows a 302 ;isfocus and logs the conference URI", {
  ignore: noSipp,
}, async () => {
  await checkScenario<{ uac: SippSummary; confUris: string[]; confId: string }>(
    "factory",
    (value) => {
      assert.equal(value.uac.code, 0, explain(value.uac));
      assert.equal(value.confUris.length, 1);
      assert.match(value.confUris[0]!, new RegExp(`^sip:conference-focus@127\\.0\\.0\\.1:\\d+;`));
      assert.ok(value.confUris[0]!.endsWith(`;conf-id=${value.confId}`));
      const startLines = loggedMessages(value.uac.messages)
        .map((m) => m.text.match(/^(SIP\/2\.0 \d{3}|[A-Z]+)/)?.[1] ?? "?")
        .filter((line) => line !== "SIP/2.0 100");
      assert.deepEqual(startLines, ["INVITE", "SIP/2.0 302", "ACK"]);
    },
  );
});

Deno.test("sipp: factory_invite.xml fails when the answer is not a 302", {
  ignore: noSipp,
}, async () => {
  await checkScenario<{ uac: SippSummary; confUris: string[] }>(
    "factory-against-200",
    (value) => {
      assert.notEqual(value.uac.code, 0);
      assert.deepEqual(value.confUris, []);
    },
  );
});

Deno.test("sipp: focus_invite.xml joins (200 ;isfocus with SDP), stays, and leaves by BYE", {
  ignore: noSipp,
}, async () => {
  await checkScenario<{ uac: SippSummary; uas: SippSummary }>("focus", (value) => {
    assert.equal(value.uac.code, 0, explain(value.uac));
    assert.match(value.uac.logs, /JOINED m=audio [1-9]\d* RTP\/AVP 0/);
    assert.equal(received(value.uas, /^ACK /), 1);
    assert.equal(received(value.uas, /^BYE /), 1);
    assert.equal(value.uas.code, 0, explain(value.uas));
  });
});

Deno.test("sipp: subscribe_conference.xml sees full then partial (version+1), then unsubscribes", {
  ignore: noSipp,
}, async () => {
  await checkScenario<{ uac: SippSummary; uas: SippSummary }>("subscribe", (value) => {
    assert.equal(value.uac.code, 0, explain(value.uac));
    assert.match(value.uac.logs, /NOTIFY_FULL version=1 /);
    assert.match(value.uac.logs, /NOTIFY_PARTIAL version=2 /);
    assert.equal(sent(value.uac, /^SUBSCRIBE /), 2);
    assert.equal(sent(value.uac, /^SIP\/2\.0 200/), 3, "every NOTIFY answered");
    assert.match(
      loggedMessages(value.uac.messages).filter((m) => m.direction === "sent")[3]?.text ?? "",
      /^SUBSCRIBE [^\r]*\r\n(?:[^\r]*\r\n)*Expires: 0\r\n/,
    );
  });
});

for (const bad of ["subscribe-first-partial", "subscribe-version-gap"]) {
  Deno.test(`sipp: subscribe_conference.xml fails on a wrong notifier (${bad})`, {
    ignore: noSipp,
  }, async () => {
    await checkScenario<{ uac: SippSummary }>(bad, (value) => {
      assert.notEqual(value.uac.code, 0);
      assert.match(value.uac.errors, /Failed regexp match|with check_it failed/);
    });
  });
}

Deno.test("sipp: uac_pcmu_rtp.xml streams the mu-law tone as PCMU RTP to the answered port", {
  ignore: noSipp,
}, async () => {
  await checkScenario<{
    uac: SippSummary;
    packets: number;
    payloadTypes: number[];
    ssrcs: number;
    payloadBytes: number;
    received: string;
  }>("pcmu-rtp", async (value) => {
    assert.equal(value.uac.code, 0, explain(value.uac));
    assert.deepEqual(value.payloadTypes, [0]);
    assert.equal(value.ssrcs, 1);
    assert.ok(value.packets >= 50, `only ${value.packets} RTP packets in a 2 s call`);
    assert.equal(value.payloadBytes, value.packets * 160);
    const analysis = await analyzeWavTones(value.received, [1000, 600]);
    assert.deepEqual(
      toneProblems(analysis, { present: [1000], absent: [600], minShare: 0.9 }),
      [],
      describeTones(analysis),
    );
  });
});

Deno.test("sipp: parseSippStats reads a -trace_stat CSV", () => {
  const rows = parseSippStats("StartTime;CurrentCall;SuccessfulCall(C);\n1;2;3;\n4;5;6;\n");
  assert.equal(rows.length, 2);
  assert.equal(rows[1]?.["CurrentCall"], "5");
  assert.equal(rows[0]?.["SuccessfulCall(C)"], "3");
});

// ---------------------------------------------------------------- baresip

interface BaresipSide {
  readonly code: number;
  readonly established: boolean;
  readonly recordings: { readonly decoded: string[]; readonly encoded: string[] };
}

for (const codec of ["opus", "pcmu"] as const) {
  Deno.test(`baresip: two instances (${codec}) hear each other's tone and not their own`, {
    ignore: noBaresip,
  }, async () => {
    await checkScenario<
      { a: BaresipSide; b: BaresipSide; aLogTail: string; bLogTail: string }
    >(`baresip-${codec}-pair`, async (value) => {
      assert.ok(value.a.established, value.aLogTail);
      assert.ok(value.b.established, value.bLogTail);
      const checks: Array<[BaresipSide, number, number]> = [[value.a, 600, 1000], [
        value.b,
        1000,
        600,
      ]];
      for (const [side, hears, own] of checks) {
        assert.equal(side.recordings.decoded.length, 1);
        const path = side.recordings.decoded[0]!;
        const audio = await readWav(path);
        assert.equal(audio.sampleRate, codec === "opus" ? 48000 : 8000);
        assert.equal(audio.channels, codec === "opus" ? 2 : 1);
        assert.ok(durationSeconds(audio) > 2, `${path} is ${durationSeconds(audio)} s`);
        const analysis = await analyzeWavTones(path, [hears, own], { startSec: 0.5 });
        assert.deepEqual(
          toneProblems(analysis, { present: [hears], absent: [own], minShare: 0.8 }),
          [],
          `${path}: ${describeTones(analysis)}`,
        );
      }
    });
  });
}

Deno.test("baresip: PCMU call to sipp -rtp_echo comes back as its own tone", {
  ignore: noBaresip,
}, async () => {
  await checkScenario<BaresipSide & { logTail: string }>("baresip-echo", async (value) => {
    assert.ok(value.established, value.logTail);
    const path = value.recordings.decoded[0]!;
    const analysis = await analyzeWavTones(path, [1000], { startSec: 0.5 });
    assert.deepEqual(
      toneProblems(analysis, { present: [1000], minShare: 0.8 }),
      [],
      describeTones(analysis),
    );
  });
});

Deno.test("baresip: ctrl_tcp dial, CALL_ESTABLISHED, hangup, CALL_CLOSED", {
  ignore: noBaresip,
}, async () => {
  type Message = Record<string, unknown>;
  await checkScenario<{
    dialResponse: Message;
    established: Message;
    hangupResponse: Message;
    closed: Message;
  }>("baresip-ctrl", (value) => {
    assert.equal(value.dialResponse["ok"], true);
    assert.equal(value.established["type"], "CALL_ESTABLISHED");
    assert.equal(value.established["direction"], "outgoing");
    assert.doesNotMatch(String(value.established["peeruri"]), /transport=tcp;transport=tcp/);
    assert.equal(value.hangupResponse["ok"], true);
    assert.equal(value.closed["type"], "CALL_CLOSED");
  });
});

// ---------------------------------------------------------------- linphonec

Deno.test("linphonec: calls sipp -rtp_echo, reaches StreamsRunning, hears its own tone", {
  ignore: noLinphone,
}, async () => {
  await checkScenario<{
    streamsRunning: boolean;
    states: Array<{ from: string; to: string }>;
    recording: string | undefined;
    error: string | undefined;
    outputTail: string;
    logTail: string;
  }>("linphone-echo", async (value) => {
    assert.ok(value.streamsRunning, `${value.error}\n${value.outputTail}\n${value.logTail}`);
    assert.deepEqual(value.states.map((s) => s.to), [
      "LinphoneCallOutgoingInit",
      "LinphoneCallOutgoingProgress",
      "LinphoneCallOutgoingRinging",
      "LinphoneCallConnected",
      "LinphoneCallStreamsRunning",
      "LinphoneCallEnd",
      "LinphoneCallReleased",
    ]);
    assert.ok(value.recording !== undefined, "no recording");
    const analysis = await analyzeWavTones(value.recording, [800, 1000], { startSec: 0.5 });
    assert.deepEqual(
      toneProblems(analysis, { present: [800], absent: [1000], minShare: 0.8 }),
      [],
      describeTones(analysis),
    );
  });
});

Deno.test("linphonec: registers an account at a stand-in registrar, which then proxies its calls", {
  ignore: noLinphone,
}, async () => {
  await checkScenario<{ registered: boolean; log: string; registrar: SippSummary }>(
    "linphone-register",
    (value) => {
      assert.ok(value.registered, value.log);
      const registers = loggedMessages(value.registrar.messages).filter((m) =>
        m.direction === "received" && m.text.startsWith("REGISTER ")
      );
      assert.ok(registers.length >= 2, `REGISTERs: ${registers.length}`);
      assert.match(registers[0]!.text, /^From: <sip:alice@127\.0\.0\.1>/m);
      assert.match(registers.at(-1)!.text, /^Expires: 0\r?$/m, "no unregister on quit");
      assert.equal(received(value.registrar, /^INVITE sip:conference-focus@/), 1);
    },
  );
});
