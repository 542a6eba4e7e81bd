/**
 * The video SFU end to end with a real peer nobody here wrote: in a loopback-only network
 * namespace, three baresip instances with video (`fakevideo` camera, VP8, `rtcpsummary`) dial
 * one Conclave dial-in room, stay together a few seconds, and hang up. Each must have
 * **decoded** VP8 that the focus forwarded — baresip logs `video: receiving with resolution
 * 320 x 240` only once its VP8 decoder produced a picture, and its `rtcpsummary` line for
 * the video stream counts the RTP packets it received — while the focus's own counters show
 * every receiving stream viewing another participant (never itself) and forwarding packets.
 *
 * The scenario runs in `tests/_helpers/video_conference_run.ts` inside the namespace. A
 * missing baresip or no namespace support marks the test ignored with a loud warning, unless
 * `CONCLAVE_REQUIRE_SERVICES=1`.
 */

import assert from "node:assert/strict";
import { denoRunCommand, peerProblems, runInLoopbackNamespace } from "../_helpers/netns.ts";
import type { VideoOutcome, VideoPlan } from "../_helpers/video_conference_run.ts";

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const DRIVER = new URL("../_helpers/video_conference_run.ts", import.meta.url).pathname;

const problem = (await peerProblems({
  namespace: true,
  binaries: ["baresip"],
  baresipModules: ["vp8.so", "fakevideo.so", "rtcpsummary.so"],
})).join("; ") || undefined;
const ignore = problem !== undefined && !REQUIRE;
if (ignore) {
  console.warn(
    `\n!!! baresip_video_test: IGNORED — ${problem}. (apt-get install baresip baresip-core; ` +
      "CONCLAVE_REQUIRE_SERVICES=1 makes this fail.)\n",
  );
}

const PLAN: VideoPlan = { participants: ["ann", "ben", "cat"], holdSeconds: 6 };

/** Packets received on each stream, from baresip's `rtcpsummary` lines (audio, then video). */
function rtcpSummary(log: string): number[] {
  return [...log.matchAll(/^EX=BareSip;.*?;PR=(\d+);/gm)].map((m) => Number(m[1]));
}

Deno.test({
  name: "video e2e: three baresip instances each decode VP8 forwarded by the SFU from another",
  ignore,
  async fn() {
    const run = await runInLoopbackNamespace({
      files: { "plan.json": JSON.stringify(PLAN) },
      script: denoRunCommand(DRIVER),
      timeoutMs: 180_000,
    });
    const context = () =>
      `(files kept in ${run.dir})\nscenario stderr tail:\n${run.stderr.slice(-4000)}`;
    assert.equal(run.timedOut, false, `the scenario hit its safety timeout ${context()}`);
    let parsed: { value?: VideoOutcome; error?: string };
    try {
      parsed = JSON.parse(await Deno.readTextFile(`${run.dir}/result.json`));
    } catch {
      throw new Error(`no result.json (code ${run.code}) ${context()}\n${run.stdout}`);
    }
    const outcome = parsed.value;
    if (outcome === undefined) throw new Error(`scenario failed: ${parsed.error} ${context()}`);

    // The focus's side: one video stream per participant, each viewing someone else.
    const streams = Object.entries(outcome.streams);
    assert.equal(streams.length, PLAN.participants.length, JSON.stringify(outcome.streams));
    for (const [id, s] of streams) {
      assert.equal(s.direction, "sendrecv", id);
      assert.ok((s.source?.packets ?? 0) >= 30, `${id} sent ${s.source?.packets} packets`);
      const viewing = s.forwarded?.viewing;
      assert.ok(viewing !== undefined, `${id} views nobody`);
      assert.notEqual(outcome.streams[viewing]?.owner, s.owner, `${id} views itself`);
      assert.ok((s.forwarded?.packetsForwarded ?? 0) >= 30, `${id}: ${JSON.stringify(s)}`);
    }

    // Each viewed source was asked for a key frame when its first viewer switched to it.
    for (const [id, s] of streams) {
      if (streams.some(([, r]) => r.forwarded?.viewing === id)) {
        assert.ok((s.source?.keyFrameRequests ?? 0) >= 1, `${id}: no key frame asked for`);
      }
    }

    // The peers' side: every instance decoded forwarded VP8 and counted the packets.
    const report: string[] = [];
    for (const p of outcome.participants) {
      const problems = [...p.errors];
      if (!p.joined) problems.push("never joined");
      if (!p.hungUp) problems.push("hang-up did not complete");
      if (!/video: receiving with resolution 320 x 240/.test(p.log)) {
        problems.push("baresip never decoded a video picture");
      }
      const summary = rtcpSummary(p.log);
      if (summary.length !== 2) problems.push(`rtcpsummary lines: ${summary.join(", ")}`);
      else if (summary[1]! < 30) problems.push(`only ${summary[1]} video packets received`);
      if (problems.length > 0) {
        report.push(`${p.name}: ${problems.join("; ")}\n  log tail: ${p.log.slice(-1500)}`);
      }
    }
    assert.deepEqual(report, [], `${report.join("\n")}\n${context()}`);
    await Deno.remove(run.dir, { recursive: true });
  },
});
