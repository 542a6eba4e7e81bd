/**
 * Linphone conference scenario, run inside a loopback namespace by
 * `linphone_conference_test.ts` (`deno run _linphone_conference_scenario.ts`): Kamailio as
 * proxy/registrar of `conclave.test`, the real Conclave daemon behind it (outbound-proxy =
 * Kamailio), SIPp creating a conference through the factory URI, linphonec 5.1 registered
 * at Kamailio joining it, and a second (SIPp) participant joining and leaving while linphonec
 * watches the conference event package. Writes `result.json` into `$HARNESS_DIR` with raw
 * facts (log lines, NOTIFYs as linphonec received them); the test makes the assertions.
 *
 * Not a test file. Why a proxy: liblinphone 5.1 subscribes to a conference (RFC 4575) only
 * when the call's identity has a registered account, and then sends calls and SUBSCRIBEs
 * through that account's proxy; the registrar must hand out GRUUs.
 * @module
 */

import { Daemon, writeConfig } from "./_daemon.ts";
import { Kamailio } from "./_kamailio.ts";
import { callStateChanges, createLinphoneConfig, Linphonec } from "../_helpers/linphone.ts";
import { freePort } from "../_helpers/netns.ts";
import { logValues, runSipp, scenarioPath, startSipp } from "../_helpers/sipp.ts";

/** The local domain of the proxy; conference URIs live there. */
export const DOMAIN = "conclave.test";

/** One NOTIFY as it appears in the liblinphone log (belle-sip prints every message). */
export interface LoggedNotify {
  readonly requestUri: string;
  /** Top Via: who sent it on the last hop. */
  readonly via: string;
  readonly event: string;
  readonly subscriptionState: string;
  readonly contentType: string;
  /** `conference-info` root attributes (absent when the body is not conference-info). */
  readonly entity: string | undefined;
  readonly state: string | undefined;
  readonly version: number | undefined;
  /** `user` elements as `entity state`. */
  readonly users: readonly string[];
}

/** Extracts the NOTIFY requests linphonec logged. */
export function loggedNotifies(log: string): LoggedNotify[] {
  const out: LoggedNotify[] = [];
  // A message runs until the next liblinphone log line (which starts with a timestamp).
  const re =
    /^NOTIFY (\S+) SIP\/2\.0\r?\n([\s\S]*?)(?=^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} |$(?![\s\S]))/gm;
  for (const m of log.matchAll(re)) {
    const text = m[2] ?? "";
    const split = text.search(/\r?\n\r?\n/);
    const head = split < 0 ? text : text.slice(0, split);
    const body = split < 0 ? "" : text.slice(split);
    const header = (name: string) =>
      new RegExp(`^${name}:\\s*(.*)$`, "im").exec(head)?.[1]?.trim() ?? "";
    const root = /<conference-info\b([^>]*)>/.exec(body)?.[1];
    const attr = (name: string) =>
      root === undefined ? undefined : new RegExp(`\\s${name}="([^"]*)"`).exec(root)?.[1];
    const version = attr("version");
    out.push({
      requestUri: m[1] ?? "",
      via: header("Via"),
      event: header("Event"),
      subscriptionState: header("Subscription-State"),
      contentType: header("Content-Type"),
      entity: attr("entity"),
      state: attr("state"),
      version: version === undefined ? undefined : Number(version),
      users: [...body.matchAll(/<user\b[^>]*\bentity="([^"]*)"[^>]*\bstate="([^"]*)"/g)].map((u) =>
        `${u[1]} ${u[2]}`
      ),
    });
  }
  return out;
}

/**
 * The re-INVITE liblinphone sends once the conference is Created when it is admin
 * (`RemoteConference::onStateChanged`: no SDP, `Subject:` = the conference subject), and the
 * final status it got.
 */
export function subjectUpdate(log: string): { subject: string; status: number } | undefined {
  const invite = /^INVITE \S+ SIP\/2\.0\r?\n((?:[^\r\n]+\r?\n)*?)\r?\n/gm;
  for (const m of log.matchAll(invite)) {
    const head = m[1] ?? "";
    const subject = /^Subject:\s*(.*)$/im.exec(head)?.[1]?.trim();
    const cseq = /^CSeq:\s*(\d+) INVITE/im.exec(head)?.[1];
    const callId = /^Call-ID:\s*(\S+)/im.exec(head)?.[1];
    if (subject === undefined || cseq === undefined || callId === undefined) continue;
    if (!/^To:.*;tag=/im.test(head)) continue; // in-dialog only
    for (const r of log.matchAll(/^SIP\/2\.0 (\d{3}) [^\n]*\n((?:[^\r\n]+\r?\n)*?)\r?\n/gm)) {
      const rh = r[2] ?? "";
      const status = Number(r[1]);
      if (status < 200) continue;
      if (!new RegExp(`^CSeq:\\s*${cseq} INVITE`, "im").test(rh)) continue;
      if (!rh.includes(callId)) continue;
      return { subject, status };
    }
    return { subject, status: 0 };
  }
  return undefined;
}

/** Log lines (without their timestamp) that match `pattern`. */
function lines(log: string, pattern: RegExp): string[] {
  return log.split("\n").filter((l) => pattern.test(l)).map((l) =>
    l.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} /, "")
  );
}

async function withTimeout<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a waited-for step produced: the match, or why it failed. */
interface Step {
  readonly ok: boolean;
  readonly detail: string;
}

async function step(wait: () => Promise<unknown>): Promise<Step> {
  try {
    const value = await wait();
    return { ok: true, detail: Array.isArray(value) ? String(value[0]) : String(value) };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}

/** Runs the whole scenario under `dir`; returns the facts for result.json. */
export async function linphoneConference(dir: string): Promise<Record<string, unknown>> {
  await Deno.mkdir(dir, { recursive: true });
  const conclavePort = freePort();
  const kamailio = await Kamailio.start({
    dir: `${dir}/kamailio`,
    domain: DOMAIN,
    services: ["conference-factory", "conference-focus"],
    serviceTarget: `127.0.0.1:${conclavePort}`,
  });
  let daemon: Daemon | undefined;
  let phone: Linphonec | undefined;
  try {
    const configPath = `${dir}/conclave.conf`;
    await writeConfig(configPath, conclavePort, `${dir}/state`, [
      `conference-factory-uris=sip:conference-factory@${DOMAIN}`,
      `conference-focus-uris=sip:conference-focus@${DOMAIN}`,
      `outbound-proxy=${kamailio.uri()}`,
    ]);
    daemon = await withTimeout("conclave start", Daemon.start(configPath), 30_000);

    // 1. A conference is created through the proxy: INVITE factory → 302 conference URI.
    const factory = await runSipp({
      scenario: scenarioPath("factory_invite"),
      service: "conference-factory",
      remote: kamailio.address,
      dir: `${dir}/factory`,
      name: "factory",
      timeoutSec: 15,
    });
    const confUri = logValues(factory.logs, "CONF_URI")[0];
    const base = {
      kamailioPort: kamailio.port,
      conclavePort,
      factory: { code: factory.code, errors: factory.errors.slice(-2000) },
      confUri,
    };
    if (factory.code !== 0 || confUri === undefined) return base;

    // 2. linphonec registers alice@conclave.test at Kamailio (GRUU) and calls the conference.
    const config = await createLinphoneConfig({
      dir: `${dir}/linphone`,
      toneHz: 700,
      account: {
        identity: `sip:alice@${DOMAIN}`,
        registrar: kamailio.uri(),
        route: kamailio.uri(),
      },
    });
    phone = await Linphonec.start(config);
    const registered = await step(() => phone!.waitForRegistration(20_000));
    await phone.send("soundcard use files");
    await phone.send(`play ${config.playWav}`);
    await phone.send(`record ${config.recordWav}`);
    await phone.send(`call ${confUri}`);
    const callState = await step(() =>
      phone!.waitForCallState(
        ["LinphoneCallStreamsRunning", "LinphoneCallError", "LinphoneCallEnd"],
        20_000,
      )
    );
    // 3. Its conference event handler subscribes and parses the full state.
    const created = await step(() =>
      phone!.waitForLog(
        /Switching conference \[\S+\] from state CreationPending to Created/,
        20_000,
      )
    );

    // 4. A second participant joins for 3 s and leaves: partial NOTIFYs (user full, deleted).
    const second = await startSipp({
      scenario: scenarioPath("focus_invite"),
      keys: { conf_uri: confUri },
      remote: kamailio.address,
      pauseMs: 3000,
      dir: `${dir}/second`,
      name: "second",
      timeoutSec: 20,
    });
    const added = await step(() =>
      phone!.waitForLog(/Addition of participant with address (\S+) to conference .* successful/)
    );
    const secondResult = await withTimeout("second participant", second.result, 30_000)
      .catch(async (error) => {
        await second.stop();
        throw error;
      });
    const removed = await step(() =>
      phone!.waitForLog(/Removal of participant with address (\S+) from conference .* successful/)
    );

    // 5. linphonec hangs up (BYE through the proxy) and quits (un-REGISTER).
    let released: Step = { ok: false, detail: "call never ran" };
    const endedBeforeHangup = /moving from state \w+ to LinphoneCall(End|Error)\b/.test(
      await phone.log(),
    );
    if (callState.ok && callState.detail === "LinphoneCallStreamsRunning") {
      await phone.send("terminate");
      released = await step(() => phone!.waitForCallState(["LinphoneCallReleased"], 20_000));
    }
    await phone.quit();
    const log = await phone.log();
    phone = undefined;

    return {
      ...base,
      registered,
      callState,
      created,
      added,
      removed,
      released,
      second: { code: secondResult.code, errors: secondResult.errors.slice(-2000) },
      states: callStateChanges(log),
      notifies: loggedNotifies(log),
      lines: {
        subscribing: lines(log, /is subscribing to chat room or conference/),
        notifyReceived: lines(log, /NOTIFY received for conference/),
        parseErrors: lines(
          log,
          /Error while parsing conference-info|Unable to process received NOTIFY/,
        ),
        me: lines(log, /requested to be (added|deleted) is me/),
        switching: lines(log, /Switching conference \[/),
        additions: lines(log, /Addition of participant with address/),
        removals: lines(log, /Removal of participant with address/),
        fullStateRequests: lines(log, /Requesting full state for conference/),
        ignored: lines(log, /Ignoring conference notify/),
      },
      endedBeforeHangup,
      subjectUpdate: subjectUpdate(log),
      byeAnswered: /^SIP\/2\.0 200 [^\n]*\n(?:[^\n]+\n)*?CSeq: \d+ BYE/m.test(log),
      registerLines: lines(log, /moving from state \[LinphoneRegistration/),
      kamailioRequests: lines(await kamailio.log(), /REQ /).map((l) => l.replace(/^.*REQ /, "")),
      linphoneLog: config.logPath,
    };
  } finally {
    if (phone) await phone.kill();
    if (daemon) {
      await daemon.stop("SIGTERM");
      await Deno.writeTextFile(`${dir}/conclave.log`, daemon.log.join("\n") + "\n");
    }
    await kamailio.stop();
  }
}

if (import.meta.main) {
  const dir = Deno.env.get("HARNESS_DIR") ?? Deno.cwd();
  let result: unknown;
  try {
    result = { value: await linphoneConference(`${dir}/linphone-conference`) };
  } catch (error) {
    result = { error: error instanceof Error ? `${error.stack ?? error.message}` : String(error) };
  }
  await Deno.writeTextFile(`${dir}/result.json`, JSON.stringify(result, null, 2));
}
