/**
 * Helpers for the registrar tests: the shared Redis (127.0.0.1:6379, nothing kept on disk),
 * skipped loudly when unreachable unless CONCLAVE_REQUIRE_SERVICES=1 (as the storage tests
 * do); a private redis-server on its own port that a test may SIGKILL and restart; unique
 * address-of-record names so that concurrent runs never touch each other's keys.
 * @module
 */

import { createClient } from "redis";
import { REQUIRE_SERVICES } from "../storage/_support.ts";

/** The shared Redis. */
export const SHARED_REDIS = { host: "127.0.0.1", port: 6379, password: "", database: 0 };

function newRawClient(server: { host: string; port: number }) {
  return createClient({
    socket: { host: server.host, port: server.port, reconnectStrategy: false },
    RESP: 2,
  });
}

/** A raw client as a Flexisip proxy or an operator would use it. */
export type RawRedis = ReturnType<typeof newRawClient>;

async function sharedRedisReachable(): Promise<string | null> {
  const client = createClient({
    socket: { host: SHARED_REDIS.host, port: SHARED_REDIS.port, reconnectStrategy: false },
    RESP: 2,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
    client.destroy();
    return null;
  } catch (error) {
    try {
      client.destroy();
    } catch {
      // not open
    }
    return error instanceof Error ? error.message : String(error);
  }
}

const unreachableReason = await sharedRedisReachable();

/**
 * `ignore` flag for tests needing the shared Redis: set (with a loud warning) when it is
 * unreachable and CONCLAVE_REQUIRE_SERVICES is not 1.
 */
export function ignoreWithoutRedis(file: string): boolean {
  if (unreachableReason === null || REQUIRE_SERVICES) return false;
  console.error(
    `\n!!!!! WARNING: Redis at 127.0.0.1:6379 is unreachable (${unreachableReason}); ` +
      `the Redis tests of ${file} are IGNORED. Set CONCLAVE_REQUIRE_SERVICES=1 to fail instead.\n`,
  );
  return true;
}

/** True when redis-server is installed (for the private-server tests). */
export function redisServerInstalled(): boolean {
  return ["/usr/bin", "/usr/local/bin", "/usr/sbin"].some((dir) => {
    try {
      return Deno.statSync(`${dir}/redis-server`).isFile;
    } catch {
      return false;
    }
  });
}

/** `ignore` flag for tests needing a private redis-server. */
export function ignoreWithoutRedisServer(file: string): boolean {
  if (redisServerInstalled() || REQUIRE_SERVICES) return false;
  console.error(
    `\n!!!!! WARNING: redis-server is not installed; the private-Redis tests of ${file} ` +
      `are IGNORED. Set CONCLAVE_REQUIRE_SERVICES=1 to fail instead.\n`,
  );
  return true;
}

/** A fresh, unique domain for one test: its keys collide with nobody's. */
export function uniqueDomain(tag: string): string {
  const random = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
  return `${tag}-${Deno.pid}-${random}.conclave.test`;
}

/** Connects a raw client (no reconnection) to a Redis. */
export async function rawClient(
  server: { host: string; port: number } = SHARED_REDIS,
): Promise<RawRedis> {
  const client = newRawClient(server);
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Deletes every `fs:*@<domain>` key of a test domain. */
export async function cleanDomain(client: RawRedis, domain: string): Promise<void> {
  const keys = await client.keys(`fs:*@${domain}`);
  if (keys.length > 0) await client.del(keys);
}

/** Polls `check` until it holds (event-driven code over real sockets has no fixed delay). */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  attempts = 400,
): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** A private redis-server on its own port (no persistence, expiry events on). */
export class PrivateRedis {
  readonly port: number;
  #child: Deno.ChildProcess | null = null;

  constructor(port: number) {
    this.port = port;
  }

  /** Starts it and waits until it answers PING. */
  async start(): Promise<void> {
    this.#child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--notify-keyspace-events",
        "Ex",
        // Expired keys are found by the active cycle; hz 50 makes it prompt.
        "--hz",
        "50",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await eventually("private redis-server answers", async () => {
      try {
        const client = await rawClient({ host: "127.0.0.1", port: this.port });
        client.destroy();
        return true;
      } catch {
        return false;
      }
    });
  }

  /** SIGKILLs it (an outage: nothing is kept). */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = null;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  }
}
