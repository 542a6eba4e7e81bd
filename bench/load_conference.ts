/**
 * Load test with real participants (not a `deno bench` file: it takes minutes).
 *
 * Starts the server under test, then for each size N puts N SIPp callers into ONE conference:
 * 3 callers stream distinct PCMU tones (440, 1000, 1500 Hz), the others stream PCMU silence
 * (`uac_pcmu_rtp.xml`, `<exec rtp_stream>` of raw mu-law files). Once every caller has its 200
 * it samples the server process: CPU as % of one core from `/proc/<pid>/stat` (utime+stime
 * delta over the window / CLK_TCK) and RSS from `/proc/<pid>/status` (VmRSS), and prints them
 * per participant next to the idle baseline measured in the same run.
 *
 *   deno run -A --unstable-net bench/load_conference.ts \
 *     --server "deno run -A --unstable-net main.ts --config conf.ini" \
 *     --target 127.0.0.1:5060 --uri "sip:room@127.0.0.1:5060" [--sizes 100,200,400]
 *     [--transport t1|u1] [--rate 50] [--settle 3] [--measure 10] [--no-netns] [--json out.json]
 *
 * The server command runs with `bash -c "exec ..."` from the repository root; the measured
 * process is whoever listens on the target port (found through /proc/net and /proc/<pid>/fd),
 * so a wrapper (deno task) is fine. By default everything runs inside a loopback-only
 * namespace (re-executing this script under `unshare`), so the server must be configured for
 * 127.0.0.1 and needs no network beyond it.
 *
 * Conclave's `max-participants` defaults to 100: raise it for N > 100, or the extra callers
 * get 486 (reported with a warning). Results (2 shared cores, interleaved runs of one
 * session, `media-socket=ffi` vs `deno`; ranges over runs, see bench/README.md): ffi
 * 0.19–0.33 / 0.13–0.23 / 0.13–0.14 % of a core and 216–263 / 263–457 / 276–288 KiB RSS per
 * participant at N = 100 / 200 / 400 (with `--v8-flags=--max-semi-space-size=8`, as
 * an earlier `deno task start` ran it: 0.19–0.27 / 0.16–0.17 / 0.12 % and 216–220 / 178–185 /
 * 185–235 KiB; adding `--memory-saver-mode`, as `deno task start` now does, brought RSS to
 * 116–141 / 39–46 / 32–55 KiB, see bench/README.md); deno 0.31–0.55 / 0.23–0.33 / 0.20–0.23 % and
 * 411–452 / 483–504 / 396–436 KiB. `sipp -sn uas -rtp_echo` as a stand-in target: 0.03 % and
 * ~4 KiB.
 *
 * Memory composition: after each window the script splits the server's RSS from
 * `/proc/<pid>/status` and `/proc/<pid>/smaps` (RssAnon/RssFile; glibc malloc's brk heap and
 * per-thread arenas vs the other anonymous mappings, i.e. V8's pages and stacks). With the
 * server started as `deno run --preload bench/memory_probe.ts ...` and `CONCLAVE_MEMORY_LOG=F`
 * in its environment, `--memory-log F` adds `Deno.memoryUsage()` and V8's heap spaces; with
 * `--v8-flags=--expose-gc` too, `--force-gc` makes the server do a full GC after each window
 * and prints the live heap (this changes what the next size starts from).
 *
 * SIPp 3.6 notes: all calls of one SIPp process send RTP from the same media socket (-mp), so
 * the silent callers share one source address (distinct SSRCs); the server tells them apart
 * by its own receiving ports. The callers' hold time covers ramp-up + settle + window.
 * With one shared `audio-port` (`media-port-sharing`), SIPp's single source is signalled by
 * every call and split by SSRC (`lib/media/shared_udp_port.ts`); the printed "kernel" figure
 * is the server's stime share, where the shared port's batching shows (bench/README.md).
 * @module
 */

import {
  boundPorts,
  delay,
  denoRunCommand,
  REPO_ROOT,
  runInLoopbackNamespace,
  waitForPort,
} from "../tests/_helpers/netns.ts";
import {
  scenarioPath,
  type SippProcess,
  startSipp,
  writeUlawSilence,
  writeUlawTone,
} from "../tests/_helpers/sipp.ts";

/** Command-line settings. */
interface LoadOptions {
  readonly server: string;
  readonly target: string;
  readonly uri: string;
  readonly sizes: readonly number[];
  readonly transport: "t1" | "u1";
  readonly rate: number;
  readonly settleSec: number;
  readonly measureSec: number;
  readonly netns: boolean;
  readonly json: string | undefined;
  /** `CONCLAVE_MEMORY_LOG` file of the server's `bench/memory_probe.ts`, read after each window. */
  readonly memoryLog: string | undefined;
  /** After each window, SIGUSR2 the server for a full GC (probe + --expose-gc) and log it. */
  readonly forceGc: boolean;
}

function parseOptions(args: readonly string[]): LoadOptions {
  const get = (name: string): string | undefined => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const server = get("server");
  const target = get("target");
  const uri = get("uri");
  if (!server || !target || !uri) {
    console.error(
      "usage: load_conference.ts --server CMD --target HOST:PORT --uri SIP_URI " +
        "[--sizes 100,200,400] [--transport t1|u1] [--rate 50] [--settle 3] [--measure 10] " +
        "[--no-netns] [--json FILE] [--memory-log FILE [--force-gc]]",
    );
    Deno.exit(2);
  }
  const transport = get("transport") ?? "t1";
  if (transport !== "t1" && transport !== "u1") throw new Error("--transport is t1 or u1");
  const sizes = (get("sizes") ?? "100,200,400").split(",").map((s) => parseInt(s, 10));
  if (sizes.some((n) => !Number.isInteger(n) || n < 4)) throw new Error("sizes must be >= 4");
  return {
    server,
    target,
    uri,
    sizes,
    transport,
    rate: Number(get("rate") ?? 50),
    settleSec: Number(get("settle") ?? 3),
    measureSec: Number(get("measure") ?? 10),
    netns: !args.includes("--no-netns"),
    json: get("json"),
    memoryLog: get("memory-log"),
    forceGc: args.includes("--force-gc"),
  };
}

/** CPU ticks (utime + stime) and RSS of a process. */
export interface ProcessSample {
  readonly ticks: number;
  /** Of {@link ticks}, those spent in the kernel (stime). */
  readonly systemTicks?: number;
  readonly rssKiB: number;
  readonly threads: number;
  readonly at: number;
}

/** Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS, Threads). */
export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may contain spaces) start at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]); // field 14
  const stime = Number(fields[12]); // field 15
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rss = Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? NaN);
  const threads = Number(status.match(/^Threads:\s+(\d+)/m)?.[1] ?? NaN);
  return { ticks: utime + stime, systemTicks: stime, rssKiB: rss, threads, at: performance.now() };
}

/** Where a process's resident memory sits, from `/proc/<pid>/status` and `/proc/<pid>/smaps`. */
export interface MemoryComposition {
  /** Anonymous resident memory (RssAnon): heaps, stacks, V8 pages, malloc arenas. */
  readonly anonKiB: number;
  /** File-backed resident memory (RssFile): the executable, shared libraries. */
  readonly fileKiB: number;
  /** glibc malloc's main arena (the `[heap]` brk area), resident. */
  readonly brkHeapKiB: number;
  /** glibc malloc's per-thread arenas (64 MiB-aligned anonymous reservations), resident. */
  readonly arenasKiB: number;
  /** Number of per-thread malloc arenas found. */
  readonly arenas: number;
  /** Other anonymous resident memory: V8's heap pages, code space, thread stacks, Rust mmaps. */
  readonly otherAnonKiB: number;
}

const ARENA_SIZE = 64 * 1024 * 1024;

/**
 * Splits the resident memory of `pid` into glibc malloc (brk heap and per-thread arenas, which
 * glibc reserves as 64 MiB-aligned 64 MiB mappings: an rw part and a PROT_NONE rest), the
 * other anonymous mappings (V8's heap and code pages, stacks) and file-backed pages.
 */
export async function memoryComposition(pid: number): Promise<MemoryComposition> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  const smaps = await Deno.readTextFile(`/proc/${pid}/smaps`);
  interface Mapping {
    start: number;
    end: number;
    perms: string;
    path: string;
    rss: number;
  }
  const maps: Mapping[] = [];
  for (const line of smaps.split("\n")) {
    const header = line.match(/^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$/);
    if (header) {
      maps.push({
        start: parseInt(header[1]!, 16),
        end: parseInt(header[2]!, 16),
        perms: header[3]!,
        path: header[4]!.trim(),
        rss: 0,
      });
      continue;
    }
    const rss = line.match(/^Rss:\s+(\d+) kB/);
    if (rss && maps.length > 0) maps[maps.length - 1]!.rss = Number(rss[1]);
  }
  let brk = 0, arenasKiB = 0, arenas = 0, otherAnon = 0;
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i]!;
    if (m.path === "[heap]") {
      brk += m.rss;
      continue;
    }
    if (m.path !== "") continue;
    const next = maps[i + 1];
    const reservationEnd = next && next.path === "" && next.start === m.end &&
        next.perms.startsWith("---")
      ? next.end
      : m.end;
    if (
      m.start % ARENA_SIZE === 0 && m.perms.startsWith("rw") &&
      reservationEnd - m.start === ARENA_SIZE
    ) {
      arenasKiB += m.rss;
      arenas++;
      if (reservationEnd !== m.end) i++;
      continue;
    }
    otherAnon += m.rss;
  }
  return {
    anonKiB: field("RssAnon"),
    fileKiB: field("RssFile"),
    brkHeapKiB: brk,
    arenasKiB,
    arenas,
    otherAnonKiB: otherAnon,
  };
}

/** Last line of the server's `bench/memory_probe.ts` log, if it writes one. */
async function lastProbe(
  path: string | undefined,
  afterGc = false,
): Promise<Record<string, number> | undefined> {
  if (!path) return undefined;
  const text = await Deno.readTextFile(path).catch(() => "");
  const lines = text.trim().split("\n").filter((l) => !afterGc || l.includes('"gc":true'));
  try {
    return JSON.parse(lines[lines.length - 1]!) as Record<string, number>;
  } catch {
    return undefined;
  }
}

let clockTicks: number | undefined;

async function clkTck(): Promise<number> {
  if (clockTicks !== undefined) return clockTicks;
  const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
  clockTicks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  return clockTicks;
}

/** % of one core used between two samples. */
export async function cpuPercent(a: ProcessSample, b: ProcessSample): Promise<number> {
  const seconds = (b.at - a.at) / 1000;
  return seconds > 0 ? ((b.ticks - a.ticks) / (await clkTck())) / seconds * 100 : 0;
}

/** The pid owning the socket that listens (TCP) or is bound (UDP) on `port`. */
export async function pidOwningPort(port: number, protocol: "tcp" | "udp"): Promise<number> {
  const inodes = new Set<string>();
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    const text = await Deno.readTextFile(file).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1];
      if (!local || (protocol === "tcp" && f[3] !== "0A")) continue;
      if (parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port && f[9]) inodes.add(f[9]);
    }
  }
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      for await (const fd of Deno.readDir(`/proc/${entry.name}/fd`)) {
        const link = await Deno.readLink(`/proc/${entry.name}/fd/${fd.name}`).catch(() => "");
        const inode = link.match(/^socket:\[(\d+)\]$/)?.[1];
        if (inode && inodes.has(inode)) return Number(entry.name);
      }
    } catch {
      // process gone or not ours to read
    }
  }
  throw new Error(`no process owns ${protocol}/${port}`);
}

/** Figures for one conference size. */
interface SizeResult {
  readonly participants: number;
  readonly joined: number;
  readonly failedCallers: number;
  readonly cpuPercent: number;
  /** Of {@link cpuPercent}, the kernel's part (stime: system calls, packet delivery). */
  readonly systemCpuPercent: number;
  readonly cpuPerParticipant: number;
  /** (CPU − idle CPU) / N. */
  readonly cpuPerParticipantOverIdle: number;
  readonly rssMiB: number;
  readonly rssPerParticipantKiB: number;
  readonly threads: number;
  readonly callerCpuPercent: number;
  /** Where the RSS sits at the end of the window (KiB). */
  readonly memory: MemoryComposition;
  /** `Deno.memoryUsage()` of the server at the end of the window, if probed (bytes). */
  readonly probe: Record<string, number> | undefined;
  /** The same after a forced full GC (`--force-gc`): the live heap. */
  readonly probeAfterGc: Record<string, number> | undefined;
}

async function countJoined(callers: readonly SippProcess[]): Promise<number> {
  let joined = 0;
  for (const caller of callers) {
    const logs = await Deno.readTextFile(caller.files.logs).catch(() => "");
    joined += logs.match(/^JOINED /gm)?.length ?? 0;
  }
  return joined;
}

async function sumCallerTicks(callers: readonly SippProcess[]): Promise<ProcessSample> {
  let ticks = 0;
  for (const caller of callers) {
    ticks += await sampleProcess(caller.pid).then((s) => s.ticks).catch(() => 0);
  }
  return { ticks, rssKiB: 0, threads: 0, at: performance.now() };
}

async function runSize(
  options: LoadOptions,
  serverPid: number,
  baseline: ProcessSample,
  idleCpu: number,
  n: number,
  work: string,
): Promise<SizeResult> {
  const rampSec = Math.ceil(n / options.rate) + 1;
  const holdSec = rampSec + options.settleSec + options.measureSec + 3;
  const common = {
    scenario: scenarioPath("uac_pcmu_rtp"),
    remote: options.target,
    transport: options.transport,
    keys: { conf_uri: options.uri },
    pauseMs: holdSec * 1000,
    timeoutSec: holdSec + rampSec + 30,
  } as const;
  const callers: SippProcess[] = [];
  for (const hz of [440, 1000, 1500]) {
    callers.push(
      await startSipp({
        ...common,
        dir: `${work}/n${n}/tone${hz}`,
        name: `tone${hz}`,
        rtpFile: `${work}/tone${hz}.ulaw`,
      }),
    );
  }
  callers.push(
    await startSipp({
      ...common,
      dir: `${work}/n${n}/silent`,
      name: "silent",
      rtpFile: `${work}/silence.ulaw`,
      calls: n - 3,
      rate: options.rate,
      limit: n,
    }),
  );
  const deadline = performance.now() + (rampSec + 20) * 1000;
  let joined = 0;
  while ((joined = await countJoined(callers)) < n && performance.now() < deadline) {
    await delay(200);
  }
  await delay(options.settleSec * 1000);
  const before = await sampleProcess(serverPid);
  const callersBefore = await sumCallerTicks(callers);
  await delay(options.measureSec * 1000);
  const after = await sampleProcess(serverPid);
  const callersAfter = await sumCallerTicks(callers);
  const memory = await memoryComposition(serverPid);
  const probe = await lastProbe(options.memoryLog);
  let probeAfterGc: Record<string, number> | undefined;
  if (options.forceGc) {
    // The probe (run with --expose-gc) answers SIGUSR2 with a full GC and a "gc" line.
    Deno.kill(serverPid, "SIGUSR2");
    await delay(1500);
    probeAfterGc = await lastProbe(options.memoryLog, true);
  }
  const results = await Promise.all(callers.map((c) => c.result));
  const cpu = await cpuPercent(before, after);
  return {
    participants: n,
    joined,
    failedCallers: results.filter((r) => !r.success).length,
    cpuPercent: cpu,
    systemCpuPercent: await cpuPercent(
      { ...before, ticks: before.systemTicks ?? 0 },
      { ...after, ticks: after.systemTicks ?? 0 },
    ),
    cpuPerParticipant: cpu / n,
    cpuPerParticipantOverIdle: (cpu - idleCpu) / n,
    rssMiB: after.rssKiB / 1024,
    rssPerParticipantKiB: (after.rssKiB - baseline.rssKiB) / n,
    threads: after.threads,
    callerCpuPercent: await cpuPercent(callersBefore, callersAfter),
    memory,
    probe,
    probeAfterGc,
  };
}

function describeMemory(m: MemoryComposition, probe: Record<string, number> | undefined): string {
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const v8 = probe
    ? `; V8 heapTotal ${mib(probe.heapTotal! / 1024)} used ${mib(probe.heapUsed! / 1024)} ` +
      `external ${mib(probe.external! / 1024)}; spaces (size/used MiB) ` +
      ["new_space", "old_space", "code_space", "large_object_space", "new_large_object_space"]
        .map((s) =>
          `${s.replace("_space", "")} ${mib((probe[`${s}_size`] ?? 0) / 1024)}/${
            mib((probe[`${s}_used`] ?? 0) / 1024)
          }`
        ).join(" ")
    : "";
  return `anon ${mib(m.anonKiB)} MiB (malloc brk ${mib(m.brkHeapKiB)} + ${m.arenas} arenas ` +
    `${mib(m.arenasKiB)}, other anon ${mib(m.otherAnonKiB)}), file ${mib(m.fileKiB)}${v8}`;
}

async function main(options: LoadOptions): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "conclave-load-" });
  for (const hz of [440, 1000, 1500]) await writeUlawTone(`${work}/tone${hz}.ulaw`, hz, 30);
  await writeUlawSilence(`${work}/silence.ulaw`, 30);
  const [host, portText] = options.target.split(":");
  const port = Number(portText);
  if (host !== "127.0.0.1" || !Number.isInteger(port)) throw new Error("--target 127.0.0.1:PORT");
  const protocol = options.transport === "u1" ? "udp" : "tcp";
  const server = new Deno.Command("bash", {
    args: ["-c", `exec ${options.server}`],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const serverOutput = server.output();
  try {
    await waitForPort(port, protocol, 60_000);
    const serverPid = await pidOwningPort(port, protocol).catch(() => server.pid);
    const idleStart = await sampleProcess(serverPid);
    await delay(options.measureSec * 1000);
    const idleEnd = await sampleProcess(serverPid);
    const idleCpu = await cpuPercent(idleStart, idleEnd);
    const idleMemory = await memoryComposition(serverPid);
    const idleProbe = await lastProbe(options.memoryLog);
    console.log(`idle memory: ${describeMemory(idleMemory, idleProbe)}`);
    console.log(
      `server pid ${serverPid}: idle ${idleCpu.toFixed(2)} % of a core, ` +
        `RSS ${(idleEnd.rssKiB / 1024).toFixed(1)} MiB (baseline); work dir ${work}`,
    );
    const rows: SizeResult[] = [];
    for (const n of options.sizes) {
      const row = await runSize(options, serverPid, idleEnd, idleCpu, n, work);
      rows.push(row);
      if (row.joined < n || row.failedCallers > 0) {
        console.warn(
          `!!! N=${n}: only ${row.joined} callers got their 200 (failed SIPp runs: ` +
            `${row.failedCallers}); see ${work}/n${n}/*/*.errors.log ` +
            `(a server max-participants below N answers 486)`,
        );
      }
      console.log(
        `N=${n}: joined ${row.joined}/${n}, failed callers ${row.failedCallers}, ` +
          `server ${row.cpuPercent.toFixed(1)} % of a core ` +
          `(kernel ${row.systemCpuPercent.toFixed(1)} %) = ` +
          `${row.cpuPerParticipant.toFixed(3)} %/participant ` +
          `(${row.cpuPerParticipantOverIdle.toFixed(3)} over idle); ` +
          `RSS ${row.rssMiB.toFixed(1)} MiB = ` +
          `${row.rssPerParticipantKiB.toFixed(1)} KiB/participant over baseline; ` +
          `threads ${row.threads}; SIPp callers ${row.callerCpuPercent.toFixed(1)} %`,
      );
      console.log(`N=${n} memory: ${describeMemory(row.memory, row.probe)}`);
      if (row.probeAfterGc) {
        const live = row.probeAfterGc;
        console.log(
          `N=${n} after a full GC: heapUsed ${(live.heapUsed! / 1048576).toFixed(1)} MiB, ` +
            `external ${(live.external! / 1048576).toFixed(1)} MiB, ` +
            `rss ${(live.rss! / 1048576).toFixed(1)} MiB`,
        );
      }
      // Let the previous conference drain (BYEs, ports released) before the next size.
      await delay(3000);
      if (!(await boundPorts(protocol)).has(port)) throw new Error("server stopped listening");
    }
    const table = [
      [
        "participants",
        "server CPU %",
        "CPU %/participant",
        "over idle",
        "RSS MiB",
        "KiB/participant",
      ],
      ["idle (base)", idleCpu.toFixed(2), "", "", (idleEnd.rssKiB / 1024).toFixed(1), ""],
      ...rows.map((r) => [
        String(r.participants),
        r.cpuPercent.toFixed(1),
        r.cpuPerParticipant.toFixed(3),
        r.cpuPerParticipantOverIdle.toFixed(3),
        r.rssMiB.toFixed(1),
        r.rssPerParticipantKiB.toFixed(1),
      ]),
    ];
    const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
    console.log("");
    for (const row of table) {
      console.log(row.map((cell, c) => cell.padStart(widths[c]!)).join(" | "));
    }
    if (options.json) {
      await Deno.writeTextFile(
        options.json,
        JSON.stringify(
          { idleCpuPercent: idleCpu, idleRssKiB: idleEnd.rssKiB, idleMemory, idleProbe, rows },
          null,
          2,
        ),
      );
    }
  } finally {
    try {
      server.kill("SIGTERM");
    } catch {
      // already exited
    }
    const timer = setTimeout(() => {
      try {
        server.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, 5000);
    await serverOutput;
    clearTimeout(timer);
  }
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  if (options.netns && Deno.env.get("CONCLAVE_LOAD_IN_NETNS") !== "1") {
    const self = new URL(import.meta.url).pathname;
    const run = await runInLoopbackNamespace({
      script: denoRunCommand(self, [...Deno.args]) + " 2>&1",
      env: { CONCLAVE_LOAD_IN_NETNS: "1" },
      timeoutMs: 60 * 60 * 1000,
    });
    console.log(run.stdout);
    if (run.stderr) console.error(run.stderr);
    if (run.timedOut) console.error("load test killed by its one-hour safety timeout");
    Deno.exit(run.code);
  }
  await main(options);
}
