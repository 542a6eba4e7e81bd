/**
 * Linphone against Conclave behind a real proxy (issue 4 acceptance: "a liblinphone 5.1 client
 * calls a conference URI and reaches StreamsRunning; its log shows it parsed our
 * conference-info").
 *
 * In one loopback namespace: Kamailio (registrar of `conclave.test` with GRUUs, record-routing
 * proxy in front of Conclave), the real Conclave daemon (`outbound-proxy` = Kamailio), SIPp
 * creating a conference through the factory URI, linphonec 5.1 registered as
 * `alice@conclave.test` joining it, and a second SIPp participant joining and leaving. The
 * scenario itself is `_linphone_conference_scenario.ts`; this file checks what it recorded.
 *
 * What proves liblinphone parsed our conference-info (strings from its
 * `RemoteConferenceEventHandler::conferenceInfoNotifyReceived` and `RemoteConference`):
 * - "NOTIFY received for conference: ... conference-info+xml" and no "Error while parsing";
 * - "Participant sip:alice@conclave.test requested to be added is me." — it read `users/user`
 *   and matched our `entity` against its own identity;
 * - "Switching conference [...] from state CreationPending to Created" — reached only at the end
 *   of a full-state document whose root entity equals the conference address;
 * - on partial NOTIFYs: "Addition of participant with address <second> ... successful" and
 *   "Removal of participant ... successful" (`user state="full"` / `state="deleted"`).
 *
 * The namespace also gets `192.0.2.1/32` on `lo` and a default route through it: liblinphone
 * 5.1's network monitor (GenericPlatformHelpers::monitorTimerExpired) declares the network
 * DOWN five seconds after start when the only local address is 127.0.0.1, which unregisters
 * the account and resets its transports mid-call. SIP and RTP still use 127.0.0.1.
 *
 * Missing kamailio/linphonec/sipp or no namespace support: ignored with a loud warning, unless
 * `CONCLAVE_REQUIRE_SERVICES=1` (then it runs and fails).
 */

import assert from "node:assert/strict";
import { checkKamailioConfig, kamailioConfig } from "./_kamailio.ts";
import type { LoggedNotify } from "./_linphone_conference_scenario.ts";
import {
  denoRunCommand,
  hasBinary,
  loopbackNamespaceProblem,
  runInLoopbackNamespace,
} from "../_helpers/netns.ts";

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const DRIVER = new URL("./_linphone_conference_scenario.ts", import.meta.url).pathname;

async function problems(binaries: readonly string[], namespace: boolean): Promise<string[]> {
  const found: string[] = [];
  if (namespace) {
    const ns = await loopbackNamespaceProblem();
    if (ns) found.push(ns);
  }
  for (const binary of binaries) {
    if (!(await hasBinary(binary))) found.push(`${binary} not installed`);
  }
  return found;
}

/** `ignore` flag; warns loudly when a test is skipped. */
async function ignoreUnless(
  name: string,
  binaries: readonly string[],
  namespace: boolean,
): Promise<boolean> {
  const found = await problems(binaries, namespace);
  if (found.length === 0 || REQUIRE) return false;
  console.warn(
    `\n!!! ${name}: IGNORED — ${found.join("; ")}. ` +
      "Set CONCLAVE_REQUIRE_SERVICES=1 to make this fail.\n",
  );
  return true;
}

const noKamailio = await ignoreUnless("kamailio config test", ["kamailio"], false);
const noPeers = await ignoreUnless(
  "linphone conference test",
  ["kamailio", "linphonec", "sipp"],
  true,
);

Deno.test({
  name: "kamailio: the generated proxy/registrar config is accepted by kamailio -c",
  ignore: noKamailio,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "conclave-kamailio-cfg-" });
    try {
      const text = kamailioConfig({
        port: 5070,
        domain: "conclave.test",
        services: ["conference-factory", "conference-focus", "standup.room"],
        serviceTarget: "127.0.0.1:6064",
      });
      assert.match(text, /modparam\("registrar", "gruu_enabled", 1\)/);
      assert.match(text, /"\^\(conference-factory\|conference-focus\|standup\[\.\]room\)\$"/);
      await Deno.writeTextFile(`${dir}/ok.cfg`, text);
      assert.equal(await checkKamailioConfig(`${dir}/ok.cfg`), undefined);
      // The check can fail: a config naming a module that does not exist is refused.
      await Deno.writeTextFile(
        `${dir}/bad.cfg`,
        text.replace('loadmodule "xlog.so"', 'loadmodule "no_such_module.so"'),
      );
      const error = await checkKamailioConfig(`${dir}/bad.cfg`);
      assert.ok(error !== undefined && /no_such_module/.test(error), String(error));
      assert.throws(() =>
        kamailioConfig({ port: 1, domain: "a b", services: ["x"], serviceTarget: "h:1" })
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

interface Step {
  readonly ok: boolean;
  readonly detail: string;
}

interface ScenarioResult {
  readonly kamailioPort: number;
  readonly conclavePort: number;
  readonly factory: { readonly code: number; readonly errors: string };
  readonly confUri: string | undefined;
  readonly registered?: Step;
  readonly callState?: Step;
  readonly created?: Step;
  readonly added?: Step;
  readonly removed?: Step;
  readonly released?: Step;
  readonly second?: { readonly code: number; readonly errors: string };
  readonly states?: readonly { readonly from: string; readonly to: string }[];
  readonly notifies?: readonly LoggedNotify[];
  readonly lines?: Readonly<Record<string, readonly string[]>>;
  readonly endedBeforeHangup?: boolean;
  readonly subjectUpdate?: { readonly subject: string; readonly status: number };
  readonly byeAnswered?: boolean;
  readonly registerLines?: readonly string[];
  readonly kamailioRequests?: readonly string[];
  readonly linphoneLog?: string;
}

function stepOk(step: Step | undefined, what: string): string {
  assert.ok(step, `${what}: step missing`);
  assert.ok(step.ok, `${what}: ${step.detail}`);
  return step.detail;
}

function check(r: ScenarioResult): void {
  const proxy = `127.0.0.1:${r.kamailioPort}`;
  // The factory answered 302 through Kamailio with a conference URI in the proxy's domain.
  assert.equal(r.factory.code, 0, `factory INVITE through Kamailio failed:\n${r.factory.errors}`);
  assert.ok(r.confUri, "no conference URI");
  assert.match(r.confUri, /^sip:conference-focus@conclave\.test;conf-id=[A-Za-z0-9_-]{22,}$/);

  // linphonec registered (GRUU) and the call reached StreamsRunning.
  stepOk(r.registered, "registration at Kamailio");
  assert.equal(stepOk(r.callState, "call"), "LinphoneCallStreamsRunning", "call state");
  const states = (r.states ?? []).map((s) => s.to);
  for (const s of ["LinphoneCallOutgoingInit", "LinphoneCallConnected"]) {
    assert.ok(states.includes(s), `call never went through ${s}: ${states.join(" → ")}`);
  }

  // It subscribed to the conference and parsed our conference-info.
  const lines = r.lines ?? {};
  assert.ok(
    (lines.subscribing ?? []).some((l) => l.includes("sip:conference-focus@conclave.test")),
    `linphonec never subscribed to the conference: ${JSON.stringify(lines.subscribing)}`,
  );
  assert.ok(
    (lines.notifyReceived ?? []).some((l) => /conference-info\+xml/.test(l)),
    `no conference-info NOTIFY reached liblinphone's handler: ${JSON.stringify(lines)}`,
  );
  assert.deepEqual(lines.parseErrors ?? [], [], "liblinphone failed to parse a NOTIFY");
  assert.deepEqual(lines.ignored ?? [], [], "liblinphone ignored a NOTIFY as out of order");
  assert.ok(
    (lines.me ?? []).some((l) =>
      l.includes("Participant sip:alice@conclave.test requested to be added is me")
    ),
    `liblinphone did not find itself in users/user: ${JSON.stringify(lines.me)}`,
  );
  stepOk(r.created, "conference CreationPending → Created (full state processed)");

  // The second participant's arrival and departure were understood from partial NOTIFYs.
  assert.equal(r.second?.code, 0, `second participant (SIPp) failed:\n${r.second?.errors}`);
  const added = stepOk(r.added, "partial NOTIFY adding the second participant");
  assert.match(added, /Addition of participant with address (IdentityAddress\()?sip:sipp-1@/);
  const removed = stepOk(r.removed, "partial NOTIFY removing the second participant");
  assert.match(removed, /Removal of participant with address (IdentityAddress\()?sip:sipp-1@/);
  assert.deepEqual(
    lines.fullStateRequests ?? [],
    [],
    "liblinphone had to ask for a full state again (a partial NOTIFY did not fit)",
  );

  // The NOTIFYs themselves: conference-info over the proxy, full first, versions rising.
  const infos = (r.notifies ?? []).filter((n) => /conference-info\+xml/.test(n.contentType));
  assert.ok(infos.length >= 3, `expected full + 2 partial NOTIFYs, got ${infos.length}`);
  for (const n of infos) {
    assert.equal(n.event.split(";")[0], "conference");
    assert.ok(n.via.includes(proxy), `NOTIFY did not come through Kamailio: Via ${n.via}`);
    assert.match(n.requestUri, /^sip:alice@/);
    assert.equal(n.entity, r.confUri, "conference-info entity is the conference URI");
  }
  assert.equal(infos[0]?.state, "full");
  assert.ok(infos[0]?.users.includes("sip:alice@conclave.test full"), String(infos[0]?.users));
  const versions = infos.map((n) => n.version ?? NaN);
  for (let i = 1; i < versions.length; i++) {
    assert.ok(versions[i]! > versions[i - 1]!, `versions not rising: ${versions.join(", ")}`);
  }
  const partials = infos.slice(1);
  assert.ok(
    partials.some((n) =>
      n.state === "partial" && n.users.some((u) => /^sip:sipp-1@\S+ full$/.test(u))
    ),
    `no partial NOTIFY adding sipp-1: ${JSON.stringify(partials)}`,
  );
  assert.ok(
    partials.some((n) => n.users.some((u) => /^sip:sipp-1@\S+ deleted$/.test(u))),
    `no NOTIFY deleting sipp-1: ${JSON.stringify(partials)}`,
  );

  // The call survived everything above: liblinphone, admin of the conference we created,
  // re-INVITEs without SDP to push the subject it read from conference-info; we answer 200.
  assert.equal(r.endedBeforeHangup, false, `call ended early: ${states.join(" → ")}`);
  if (r.subjectUpdate !== undefined) {
    assert.equal(r.subjectUpdate.subject, "SIPp factory conference");
    assert.equal(r.subjectUpdate.status, 200, "subject re-INVITE not accepted");
  }

  // Hang-up through the proxy, clean release; every request passed Kamailio.
  stepOk(r.released, "call release");
  assert.ok(r.byeAnswered, "linphonec's BYE got no 200");
  const seen = r.kamailioRequests ?? [];
  for (const method of ["REGISTER", "INVITE", "SUBSCRIBE", "NOTIFY", "BYE"]) {
    assert.ok(seen.some((l) => l.startsWith(`${method} `)), `Kamailio never saw a ${method}`);
  }
}

Deno.test({
  name: "linphonec 5.1 behind Kamailio joins a conference, reaches StreamsRunning and parses " +
    "conference-info (full, then partial add/remove)",
  ignore: noPeers,
  async fn() {
    const run = await runInLoopbackNamespace({
      script: [
        // See the module comment: keep liblinphone's network monitor from going DOWN.
        "ip addr add 192.0.2.1/32 dev lo && ip route add default dev lo src 192.0.2.1 || exit 96",
        denoRunCommand(DRIVER),
      ].join("\n"),
      timeoutMs: 150_000,
    });
    assert.equal(run.timedOut, false, `scenario hit the safety timeout; files in ${run.dir}`);
    let parsed: { value?: ScenarioResult; error?: string };
    try {
      parsed = JSON.parse(await Deno.readTextFile(`${run.dir}/result.json`));
    } catch {
      throw new Error(
        `no result.json (code ${run.code}) in ${run.dir}\n${run.stdout}\n${run.stderr}`,
      );
    }
    if (parsed.error !== undefined || parsed.value === undefined) {
      throw new Error(`scenario failed: ${parsed.error}\n${run.stderr}\n(files in ${run.dir})`);
    }
    try {
      check(parsed.value);
    } catch (error) {
      if (error instanceof Error) error.message += `\n(scenario files kept in ${run.dir})`;
      throw error;
    }
    await Deno.remove(run.dir, { recursive: true });
  },
});
