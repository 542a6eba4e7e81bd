/**
 * STAND-IN composition root, written by the config/CLI task so that `main.ts` can be run and
 * tested before the real server exists. It only opens a TCP listener on the first transport's
 * host and port and logs where it listens. The lead replaces this file with the real
 * `Server` (same constructor, `start()` and `stop()`).
 * @module
 */

import type { Config } from "./config/schema.ts";
import { createLogger } from "./config/log.ts";

const log = createLogger("server");

/** Builds everything from a {@link Config}; `start()` opens sockets, `stop()` closes them. */
export class Server {
  readonly #config: Config;
  #listener: Deno.TcpListener | null = null;

  constructor(config: Config) {
    this.#config = config;
  }

  /** Opens the listener and logs its address. */
  start(): Promise<void> {
    const first = this.#config.conferenceServer.transport[0];
    if (!first) throw new Error("no transport configured");
    this.#listener = Deno.listen({ hostname: first.host, port: first.port, transport: "tcp" });
    const addr = this.#listener.addr;
    log.info("listening", { transport: "tcp", address: `${addr.hostname}:${addr.port}` });
    log.info("state directory", { path: this.#config.conferenceServer.stateDirectory });
    return Promise.resolve();
  }

  /** Closes the listener. */
  stop(): Promise<void> {
    this.#listener?.close();
    this.#listener = null;
    log.info("stopped");
    return Promise.resolve();
  }
}
