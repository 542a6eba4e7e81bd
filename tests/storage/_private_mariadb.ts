/**
 * A private MariaDB server in a temporary data directory on its own port, which a test may
 * SIGKILL and restart without touching the shared server on 3306.
 * @module
 */

const INSTALL_DB = "mariadb-install-db";
const SERVER = "mariadbd";

/** True when the MariaDB server binaries are installed. */
export function privateMariadbAvailable(): boolean {
  for (const name of [INSTALL_DB, SERVER]) {
    const found = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"].some((dir) => {
      try {
        return Deno.statSync(`${dir}/${name}`).isFile;
      } catch {
        return false;
      }
    });
    if (!found) return false;
  }
  return true;
}

/** One private mariadbd. */
export class PrivateMariadb {
  readonly dataDir: string;
  readonly port: number;
  #child: Deno.ChildProcess | null = null;
  #drain: Promise<void> | null = null;

  private constructor(dataDir: string, port: number) {
    this.dataDir = dataDir;
    this.port = port;
  }

  /** Creates and initializes a data directory (root with an empty password over TCP). */
  static async install(port: number): Promise<PrivateMariadb> {
    const dataDir = await Deno.makeTempDir({ prefix: "conclave_mariadb_" });
    const output = await new Deno.Command(INSTALL_DB, {
      args: [
        "--no-defaults",
        "--user=root",
        `--datadir=${dataDir}`,
        // Its own temporary directory: bootstraps running at once must not share /tmp's.
        `--tmpdir=${dataDir}`,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      await Deno.remove(dataDir, { recursive: true }).catch(() => undefined);
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      throw new Error(`${INSTALL_DB} failed:\n${text.slice(-2000)}`);
    }
    return new PrivateMariadb(dataDir, port);
  }

  /** Starts the server and resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.#child !== null) throw new Error("already running");
    const child = new Deno.Command(SERVER, {
      args: [
        "--no-defaults",
        "--user=root",
        `--datadir=${this.dataDir}`,
        `--tmpdir=${this.dataDir}`,
        `--socket=${this.dataDir}/s.sock`,
        "--bind-address=127.0.0.1",
        `--port=${this.port}`,
        "--skip-log-bin",
        "--innodb-buffer-pool-size=32M",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    let ready = false;
    while (!ready) {
      const { value, done } = await lines.read();
      if (done) break;
      log += value;
      if (log.includes("ready for connections")) ready = true;
    }
    if (!ready) {
      await child.status;
      this.#child = null;
      throw new Error(`${SERVER} did not start:\n${log.slice(-2000)}`);
    }
    // Keep reading so the server never blocks on a full pipe; ends when the process dies.
    this.#drain = (async () => {
      for (;;) {
        const { done } = await lines.read();
        if (done) return;
      }
    })();
  }

  /** SIGKILLs the server (no clean shutdown) and waits for it to be gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    try {
      child.kill("SIGKILL");
    } catch {
      // already dead
    }
    await child.status;
    await this.#drain;
    this.#drain = null;
  }

  /** Kills the server if running and deletes the data directory. */
  async dispose(): Promise<void> {
    await this.kill();
    await Deno.remove(this.dataDir, { recursive: true }).catch(() => undefined);
  }
}
