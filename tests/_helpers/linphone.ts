/**
 * Drives `linphonec` 5.1 (Debian `linphone-cli`, liblinphone 5.1) headless for end-to-end
 * tests. Findings that matter:
 * - `HOME` must be a scratch directory **that contains `.local/share/linphone/`**: without
 *   that directory liblinphone cannot open its database and never creates its SIP listening
 *   points ("No listening point matching for [tcp://...]" / "no channel available" on `call`).
 * - Commands are read from stdin line by line (no TTY needed, no `--pipe`: `--pipe` also opens
 *   a fixed-name Unix socket and then hangs on `quit`). Wait for the transports ("Creating
 *   listening point" in the log) before `call`.
 * - `-d 6 -l FILE` writes the full liblinphone log; call states appear there as
 *   `CallSession [...] moving from state LinphoneCallX to LinphoneCallY`.
 * - linphonec ignores SIGTERM: stop it with `quit` on stdin, SIGKILL as the fallback.
 * - `soundcard use files`, then `play x.wav` (source) and `record y.wav` (what it hears, at the
 *   codec's rate: 8 kHz mono for PCMU) before `call`.
 * - It offers Opus first (then speex, PCMU, PCMA, G729...), binds RTP on `[::0]`.
 * @module
 */

import { freePort, freePorts } from "./netns.ts";
import { writeToneWav } from "./wav.ts";

/** Settings of {@link createLinphoneConfig}. */
export interface LinphoneOptions {
  /** Scratch directory (created): rc file, HOME, log, recording. */
  readonly dir: string;
  /** UDP SIP port; free by default. */
  readonly sipPort?: number;
  /** TCP SIP port; free by default. */
  readonly sipTcpPort?: number;
  /** Audio RTP port (RTCP is +1); free by default. */
  readonly audioRtpPort?: number;
  /** Tone(s) for a generated 48 kHz source WAV; ignored with `playWav`. Default 800 Hz. */
  readonly toneHz?: number | readonly number[];
  /** Length of the generated tone; default 30 s. */
  readonly toneSeconds?: number;
  /** Use this WAV as the microphone instead of a generated tone. */
  readonly playWav?: string;
  /** Extra rc text appended verbatim (more `[section]`s). */
  readonly extraRc?: string;
  /**
   * Register an account (`[proxy_0]`, made the default, no authentication). liblinphone 5.1
   * subscribes to a conference's event package (and so parses conference-info) only when the
   * call's local identity has an account in state LinphoneRegistrationOk; with a default
   * account, calls and subscriptions are sent through the registrar as outbound proxy, so for
   * conference tests the registrar must be a proxy (e.g. Kamailio) that forwards to Conclave.
   */
  readonly account?: LinphoneAccount;
  /**
   * Video on: `-V` on the command line and a `[video]` section — the "StaticImage: Static
   * picture" camera (liblinphone's headless webcam: a still test card), capture and display
   * on, video offered in every call and accepted in every offer, QVGA, and `MSExtDisplay` as
   * the display filter (hands frames to the application; nothing needs an X server).
   */
  readonly video?: boolean;
}

/** A registered identity for {@link LinphoneOptions.account}. */
export interface LinphoneAccount {
  /** Address of record, e.g. `sip:alice@127.0.0.1`; becomes the From of calls. */
  readonly identity: string;
  /** Registrar, e.g. `sip:127.0.0.1:5070;transport=tcp`. */
  readonly registrar: string;
  /** Outbound route for every request (`reg_route`); none by default: requests go direct. */
  readonly route?: string;
  /** Registration lifetime in seconds; default 3600. */
  readonly expires?: number;
}

/** A written linphonec setup. */
export interface LinphoneConfig {
  readonly dir: string;
  readonly home: string;
  readonly rcPath: string;
  readonly logPath: string;
  readonly sipPort: number;
  readonly sipTcpPort: number;
  readonly audioRtpPort: number;
  readonly playWav: string;
  /** Where `record` writes what linphonec hears. */
  readonly recordWav: string;
  /** An account is configured: calls wait for its registration first. */
  readonly registered: boolean;
  /** Video RTP port (RTCP is +1, unless muxed). */
  readonly videoRtpPort: number;
  /** Started with `-V` and a `[video]` section ({@link LinphoneOptions.video}). */
  readonly video: boolean;
}

/** Writes the rc file, HOME with its database directory, and the source WAV. */
export async function createLinphoneConfig(options: LinphoneOptions): Promise<LinphoneConfig> {
  const dir = options.dir;
  const home = `${dir}/home`;
  await Deno.mkdir(`${home}/.local/share/linphone`, { recursive: true });
  const sipPort = options.sipPort ?? freePort();
  const sipTcpPort = options.sipTcpPort ?? freePort();
  const audioRtpPort = options.audioRtpPort ?? freePorts(2);
  const videoRtpPort = freePorts(2);
  const textRtpPort = freePorts(2);
  let playWav = options.playWav;
  if (playWav === undefined) {
    playWav = `${dir}/source.wav`;
    const tones = options.toneHz === undefined
      ? [800]
      : typeof options.toneHz === "number"
      ? [options.toneHz]
      : options.toneHz;
    await writeToneWav(playWav, { freqs: tones, seconds: options.toneSeconds ?? 30 });
  }
  const rcPath = `${dir}/linphonerc`;
  const rc = [
    "[sip]",
    ...(options.account ? ["default_proxy=0"] : []),
    `sip_port=${sipPort}`,
    `sip_tcp_port=${sipTcpPort}`,
    "sip_tls_port=0",
    "use_ipv6=0",
    "[rtp]",
    `audio_rtp_port=${audioRtpPort}`,
    `video_rtp_port=${videoRtpPort}`,
    `text_rtp_port=${textRtpPort}`,
    "[sound]",
    "echocancellation=0",
    ...(options.video
      ? [
        "[video]",
        "enabled=1",
        "capture=1",
        "display=1",
        "automatically_initiate=1",
        "automatically_accept=1",
        "device=StaticImage: Static picture",
        "size=qvga",
        "displaytype=MSExtDisplay",
        "self_view=0",
        "nowebcam_uses_normal_fps=1",
        "show_local=0",
      ]
      : []),
    ...(options.account
      ? [
        "[proxy_0]",
        `reg_proxy=<${options.account.registrar}>`,
        ...(options.account.route ? [`reg_route=<${options.account.route}>`] : []),
        `reg_identity=${options.account.identity}`,
        `reg_expires=${options.account.expires ?? 3600}`,
        "reg_sendregister=1",
        "publish=0",
        "dial_escape_plus=0",
      ]
      : []),
    "",
    options.extraRc ?? "",
  ].join("\n");
  await Deno.writeTextFile(rcPath, rc);
  return {
    dir,
    home,
    rcPath,
    logPath: `${dir}/linphonec.log`,
    sipPort,
    sipTcpPort,
    audioRtpPort,
    playWav,
    recordWav: `${dir}/record.wav`,
    registered: options.account !== undefined,
    videoRtpPort,
    video: options.video === true,
  };
}

/** One call-state transition from the liblinphone log. */
export interface CallStateChange {
  readonly from: string;
  readonly to: string;
}

/** Call-state transitions (`LinphoneCallIdle` → ... → `LinphoneCallReleased`) in a log. */
export function callStateChanges(log: string): CallStateChange[] {
  const changes: CallStateChange[] = [];
  const re = /CallSession \[[^\]]*\] moving from state (\w+) to (\w+)/g;
  for (const match of log.matchAll(re)) changes.push({ from: match[1]!, to: match[2]! });
  return changes;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** A running `linphonec -c RC -d 6 -l LOG`, fed commands on stdin. */
export class Linphonec {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #output: Promise<Deno.CommandOutput>;
  readonly config: LinphoneConfig;
  #exited = false;

  private constructor(child: Deno.ChildProcess, config: LinphoneConfig) {
    this.#child = child;
    this.config = config;
    this.#stdin = child.stdin.getWriter();
    this.#output = child.output().finally(() => {
      this.#exited = true;
    });
  }

  /** Starts linphonec with `HOME` set to the scratch home; waits for its SIP transports. */
  static async start(config: LinphoneConfig, timeoutMs = 20_000): Promise<Linphonec> {
    const child = new Deno.Command("linphonec", {
      args: [...(config.video ? ["-V"] : []), "-c", config.rcPath, "-d", "6", "-l", config.logPath],
      cwd: config.dir,
      env: { HOME: config.home },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const phone = new Linphonec(child, config);
    try {
      await phone.waitForLog(
        new RegExp(`Creating listening point .*:${config.sipTcpPort};transport=TCP`),
        timeoutMs,
      );
    } catch (error) {
      await phone.kill();
      throw error;
    }
    return phone;
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Sends one command line (e.g. `call sip:...`, `terminate`). */
  async send(command: string): Promise<void> {
    await this.#stdin.write(encoder.encode(command + "\n"));
  }

  /** The liblinphone log so far. */
  log(): Promise<string> {
    return readOrEmpty(this.config.logPath);
  }

  /** Waits until the log matches `pattern`; rejects after `timeoutMs` or if linphonec exits. */
  async waitForLog(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = (await this.log()).match(pattern);
      if (match) return match;
      if (this.#exited) throw new Error(`linphonec exited before ${pattern}`);
      if (Date.now() > deadline) throw new Error(`linphonec log never matched ${pattern}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Waits until the account of {@link LinphoneOptions.account} is registered. */
  async waitForRegistration(timeoutMs = 20_000): Promise<void> {
    await this.waitForLog(/LinphoneRegistrationOk/, timeoutMs);
  }

  /** Waits for the first call to reach one of `states`; returns the state reached. */
  async waitForCallState(states: readonly string[], timeoutMs = 20_000): Promise<string> {
    const re = new RegExp(`moving from state \\w+ to (${states.join("|")})\\b`);
    const match = await this.waitForLog(re, timeoutMs);
    return match[1]!;
  }

  /** `quit`, then SIGKILL if it has not exited after `graceMs`; returns its stdout+stderr. */
  async quit(graceMs = 5000): Promise<{ code: number; output: string }> {
    if (!this.#exited) {
      try {
        await this.send("quit");
        await this.#stdin.close();
      } catch {
        // stdin already closed: the process is going away
      }
    }
    const timer = setTimeout(() => this.#killNow(), graceMs);
    try {
      const out = await this.#output;
      return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
    } finally {
      clearTimeout(timer);
    }
  }

  #killNow(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already exited
    }
  }

  /** SIGKILL (linphonec ignores SIGTERM) and wait for the exit. */
  async kill(): Promise<void> {
    this.#killNow();
    try {
      await this.#stdin.close();
    } catch {
      // already closed
    }
    await this.#output;
  }
}

/** What {@link runLinphoneCall} does. */
export interface LinphoneCallOptions {
  /** URI to call, e.g. `sip:conf@127.0.0.1:5060;transport=tcp`. */
  readonly uri: string;
  /** Seconds to stay in the call once streams run. */
  readonly seconds: number;
  /** Safety net for each wait; default 20 s. */
  readonly timeoutMs?: number;
}

/** Outcome of {@link runLinphoneCall}. */
export interface LinphoneCallResult {
  /** linphonec's exit code (137 when it had to be killed). */
  readonly code: number;
  /** Console output (prompts, "Call 1 ... connected", ...). */
  readonly output: string;
  /** Full liblinphone log (`-d 6`). */
  readonly log: string;
  readonly states: readonly CallStateChange[];
  /** The call reached `LinphoneCallStreamsRunning`. */
  readonly streamsRunning: boolean;
  /** The recording of what it heard, if the call ran. */
  readonly recording: string | undefined;
  /** Why a wait gave up (timeout, early exit), if one did. */
  readonly error: string | undefined;
}

/**
 * One call from linphonec: start, `soundcard use files`, `play`, `record`, `call URI`, wait for
 * StreamsRunning (or an error/end), stay `seconds`, `terminate`, `quit`.
 */
export async function runLinphoneCall(
  config: LinphoneConfig,
  call: LinphoneCallOptions,
): Promise<LinphoneCallResult> {
  const timeoutMs = call.timeoutMs ?? 20_000;
  const phone = await Linphonec.start(config, timeoutMs);
  let streamsRunning = false;
  let error: string | undefined;
  try {
    if (config.registered) await phone.waitForRegistration(timeoutMs);
    await phone.send("soundcard use files");
    await phone.send(`play ${config.playWav}`);
    await phone.send(`record ${config.recordWav}`);
    await phone.send(`call ${call.uri}`);
    const state = await phone.waitForCallState(
      ["LinphoneCallStreamsRunning", "LinphoneCallError", "LinphoneCallEnd"],
      timeoutMs,
    );
    streamsRunning = state === "LinphoneCallStreamsRunning";
    if (streamsRunning) {
      await new Promise((resolve) => setTimeout(resolve, call.seconds * 1000));
      await phone.send("terminate");
      await phone.waitForCallState(["LinphoneCallReleased"], timeoutMs);
    }
  } catch (caught) {
    error = caught instanceof Error ? caught.message : String(caught);
  }
  const { code, output } = await phone.quit();
  const log = await phone.log();
  let recording: string | undefined;
  try {
    recording = (await Deno.stat(config.recordWav)).isFile ? config.recordWav : undefined;
  } catch {
    recording = undefined;
  }
  return { code, output, log, states: callStateChanges(log), streamsRunning, recording, error };
}
