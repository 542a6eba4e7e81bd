/**
 * Linphone video conference scenario, run inside a loopback namespace by
 * `linphone_video_test.ts` (`deno run _linphone_video_scenario.ts`): Kamailio as
 * proxy/registrar of `conclave.test` in front of an in-process Conclave with the dial-in room
 * `video-room`, linphonec 5.1 with video (static-picture camera, VP8) registered as
 * `alice@conclave.test`, and one baresip with video (`fakevideo`, VP8) dialing the room
 * through Kamailio. Both stay together, linphonec takes a snapshot of the video it receives,
 * the focus's per-stream counters are read, everybody hangs up. Writes `result.json` into
 * `$HARNESS_DIR` with raw facts; the test makes the assertions.
 *
 * Not a test file. The plan (`plan.json`) says who joins first and whether linphonec joins
 * without video and turns its camera on afterwards (`camera on` sends a re-INVITE).
 * @module
 */

import { setLogLevel } from "../../lib/config/log.ts";
import type { VideoStreamStats } from "../../lib/media/video_conference.ts";
import { Kamailio } from "./_kamailio.ts";
import {
  type BaresipControl,
  type BaresipProcess,
  createBaresipConfig,
  startBaresip,
} from "../_helpers/baresip.ts";
import { callStateChanges, createLinphoneConfig, Linphonec } from "../_helpers/linphone.ts";
import { delay, freePort } from "../_helpers/netns.ts";
import { startTestServer, type TestServer } from "../_helpers/test_server.ts";

/** The local domain of the proxy; the room lives there. */
export const DOMAIN = "conclave.test";
const ROOM = `sip:video-room@${DOMAIN}`;

/** What the scenario does (written as `plan.json`). */
export interface LinphoneVideoPlan {
  /** Who dials the room first. */
  readonly first: "linphone" | "baresip";
  /** Seconds both stay together before the snapshot and the counters are read. */
  readonly holdSeconds: number;
  /**
   * linphonec dials with `call URI --audio-only` (its offer keeps `m=video 0` listing VP8), so
   * its video can only start with a re-INVITE: the focus's, once the conference has video.
   */
  readonly linphoneAudioOnly?: boolean;
  /** Once both are in, linphonec's `camera on`: a re-INVITE of its own that adds video. */
  readonly cameraOnAfterJoin?: boolean;
}

/** One SIP message linphonec logged (belle-sip prints each one it sends or receives). */
export interface LoggedMessage {
  /** `INVITE sip:... SIP/2.0` or `SIP/2.0 200 Ok`. */
  readonly startLine: string;
  readonly cseq: string;
  /** The SDP body, if any. */
  readonly sdp: string | undefined;
  /** The conference-info body, if any. */
  readonly conferenceInfo: string | undefined;
}

/** Result of the scenario (`{ value }` in result.json). */
export interface LinphoneVideoOutcome {
  readonly plan: LinphoneVideoPlan;
  readonly steps: Readonly<Record<string, { readonly ok: boolean; readonly detail: string }>>;
  readonly states: readonly { readonly from: string; readonly to: string }[];
  /** SIP messages in linphonec's log, in order. */
  readonly messages: readonly LoggedMessage[];
  /** Selected liblinphone log lines (without timestamps), by topic. */
  readonly lines: Readonly<Record<string, readonly string[]>>;
  /** Snapshot of the received video: JPEG width × height, or undefined if none was written. */
  readonly snapshot: { readonly width: number; readonly height: number } | undefined;
  /** linphonec console output. */
  readonly console: string;
  /** baresip's whole log. */
  readonly baresipLog: string;
  /** Everything baresip said on `ctrl_tcp` (responses and events such as CALL_REMOTE_SDP). */
  readonly baresipEvents: readonly Record<string, unknown>[];
  /** The focus's counters for every video stream, by stream id, before the hang-up. */
  readonly streams: Readonly<
    Record<
      string,
      Omit<VideoStreamStats, "rtp"> & {
        readonly packetsSent: number;
        readonly packetsReceived: number;
      }
    >
  >;
  /** Where linphonec's full log is. */
  readonly linphoneLogPath: string;
}

const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} /;

/**
 * SIP messages in a liblinphone log. belle-sip prints each one after a log line; one TCP read
 * can hold several, so a message ends at the next start line or timestamped log line, and
 * its body is cut at `Content-Length`.
 */
export function loggedMessages(log: string): LoggedMessage[] {
  const out: LoggedMessage[] = [];
  const start = /^(?:[A-Z]+ \S+ SIP\/2\.0|SIP\/2\.0 \d{3} [^\r\n]*)\r?$/gm;
  const starts = [...log.matchAll(start)].map((m) => m.index!);
  for (const [i, at] of starts.entries()) {
    const next = starts[i + 1] ?? log.length;
    let text = log.slice(at, next);
    const stamp = text.search(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} /m);
    if (stamp >= 0) text = text.slice(0, stamp);
    const split = text.search(/\r?\n\r?\n/);
    const head = split < 0 ? text : text.slice(0, split);
    const length = Number(/^(?:Content-Length|l):\s*(\d+)/im.exec(head)?.[1] ?? "0");
    const body = split < 0 ? "" : text.slice(split).replace(/^\r?\n\r?\n/, "").slice(0, length);
    const type = /^(?:Content-Type|c):\s*(.*)$/im.exec(head)?.[1]?.trim() ?? "";
    out.push({
      startLine: head.split(/\r?\n/)[0]!.trim(),
      cseq: /^CSeq:\s*(.*)$/im.exec(head)?.[1]?.trim() ?? "",
      sdp: /application\/sdp/i.test(type) ? body.replaceAll("\r", "") : undefined,
      conferenceInfo: /conference-info\+xml/i.test(type) ? body : undefined,
    });
  }
  return out;
}

/** Width and height of a baseline/progressive JPEG (its SOFn segment), if it is one. */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1]!;
    const length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return {
        height: (bytes[i + 5]! << 8) | bytes[i + 6]!,
        width: (bytes[i + 7]! << 8) | bytes[i + 8]!,
      };
    }
    i += 2 + length;
  }
  return undefined;
}

function lines(log: string, pattern: RegExp): string[] {
  return log.split("\n").filter((l) => pattern.test(l)).map((l) => l.replace(TIMESTAMP, ""));
}

interface Step {
  ok: boolean;
  detail: string;
}

async function step(wait: () => Promise<unknown>): Promise<Step> {
  try {
    const value = await wait();
    return { ok: true, detail: Array.isArray(value) ? String(value[0]) : String(value) };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}

function streamCounters(server: TestServer): LinphoneVideoOutcome["streams"] {
  const streams: Record<string, LinphoneVideoOutcome["streams"][string]> = {};
  for (const conference of server.server.focus.conferences.values()) {
    const media = conference.videoMedia;
    for (const id of media?.streamIds ?? []) {
      const { rtp, ...rest } = media!.streamStats(id);
      streams[id] = { ...rest, packetsSent: rtp.packetsSent, packetsReceived: rtp.packetsReceived };
    }
  }
  return streams;
}

/** Runs the scenario under `dir`. */
export async function linphoneVideo(
  dir: string,
  plan: LinphoneVideoPlan,
): Promise<LinphoneVideoOutcome> {
  setLogLevel("info");
  await Deno.mkdir(dir, { recursive: true });
  const conclavePort = freePort();
  const kamailio = await Kamailio.start({
    dir: `${dir}/kamailio`,
    domain: DOMAIN,
    services: ["video-room"],
    serviceTarget: `127.0.0.1:${conclavePort}`,
  });
  let server: TestServer | undefined;
  let phone: Linphonec | undefined;
  let baresip: BaresipProcess | undefined;
  let control: BaresipControl | undefined;
  const steps: Record<string, Step> = {};
  try {
    server = await startTestServer([
      `transport=sip:127.0.0.1:${conclavePort};transport=tcp`,
      `dial-in-rooms=${ROOM}`,
      `outbound-proxy=${kamailio.uri()}`,
    ]);
    const config = await createLinphoneConfig({
      dir: `${dir}/linphone`,
      toneHz: 700,
      video: true,
      account: {
        identity: `sip:alice@${DOMAIN}`,
        registrar: kamailio.uri(),
        route: kamailio.uri(),
      },
    });
    phone = await Linphonec.start(config);
    steps.registered = await step(() => phone!.waitForRegistration(20_000));
    await phone.send("soundcard use files");
    await phone.send(`play ${config.playWav}`);
    await phone.send(`record ${config.recordWav}`);

    const bconfig = await createBaresipConfig({
      dir: `${dir}/baresip`,
      user: "bob",
      video: true,
      audioCodecs: ["pcmu"],
      toneHz: 900,
    });
    baresip = startBaresip(bconfig, { seconds: plan.holdSeconds * 4 + 60 });
    control = await baresip.control(20_000);

    const linphoneJoin = async () => {
      await phone!.send(`call ${ROOM}${plan.linphoneAudioOnly ? " --audio-only" : ""}`);
      steps.linphoneCall = await step(() =>
        phone!.waitForCallState(
          ["LinphoneCallStreamsRunning", "LinphoneCallError", "LinphoneCallEnd"],
          20_000,
        )
      );
    };
    const baresipJoin = async () => {
      steps.baresipCall = await step(async () => {
        const response = await control!.dial(`sip:video-room@127.0.0.1:${kamailio.port}`);
        if (response["ok"] !== true) throw new Error(`dial refused: ${JSON.stringify(response)}`);
        return (await control!.waitForEvent("CALL_ESTABLISHED", 20_000))["type"];
      });
    };
    if (plan.first === "linphone") {
      await linphoneJoin();
      await delay(1500);
      await baresipJoin();
    } else {
      await baresipJoin();
      await delay(1500);
      await linphoneJoin();
    }
    if (plan.cameraOnAfterJoin) {
      await delay(1500);
      await phone.send("camera on");
      steps.cameraOn = await step(async () => {
        await phone!.waitForLog(
          /moving from state LinphoneCallStreamsRunning to LinphoneCallUpdating/,
        );
        await phone!.waitForLog(
          /moving from state LinphoneCallUpdating to (LinphoneCallStreamsRunning|LinphoneCallError|LinphoneCallEnd)/,
        );
        const changes = callStateChanges(await phone!.log());
        return changes[changes.length - 1]?.to;
      });
    }
    await delay(plan.holdSeconds * 1000);
    const snapshotPath = `${dir}/snapshot.jpg`;
    await phone.send(`snapshot ${snapshotPath}`);
    await delay(1500);
    const streams = streamCounters(server);

    await control.hangup().catch(() => {});
    steps.baresipClosed = await step(() => control!.waitForEvent("CALL_CLOSED", 20_000));
    await phone.send("terminate");
    steps.linphoneReleased = await step(() =>
      phone!.waitForCallState(["LinphoneCallReleased"], 20_000)
    );
    const { output } = await phone.quit();
    const log = await phone.log();
    phone = undefined;
    const baresipEvents = [...control.messages];
    await control.close();
    control = undefined;
    const bresult = await baresip.stop(5000);
    baresip = undefined;

    let snapshot: LinphoneVideoOutcome["snapshot"];
    try {
      snapshot = jpegSize(await Deno.readFile(snapshotPath));
    } catch {
      snapshot = undefined;
    }
    return {
      plan,
      steps,
      states: callStateChanges(log),
      messages: loggedMessages(log),
      lines: {
        video: lines(log, /[Vv]ideo|VP8|vp8|Vp8/).slice(0, 400),
        bandwidth: lines(log, /[Bb]andwidth usage/),
        snapshot: lines(log, /[Ss]napshot/),
        keyFrames: lines(log, /Got RTCP (PLI|FIR)|Receiving VFU request|Forcing vp8 key frame/),
        notify: lines(log, /NOTIFY received for conference|Error while parsing conference-info/),
        conference: lines(log, /[Cc]onference/).slice(0, 400),
      },
      snapshot,
      console: output,
      baresipLog: bresult.log,
      baresipEvents,
      streams,
      linphoneLogPath: config.logPath,
    };
  } finally {
    if (phone) await phone.kill();
    await control?.close().catch(() => {});
    if (baresip) await baresip.stop(1000).catch(() => {});
    await server?.stop();
    await kamailio.stop();
  }
}

if (import.meta.main) {
  const dir = Deno.env.get("HARNESS_DIR") ?? Deno.cwd();
  let result: unknown;
  try {
    const plan = JSON.parse(await Deno.readTextFile(`${dir}/plan.json`)) as LinphoneVideoPlan;
    result = { value: await linphoneVideo(`${dir}/run`, plan) };
  } catch (error) {
    result = { error: error instanceof Error ? `${error.stack ?? error.message}` : String(error) };
  }
  await Deno.writeTextFile(`${dir}/result.json`, JSON.stringify(result, null, 2));
  Deno.exit(0);
}
