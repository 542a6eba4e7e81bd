/**
 * Reads the module graph of main.ts (`deno info --json`) and fails on an import that breaks the
 * layering of docs/architecture: a layer imports only the layers below it; media/, sdp/ and
 * storage/ see nothing of SIP; events/ never imports conference/.
 */
import assert from "node:assert/strict";

const ALLOWED: Record<string, readonly string[]> = {
  config: [],
  sip: ["config"],
  transport: ["config", "sip"],
  transaction: ["config", "sip", "transport"],
  dialog: ["config", "sip", "transport", "transaction"],
  sdp: ["config"],
  media: ["config"],
  storage: ["config"],
  registrar: ["config", "sip", "transport", "transaction", "dialog", "events"],
  events: ["config", "sip", "transport", "transaction", "dialog"],
  conference: [
    "config",
    "sip",
    "transport",
    "transaction",
    "dialog",
    "sdp",
    "media",
    "events",
    "storage",
    "registrar",
  ],
};

const root = new URL("../", import.meta.url);
const lib = new URL("lib/", root).href;

function layerOf(specifier: string): string | undefined {
  if (!specifier.startsWith(lib)) return undefined;
  const rest = specifier.slice(lib.length);
  if (!rest.includes("/")) return rest; // server.ts: the composition root
  return rest.split("/")[0];
}

interface ModuleInfo {
  specifier: string;
  dependencies?: Array<
    { specifier: string; code?: { specifier?: string }; type?: { specifier?: string } }
  >;
}

Deno.test("architecture: lib/ layers import only the layers below them", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("main.ts", root).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: ModuleInfo[] };
  const violations: string[] = [];
  let checked = 0;
  for (const mod of graph.modules) {
    const from = layerOf(mod.specifier);
    if (from === undefined || from === "server.ts") continue;
    const allowed = ALLOWED[from];
    if (!allowed) {
      violations.push(`${mod.specifier}: unknown layer ${from}`);
      continue;
    }
    for (const dep of mod.dependencies ?? []) {
      for (const target of [dep.code?.specifier, dep.type?.specifier]) {
        if (target === undefined) continue;
        const to = layerOf(target);
        if (to === undefined || to === from) continue;
        checked++;
        if (!allowed.includes(to)) {
          violations.push(`${mod.specifier.slice(lib.length)} imports ${target.slice(lib.length)}`);
        }
      }
    }
  }
  assert.ok(checked > 50, `the graph looks too small (${checked} cross-layer imports)`);
  assert.deepEqual(violations, []);
});

Deno.test("architecture: the composition root is only imported by main.ts", async () => {
  for await (const file of walk(new URL("lib/", root))) {
    const text = await Deno.readTextFile(file);
    assert.ok(!/from "\.\.\/server\.ts"/.test(text), `${file.pathname} imports server.ts`);
  }
});

async function* walk(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* walk(u);
    else if (e.name.endsWith(".ts")) yield u;
  }
}
