/**
 * Conclave's command line: parses flags, loads the configuration, starts the {@link Server}
 * and stops it cleanly on SIGINT/SIGTERM. Nothing else lives here.
 *
 * Exit codes: 0 success (or clean shutdown), 1 invalid configuration or start failure,
 * 2 bad command line.
 * @module
 */

import { parseArgs } from "node:util";
import {
  ConfigError,
  type ConfigWarning,
  DEFAULT_CONFIG_PATH,
  formatConfigProblem,
  formatEffectiveConfig,
  loadConfig,
  type LoadResult,
} from "./lib/config/config.ts";
import { createLogger, setLogLevel } from "./lib/config/log.ts";
import { VERSION } from "./lib/config/version.ts";
import { Server } from "./lib/server.ts";

/** Text printed by `--help`. */
export const USAGE = `Usage: conclave [options]

Conclave is a SIP conference server (RFC 4353 focus) for audio/video conferences and
Linphone group chat.

Options:
  --config FILE    configuration file (default: ${DEFAULT_CONFIG_PATH} if it exists,
                   else the embedded defaults: SIP/TCP on 127.0.0.1:6064, SQLite storage)
  --debug          log at debug level (overrides [log] level)
  --check-config   validate the configuration, print the effective configuration, exit 0/1
  --version        print the version and exit
  --help           print this help and exit

Every configuration key is documented in conference.conf.example.
Exit codes: 0 ok, 1 invalid configuration or failure to start, 2 bad command line.
`;

const encoder = new TextEncoder();

function writeOut(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

function writeErr(text: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(text));
  } catch {
    // stderr closed: nothing left to report to.
  }
}

function printWarnings(warnings: readonly ConfigWarning[]): void {
  for (const warning of warnings) writeErr(`warning: ${formatConfigProblem(warning)}\n`);
}

/** Runs the CLI with `args` (without the program name); resolves to the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args: [...args],
      options: {
        config: { type: "string" },
        debug: { type: "boolean", default: false },
        "check-config": { type: "boolean", default: false },
        version: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    writeErr(`conclave: ${(error as Error).message}\nTry 'conclave --help'.\n`);
    return 2;
  }

  if (flags.help) {
    writeOut(USAGE);
    return 0;
  }
  if (flags.version) {
    writeOut(`conclave ${VERSION}\n`);
    return 0;
  }

  let loaded: LoadResult;
  try {
    loaded = await loadConfig(flags.config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const all = [
      ...error.problems.map((problem) => ({ problem, label: "error" })),
      ...error.warnings.map((problem) => ({ problem, label: "warning" })),
    ].sort((a, b) => (a.problem.line ?? Infinity) - (b.problem.line ?? Infinity));
    writeErr(`conclave: invalid configuration, not starting:\n`);
    for (const { problem, label } of all) writeErr(`${label}: ${formatConfigProblem(problem)}\n`);
    return 1;
  }
  const { config, warnings, source } = loaded;
  const sourceName = source ?? "embedded defaults";

  if (flags["check-config"]) {
    printWarnings(warnings);
    writeOut(`# Read from: ${sourceName}\n${formatEffectiveConfig(config)}`);
    writeErr(`conclave: configuration OK (${sourceName})\n`);
    return 0;
  }

  setLogLevel(flags.debug ? "debug" : config.log.level);
  const log = createLogger("main");
  log.info(`conclave ${VERSION} starting`, {
    config: sourceName,
    stateDirectory: config.conferenceServer.stateDirectory,
  });
  for (const warning of warnings) log.warn(formatConfigProblem(warning));

  const server = new Server(config);
  const { promise: stopped, resolve } = Promise.withResolvers<number>();
  let stopping = false;
  let stoppingSince = 0;
  const handlers = new Map<Deno.Signal, () => void>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      if (stopping) {
        // `deno task` and a terminal both deliver Ctrl-C: a duplicate within a second is the
        // same request; a later one means the operator insists.
        if (performance.now() - stoppingSince < 1000) return;
        log.warn(`second ${signal} while stopping: exiting now`);
        Deno.exit(1);
      }
      stopping = true;
      stoppingSince = performance.now();
      log.info(`${signal} received, stopping`);
      server.stop().then(
        () => resolve(0),
        (error) => {
          log.error("error while stopping", { error });
          resolve(1);
        },
      );
    };
    handlers.set(signal, handler);
    Deno.addSignalListener(signal, handler);
  }
  const removeHandlers = () => {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  };

  try {
    await server.start();
  } catch (error) {
    log.error("failed to start", { error });
    removeHandlers();
    await server.stop().catch(() => {});
    return 1;
  }
  const code = await stopped;
  removeHandlers();
  log.info("stopped", { exitCode: code });
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
