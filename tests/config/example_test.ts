import assert from "node:assert/strict";
import { defaultConfig, parseConfigText } from "../../lib/config/config.ts";
import { exampleConfigText } from "../../lib/config/example.ts";
import { schemaKeys } from "../../lib/config/schema.ts";
import { fixedEnvironment } from "../../lib/config/environment.ts";

const examplePath = new URL("../../conference.conf.example", import.meta.url);
const options = { environment: fixedEnvironment({ HOME: "/home/example" }) };

Deno.test("the shipped example file parses to exactly the defaults, without warnings", async () => {
  const text = await Deno.readTextFile(examplePath);
  const result = parseConfigText(text, "conference.conf.example", options);
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(result.config, defaultConfig(options));
});

Deno.test("the shipped example file is up to date with the key table", async () => {
  const text = await Deno.readTextFile(examplePath);
  assert.equal(
    text,
    exampleConfigText(),
    "conference.conf.example is stale: regenerate it with\n" +
      'deno eval \'import {exampleConfigText} from "./lib/config/example.ts"; ' +
      'await Deno.writeTextFile("conference.conf.example", exampleConfigText())\'',
  );
});

Deno.test("the example sets and documents every key", async () => {
  const text = await Deno.readTextFile(examplePath);
  const lines = text.split("\n");
  for (const { section, spec } of schemaKeys()) {
    const at = lines.indexOf(`${spec.name}=${spec.default}`);
    assert.ok(at > 0, `[${section}] ${spec.name} is not set to its default`);
    const header = lines.lastIndexOf(`[${section}]`, at);
    assert.ok(header >= 0 && header < at, `${spec.name} is not under [${section}]`);
    const comment = lines.slice(Math.max(0, at - 8), at).join("\n");
    assert.ok(comment.includes(`# ${spec.doc}`), `${spec.name}: doc line missing`);
    assert.ok(comment.includes(`# Type: ${spec.type.description}`), `${spec.name}: type missing`);
    assert.ok(comment.includes("# Default: "), `${spec.name}: default missing`);
  }
});

Deno.test("a changed value in the example is read back", async () => {
  const text = (await Deno.readTextFile(examplePath))
    .replace(/^no-rtp-timeout=30s$/m, "no-rtp-timeout=45s");
  const result = parseConfigText(text, "edited", options);
  assert.equal(result.config.conferenceServer.noRtpTimeoutMs, 45_000);
});
