/**
 * Memory probe for the load test (bench/load_conference.ts), loaded into the server under test
 * with `deno run --preload bench/memory_probe.ts ... main.ts`: it appends one JSON line of
 * `Deno.memoryUsage()` (rss, heapTotal, heapUsed, external; bytes), V8's heap spaces
 * (`<space>_size` and `<space>_used`, from `node:v8` `getHeapSpaceStatistics()`) and a time stamp (ms) to the
 * file named by `CONCLAVE_MEMORY_LOG` every `CONCLAVE_MEMORY_LOG_INTERVAL` seconds (default 1).
 * With `--v8-flags=--expose-gc`, SIGUSR2 forces a full garbage collection and logs a line with
 * `"gc": true` (the live heap). Without `CONCLAVE_MEMORY_LOG` it does nothing. Not part of the server: a measuring aid only.
 * @module
 */

import { getHeapSpaceStatistics } from "node:v8";

const path = Deno.env.get("CONCLAVE_MEMORY_LOG");
if (path) {
  const intervalSec = Number(Deno.env.get("CONCLAVE_MEMORY_LOG_INTERVAL") ?? 1) || 1;
  const write = (extra: Record<string, unknown>) => {
    const m = Deno.memoryUsage();
    const spaces: Record<string, number> = {};
    for (const space of getHeapSpaceStatistics()) {
      spaces[`${space.space_name}_size`] = space.space_size;
      spaces[`${space.space_name}_used`] = space.space_used_size;
    }
    Deno.writeTextFileSync(
      path,
      JSON.stringify({ at: Date.now(), ...m, ...spaces, ...extra }) + "\n",
      { append: true },
    );
  };
  const timer = setInterval(() => write({}), intervalSec * 1000);
  Deno.unrefTimer(timer);
  // With --v8-flags=--expose-gc, SIGUSR2 forces a full GC and logs the live heap ("gc": true).
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    Deno.addSignalListener("SIGUSR2", () => {
      gc();
      write({ gc: true });
    });
  }
}
