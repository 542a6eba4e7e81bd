/**
 * Scenarios that prove the peer-driving helpers against the peers themselves (no Conclave
 * server involved). Not a test file: `harness_test.ts` runs it inside a loopback-only
 * namespace with `deno run harness_scenarios.ts <scenario>`; it writes `result.json` into
 * `$HARNESS_DIR` with raw outcomes (exit codes, logs, recording paths) and the test makes the
 * assertions. The same shape serves the real e2e tests: start the server first (in the
 * namespace script or with Deno.Command here), then point the clients at it.
 * @module
 */

import { createBaresipConfig, startBaresip } from "../_helpers/baresip.ts";
import { createLinphoneConfig, Linphonec, runLinphoneCall } from "../_helpers/linphone.ts";
import { freePort, waitForFileMatch } from "../_helpers/netns.ts";
import {
  logValues,
  runSipp,
  scenarioPath,
  type SippResult,
  startSipp,
  writeUlawTone,
} from "../_helpers/sipp.ts";
import { decodeUlaw, writeWav } from "../_helpers/wav.ts";

/** The parts of a SIPp result a test looks at. */
interface SippSummary {
  readonly code: number;
  readonly logs: string;
  readonly errors: string;
  readonly messages: string;
  readonly stdoutTail: string;
}

function summary(result: SippResult): SippSummary {
  return {
    code: result.code,
    logs: result.logs,
    errors: result.errors,
    messages: result.messages,
    stdoutTail: result.stdout.slice(-1500),
  };
}

type Scenario = (dir: string) => Promise<unknown>;

/** Built-in `uas` and `uac`: three calls over TCP (t1) or UDP (u1). */
async function builtinCalls(dir: string, transport: "t1" | "u1") {
  const uas = await startSipp({
    scenario: "uas",
    transport,
    calls: 3,
    dir: `${dir}/uas`,
    name: "uas",
  });
  await uas.ready();
  const uac = await runSipp({
    scenario: "uac",
    transport,
    remote: uas.address,
    calls: 3,
    rate: 10,
    dir: `${dir}/uac`,
    name: "uac",
  });
  return { uac: summary(uac), uas: summary(await uas.result) };
}

/** factory_invite.xml against a SIPp stand-in (302) or, negatively, the built-in uas (200). */
async function factory(dir: string, standIn: boolean) {
  const confId = "Zm9jdXMtdGVzdC1jb25mLWlk"; // 24 URL-safe characters
  const uas = await startSipp({
    scenario: standIn ? scenarioPath("standins/factory_uas") : "uas",
    keys: standIn ? { conf_id: confId } : {},
    dir: `${dir}/uas`,
    name: "uas",
    timeoutSec: 10,
  });
  await uas.ready();
  const uac = await runSipp({
    scenario: scenarioPath("factory_invite"),
    service: "conference-factory",
    remote: uas.address,
    dir: `${dir}/uac`,
    name: "uac",
    timeoutSec: 10,
  });
  const uasResult = await uas.stop();
  return {
    uac: summary(uac),
    uas: summary(uasResult),
    confUris: logValues(uac.logs, "CONF_URI"),
    confId,
  };
}

/** focus_invite.xml against the stand-in focus (200 ;isfocus). */
async function focus(dir: string) {
  const uas = await startSipp({
    scenario: scenarioPath("standins/focus_uas"),
    keys: { rtp_sink_port: String(freePort()) },
    dir: `${dir}/uas`,
    name: "uas",
  });
  await uas.ready();
  const confUri = `sip:conference-focus@${uas.address};transport=tcp;conf-id=abc`;
  const uac = await runSipp({
    scenario: scenarioPath("focus_invite"),
    keys: { conf_uri: confUri },
    remote: uas.address,
    pauseMs: 300,
    dir: `${dir}/uac`,
    name: "uac",
  });
  return { uac: summary(uac), uas: summary(await uas.result), confUri };
}

/** subscribe_conference.xml against the stand-in notifier, with its NOTIFYs as given. */
async function subscribe(
  dir: string,
  notifier: { firstState: string; versions: readonly [number, number, number] },
) {
  const uas = await startSipp({
    scenario: scenarioPath("standins/notifier_uas"),
    keys: {
      first_state: notifier.firstState,
      first_version: String(notifier.versions[0]),
      second_version: String(notifier.versions[1]),
      third_version: String(notifier.versions[2]),
    },
    dir: `${dir}/uas`,
    name: "uas",
    timeoutSec: 10,
  });
  await uas.ready();
  const uac = await runSipp({
    scenario: scenarioPath("subscribe_conference"),
    keys: { conf_uri: `sip:conference-focus@${uas.address};conf-id=abc` },
    remote: uas.address,
    dir: `${dir}/uac`,
    name: "uac",
    timeoutSec: 10,
  });
  const uasResult = await uas.stop();
  return { uac: summary(uac), uas: summary(uasResult) };
}

/**
 * uac_pcmu_rtp.xml streaming a sox-made 1000 Hz mu-law file to the stand-in focus, whose SDP
 * points at a UDP socket here; what arrives is decoded and saved as `received.wav`.
 */
async function pcmuRtp(dir: string) {
  await Deno.mkdir(dir, { recursive: true });
  const sink = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const sinkPort = (sink.addr as Deno.NetAddr).port;
  const payloads: Uint8Array[] = [];
  const payloadTypes = new Set<number>();
  const ssrcs = new Set<number>();
  let packets = 0;
  const receiving = (async () => {
    try {
      for (;;) {
        const [packet] = await sink.receive();
        if (packet.length < 12 || (packet[0]! >> 6) !== 2) continue;
        packets++;
        payloadTypes.add(packet[1]! & 0x7f);
        ssrcs.add(new DataView(packet.buffer, packet.byteOffset).getUint32(8));
        const csrcCount = packet[0]! & 0x0f;
        payloads.push(packet.slice(12 + 4 * csrcCount));
      }
    } catch {
      // socket closed: done
    }
  })();
  const ulaw = `${dir}/tone1000.ulaw`;
  await writeUlawTone(ulaw, 1000, 10);
  const uas = await startSipp({
    scenario: scenarioPath("standins/focus_uas"),
    keys: { rtp_sink_port: String(sinkPort) },
    dir: `${dir}/uas`,
    name: "uas",
  });
  await uas.ready();
  const uac = await runSipp({
    scenario: scenarioPath("uac_pcmu_rtp"),
    keys: { conf_uri: `sip:conference-focus@${uas.address};conf-id=load` },
    remote: uas.address,
    pauseMs: 2000,
    rtpFile: ulaw,
    dir: `${dir}/uac`,
    name: "uac",
  });
  const uasResult = await uas.result;
  sink.close();
  await receiving;
  const bytes = new Uint8Array(payloads.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of payloads) {
    bytes.set(p, offset);
    offset += p.length;
  }
  await writeWav(`${dir}/received.wav`, {
    sampleRate: 8000,
    channels: 1,
    samples: decodeUlaw(bytes),
  });
  return {
    uac: summary(uac),
    uas: summary(uasResult),
    packets,
    payloadTypes: [...payloadTypes],
    ssrcs: ssrcs.size,
    payloadBytes: bytes.length,
    received: `${dir}/received.wav`,
  };
}

/** Two baresips: A (1000 Hz) dials B (600 Hz, auto-answer), both with the given codecs. */
async function baresipPair(dir: string, codecs: readonly string[]) {
  const b = await createBaresipConfig({
    dir: `${dir}/b`,
    user: "b",
    toneHz: 600,
    autoAnswer: true,
    audioCodecs: codecs,
  });
  const a = await createBaresipConfig({
    dir: `${dir}/a`,
    user: "a",
    toneHz: 1000,
    audioCodecs: codecs,
  });
  const bProcess = startBaresip(b, { seconds: 8 });
  await bProcess.ready();
  const aResult = await startBaresip(a, { seconds: 4, dial: b.uri }).result;
  const bResult = await bProcess.stop();
  return {
    a: { code: aResult.code, established: aResult.established, recordings: aResult.recordings },
    b: { code: bResult.code, established: bResult.established, recordings: bResult.recordings },
    aLogTail: aResult.log.slice(-3000),
    bLogTail: bResult.log.slice(-3000),
  };
}

/** baresip forced to PCMU (1000 Hz) calls `sipp -sn uas -rtp_echo`: it should hear itself. */
async function baresipEcho(dir: string) {
  const uas = await startSipp({ scenario: "uas", rtpEcho: true, dir: `${dir}/uas`, name: "uas" });
  await uas.ready();
  const a = await createBaresipConfig({
    dir: `${dir}/a`,
    user: "a",
    toneHz: 1000,
    audioCodecs: ["pcmu"],
  });
  const result = await startBaresip(a, {
    seconds: 4,
    dial: `sip:echo@${uas.address};transport=tcp`,
  }).result;
  const uasResult = await uas.stop();
  return {
    code: result.code,
    established: result.established,
    recordings: result.recordings,
    logTail: result.log.slice(-3000),
    uas: summary(uasResult),
  };
}

/** baresip driven over ctrl_tcp: dial, CALL_ESTABLISHED, hangup, CALL_CLOSED. */
async function baresipControl(dir: string) {
  const b = await createBaresipConfig({ dir: `${dir}/b`, user: "b", autoAnswer: true });
  const a = await createBaresipConfig({ dir: `${dir}/a`, user: "a", toneHz: 700 });
  const bProcess = startBaresip(b, { seconds: 30 });
  const aProcess = startBaresip(a, { seconds: 30 });
  await bProcess.ready();
  const control = await aProcess.control();
  try {
    const dialResponse = await control.dial(b.uri);
    const established = await control.waitForEvent("CALL_ESTABLISHED");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const hangupResponse = await control.hangup();
    const closed = await control.waitForEvent("CALL_CLOSED");
    return { dialResponse, established, hangupResponse, closed, messages: control.messages };
  } finally {
    await control.close();
    await aProcess.stop();
    await bProcess.stop();
  }
}

/** linphonec calls `sipp -sn uas -rtp_echo` and stays 3 s in StreamsRunning. */
async function linphoneEcho(dir: string) {
  const uas = await startSipp({ scenario: "uas", rtpEcho: true, dir: `${dir}/uas`, name: "uas" });
  await uas.ready();
  const config = await createLinphoneConfig({ dir: `${dir}/linphone`, toneHz: 800 });
  const call = await runLinphoneCall(config, {
    uri: `sip:echo@${uas.address};transport=tcp`,
    seconds: 3,
  });
  const uasResult = await uas.stop();
  return {
    code: call.code,
    streamsRunning: call.streamsRunning,
    states: call.states,
    recording: call.recording,
    error: call.error,
    outputTail: call.output.slice(-2000),
    logTail: call.log.slice(-3000),
    uas: summary(uasResult),
  };
}

/**
 * linphonec registers an account at the SIPp stand-in registrar, then quits (which
 * unregisters); its call to a conference URI in the registrar's domain goes to the registrar.
 */
async function linphoneRegister(dir: string) {
  const registrar = await startSipp({
    scenario: scenarioPath("standins/registrar_uas"),
    dir: `${dir}/registrar`,
    name: "registrar",
    timeoutSec: 60,
  });
  await registrar.ready();
  const config = await createLinphoneConfig({
    dir: `${dir}/linphone`,
    account: {
      identity: "sip:alice@127.0.0.1",
      registrar: `sip:${registrar.address};transport=tcp`,
    },
  });
  const phone = await Linphonec.start(config);
  let registered = false;
  try {
    await phone.waitForRegistration();
    registered = true;
    await phone.send(`call sip:conference-focus@127.0.0.1:${freePort()};transport=tcp`);
    await waitForFileMatch(registrar.files.messages, /^INVITE /m, 15_000);
    await phone.send("terminate");
  } finally {
    await phone.quit();
  }
  await waitForFileMatch(registrar.files.messages, /^Expires: 0\r?$/m, 10_000).catch(() => {});
  const registrarResult = await registrar.stop();
  return { registered, log: (await phone.log()).slice(-3000), registrar: summary(registrarResult) };
}

/** Scenario table: name → runner. */
const SCENARIOS: Readonly<Record<string, Scenario>> = {
  "sipp-builtin-tcp": (dir) => builtinCalls(dir, "t1"),
  "sipp-builtin-udp": (dir) => builtinCalls(dir, "u1"),
  "factory": (dir) => factory(dir, true),
  "factory-against-200": (dir) => factory(dir, false),
  "focus": focus,
  "subscribe": (dir) => subscribe(dir, { firstState: "full", versions: [1, 2, 3] }),
  "subscribe-first-partial": (dir) =>
    subscribe(dir, { firstState: "partial", versions: [1, 2, 3] }),
  "subscribe-version-gap": (dir) => subscribe(dir, { firstState: "full", versions: [1, 3, 4] }),
  "pcmu-rtp": pcmuRtp,
  "baresip-opus-pair": (dir) => baresipPair(dir, ["opus"]),
  "baresip-pcmu-pair": (dir) => baresipPair(dir, ["pcmu"]),
  "baresip-echo": baresipEcho,
  "baresip-ctrl": baresipControl,
  "linphone-echo": linphoneEcho,
  "linphone-register": linphoneRegister,
};

/** Names accepted on the command line. */
export const SCENARIO_NAMES: readonly string[] = Object.keys(SCENARIOS);

if (import.meta.main) {
  const name = Deno.args[0] ?? "";
  const dir = Deno.env.get("HARNESS_DIR") ?? Deno.cwd();
  const scenario = SCENARIOS[name];
  let result: unknown;
  if (!scenario) {
    result = { error: `unknown scenario ${JSON.stringify(name)}; one of ${SCENARIO_NAMES}` };
  } else {
    try {
      result = { value: await scenario(`${dir}/${name}`) };
    } catch (error) {
      result = {
        error: error instanceof Error ? `${error.stack ?? error.message}` : String(error),
      };
    }
  }
  await Deno.writeTextFile(`${dir}/result.json`, JSON.stringify(result, null, 2));
}
