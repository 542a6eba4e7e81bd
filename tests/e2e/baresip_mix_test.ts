/**
 * Issue 6 acceptance, end to end with real clients nobody here wrote: in a loopback-only
 * network namespace, Conclave plus four baresip instances (two offering only Opus, two only
 * PCMU) and one linphonec (Opus), each playing a different pure tone, all join one conference
 * created through the factory (SIPp: INVITE → 302 → conference URI). After a few seconds
 * together they hang up; then every recording of what a participant heard (baresip's
 * `sndfile` `dump-*-dec.wav`, linphonec's `record` file) must hold every other participant's
 * tone and not its own: the mixer gives each listener everyone but themselves, across codecs.
 *
 * The tones are chosen so that no harmonic or 2nd/3rd-order intermodulation product of any
 * four of them lies within 70 Hz of the fifth, and all are well inside G.711's band.
 *
 * The scenario itself runs in `tests/_helpers/conference_mix.ts` inside the namespace; this
 * file analyses what it left. A missing peer (baresip, linphonec, SIPp) or no namespace
 * support marks the test ignored with a loud warning, unless `CONCLAVE_REQUIRE_SERVICES=1`.
 */

import assert from "node:assert/strict";
import type { MixOutcome, MixParticipantOutcome, MixPlan } from "../_helpers/conference_mix.ts";
import { denoRunCommand, peerProblems, runInLoopbackNamespace } from "../_helpers/netns.ts";
import { analyzeTones, describeTones, toneProblems } from "../_helpers/tones.ts";
import { durationSeconds, readWav, toMono } from "../_helpers/wav.ts";

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const DRIVER = new URL("../_helpers/conference_mix.ts", import.meta.url).pathname;

const problem =
  (await peerProblems({ namespace: true, binaries: ["baresip", "linphonec", "sipp"] })).join(
    "; ",
  ) || undefined;
const ignore = problem !== undefined && !REQUIRE;
if (ignore) {
  console.warn(
    `\n!!! baresip_mix_test: IGNORED — ${problem}. (apt-get install baresip baresip-core ` +
      "linphone-cli sip-tester; CONCLAVE_REQUIRE_SERVICES=1 makes this fail.)\n",
  );
}

const PLAN: MixPlan = {
  participants: [
    { name: "opus1", client: "baresip", codec: "opus", toneHz: 830 },
    { name: "opus2", client: "baresip", codec: "opus", toneHz: 1110 },
    { name: "pcmu1", client: "baresip", codec: "pcmu", toneHz: 1570 },
    { name: "pcmu2", client: "baresip", codec: "pcmu", toneHz: 1780 },
    { name: "linphone", client: "linphonec", codec: "opus", toneHz: 2150 },
  ],
  holdSeconds: 5,
  // All five are speaking: mix them all (the default top-N is 4).
  serverConfig: ["max-speakers=8"],
  waitMs: 30_000,
};

/** Seconds at the start of the together-part left out (jitter buffers settling). */
const SETTLE_SEC = 1.0;
/** Seconds at the end left out (the others' hang-ups arrive within this). */
const TAIL_SEC = 0.5;

/** Checks one recording; returns what is wrong with it (empty = good). */
async function checkRecording(
  participant: MixParticipantOutcome,
  outcome: MixOutcome,
): Promise<string[]> {
  const problems: string[] = [];
  const path = participant.recording;
  if (path === undefined) return ["no recording"];
  const audio = await readWav(path);
  if (participant.client === "baresip") {
    // sndfile records at the decoder's format: Opus 48 kHz stereo, PCMU 8 kHz mono. This is
    // how the test knows the codec really was the one forced.
    const [rate, channels] = participant.codec === "opus" ? [48000, 2] : [8000, 1];
    if (audio.sampleRate !== rate || audio.channels !== channels) {
      problems.push(
        `recorded ${audio.sampleRate} Hz × ${audio.channels}, expected ${rate} Hz × ${channels} ` +
          `(${participant.codec})`,
      );
    }
  }
  const others = outcome.participants.filter((p) => p !== participant).map((p) => p.toneHz);
  const own = participant.toneHz;
  const freqs = [...others, own];
  const samples = toMono(audio);
  const seconds = durationSeconds(audio);
  // Everybody is there during the last `togetherSeconds` of each recording (the calls were
  // all up before that part began and were hung up together at its end).
  const startSec = Math.max(0, seconds - outcome.togetherSeconds + SETTLE_SEC);
  const endSec = seconds - TAIL_SEC;
  if (endSec - startSec < 2) {
    problems.push(`only ${(endSec - startSec).toFixed(2)} s of ${seconds.toFixed(2)} s to analyse`);
    return problems;
  }
  const together = analyzeTones(samples, audio.sampleRate, freqs, { startSec, endSec });
  for (const p of toneProblems(together, { present: others, absent: [own] })) {
    problems.push(`${p} [${describeTones(together)}]`);
  }
  // Never its own voice, over the whole call (join, others joining, leaving).
  const whole = analyzeTones(samples, audio.sampleRate, [own], { startSec: 0.2 });
  for (const p of toneProblems(whole, { present: [], absent: [own], minRms: 0 })) {
    problems.push(`whole call: ${p} [${describeTones(whole)}]`);
  }
  return problems;
}

/** Runs `plan` in a loopback namespace and checks every participant's recording. */
async function runMix(plan: MixPlan): Promise<void> {
  const run = await runInLoopbackNamespace({
    files: { "mix.json": JSON.stringify(plan) },
    script: denoRunCommand(DRIVER),
    timeoutMs: 240_000,
  });
  const context = () =>
    `(files kept in ${run.dir})\nscenario stderr tail:\n${run.stderr.slice(-4000)}`;
  assert.equal(run.timedOut, false, `the scenario hit its safety timeout ${context()}`);
  let parsed: { value?: MixOutcome; error?: string };
  try {
    parsed = JSON.parse(await Deno.readTextFile(`${run.dir}/result.json`));
  } catch {
    throw new Error(`no result.json (code ${run.code}) ${context()}\n${run.stdout}`);
  }
  const outcome = parsed.value;
  if (outcome === undefined) throw new Error(`scenario failed: ${parsed.error} ${context()}`);

  const report: string[] = [];
  for (const p of outcome.participants) {
    const problems = [...p.errors];
    if (!p.joined) problems.push("never joined");
    if (!p.hungUp) problems.push("hang-up did not complete");
    if (p.client === "linphonec" && !p.states.includes("LinphoneCallStreamsRunning")) {
      problems.push(`no StreamsRunning: ${p.states.join(" → ")}`);
    }
    const codec = p.client === "linphonec"
      ? "opus/48000"
      : p.codec === "opus"
      ? "opus 48000Hz"
      : "PCMU 8000Hz";
    if (p.joined && p.negotiated !== codec) {
      problems.push(`decodes ${p.negotiated}, expected ${codec}`);
    }
    if (p.joined) problems.push(...await checkRecording(p, outcome));
    if (problems.length > 0) {
      report.push(
        `${p.name} (${p.client} ${p.codec}, ${p.toneHz} Hz): ${problems.join("; ")}\n` +
          `  log tail: ${p.logTail.slice(-1500).replaceAll("\n", "\n    ")}`,
      );
    }
  }
  assert.equal(outcome.maxCalls, plan.participants.length, "calls in the conference at once");
  assert.ok(outcome.conferenceEnded, "the ad-hoc conference did not end when everyone left");
  assert.ok(outcome.togetherSeconds >= plan.holdSeconds);
  assert.deepEqual(report, [], `${report.join("\n")}\n${context()}`);
  await Deno.remove(run.dir, { recursive: true });
}

Deno.test({
  name: "mix: 2 baresip Opus + 2 baresip PCMU + linphonec Opus each hear the others, not self",
  ignore,
  fn: () => runMix(PLAN),
});

Deno.test({
  name:
    "mix on ONE shared audio-port (media-port-sharing): the same five hear the others, not self",
  ignore,
  fn: () =>
    runMix({
      ...PLAN,
      serverConfig: [...(PLAN.serverConfig ?? []), "audio-port=40000", "media-port-sharing=on"],
    }),
});
