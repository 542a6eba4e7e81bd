/**
 * SIPp (a real SIP peer nobody here wrote) against the full stack: its built-in `uac`
 * scenario (INVITE, ACK, BYE) over TCP and UDP into a dial-in room, and an OPTIONS ping.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { freePort } from "../_helpers/netns.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

const haveSipp = (() => {
  try {
    return new Deno.Command("sipp", { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync() !== null;
  } catch {
    return false;
  }
})();
const required = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
if (!haveSipp && !required) {
  console.warn("!!! sipp not installed: SIPp tests are IGNORED (apt-get install sip-tester)");
}

async function sipp(args: string[]): Promise<{ code: number; out: string }> {
  const dir = await Deno.makeTempDir({ prefix: "sipp-" });
  const cmd = new Deno.Command("sipp", {
    args: [
      ...args,
      "-i",
      "127.0.0.1",
      "-ci",
      "127.0.0.1",
      "-nostdin",
      "-timeout",
      "30s",
      "-timeout_error",
      "-trace_err",
    ],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  const dec = new TextDecoder();
  let errors = "";
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith("errors.log")) errors += await Deno.readTextFile(`${dir}/${e.name}`);
  }
  await Deno.remove(dir, { recursive: true });
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) + errors };
}

for (const transport of ["tcp", "udp"] as const) {
  Deno.test({
    name: `SIPp uac: INVITE/ACK/BYE over ${transport.toUpperCase()} completes against Conclave`,
    ignore: !haveSipp && !required,
    async fn() {
      const srv = await startTestServer([
        `transport=sip:127.0.0.1:0;transport=${transport}`,
        "dial-in-rooms=sip:service@127.0.0.1",
      ]);
      try {
        const port = srv.port;
        const r = await sipp([
          "-sn",
          "uac",
          "-t",
          transport === "tcp" ? "t1" : "u1",
          "-p",
          String(freePort()),
          "-m",
          "3",
          "-r",
          "10",
          // One call at a time: SIPp reuses one Contact for every call, and a device that
          // calls a conference again replaces its previous call (Flexisip behaviour).
          "-l",
          "1",
          `127.0.0.1:${port}`,
        ]);
        assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-3000)}`);
        // Every call really went through the focus and out again.
        const live = srv.server.focus.conferences.get("room-service");
        assert.ok(live, "the dial-in room exists");
        assert.equal(live.callCount, 0);
      } finally {
        await srv.stop();
      }
    },
  });
}

Deno.test({
  name: "SIPp OPTIONS ping gets 200 with Allow and Server",
  ignore: !haveSipp && !required,
  async fn() {
    const srv = await startTestServer();
    try {
      const r = await sipp([
        "-sf",
        new URL("./scenarios/options_ping.xml", import.meta.url).pathname,
        "-s",
        "conference-factory",
        "-t",
        "t1",
        "-p",
        String(freePort()),
        "-m",
        "1",
        `127.0.0.1:${srv.port}`,
      ]);
      assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-3000)}`);
    } finally {
      await srv.stop();
    }
  },
});
