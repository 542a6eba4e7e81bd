/**
 * Loopback-only network namespaces for end-to-end tests with real SIP peers.
 *
 * A Deno test process cannot enter a namespace itself, so a scenario runs as a bash script
 * under `unshare -n -p -f --kill-child --mount-proc`: a fresh network namespace that only has
 * `lo` (brought up first), and a fresh PID namespace so that killing `unshare` takes every
 * process of the scenario with it (the bash script is PID 1 there; when it dies the kernel
 * kills the rest). Results come back through files in a temp directory (`$HARNESS_DIR`).
 *
 * Deno inside the namespace has no network: npm packages must already be in the cache
 * (`deno install` / any earlier run). {@link denoEnv} pins `DENO_DIR` to the cache this
 * process uses, so a script that changes `HOME` (linphonec needs that) still finds it, and
 * {@link denoRunCommand} adds `--cached-only` so a missing package fails at once with a clear
 * message instead of a DNS error.
 *
 * Also here: free-port picking and waiting for a port to listen, read from `/proc/net/*`,
 * which shows the sockets of the namespace the reading process is in.
 * @module
 */

/** Options of {@link runInLoopbackNamespace}. */
export interface NamespaceRunOptions {
  /** Bash script body; runs after `ip link set lo up; cd "$HARNESS_DIR"`. */
  readonly script: string;
  /** Extra environment (added to this process's environment and {@link denoEnv}). */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Safety net, not an assertion on speed: after this many milliseconds the whole namespace
   * is killed with SIGKILL and the result says `timedOut: true`. Default 120 000.
   */
  readonly timeoutMs?: number;
  /** Files written into the directory before the script starts (relative names). */
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
  /** Directory to use; by default a new temp directory is made (kept, for post-mortems). */
  readonly dir?: string;
}

/** Outcome of {@link runInLoopbackNamespace}. */
export interface NamespaceRunResult {
  /** Exit code of the script (137 or similar when killed). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The directory the script ran in (`$HARNESS_DIR`); result files are there. */
  readonly dir: string;
  /** True when the timeout fired and the namespace was killed. */
  readonly timedOut: boolean;
}

const decoder = new TextDecoder();

/** Quotes a string for bash (single quotes, `'` escaped). */
export function shellQuote(value: string): string {
  if (/^[\w@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replaceAll("'", `'"'"'`)}'`;
}

/** Joins an argv into one bash command line. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

let denoDirCache: string | undefined;

/** The Deno cache directory this process uses (`DENO_DIR`, else `deno info --json`). */
export async function resolveDenoDir(): Promise<string> {
  if (denoDirCache !== undefined) return denoDirCache;
  const fromEnv = Deno.env.get("DENO_DIR");
  if (fromEnv) {
    denoDirCache = fromEnv;
    return fromEnv;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const info = JSON.parse(decoder.decode(out.stdout)) as { denoDir?: string };
  if (!info.denoDir) throw new Error("deno info --json did not report denoDir");
  denoDirCache = info.denoDir;
  return info.denoDir;
}

/**
 * Environment a `deno run` inside the namespace needs: the same `DENO_DIR` as this process,
 * no update check (there is no network), no prompts, no colours in captured output.
 */
export async function denoEnv(): Promise<Record<string, string>> {
  return {
    DENO_DIR: await resolveDenoDir(),
    DENO_NO_UPDATE_CHECK: "1",
    DENO_NO_PROMPT: "1",
    NO_COLOR: "1",
  };
}

/** The repository root (where deno.json is), from this file's location. */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * A shell command line that runs a Deno module inside the namespace with the repository's
 * config and lock file, all permissions, `--unstable-net` and `--cached-only`.
 */
export function denoRunCommand(module: string, args: readonly string[] = []): string {
  return shellCommand([
    Deno.execPath(),
    "run",
    "--allow-all",
    "--unstable-net",
    "--cached-only",
    "--config",
    `${REPO_ROOT}/deno.json`,
    module,
    ...args,
  ]);
}

let availability: Promise<string | undefined> | undefined;

/**
 * Checks that `unshare -n -p -f --kill-child --mount-proc` works here (root or suitable
 * capabilities). Resolves to `undefined` when it does, else to the reason it does not.
 */
export function loopbackNamespaceProblem(): Promise<string | undefined> {
  availability ??= (async () => {
    try {
      const out = await new Deno.Command("unshare", {
        args: ["-n", "-p", "-f", "--kill-child", "--mount-proc", "bash", "-c", "ip link set lo up"],
        stdout: "null",
        stderr: "piped",
      }).output();
      return out.success ? undefined : `unshare failed: ${decoder.decode(out.stderr).trim()}`;
    } catch (error) {
      return `unshare unavailable: ${error instanceof Error ? error.message : String(error)}`;
    }
  })();
  return availability;
}

/**
 * Runs `script` with bash inside a new loopback-only network namespace (and PID namespace).
 * `$HARNESS_DIR` is the working directory; stdout/stderr are captured. The whole process
 * tree is SIGKILLed if it outlives `timeoutMs`.
 */
export async function runInLoopbackNamespace(
  options: NamespaceRunOptions,
): Promise<NamespaceRunResult> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "conclave-netns-" });
  for (const [name, content] of Object.entries(options.files ?? {})) {
    const path = `${dir}/${name}`;
    const parent = path.slice(0, path.lastIndexOf("/"));
    await Deno.mkdir(parent, { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
  }
  const scriptPath = `${dir}/.netns-script.sh`;
  await Deno.writeTextFile(
    scriptPath,
    `ip link set lo up || exit 97\ncd "$HARNESS_DIR" || exit 98\n${options.script}\n`,
  );
  const env = { ...await denoEnv(), ...options.env, HARNESS_DIR: dir };
  const child = new Deno.Command("unshare", {
    args: ["-n", "-p", "-f", "--kill-child", "--mount-proc", "bash", scriptPath],
    cwd: dir,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL"); // unshare ignores SIGTERM; --kill-child takes the tree down
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 120_000);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      dir,
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Transport of a port probe. */
export type PortProtocol = "tcp" | "udp";

/** Sockets bound in this network namespace, from `/proc/net/{tcp,udp}{,6}`. */
export async function boundPorts(protocol: PortProtocol): Promise<Set<number>> {
  const ports = new Set<number>();
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const state = fields[3];
      if (!local || !state) continue;
      // TCP: only LISTEN (0A) sockets; UDP: every bound socket (07 = unconnected).
      if (protocol === "tcp" && state !== "0A") continue;
      const port = parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
      if (Number.isFinite(port)) ports.add(port);
    }
  }
  return ports;
}

function tryBind(port: number, udp: boolean): boolean {
  try {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    listener.close();
  } catch {
    return false;
  }
  if (!udp) return true;
  try {
    const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" });
    socket.close();
    return true;
  } catch {
    return false;
  }
}

const handedOut = new Set<number>();

/**
 * Picks a base port such that `base .. base+count-1` are free on 127.0.0.1 for TCP and UDP
 * (UDP needs `--unstable-net`), and not handed out earlier by this process. Random in
 * 20000–59999, so parallel test files rarely race; SIPp media (`-mp`) wants count 4.
 */
export function freePorts(count = 1): number {
  for (let attempt = 0; attempt < 500; attempt++) {
    const base = 20000 + 2 * Math.floor(Math.random() * 20000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) {
      ok = !handedOut.has(p) && tryBind(p, true);
    }
    if (ok) {
      for (let p = base; p < base + count; p++) handedOut.add(p);
      return base;
    }
  }
  throw new Error(`no run of ${count} free ports found`);
}

/** One free port for TCP and UDP on 127.0.0.1 (see {@link freePorts}). */
export function freePort(): number {
  return freePorts(1);
}

/**
 * Waits until something listens on `port` (TCP LISTEN or a bound UDP socket) in this
 * namespace, polling `/proc/net`. Rejects after `timeoutMs` (a safety net, default 15 s).
 */
export async function waitForPort(
  port: number,
  protocol: PortProtocol = "tcp",
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await boundPorts(protocol)).has(port)) {
    if (Date.now() > deadline) throw new Error(`nothing listens on ${protocol}/${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Waits until the file at `path` exists and its text matches `pattern`; returns the match.
 * Rejects after `timeoutMs` (a safety net, default 20 s) with the file's tail.
 */
export async function waitForFileMatch(
  path: string,
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  for (;;) {
    try {
      text = await Deno.readTextFile(path);
    } catch {
      text = "";
    }
    const match = text.match(pattern);
    if (match) return match;
    if (Date.now() > deadline) {
      throw new Error(`${path} never matched ${pattern}; tail:\n${text.slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves after `ms` milliseconds (for driving real peers, never in unit tests). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True when `name` is an executable on PATH. */
export async function hasBinary(name: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("bash", {
      args: ["-c", `command -v ${shellQuote(name)}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** What a real-peer test needs from this machine. */
export interface PeerNeeds {
  /** A loopback-only network namespace (baresip/liblinphone bind every interface). */
  readonly namespace?: boolean;
  /** Programs on PATH. */
  readonly binaries?: readonly string[];
  /** Modules in /usr/lib/baresip/modules. */
  readonly baresipModules?: readonly string[];
  /** Shared libraries that must load (dlopen). */
  readonly libraries?: readonly string[];
  /** Other files, with what provides them. */
  readonly files?: readonly { readonly path: string; readonly from: string }[];
}

/** The needs of a real-peer test this machine does not meet (empty: all met). */
export async function peerProblems(needs: PeerNeeds): Promise<string[]> {
  const problems: string[] = [];
  if (needs.namespace) {
    const ns = await loopbackNamespaceProblem();
    if (ns) problems.push(ns);
  }
  for (const binary of needs.binaries ?? []) {
    if (!(await hasBinary(binary))) problems.push(`${binary} not installed`);
  }
  const exists = async (path: string) => {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  };
  for (const module of needs.baresipModules ?? []) {
    if (!(await exists(`/usr/lib/baresip/modules/${module}`))) {
      problems.push(`baresip module ${module} missing`);
    }
  }
  for (const library of needs.libraries ?? []) {
    try {
      Deno.dlopen(library, {}).close();
    } catch {
      problems.push(`${library} not installed`);
    }
  }
  for (const file of needs.files ?? []) {
    if (!(await exists(file.path))) problems.push(`${file.path} missing (${file.from})`);
  }
  return problems;
}
