/**
 * Drives baresip 1.0 headless for end-to-end tests: a config directory per instance
 * (`config` + `accounts`, no registrar), a tone WAV as the microphone (`aufile`), the
 * `aubridge` player (not alsa: 100 % CPU with a null device), and `sndfile`, which records
 * what the instance sends and hears as `dump-<time>-enc.wav` / `dump-<time>-dec.wav` in
 * `<dir>/rec/`. The `-dec.wav` file is the decoded received audio: 48 kHz **stereo** for Opus,
 * 8 kHz mono for PCMU (it records at the codec's rate, before resampling to the player).
 *
 * Dial with `baresip -f DIR -t SECONDS -e "/dial URI"` ({@link startBaresip}); baresip hangs
 * up (BYE) and exits when SECONDS are over. baresip appends `;transport=<account transport>`
 * to a dialled URI itself, so a `;transport=` parameter already in the URI is removed first
 * (otherwise the Request-URI carries it twice). For finer control (dial/hang up at chosen
 * moments, call events) use {@link BaresipControl} over the `ctrl_tcp` module.
 * @module
 */

import { freePort, freePorts, waitForPort } from "./netns.ts";
import { writeToneWav } from "./wav.ts";

/** Instance settings for {@link createBaresipConfig}. */
export interface BaresipOptions {
  /** Config directory (created). */
  readonly dir: string;
  /** SIP user of the account; default `baresip`. */
  readonly user?: string;
  /** SIP listen port on 127.0.0.1; free port by default. */
  readonly sipPort?: number;
  /** Account transport; default `tcp`. */
  readonly transport?: "tcp" | "udp";
  /** First of 20 RTP ports; a free run by default. */
  readonly rtpBase?: number;
  /** `ctrl_tcp` port on 127.0.0.1; free port by default. */
  readonly ctrlPort?: number;
  /** Tone(s) for the generated source WAV (sum of sines). Ignored with `sourceWav`. */
  readonly toneHz?: number | readonly number[];
  /** Use this 48 kHz mono 16-bit WAV as the source instead of a generated tone. */
  readonly sourceWav?: string;
  /** Length of the generated tone; keep it longer than the call. Default 30 s. */
  readonly toneSeconds?: number;
  /** Restrict the account's codecs, e.g. `["pcmu"]` or `["opus"]` (`;audio_codecs=`). */
  readonly audioCodecs?: readonly string[];
  /** Answer incoming calls at once (`;answermode=auto`). */
  readonly autoAnswer?: boolean;
  /**
   * Video with the `fakevideo` source/display and the `vp8` codec (`;video_codecs=vp8`), and
   * `rtcpsummary`, which prints each stream's RTCP statistics when a call closes.
   */
  readonly video?: boolean;
}

/** A written config directory. */
export interface BaresipConfig {
  readonly dir: string;
  /** Where `sndfile` writes `dump-*-enc.wav` / `dump-*-dec.wav`. */
  readonly recDir: string;
  readonly user: string;
  readonly sipPort: number;
  readonly ctrlPort: number;
  readonly transport: "tcp" | "udp";
  /** The source WAV (`aufile`). */
  readonly sourceWav: string;
  /** This instance's address: `sip:user@127.0.0.1:port;transport=tcp`. */
  readonly uri: string;
}

/** Writes `config` and `accounts` (and the tone WAV) for one instance. */
export async function createBaresipConfig(options: BaresipOptions): Promise<BaresipConfig> {
  const dir = options.dir;
  const recDir = `${dir}/rec`;
  await Deno.mkdir(recDir, { recursive: true });
  const user = options.user ?? "baresip";
  const transport = options.transport ?? "tcp";
  const sipPort = options.sipPort ?? freePort();
  const ctrlPort = options.ctrlPort ?? freePort();
  const rtpBase = options.rtpBase ?? freePorts(20);
  let sourceWav = options.sourceWav;
  if (sourceWav === undefined) {
    sourceWav = `${dir}/source.wav`;
    const tones = options.toneHz === undefined
      ? [1000]
      : typeof options.toneHz === "number"
      ? [options.toneHz]
      : options.toneHz;
    await writeToneWav(sourceWav, {
      freqs: tones,
      seconds: options.toneSeconds ?? 30,
      sampleRate: 48000,
      amplitude: 0.5,
    });
  }
  const config = [
    `sip_listen 127.0.0.1:${sipPort}`,
    "net_interface 127.0.0.1",
    `audio_source aufile,${sourceWav}`,
    `audio_player aubridge,play-${user}-${sipPort}`,
    `audio_alert aubridge,alert-${user}-${sipPort}`,
    "ausrc_srate 48000",
    "auplay_srate 48000",
    "ausrc_channels 1",
    "auplay_channels 1",
    `rtp_ports ${rtpBase}-${rtpBase + 19}`,
    "module_path /usr/lib/baresip/modules",
    "module opus.so",
    "module g711.so",
    "module sndfile.so",
    "module aubridge.so",
    "module aufile.so",
    ...(options.video
      ? [
        "module vp8.so",
        "module fakevideo.so",
        "module rtcpsummary.so",
        "video_source fakevideo,nil",
        "video_display fakevideo,nil",
        "video_size 320x240",
        "video_bitrate 300000",
        "video_fps 15",
      ]
      : []),
    "module_tmp uuid.so",
    "module_tmp account.so",
    "module_app contact.so",
    "module_app menu.so",
    "module_app ctrl_tcp.so",
    `ctrl_tcp_listen 127.0.0.1:${ctrlPort}`,
    `snd_path ${recDir}`,
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/config`, config);
  const params = ["regint=0"];
  if (options.autoAnswer) params.push("answermode=auto");
  if (options.video) params.push("video_codecs=vp8");
  if (options.audioCodecs && options.audioCodecs.length > 0) {
    params.push(`audio_codecs=${options.audioCodecs.join(",")}`);
  }
  const uri = `sip:${user}@127.0.0.1:${sipPort};transport=${transport}`;
  await Deno.writeTextFile(`${dir}/accounts`, `<${uri}>;${params.join(";")}\n`);
  await Deno.writeTextFile(`${dir}/contacts`, "");
  return { dir, recDir, user, sipPort, ctrlPort, transport, sourceWav, uri };
}

/** How long to run and what to do. */
export interface BaresipRunOptions {
  /** baresip exits (hanging up first) after this many seconds (`-t`). */
  readonly seconds: number;
  /** URI to dial at start (`-e "/dial URI"`). */
  readonly dial?: string;
  /** More `-e` commands, e.g. `"/hangup"`. */
  readonly commands?: readonly string[];
  /** Print SIP messages into the log (`-s`). */
  readonly sipTrace?: boolean;
}

/** Recordings written by `sndfile`. */
export interface BaresipRecordings {
  /** `dump-*-dec.wav`: decoded audio received from the peer (sorted by name). */
  readonly decoded: readonly string[];
  /** `dump-*-enc.wav`: audio sent to the peer. */
  readonly encoded: readonly string[];
}

/** What a finished instance left behind. */
export interface BaresipResult {
  readonly code: number;
  /** stdout then stderr. */
  readonly log: string;
  /** The log says "Call established". */
  readonly established: boolean;
  readonly recordings: BaresipRecordings;
}

/** Lists the `sndfile` recordings in a config's `rec/` directory. */
export async function baresipRecordings(config: BaresipConfig): Promise<BaresipRecordings> {
  const decoded: string[] = [];
  const encoded: string[] = [];
  for await (const entry of Deno.readDir(config.recDir)) {
    if (/^dump-.*-dec\.wav$/.test(entry.name)) decoded.push(`${config.recDir}/${entry.name}`);
    if (/^dump-.*-enc\.wav$/.test(entry.name)) encoded.push(`${config.recDir}/${entry.name}`);
  }
  return { decoded: decoded.sort(), encoded: encoded.sort() };
}

/**
 * Removes `;transport=...` from a URI that baresip will dial over an account of that same
 * transport (baresip appends the account's transport itself).
 */
export function baresipDialUri(uri: string, transport: "tcp" | "udp"): string {
  return uri.replace(new RegExp(`;transport=${transport}(?=[;>?]|$)`, "i"), "");
}

const decoder = new TextDecoder();

/** A running baresip. */
export class BaresipProcess {
  readonly #child: Deno.ChildProcess;
  readonly #result: Promise<BaresipResult>;
  readonly config: BaresipConfig;

  constructor(child: Deno.ChildProcess, config: BaresipConfig) {
    this.#child = child;
    this.config = config;
    this.#result = child.output().then(async (out) => {
      const log = decoder.decode(out.stdout) + decoder.decode(out.stderr);
      return {
        code: out.code,
        log,
        established: /Call established/.test(log),
        recordings: await baresipRecordings(config),
      };
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves when the SIP socket listens (TCP) or is bound (UDP). */
  ready(timeoutMs = 15_000): Promise<void> {
    return waitForPort(this.config.sipPort, this.config.transport, timeoutMs);
  }

  /** Resolves when baresip exits. */
  get result(): Promise<BaresipResult> {
    return this.#result;
  }

  /** Connects to this instance's `ctrl_tcp` socket. */
  async control(timeoutMs = 15_000): Promise<BaresipControl> {
    await waitForPort(this.config.ctrlPort, "tcp", timeoutMs);
    return await BaresipControl.connect(this.config.ctrlPort);
  }

  /** Stops it early: SIGTERM (baresip hangs up and exits), SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<BaresipResult> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, graceMs);
    try {
      return await this.#result;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Starts `baresip -f DIR -t SECONDS [-e "/dial URI"]` with stdin closed. */
export function startBaresip(config: BaresipConfig, run: BaresipRunOptions): BaresipProcess {
  const args = ["-f", config.dir, "-t", String(run.seconds)];
  if (run.sipTrace) args.push("-s");
  if (run.dial !== undefined) {
    args.push("-e", `/dial ${baresipDialUri(run.dial, config.transport)}`);
  }
  for (const command of run.commands ?? []) args.push("-e", command);
  const child = new Deno.Command("baresip", {
    args,
    cwd: config.dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new BaresipProcess(child, config);
}

/** Runs baresip to completion (see {@link startBaresip}). */
export async function runBaresip(
  config: BaresipConfig,
  run: BaresipRunOptions,
): Promise<BaresipResult> {
  return await startBaresip(config, run).result;
}

/** A `ctrl_tcp` message: a command response or an event (baresip 1.0 JSON). */
export type BaresipMessage = Readonly<Record<string, unknown>>;

const encoder = new TextEncoder();

/**
 * Client of baresip's `ctrl_tcp` module: netstrings (`<len>:<json>,`) carrying
 * `{"command","params","token"}` requests; responses (`"response": true`, same token) and
 * events (`"event": true`, `"type": "CALL_ESTABLISHED"`, ...) come back on the same socket.
 */
export class BaresipControl {
  readonly #conn: Deno.Conn;
  readonly #messages: BaresipMessage[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly #reading: Promise<void>;
  #buffer = "";
  #closed = false;
  #token = 0;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reading = this.#readLoop();
  }

  /** Connects to `127.0.0.1:port`. */
  static async connect(port: number): Promise<BaresipControl> {
    return new BaresipControl(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
        this.#parse();
      }
    } catch {
      // connection closed under us
    }
    this.#closed = true;
    this.#wake();
  }

  #parse(): void {
    for (;;) {
      const colon = this.#buffer.indexOf(":");
      if (colon < 0) return;
      const length = Number(this.#buffer.slice(0, colon));
      if (!Number.isInteger(length)) throw new SyntaxError("bad netstring from ctrl_tcp");
      // Lengths count bytes; payloads are ASCII JSON in practice.
      if (this.#buffer.length < colon + 1 + length + 1) return;
      const payload = this.#buffer.slice(colon + 1, colon + 1 + length);
      this.#buffer = this.#buffer.slice(colon + 1 + length + 1);
      try {
        this.#messages.push(JSON.parse(payload) as BaresipMessage);
      } catch {
        this.#messages.push({ unparsed: payload });
      }
      this.#wake();
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Every message received so far (responses and events). */
  get messages(): readonly BaresipMessage[] {
    return this.#messages;
  }

  /** Waits for a message matching `predicate` (already received ones count). */
  async waitFor(
    predicate: (message: BaresipMessage) => boolean,
    timeoutMs = 15_000,
  ): Promise<BaresipMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.#messages.find(predicate);
      if (found) return found;
      if (this.#closed) throw new Error("ctrl_tcp connection closed");
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no matching ctrl_tcp message; got ${JSON.stringify(this.#messages)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Waits for an event of `type` (e.g. `CALL_ESTABLISHED`, `CALL_CLOSED`). */
  waitForEvent(type: string, timeoutMs = 15_000): Promise<BaresipMessage> {
    return this.waitFor((m) => m["event"] === true && m["type"] === type, timeoutMs);
  }

  /** Sends a command (`dial`, `hangup`, `accept`, ...) and waits for its response. */
  async command(command: string, params = "", timeoutMs = 15_000): Promise<BaresipMessage> {
    const token = `t${++this.#token}`;
    const json = JSON.stringify({ command, params, token });
    const bytes = encoder.encode(json);
    const frame = new Uint8Array([...encoder.encode(`${bytes.length}:`), ...bytes, 0x2c]);
    let written = 0;
    while (written < frame.length) written += await this.#conn.write(frame.subarray(written));
    return await this.waitFor((m) => m["response"] === true && m["token"] === token, timeoutMs);
  }

  /** Dials `uri` (its `;transport=` removed, see {@link baresipDialUri}). */
  dial(uri: string, transport: "tcp" | "udp" = "tcp"): Promise<BaresipMessage> {
    return this.command("dial", baresipDialUri(uri, transport));
  }

  /** Hangs up the current call. */
  hangup(): Promise<BaresipMessage> {
    return this.command("hangup");
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    await this.#reading;
  }
}
