/**
 * Linphone (liblinphone 5.1, Debian's build, through Deno FFI) against Conclave's group chat
 * rooms behind Kamailio: two registered cores with the conference factory URI; alice creates a
 * group chat room with bob through the chat room API; the room reaches Created on both sides
 * (bob's through the focus's INVITE via the proxy), and a message each way arrives through the
 * room. The scenario is `_linphone_chat_scenario.ts`; this file checks what it recorded.
 */

import assert from "node:assert/strict";
import { denoRunCommand, peerProblems, runInLoopbackNamespace } from "../_helpers/netns.ts";

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const DRIVER = new URL("./_linphone_chat_scenario.ts", import.meta.url).pathname;

const problems = await peerProblems({
  namespace: true,
  binaries: ["kamailio"],
  libraries: ["liblinphone.so.10"],
});
if (problems.length > 0 && !REQUIRE) {
  console.warn(
    `\n!!! linphone chat test: IGNORED — ${problems.join("; ")}. ` +
      "Set CONCLAVE_REQUIRE_SERVICES=1 to make this fail.\n",
  );
}

interface ChatResult {
  readonly registered?: boolean;
  readonly aliceRoomState?: number;
  readonly roomAddress?: string;
  readonly bobRoomCreated?: boolean;
  readonly bobParticipants?: number;
  readonly bobReceived?: string;
  readonly aliceReceived?: string;
}

Deno.test({
  name: "liblinphone 5.1 behind Kamailio: group chat room created, bob invited, messages both ways",
  ignore: problems.length > 0 && !REQUIRE,
  async fn() {
    const run = await runInLoopbackNamespace({
      script: [
        // Keep liblinphone's network monitor from going DOWN (see linphone_conference_test).
        "ip addr add 192.0.2.1/32 dev lo && ip route add default dev lo src 192.0.2.1 || exit 96",
        denoRunCommand(DRIVER),
      ].join("\n"),
      timeoutMs: 150_000,
    });
    assert.equal(run.timedOut, false, `scenario hit the safety timeout; files in ${run.dir}`);
    let parsed: { value?: ChatResult; error?: string };
    try {
      parsed = JSON.parse(await Deno.readTextFile(`${run.dir}/result.json`));
    } catch {
      throw new Error(`no result.json (code ${run.code}) in ${run.dir}\n${run.stderr}`);
    }
    if (parsed.error !== undefined || parsed.value === undefined) {
      throw new Error(`scenario failed: ${parsed.error}\n(files in ${run.dir})`);
    }
    const r = parsed.value;
    const where = `\n(scenario files kept in ${run.dir}): ${JSON.stringify(r)}`;
    assert.equal(r.registered, true, `registration${where}`);
    assert.equal(r.aliceRoomState, 3, `alice's room not Created${where}`);
    assert.match(r.roomAddress ?? "", /conf-id=/, where);
    assert.equal(r.bobRoomCreated, true, `bob never got the room${where}`);
    assert.equal(r.bobReceived, "hello bob, from alice", where);
    assert.equal(r.aliceReceived, "hi alice, bob here", where);
    await Deno.remove(run.dir, { recursive: true });
  },
});
