import assert from "node:assert/strict";
import { parseConfigText } from "../lib/config/config.ts";
import { fixedEnvironment } from "../lib/config/environment.ts";

const root = new URL("..", import.meta.url).pathname;
const mainTs = new URL("../main.ts", import.meta.url).pathname;

interface Output {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(...args: string[]): Promise<Output> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", mainTs, ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "conclave-main-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("main: a bad config (unknown key + malformed duration) exits 1 naming lines and keys", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.conf`;
    await Deno.writeTextFile(
      path,
      [
        "[conference-server]",
        "transport=sip:127.0.0.1:0;transport=tcp",
        "no-rtp-timeout=30 sekunden",
        "conference-factory-uri=sip:factory@127.0.0.1",
        "[sip]",
        "t1=quick",
      ].join("\n") + "\n",
    );
    const { code, stdout, stderr } = await run("--config", path);
    assert.equal(code, 1, stderr);
    assert.equal(stdout, "");
    assert.match(stderr, /invalid configuration, not starting/);
    assert.ok(
      stderr.includes(
        `error: ${path}:3: [conference-server] no-rtp-timeout: unknown unit "sekunden"`,
      ),
      stderr,
    );
    assert.ok(
      stderr.includes(
        `warning: ${path}:4: [conference-server] conference-factory-uri: unknown key, ignored ` +
          `(did you mean conference-factory-uris?)`,
      ),
      stderr,
    );
    assert.ok(stderr.includes(`error: ${path}:6: [sip] t1: invalid duration "quick"`), stderr);
    assert.doesNotMatch(stderr, /listening/);
  });
});

Deno.test("main: a missing --config file exits 1", async () => {
  const { code, stderr } = await run("--config", "/nonexistent/conclave.conf");
  assert.equal(code, 1);
  assert.match(stderr, /\/nonexistent\/conclave\.conf: cannot read: no such file/);
});

Deno.test("main: --check-config prints the effective configuration and exits 0", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/good.conf`;
    const text = "[conference-server]\nno-rtp-timeout=45\nstate-directory=" + dir +
      "\nmax-speakers=6\n[log]\nlevel=warn\n[unknown]\nx=1\n";
    await Deno.writeTextFile(path, text);
    const { code, stdout, stderr } = await run("--config", path, "--check-config");
    assert.equal(code, 0, stderr);
    assert.match(stdout, new RegExp(`^# Read from: ${path}$`, "m"));
    assert.match(stdout, /^no-rtp-timeout=45s$/m);
    assert.match(stdout, /^max-speakers=6$/m);
    assert.match(stdout, /^level=warn$/m);
    assert.ok(stdout.includes(`state-directory=${dir}\n`), stdout);
    assert.match(stderr, /warning: .*good\.conf:7: \[unknown\] unknown section/);
    assert.match(stderr, /configuration OK/);
    const env = { environment: fixedEnvironment({}) };
    assert.deepEqual(
      parseConfigText(stdout, "printed", env).config,
      parseConfigText(text, "original", env).config,
    );
  });
});

Deno.test("main: --check-config on an invalid file exits 1", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.conf`;
    await Deno.writeTextFile(path, "[redis]\nport=0\n");
    const { code, stdout, stderr } = await run("--check-config", "--config", path);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.ok(stderr.includes(`${path}:2: [redis] port: 0 is out of range (1 to 65535)`), stderr);
  });
});

Deno.test("main: without --config, /etc/conclave/conference.conf or the embedded defaults", async () => {
  let etcExists = true;
  try {
    await Deno.stat("/etc/conclave/conference.conf");
  } catch {
    etcExists = false;
  }
  const { code, stdout } = await run("--check-config");
  if (etcExists) {
    assert.match(stdout, /^# Read from: \/etc\/conclave\/conference\.conf$/m);
  } else {
    assert.equal(code, 0);
    assert.match(stdout, /^# Read from: embedded defaults$/m);
    assert.match(stdout, /^transport=sip:127\.0\.0\.1:6064;transport=tcp$/m);
    assert.match(stdout, /^conference-factory-uris=sip:conference-factory@127\.0\.0\.1$/m);
  }
});

Deno.test("main: --version prints the deno.json version", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
  const { code, stdout } = await run("--version");
  assert.equal(code, 0);
  assert.equal(stdout, `conclave ${denoJson.version}\n`);
});

Deno.test("main: --help lists every option; a bad option exits 2", async () => {
  const help = await run("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: conclave/);
  for (const option of ["--config FILE", "--debug", "--check-config", "--version", "--help"]) {
    assert.ok(help.stdout.includes(option), option);
  }
  const bad = await run("--frobnicate");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown option '--frobnicate'/);
  const positional = await run("extra");
  assert.equal(positional.code, 2);
});

Deno.test("main: starts, logs, and exits 0 on SIGTERM", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/run.conf`;
    await Deno.writeTextFile(
      path,
      `[conference-server]\ntransport=sip:127.0.0.1:0;transport=tcp\nstate-directory=${dir}/state\n` +
        "audio-port=0\nvideo-port=0\nbogus-key=1\n",
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", mainTs, "--config", path, "--debug"],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdoutText = new Response(child.stdout).text();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    while (!/listening/i.test(stderr)) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    assert.match(stderr, /listening/i, stderr);
    assert.match(stderr, /INFO +\[main\] conclave .* starting config=.*run\.conf/);
    assert.match(
      stderr,
      /WARN +\[main\] .*run\.conf:6: \[conference-server\] bogus-key: unknown key/,
    );
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    const status = await child.status;
    await stdoutText;
    assert.equal(status.code, 0, stderr);
    assert.match(stderr, /SIGTERM received, stopping/);
    assert.match(stderr, /\[main\] stopped exitCode=0/);
  });
});
