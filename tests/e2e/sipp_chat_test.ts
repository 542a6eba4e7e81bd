/**
 * SIPp (a real SIP peer nobody here wrote) drives a group chat room the way a Linphone device
 * does (scenarios/chat_room.xml): factory INVITE with `Require: recipient-list-invite` → 302,
 * INVITE to the room with the list → 200 without SDP, SUBSCRIBE conference (present on the
 * first NOTIFY), MESSAGE → 202, and leaves with BYE. bob is a scripted device over TCP that
 * joins the room SIPp made and gets SIPp's message relayed from the room (SIPp cannot take
 * relayed MESSAGEs itself: each has its own Call-ID, and SIPp keeps one per scenario call).
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { becomePresent, chatClient, joinRoom, receiveChat } from "../_helpers/chat_steps.ts";
import { freePort } from "../_helpers/netns.ts";
import { textOf } from "../_helpers/sip_client.ts";
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
  console.warn(
    "!!! sipp not installed: the SIPp chat test is IGNORED (apt-get install sip-tester)",
  );
}

Deno.test({
  name: "SIPp chat room: create, open, subscribe, MESSAGE relayed to the other participant, leave",
  ignore: !haveSipp && !required,
  async fn() {
    const srv = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "sipp-chat-" });
    const bob = await chatClient("bob", srv.port);
    try {
      const sipp = new Deno.Command("sipp", {
        args: [
          "-sf",
          new URL("./scenarios/chat_room.xml", import.meta.url).pathname,
          "-s",
          "conference-factory",
          "-key",
          "bob_aor",
          bob.aor,
          "-t",
          "t1",
          "-p",
          String(freePort()),
          "-i",
          "127.0.0.1",
          "-m",
          "1",
          "-nostdin",
          "-timeout",
          "30s",
          "-timeout_error",
          "-trace_err",
          "-trace_logs",
          "-trace_msg",
          `127.0.0.1:${srv.port}`,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const done = sipp.output();

      // The room SIPp created shows up; bob joins it and becomes present.
      const rooms = srv.server.focus.chatRooms.rooms;
      for (let i = 0; i < 400 && rooms.size === 0; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const room = [...rooms.values()][0];
      assert.ok(room, "SIPp created a chat room");
      for (let i = 0; i < 400 && room.roster.users.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      await joinRoom(bob, room.record.uri);
      await becomePresent(bob, room.record.uri);
      const fromSipp = await receiveChat(bob);
      assert.match(textOf(fromSipp), /hello from SIPp/);
      assert.match(fromSipp.headers.get("From") ?? "", /conf-id=/);
      assert.equal(fromSipp.contentType, "message/cpim");

      const out = await done;
      let logs = "";
      for await (const e of Deno.readDir(dir)) {
        if (e.name.endsWith(".log")) logs += await Deno.readTextFile(`${dir}/${e.name}`);
      }
      const dec = new TextDecoder();
      assert.equal(
        out.code,
        0,
        `sipp failed:\n${dec.decode(out.stdout).slice(-2000)}${dec.decode(out.stderr)}\n${
          logs.slice(-6000)
        }`,
      );
      assert.match(logs, /OPENED isfocus +0 /);
      assert.match(logs, /PRESENT state="full"/);
      // SIPp's BYE removed its participant; bob is still in the room.
      assert.deepEqual(room.roster.users.map((u) => u.aor), [bob.aor]);
    } finally {
      await bob.close();
      await srv.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
