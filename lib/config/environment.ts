/**
 * The parts of the process environment that automatic configuration defaults depend on
 * (the state directory), injected so tests can pin them.
 * @module
 */

/** What automatic defaults may look at. */
export interface ConfigEnvironment {
  /** Effective user id, or `null` when unknown (no `--allow-sys`, or not POSIX). */
  readonly uid: number | null;
  /** Current directory, or `null` when unknown. */
  readonly cwd: string | null;
  /** An environment variable, or `undefined` when unset or not readable. */
  get(name: string): string | undefined;
}

/** The real environment; any value Deno's permissions hide is treated as unknown. */
export function systemEnvironment(): ConfigEnvironment {
  let uid: number | null = null;
  let cwd: string | null = null;
  try {
    uid = Deno.uid();
  } catch {
    uid = null;
  }
  try {
    cwd = Deno.cwd();
  } catch {
    cwd = null;
  }
  return {
    uid,
    cwd,
    get(name) {
      try {
        return Deno.env.get(name);
      } catch {
        return undefined;
      }
    },
  };
}

/** A fixed environment (tests, or embedding Conclave in another program). */
export function fixedEnvironment(
  vars: Readonly<Record<string, string>>,
  uid: number | null = 1000,
  cwd: string | null = "/",
): ConfigEnvironment {
  return { uid, cwd, get: (name) => vars[name] };
}

const nonEmptyAbsolute = (value: string | undefined): string | undefined =>
  value !== undefined && value.startsWith("/") ? value.replace(/\/+$/, "") || "/" : undefined;

/**
 * The state directory used when `state-directory` is empty, first match wins:
 * 1. `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`; first entry if several),
 * 2. `/var/lib/conclave` when running as root,
 * 3. `$XDG_STATE_HOME/conclave`,
 * 4. `$HOME/.local/state/conclave`,
 * 5. `<current directory>/.state`, and `/tmp/conclave` if even that is unknown.
 */
export function defaultStateDirectory(environment: ConfigEnvironment): string {
  const systemd = nonEmptyAbsolute(environment.get("STATE_DIRECTORY")?.split(":")[0]);
  if (systemd !== undefined) return systemd;
  if (environment.uid === 0) return "/var/lib/conclave";
  const xdg = nonEmptyAbsolute(environment.get("XDG_STATE_HOME"));
  if (xdg !== undefined) return `${xdg === "/" ? "" : xdg}/conclave`;
  const home = nonEmptyAbsolute(environment.get("HOME"));
  if (home !== undefined) return `${home === "/" ? "" : home}/.local/state/conclave`;
  if (environment.cwd !== null) return `${environment.cwd.replace(/\/+$/, "")}/.state`;
  return "/tmp/conclave";
}
