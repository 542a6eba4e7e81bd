/**
 * One audio conference with real clients, run inside a loopback-only namespace (see
 * `netns.ts`): a Conclave {@link startTestServer} in this process, SIPp creating the
 * conference through the factory (RFC 4579 §5.1: INVITE → 302 → conference URI), then baresip
 * instances (driven over `ctrl_tcp`) and optionally linphonec joining that URI, each playing
 * its own pure tone and recording what it hears. Everybody stays in the call for a while,
 * hangs up at the same moment, and the recordings are left for the test to analyse.
 *
 * Not a test file: `tests/e2e/baresip_mix_test.ts` writes a {@link MixPlan} as `mix.json` into
 * the namespace directory and runs `deno run conference_mix.ts`; this writes `result.json`
 * (`{ value: MixOutcome }` or `{ error }`). Failures of one client are recorded in its
 * outcome rather than thrown, so the test can report everything that went wrong.
 * @module
 */

import { setLogLevel } from "../../lib/config/log.ts";
import {
  type BaresipControl,
  type BaresipProcess,
  createBaresipConfig,
  startBaresip,
} from "./baresip.ts";
import { callStateChanges, createLinphoneConfig, Linphonec } from "./linphone.ts";
import { logValues, runSipp, scenarioPath } from "./sipp.ts";
import { startTestServer } from "./test_server.ts";
import { writeToneWav } from "./wav.ts";

/** One participant of a {@link MixPlan}. */
export interface MixParticipantPlan {
  /** Short unique name (SIP user part, directory name). */
  readonly name: string;
  readonly client: "baresip" | "linphonec";
  /** baresip: the only codec it offers (`;audio_codecs=`); linphonec offers Opus first. */
  readonly codec: "opus" | "pcmu";
  /** The pure tone it plays, Hz. */
  readonly toneHz: number;
}

/** What the scenario does (written as `mix.json`). */
export interface MixPlan {
  readonly participants: readonly MixParticipantPlan[];
  /** Seconds everybody stays in the conference together before hanging up. */
  readonly holdSeconds: number;
  /** Extra `[conference-server]` lines for the server. */
  readonly serverConfig?: readonly string[];
  /** Safety net for each wait (join, hang-up), milliseconds. Default 30 000. */
  readonly waitMs?: number;
  /**
   * Peak of each tone as a fraction of full scale; default 0.2, so that four of them summed
   * by the mixer stay below full scale (a clipped mix would add harmonics of its own).
   */
  readonly amplitude?: number;
}

/** What happened to one participant. */
export interface MixParticipantOutcome extends MixParticipantPlan {
  /** Its call was established (baresip CALL_ESTABLISHED / linphonec StreamsRunning). */
  readonly joined: boolean;
  /** Its call closed after the hang-up (CALL_CLOSED / LinphoneCallReleased). */
  readonly hungUp: boolean;
  /** Recording of what it heard: baresip's `dump-*-dec.wav`, linphonec's `record` file. */
  readonly recording: string | undefined;
  /** Every recording it left (baresip writes one pair per call). */
  readonly recordings: readonly string[];
  /** What went wrong, if anything. */
  readonly errors: readonly string[];
  /** linphonec call states, in order. */
  readonly states: readonly string[];
  /** The codec its log says it decodes: baresip `PCMU 8000Hz`, linphonec `opus/48000`. */
  readonly negotiated: string | undefined;
  /** Tail of the client's log (baresip's status-line updates left out). */
  readonly logTail: string;
}

/** Result of the scenario. */
export interface MixOutcome {
  readonly confUri: string;
  readonly confId: string;
  readonly participants: readonly MixParticipantOutcome[];
  /** Highest number of calls the conference had at once. */
  readonly maxCalls: number;
  /** Seconds from "all calls up" to the hang-up (the recordings' common tail). */
  readonly togetherSeconds: number;
  /** The ad-hoc conference ended after everyone left. */
  readonly conferenceEnded: boolean;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(what: string, timeoutMs: number, condition: () => boolean) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

/** A client in the conference, behind one small interface. */
interface Client {
  readonly plan: MixParticipantPlan;
  readonly errors: string[];
  joined: boolean;
  hungUp: boolean;
  join(uri: string): Promise<void>;
  hangUp(): Promise<void>;
  /** Stops the process (always safe to call, also twice). */
  close(): Promise<void>;
  outcome(): Promise<Omit<MixParticipantOutcome, keyof MixParticipantPlan>>;
}

/** What a client needs to start. */
interface ClientSetup {
  readonly dir: string;
  readonly plan: MixParticipantPlan;
  /** Its microphone: a 48 kHz mono tone WAV. */
  readonly sourceWav: string;
  readonly waitMs: number;
  /** Upper bound on its lifetime (baresip `-t`), seconds. */
  readonly lifetimeSec: number;
}

/** baresip's log without the call status line it rewrites many times a second. */
function cleanBaresipLog(log: string): string {
  return log.replace(/[ \t]*\[\d+:\d\d:\d\d\] audio=\S+ \(bit\/s\)[ \t]*/g, "");
}

async function baresipClient(setup: ClientSetup): Promise<Client> {
  const { plan, waitMs } = setup;
  const config = await createBaresipConfig({
    dir: setup.dir,
    user: plan.name,
    sourceWav: setup.sourceWav,
    audioCodecs: [plan.codec],
  });
  // -t is a safety net only: the call is hung up over ctrl_tcp long before.
  const process: BaresipProcess = startBaresip(config, { seconds: setup.lifetimeSec });
  let control: BaresipControl | undefined;
  const client: Client = {
    plan,
    errors: [],
    joined: false,
    hungUp: false,
    async join(uri) {
      control = await process.control(waitMs);
      const response = await control.dial(uri);
      if (response["ok"] !== true) throw new Error(`dial refused: ${JSON.stringify(response)}`);
      const event = await control.waitFor(
        (m) =>
          m["event"] === true &&
          (m["type"] === "CALL_ESTABLISHED" || m["type"] === "CALL_CLOSED"),
        waitMs,
      );
      if (event["type"] !== "CALL_ESTABLISHED") {
        throw new Error(`call closed before it was established: ${JSON.stringify(event)}`);
      }
      client.joined = true;
    },
    async hangUp() {
      if (!control) return;
      await control.hangup();
      await control.waitForEvent("CALL_CLOSED", waitMs);
      client.hungUp = true;
    },
    async close() {
      await control?.close();
      await process.stop();
    },
    async outcome() {
      const result = await process.result;
      const log = cleanBaresipLog(result.log);
      const recordings = [...result.recordings.decoded];
      return {
        joined: client.joined,
        hungUp: client.hungUp,
        recording: recordings.length === 1 ? recordings[0] : undefined,
        recordings,
        errors: [
          ...client.errors,
          ...(recordings.length === 1 ? [] : [`${recordings.length} decoded recordings`]),
        ],
        states: [],
        negotiated: log.match(/audio: Set audio decoder: (\S+ \d+Hz)/)?.[1],
        logTail: log.slice(-4000),
      };
    },
  };
  return client;
}

async function linphonecClient(setup: ClientSetup): Promise<Client> {
  const { plan, waitMs } = setup;
  const config = await createLinphoneConfig({ dir: setup.dir, playWav: setup.sourceWav });
  const phone = await Linphonec.start(config, waitMs);
  await phone.send("soundcard use files");
  await phone.send(`play ${config.playWav}`);
  await phone.send(`record ${config.recordWav}`);
  let output = "";
  const client: Client = {
    plan,
    errors: [],
    joined: false,
    hungUp: false,
    async join(uri) {
      await phone.send(`call ${uri}`);
      const state = await phone.waitForCallState(
        ["LinphoneCallStreamsRunning", "LinphoneCallError", "LinphoneCallEnd"],
        waitMs,
      );
      if (state !== "LinphoneCallStreamsRunning") throw new Error(`call went to ${state}`);
      client.joined = true;
    },
    async hangUp() {
      if (!client.joined) return;
      await phone.send("terminate");
      await phone.waitForCallState(["LinphoneCallReleased"], waitMs);
      client.hungUp = true;
    },
    async close() {
      const { output: text } = await phone.quit();
      output ||= text;
    },
    async outcome() {
      const log = await phone.log();
      let recording: string | undefined;
      try {
        if ((await Deno.stat(config.recordWav)).isFile) recording = config.recordWav;
      } catch {
        recording = undefined;
      }
      return {
        joined: client.joined,
        hungUp: client.hungUp,
        recording,
        recordings: recording === undefined ? [] : [recording],
        errors: [...client.errors, ...(recording === undefined ? ["no recording"] : [])],
        states: callStateChanges(log).map((c) => c.to),
        negotiated: log.match(/liblinphone-message-Found payload (\S+)/)?.[1],
        logTail: `${output.slice(-1500)}\n--- log ---\n${log.slice(-4000)}`,
      };
    },
  };
  return client;
}

/** Runs {@link MixPlan} with its files under `dir`; see the module comment. */
export async function runConferenceMix(dir: string, plan: MixPlan): Promise<MixOutcome> {
  const waitMs = plan.waitMs ?? 30_000;
  const count = plan.participants.length;
  // The tones must outlast the calls (joins, one after the other, then the hold); baresip's
  // own -t bound is far longer: a stuck run is cut by the namespace timeout first.
  const toneSeconds = plan.holdSeconds + 60;
  const lifetimeSec = Math.ceil(plan.holdSeconds + ((count + 3) * waitMs) / 1000);
  await Deno.mkdir(dir, { recursive: true });
  const srv = await startTestServer([...(plan.serverConfig ?? [])], `${dir}/state`);
  const clients: Client[] = [];
  let maxCalls = 0;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const factory = await runSipp({
      scenario: scenarioPath("factory_invite"),
      service: "conference-factory",
      remote: `127.0.0.1:${srv.port}`,
      dir: `${dir}/sipp-factory`,
      name: "factory",
    });
    const confUri = logValues(factory.logs, "CONF_URI")[0];
    const confId = confUri?.match(/;conf-id=([^;>]+)/)?.[1];
    if (factory.code !== 0 || confUri === undefined || confId === undefined) {
      throw new Error(`factory INVITE failed (sipp ${factory.code}): ${factory.errors}`);
    }
    const conference = srv.server.focus.conferences.get(confId);
    if (!conference) throw new Error(`conference ${confId} not live after the 302`);
    sampler = setInterval(() => maxCalls = Math.max(maxCalls, conference.callCount), 20);

    for (const p of plan.participants) {
      const sourceWav = `${dir}/${p.name}-${p.toneHz}Hz.wav`;
      await writeToneWav(sourceWav, {
        freqs: [p.toneHz],
        seconds: toneSeconds,
        sampleRate: 48000,
        amplitude: plan.amplitude ?? 0.2,
      });
      const setup = { dir: `${dir}/${p.name}`, plan: p, sourceWav, waitMs, lifetimeSec };
      clients.push(await (p.client === "baresip" ? baresipClient : linphonecClient)(setup));
    }
    // One after the other: every listener's mix changes as the conference grows.
    for (const c of clients) await c.join(confUri).catch((e) => c.errors.push(message(e)));
    const joined = clients.filter((c) => c.joined).length;
    await waitUntil(`${joined} calls in the conference`, waitMs, () => {
      return conference.callCount === joined;
    }).catch((e) => clients[0]?.errors.push(`server: ${message(e)}`));
    const together = performance.now();
    await delay(plan.holdSeconds * 1000);
    const togetherSeconds = (performance.now() - together) / 1000;
    await Promise.all(clients.map((c) => c.hangUp().catch((e) => c.errors.push(message(e)))));
    let conferenceEnded = true;
    await waitUntil("the conference to end", waitMs, () => conference.ended).catch(() => {
      conferenceEnded = false;
    });
    await Promise.all(clients.map((c) => c.close().catch((e) => c.errors.push(message(e)))));
    const participants: MixParticipantOutcome[] = [];
    for (const c of clients) participants.push({ ...c.plan, ...await c.outcome() });
    return { confUri, confId, participants, maxCalls, togetherSeconds, conferenceEnded };
  } finally {
    clearInterval(sampler);
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await srv.stop();
  }
}

if (import.meta.main) {
  setLogLevel("info");
  const dir = Deno.env.get("HARNESS_DIR") ?? Deno.cwd();
  let result: unknown;
  try {
    const plan = JSON.parse(await Deno.readTextFile(`${dir}/mix.json`)) as MixPlan;
    result = { value: await runConferenceMix(`${dir}/mix`, plan) };
  } catch (error) {
    result = { error: error instanceof Error ? `${error.stack ?? error.message}` : String(error) };
  }
  await Deno.writeTextFile(`${dir}/result.json`, JSON.stringify(result, null, 2));
}
