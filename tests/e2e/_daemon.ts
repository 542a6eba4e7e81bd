/**
 * The real Conclave daemon as a subprocess (`deno run -A --unstable-net main.ts --config …`)
 * for end-to-end tests: a config file in a temporary directory, a fixed SIP/TCP port on
 * 127.0.0.1, its stderr log collected line by line, readiness detected from the
 * `[server] ready` line, and SIGKILL / SIGTERM on demand.
 * @module
 */

const root = new URL("../..", import.meta.url).pathname;
const mainTs = new URL("../../main.ts", import.meta.url).pathname;

/** A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). */
export function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Writes a config file for a daemon on `port` with its state in `stateDirectory`. */
export async function writeConfig(
  path: string,
  port: number,
  stateDirectory: string,
  extra: readonly string[] = [],
): Promise<void> {
  const lines = [
    "[conference-server]",
    `transport=sip:127.0.0.1:${port};transport=tcp`,
    `state-directory=${stateDirectory}`,
    "audio-port=0",
    "video-port=0",
    "no-rtp-timeout=0",
    ...extra,
    "[log]",
    "level=info",
  ];
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

/** Output of a daemon run to its exit. */
export interface DaemonExit {
  readonly code: number;
  readonly signal: Deno.Signal | null;
  readonly stderr: string;
  readonly stdout: string;
}

/** Runs the daemon until it exits by itself (start failures). */
export async function runUntilExit(configPath: string): Promise<DaemonExit> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", mainTs, "--config", configPath],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    signal: output.signal,
    stderr: decoder.decode(output.stderr),
    stdout: decoder.decode(output.stdout),
  };
}

/** A running daemon. */
export class Daemon {
  /** Milliseconds from spawn to the `[server] ready` log line. */
  readonly readyMs: number;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[];
  readonly #waiters: Array<() => void>;
  readonly #pump: Promise<void>;
  readonly #stdout: Promise<string>;
  #status: Deno.CommandStatus | undefined;
  #ended = false;

  private constructor(
    child: Deno.ChildProcess,
    lines: string[],
    waiters: Array<() => void>,
    pump: Promise<void>,
    stdout: Promise<string>,
    readyMs: number,
  ) {
    this.#child = child;
    this.#lines = lines;
    this.#waiters = waiters;
    this.#pump = pump;
    this.#stdout = stdout;
    this.readyMs = readyMs;
  }

  /** Spawns `main.ts --config configPath` and resolves once it logged `[server] ready`. */
  static async start(configPath: string): Promise<Daemon> {
    const started = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", mainTs, "--config", configPath],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    const lines: string[] = [];
    const waiters: Array<() => void> = [];
    let ended = false;
    const wake = () => {
      for (const w of waiters.splice(0)) w();
    };
    const pump = (async () => {
      let partial = "";
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        partial += value;
        const parts = partial.split("\n");
        partial = parts.pop() ?? "";
        lines.push(...parts);
        wake();
      }
      if (partial !== "") lines.push(partial);
      ended = true;
      wake();
    })();
    // Wait for readiness or exit.
    for (;;) {
      if (lines.some((l) => l.includes("[server] ready"))) break;
      if (ended) {
        const status = await child.status;
        await stdout;
        throw new Error(
          `daemon exited (code ${status.code}) before ready:\n${lines.join("\n")}`,
        );
      }
      await new Promise<void>((r) => waiters.push(r));
    }
    const readyMs = performance.now() - started;
    const daemon = new Daemon(child, lines, waiters, pump, stdout, readyMs);
    // Reading on: keep the pipe drained and let waitForLog() see later lines.
    void pump.then(() => {
      daemon.#ended = true;
      wake();
    });
    return daemon;
  }

  /** Every stderr line so far. */
  get log(): readonly string[] {
    return this.#lines;
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Lines containing `text`. */
  matching(text: string): string[] {
    return this.#lines.filter((l) => l.includes(text));
  }

  /** Resolves with the first line (from index `from`) containing `text`. */
  async waitForLog(text: string, from = 0): Promise<string> {
    for (;;) {
      const found = this.#lines.slice(from).find((l) => l.includes(text));
      if (found !== undefined) return found;
      if (this.#ended) {
        throw new Error(`daemon ended without logging "${text}":\n${this.#lines.join("\n")}`);
      }
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** True until the process has been reaped. */
  get running(): boolean {
    return this.#status === undefined;
  }

  /** Sends `signal` and waits for the process to exit; returns its status. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (this.#status) return this.#status;
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
    const status = await this.#child.status;
    this.#status = status;
    await this.#pump;
    await this.#stdout;
    return status;
  }
}
