/**
 * Starts a real {@link Server} on ephemeral ports with its state in a temporary directory.
 * @module
 */

import { parseConfigText } from "../../lib/config/config.ts";
import { Server, type ServerOptions } from "../../lib/server.ts";

/** A started server and how to reach it. */
export interface TestServer {
  readonly server: Server;
  readonly port: number;
  readonly stateDirectory: string;
  stop(): Promise<void>;
}

/**
 * Starts a server; `extra` lines go into `[conference-server]` (they may override the test
 * defaults `transport` and `no-rtp-timeout`); `options` can inject a clock. Without
 * `stateDirectory` a temporary one is made and `stop()` deletes it.
 */
export async function startTestServer(
  extra: string[] = [],
  stateDirectory?: string,
  options: ServerOptions = {},
): Promise<TestServer> {
  const created = stateDirectory === undefined;
  const dir = stateDirectory ?? await Deno.makeTempDir({ prefix: "conclave-test-" });
  const text = [
    "[conference-server]",
    ...(extra.some((l) => l.startsWith("transport="))
      ? []
      : ["transport=sip:127.0.0.1:0;transport=tcp"]),
    `state-directory=${dir}`,
    ...(extra.some((l) => l.startsWith("audio-port=")) ? [] : ["audio-port=0"]),
    ...(extra.some((l) => l.startsWith("video-port=")) ? [] : ["video-port=0"]),
    ...(extra.some((l) => l.startsWith("no-rtp-timeout=")) ? [] : ["no-rtp-timeout=0"]),
    ...extra,
  ].join("\n");
  const { config } = parseConfigText(text, "test.conf");
  const server = new Server(config, options);
  await server.start();
  const port = server.addresses[0]?.port;
  if (port === undefined) throw new Error("no address");
  return {
    server,
    port,
    stateDirectory: dir,
    stop: async () => {
      await server.stop();
      // A directory made here goes with the server; one passed in belongs to the caller.
      if (created) {
        await Deno.remove(dir, { recursive: true }).catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        });
      }
    },
  };
}
