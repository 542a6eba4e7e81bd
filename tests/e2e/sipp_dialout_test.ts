/**
 * Dial-out through REFER (RFC 4579 §5.5 as Flexisip implements it) to a real peer: an admin
 * REFERs SIPp's built-in `uas` into the conference, the focus INVITEs it (From = conference
 * URI), the referrer gets sipfrag NOTIFYs, subscribers see the new user; then the admin REFERs
 * it out with `method=BYE` and SIPp sees the BYE and completes its call.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { freePort } from "../_helpers/netns.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

const haveSipp = (() => {
  try {
    new Deno.Command("sipp", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
})();
const required = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";

Deno.test({
  name: "REFER adds a real SIPp uas by dial-out, admin role change, REFER method=BYE ejects it",
  ignore: !haveSipp && !required,
  async fn() {
    const srv = await startTestServer();
    const uasPort = freePort();
    const dir = await Deno.makeTempDir({ prefix: "sipp-uas-" });
    const uas = new Deno.Command("sipp", {
      args: [
        "-sn",
        "uas",
        "-t",
        "t1",
        "-i",
        "127.0.0.1",
        "-ci",
        "127.0.0.1",
        "-p",
        String(uasPort),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
        "-trace_err",
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const a = await SipClient.connect("alice", srv.port);
    try {
      // Create and join.
      const f = await a.sendRequest("INVITE", "sip:conference-factory@127.0.0.1", {
        body: pcmuOffer(40010),
      });
      const redirect = await a.response(f, "INVITE");
      assert.equal(redirect.status, 302);
      await a.ack(redirect, "sip:conference-factory@127.0.0.1");
      const conf = /<([^>]+)>/.exec(redirect.headers.get("Contact")!)![1]!;
      const j = await a.sendRequest("INVITE", conf, {
        body: pcmuOffer(40020),
        callId: `${a.callId}-j`,
      });
      const ok = await a.response(j, "INVITE");
      assert.equal(ok.status, 200);
      await a.ack(ok, conf);
      const s = await a.sendRequest("SUBSCRIBE", conf, {
        callId: `${a.callId}-s`,
        headers: [["Event", "conference"], ["Expires", "600"]],
      });
      assert.equal((await a.response(s, "SUBSCRIBE")).status, 200);
      const first = await a.take((m) =>
        "method" in m && m.method === "NOTIFY" && /state="full"/.test(textOf(m))
      );
      await a.answer(first as never);

      // Add the uas by REFER: 202, then sipfrag 100 and 200.
      const target = `sip:service@127.0.0.1:${uasPort};transport=tcp`;
      const r = await a.sendRequest("REFER", conf, {
        callId: `${a.callId}-r`,
        headers: [["Refer-To", `<${target}>`]],
      });
      assert.equal((await a.response(r, "REFER")).status, 202);
      let sawAdd = false;
      let fragFinal = "";
      while (!sawAdd || fragFinal === "") {
        const n = await a.request("NOTIFY");
        await a.answer(n);
        const body = textOf(n);
        if (/^SIP\/2.0 [2-6]/.test(body)) fragFinal = body;
        if (/entity="sip:service@127.0.0.1"[^>]*>/.test(body) && /connected/.test(body)) {
          sawAdd = true;
        }
      }
      assert.match(fragFinal, /^SIP\/2.0 200/);

      // Make the new user admin, then eject it.
      const adm = await a.sendRequest("REFER", conf, {
        callId: `${a.callId}-adm`,
        headers: [["Refer-To", `<sip:service@127.0.0.1;admin=true>`]],
      });
      assert.equal((await a.response(adm, "REFER")).status, 202);
      for (;;) {
        const n = await a.request("NOTIFY");
        await a.answer(n);
        if (/entity="sip:service@127.0.0.1"/.test(textOf(n)) && /admin/.test(textOf(n))) break;
      }
      const bye = await a.sendRequest("REFER", conf, {
        callId: `${a.callId}-bye`,
        headers: [["Refer-To", `<sip:service@127.0.0.1;method=BYE>`]],
      });
      assert.equal((await a.response(bye, "REFER")).status, 202);
      const status = await uas.status;
      assert.equal(status.code, 0, "SIPp uas completed its call (got INVITE, ACK and BYE)");
    } finally {
      try {
        uas.kill();
      } catch {
        // already exited
      }
      await uas.output().catch(() => {});
      await a.close();
      await srv.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
