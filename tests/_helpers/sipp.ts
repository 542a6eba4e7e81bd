/**
 * Drives SIPp 3.6 (`sipp`, Debian package `sip-tester`) for end-to-end tests.
 *
 * Every instance gets its own working directory (its logs land there), its own SIP port,
 * control port and media ports (SIPp binds `-mp` and `-mp`+2 at start-up even when the
 * scenario has no media, so two instances with the default 6000 collide), and always:
 * `-i 127.0.0.1 -ci 127.0.0.1 -mi 127.0.0.1 -nostdin -timeout Ns -timeout_error -trace_msg
 * -message_file -trace_err -error_file -trace_logs -log_file`.
 * Exit codes: 0 all calls succeeded, 1 some failed, 97 internal/abnormal, 255 error
 * (scenario/parse/bind problem).
 *
 * Scenarios live in `tests/e2e/scenarios/` ({@link scenarioPath}); see each file's comment
 * for the keys it needs. `uac_pcmu_rtp.xml` streams `audio.ulaw` from the working directory
 * (SIPp reads rtp_stream files when it loads the scenario, so the name cannot be a key):
 * pass {@link SippOptions.rtpFile} and it is copied there.
 * @module
 */

import { freePort, freePorts, waitForPort } from "./netns.ts";

/** Directory holding the SIPp XML scenarios. */
export const SCENARIO_DIR: string = new URL("../e2e/scenarios/", import.meta.url).pathname;

/** Scenario names shipped in `tests/e2e/scenarios/` (stand-ins under `standins/`). */
export type ScenarioName =
  | "factory_invite"
  | "focus_invite"
  | "register"
  | "subscribe_conference"
  | "uac_pcmu_rtp"
  | "standins/factory_uas"
  | "standins/focus_uas"
  | "standins/notifier_uas"
  | "standins/registrar_uas";

/** Absolute path of a shipped scenario. */
export function scenarioPath(name: ScenarioName): string {
  return `${SCENARIO_DIR}${name}.xml`;
}

/** How to run one SIPp instance. */
export interface SippOptions {
  /** `"uac"` / `"uas"` (built-in, `-sn`) or a path to an XML file (`-sf`). */
  readonly scenario: string;
  /** Where a client scenario sends: `host:port`. */
  readonly remote?: string;
  /** `t1` = TCP on one socket (default), `u1` = UDP on one socket. */
  readonly transport?: "t1" | "u1";
  /** Local SIP port (`-p`); free port by default. */
  readonly localPort?: number;
  /** Control port (`-cp`); free port by default. */
  readonly controlPort?: number;
  /** Media port (`-mp`, also +2 used); a free run of 4 ports by default. */
  readonly mediaPort?: number;
  /** Echo RTP received on the media port (`-rtp_echo`). */
  readonly rtpEcho?: boolean;
  /** Request-URI user part (`-s`), `[service]` in scenarios. */
  readonly service?: string;
  /** Scenario keys (`-key name value`), `[name]` in scenarios. */
  readonly keys?: Readonly<Record<string, string>>;
  /** Number of calls before exiting (`-m`); default 1. */
  readonly calls?: number;
  /** Call rate per `ratePeriodMs` (`-r`, `-rp`). */
  readonly rate?: number;
  readonly ratePeriodMs?: number;
  /** Maximum simultaneous calls (`-l`). */
  readonly limit?: number;
  /** Default `<pause/>` length in ms (`-d`). */
  readonly pauseMs?: number;
  /** Global timeout in seconds, a failure when reached (`-timeout Ns -timeout_error`). Default 20. */
  readonly timeoutSec?: number;
  /** Working directory (created); logs land here. Default: a new temp directory. */
  readonly dir?: string;
  /** Prefix of the log file names; default `sipp`. */
  readonly name?: string;
  /** Raw 8 kHz mu-law file, copied to `audio.ulaw` in the working directory. */
  readonly rtpFile?: string;
  /** Write statistics CSV every second (`-trace_stat -stf <name>.csv -fd 1`). */
  readonly traceStat?: boolean;
  /** Anything else, appended before the remote address. */
  readonly extraArgs?: readonly string[];
}

/** Paths of the files an instance writes. */
export interface SippFiles {
  /** `-message_file`: every message sent and received. */
  readonly messages: string;
  /** `-error_file`: unexpected messages and errors. */
  readonly errors: string;
  /** `-log_file`: output of `<log>` actions (e.g. `CONF_URI=...`). */
  readonly logs: string;
  /** `-stf`: statistics CSV when {@link SippOptions.traceStat}. */
  readonly stats: string;
}

/** What a finished instance left behind. */
export interface SippResult {
  readonly code: number;
  /** `code === 0`: every call passed the scenario. */
  readonly success: boolean;
  readonly stdout: string;
  readonly stderr: string;
  /** Contents of the message, error and log files ("" when absent). */
  readonly messages: string;
  readonly errors: string;
  readonly logs: string;
  readonly dir: string;
  readonly files: SippFiles;
}

const decoder = new TextDecoder();

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** Resolved ports and paths of one instance. */
export interface SippLayout {
  readonly localPort: number;
  readonly controlPort: number;
  readonly mediaPort: number;
  readonly dir: string;
  readonly files: SippFiles;
}

/** The full `sipp` argv (without the program name) for `options` and a resolved layout. */
export function sippArgs(options: SippOptions, layout: SippLayout): string[] {
  const builtIn = options.scenario === "uac" || options.scenario === "uas";
  const args: string[] = [
    ...(builtIn ? ["-sn", options.scenario] : ["-sf", options.scenario]),
    "-t",
    options.transport ?? "t1",
    "-i",
    "127.0.0.1",
    "-ci",
    "127.0.0.1",
    "-p",
    String(layout.localPort),
    "-cp",
    String(layout.controlPort),
    "-mi",
    "127.0.0.1",
    "-mp",
    String(layout.mediaPort),
    "-nostdin",
    "-m",
    String(options.calls ?? 1),
    "-timeout",
    `${options.timeoutSec ?? 20}s`,
    "-timeout_error",
    "-trace_msg",
    "-message_file",
    layout.files.messages,
    "-trace_err",
    "-error_file",
    layout.files.errors,
    "-trace_logs",
    "-log_file",
    layout.files.logs,
  ];
  if (options.rtpEcho) args.push("-rtp_echo");
  if (options.service !== undefined) args.push("-s", options.service);
  for (const [key, value] of Object.entries(options.keys ?? {})) args.push("-key", key, value);
  if (options.rate !== undefined) args.push("-r", String(options.rate));
  if (options.ratePeriodMs !== undefined) args.push("-rp", String(options.ratePeriodMs));
  if (options.limit !== undefined) args.push("-l", String(options.limit));
  if (options.pauseMs !== undefined) args.push("-d", String(options.pauseMs));
  if (options.traceStat) args.push("-trace_stat", "-stf", layout.files.stats, "-fd", "1");
  args.push(...(options.extraArgs ?? []));
  if (options.remote !== undefined) args.push(options.remote);
  return args;
}

/** A running SIPp instance. */
export class SippProcess {
  readonly #child: Deno.ChildProcess;
  readonly #options: SippOptions;
  readonly #layout: SippLayout;
  readonly #result: Promise<SippResult>;

  constructor(child: Deno.ChildProcess, options: SippOptions, layout: SippLayout) {
    this.#child = child;
    this.#options = options;
    this.#layout = layout;
    this.#result = child.output().then(async (out) => ({
      code: out.code,
      success: out.code === 0,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      messages: await readOrEmpty(layout.files.messages),
      errors: await readOrEmpty(layout.files.errors),
      logs: await readOrEmpty(layout.files.logs),
      dir: layout.dir,
      files: layout.files,
    }));
  }

  /** Process id (in the namespace the test runs in). */
  get pid(): number {
    return this.#child.pid;
  }
  get localPort(): number {
    return this.#layout.localPort;
  }
  get mediaPort(): number {
    return this.#layout.mediaPort;
  }
  get dir(): string {
    return this.#layout.dir;
  }
  get files(): SippFiles {
    return this.#layout.files;
  }
  /** `127.0.0.1:<localPort>`: the address a client gives to reach this instance. */
  get address(): string {
    return `127.0.0.1:${this.#layout.localPort}`;
  }

  /** Resolves when the SIP socket is bound (TCP listening / UDP bound). */
  ready(timeoutMs = 15_000): Promise<void> {
    return waitForPort(
      this.#layout.localPort,
      (this.#options.transport ?? "t1") === "u1" ? "udp" : "tcp",
      timeoutMs,
    );
  }

  /** Resolves when the process exits, with its logs. */
  get result(): Promise<SippResult> {
    return this.#result;
  }

  /** Sends a signal (SIGTERM by default); ignores an already finished process. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already exited
    }
  }

  /** Stops the instance (SIGTERM, SIGKILL after `graceMs`) and returns its result. */
  async stop(graceMs = 2000): Promise<SippResult> {
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      return await this.#result;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Starts SIPp with `options`; see {@link SippOptions} for defaults. */
export async function startSipp(options: SippOptions): Promise<SippProcess> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "conclave-sipp-" });
  await Deno.mkdir(dir, { recursive: true });
  const name = options.name ?? "sipp";
  const layout: SippLayout = {
    localPort: options.localPort ?? freePort(),
    controlPort: options.controlPort ?? freePort(),
    mediaPort: options.mediaPort ?? freePorts(4),
    dir,
    files: {
      messages: `${dir}/${name}.messages.log`,
      errors: `${dir}/${name}.errors.log`,
      logs: `${dir}/${name}.actions.log`,
      stats: `${dir}/${name}.stats.csv`,
    },
  };
  if (options.rtpFile !== undefined) {
    const link = `${dir}/audio.ulaw`;
    await Deno.remove(link).catch(() => {});
    await Deno.copyFile(options.rtpFile, link);
  }
  const child = new Deno.Command("sipp", {
    args: sippArgs(options, layout),
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new SippProcess(child, options, layout);
}

/** Runs SIPp to completion and returns its result. */
export async function runSipp(options: SippOptions): Promise<SippResult> {
  return await (await startSipp(options)).result;
}

/**
 * Values logged by `<log message="NAME=value"/>` actions, in order: e.g.
 * `logValues(result.logs, "CONF_URI")` after factory_invite.xml.
 */
export function logValues(logs: string, name: string): string[] {
  const values: string[] = [];
  const re = new RegExp(`${name}=(\\S+)`, "g");
  for (const match of logs.matchAll(re)) if (match[1] !== undefined) values.push(match[1]);
  return values;
}

/** One row of SIPp's `-trace_stat` CSV, keyed by column name. */
export type SippStatRow = Readonly<Record<string, string>>;

/** Parses SIPp's statistics CSV (semicolon separated, header row first). */
export function parseSippStats(csv: string): SippStatRow[] {
  const lines = csv.split("\n").filter((line) => line.trim() !== "");
  const header = lines[0]?.split(";") ?? [];
  return lines.slice(1).map((line) => {
    const cells = line.split(";");
    const row: Record<string, string> = {};
    header.forEach((column, i) => {
      if (column !== "") row[column] = cells[i] ?? "";
    });
    return row;
  });
}

/** One SIP message from a `-message_file` log. */
export interface LoggedMessage {
  readonly direction: "sent" | "received";
  /** The message text, start line first. */
  readonly text: string;
}

/**
 * SIP messages of a `-message_file` log, in order. SIPp logs a message that its scenario did
 * not expect twice (once as received, once under "Unexpected ... message received:"); the
 * copy is left out.
 */
export function loggedMessages(messageLog: string): LoggedMessage[] {
  const messages: LoggedMessage[] = [];
  for (const block of messageLog.split(/^-{10,}.*$/m)) {
    const start = block.search(/^(?:[A-Z]+ \S+ SIP\/2\.0|SIP\/2\.0 \d{3})/m);
    if (start < 0) continue;
    if (/^Unexpected /m.test(block.slice(0, start))) continue;
    const direction = /message sent/.test(block.slice(0, start)) ? "sent" : "received";
    messages.push({ direction, text: block.slice(start).trim() });
  }
  return messages;
}

/**
 * Writes a raw 8 kHz mu-law tone for `rtp_stream` with sox (an encoder independent of ours):
 * `sox -n -r 8000 -c 1 -t ul PATH synth SECONDS sine HZ vol AMPLITUDE`.
 */
export async function writeUlawTone(
  path: string,
  hz: number,
  seconds: number,
  amplitude = 0.5,
): Promise<void> {
  const out = await new Deno.Command("sox", {
    args: ["-n", "-r", "8000", "-c", "1", "-t", "ul", path, "synth", String(seconds), "sine"]
      .concat([String(hz), "vol", String(amplitude)]),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`sox failed: ${decoder.decode(out.stderr)}`);
}

/** Writes raw 8 kHz mu-law silence (0xFF is mu-law zero, ITU-T G.711). */
export async function writeUlawSilence(path: string, seconds: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(Math.round(seconds * 8000)).fill(0xff));
}
