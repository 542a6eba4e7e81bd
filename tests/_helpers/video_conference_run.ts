/**
 * One video conference with real baresip instances, run inside a loopback-only namespace (see
 * `netns.ts`): a Conclave {@link startTestServer} in this process with a dial-in room, then
 * baresip instances with video (`fakevideo` source and display, `vp8`, `rtcpsummary`) that
 * dial the room over `ctrl_tcp`, stay together, and hang up at the same moment. Left for the
 * test: each instance's log (baresip's own video statistics) and the focus's forwarding
 * counters for each stream, read from the live server before the hang-up.
 *
 * Not a test file: `tests/e2e/baresip_video_test.ts` writes a {@link VideoPlan} as `plan.json`
 * into the namespace directory and runs `deno run video_conference_run.ts`; this writes
 * `result.json` (`{ value: VideoOutcome }` or `{ error }`).
 * @module
 */

import { setLogLevel } from "../../lib/config/log.ts";
import type { VideoStreamStats } from "../../lib/media/video_conference.ts";
import {
  type BaresipControl,
  type BaresipProcess,
  createBaresipConfig,
  startBaresip,
} from "./baresip.ts";
import { startTestServer } from "./test_server.ts";

/** What the scenario does (written as `plan.json`). */
export interface VideoPlan {
  /** Names of the baresip instances (SIP users). */
  readonly participants: readonly string[];
  /** Seconds everybody stays in the conference together. */
  readonly holdSeconds: number;
  /** Safety net for each wait, milliseconds. Default 30 000. */
  readonly waitMs?: number;
}

/** What happened to one instance. */
export interface VideoParticipantOutcome {
  readonly name: string;
  readonly joined: boolean;
  readonly hungUp: boolean;
  readonly errors: readonly string[];
  /** The whole baresip log (stdout + stderr). */
  readonly log: string;
}

/** Result of the scenario. */
export interface VideoOutcome {
  readonly participants: readonly VideoParticipantOutcome[];
  /** The focus's counters for every video stream, by stream id, just before the hang-up. */
  readonly streams: Readonly<
    Record<
      string,
      Omit<VideoStreamStats, "rtp"> & {
        readonly packetsSent: number;
        readonly packetsReceived: number;
      }
    >
  >;
}

const ROOM = "sip:video-room@127.0.0.1";

function timeout<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function run(plan: VideoPlan): Promise<VideoOutcome> {
  setLogLevel("warn");
  const waitMs = plan.waitMs ?? 30_000;
  const server = await startTestServer([`dial-in-rooms=${ROOM}`]);
  const dir = await Deno.makeTempDir({ prefix: "conclave-video-" });
  const instances: {
    name: string;
    process: BaresipProcess;
    control?: BaresipControl;
    errors: string[];
    joined: boolean;
    hungUp: boolean;
  }[] = [];
  try {
    for (const [i, name] of plan.participants.entries()) {
      const config = await createBaresipConfig({
        dir: `${dir}/${name}`,
        user: name,
        video: true,
        audioCodecs: ["pcmu"],
        toneHz: 600 + 200 * i,
      });
      instances.push({
        name,
        process: startBaresip(config, { seconds: plan.holdSeconds * 4 + 30 }),
        errors: [],
        joined: false,
        hungUp: false,
      });
    }
    const uri = `${ROOM.replace("127.0.0.1", `127.0.0.1:${server.port}`)};transport=tcp`;
    // One after the other, so the conference's first video participant is well defined.
    for (const inst of instances) {
      try {
        inst.control = await inst.process.control(waitMs);
        const response = await inst.control.dial(uri);
        if (response["ok"] !== true) throw new Error(`dial refused: ${JSON.stringify(response)}`);
        await inst.control.waitForEvent("CALL_ESTABLISHED", waitMs);
        inst.joined = true;
      } catch (err) {
        inst.errors.push(`join: ${(err as Error).message}`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, plan.holdSeconds * 1000));
    const streams: Record<string, VideoOutcome["streams"][string]> = {};
    for (const conference of server.server.focus.conferences.values()) {
      const media = conference.videoMedia;
      for (const id of media?.streamIds ?? []) {
        const { rtp, ...rest } = media!.streamStats(id);
        streams[id] = {
          ...rest,
          packetsSent: rtp.packetsSent,
          packetsReceived: rtp.packetsReceived,
        };
      }
    }
    await Promise.all(instances.map(async (inst) => {
      if (!inst.control || !inst.joined) return;
      try {
        await inst.control.hangup();
        await inst.control.waitForEvent("CALL_CLOSED", waitMs);
        inst.hungUp = true;
      } catch (err) {
        inst.errors.push(`hang-up: ${(err as Error).message}`);
      }
    }));
    // rtcpsummary prints when the call closes; let baresip exit to flush its output.
    const participants: VideoParticipantOutcome[] = [];
    for (const inst of instances) {
      await inst.control?.close();
      const result = await timeout("baresip exit", waitMs, inst.process.stop(5000));
      participants.push({
        name: inst.name,
        joined: inst.joined,
        hungUp: inst.hungUp,
        errors: inst.errors,
        log: result.log,
      });
    }
    return { participants, streams };
  } finally {
    for (const inst of instances) await inst.process.stop(1000).catch(() => {});
    await server.stop();
  }
}

if (import.meta.main) {
  const planPath = Deno.args[0] ?? "plan.json";
  const outPath = Deno.args[1] ?? "result.json";
  try {
    const plan = JSON.parse(await Deno.readTextFile(planPath)) as VideoPlan;
    const value = await run(plan);
    await Deno.writeTextFile(outPath, JSON.stringify({ value }));
  } catch (err) {
    await Deno.writeTextFile(outPath, JSON.stringify({ error: String((err as Error).stack) }));
  }
  Deno.exit(0);
}
