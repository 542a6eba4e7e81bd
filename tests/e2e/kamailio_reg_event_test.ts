/**
 * Conclave's RFC 3680 subscriber against a real notifier: Kamailio 5.6 as registrar of a
 * foreign domain (`kam.test`, not one of Conclave's), with `presence` + `presence_reginfo`
 * notifying `Event: reg` and `pua_reginfo` publishing its `usrloc` changes (see
 * tests/e2e/_kamailio.ts). A real Conclave {@link Server} (outbound proxy = Kamailio, Redis
 * directory for its own domain) follows `alice@kam.test` through its device directory; SIPp
 * registers and unregisters two contacts of alice at Kamailio; the directory must report each
 * device added and removed, with its exact contact URI.
 *
 * Kamailio binds 127.0.0.1 only (and sends only there: `dns=no`, every next hop is a
 * loopback address), so no namespace is needed.
 *
 * What Kamailio 5.6.3 sends (seen here): a first NOTIFY with no body at all while the AOR has
 * no registration, then one `state="full"` document per change, always `version="0"` (it does
 * not count versions, RFC 3680 §5.3 asks it to), contact ids that are memory addresses,
 * no `unknown-param` (so no `+sip.instance`), the removed contact as `state="terminated"`
 * `event="unregistered"`, and the registration `state="terminated"` after its last contact.
 */
import assert from "node:assert/strict";
import type { Device, DeviceEvent } from "../../lib/registrar/device_directory.ts";
import { RoutingDeviceDirectory } from "../../lib/registrar/device_directory.ts";
import type { RegEventDirectory } from "../../lib/registrar/reg_event_subscriber.ts";
import { startTestServer, type TestServer } from "../_helpers/test_server.ts";
import { freePort, peerProblems } from "../_helpers/netns.ts";
import { runSipp, scenarioPath, type SippResult } from "../_helpers/sipp.ts";
import {
  cleanDomain,
  eventually,
  ignoreWithoutRedis,
  rawClient,
  uniqueDomain,
} from "../registrar/_redis.ts";
import { DBTEXT_TABLES, Kamailio } from "./_kamailio.ts";

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const FOREIGN = "kam.test";
const MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

const problems = await peerProblems({
  binaries: ["kamailio", "sipp"],
  files: [
    ...[`${MODULES}/presence_reginfo.so`, `${MODULES}/pua_reginfo.so`].map((path) => ({
      path,
      from: "Debian package kamailio-presence-modules",
    })),
    { path: `${DBTEXT_TABLES}/presentity`, from: "Debian package kamailio" },
  ],
});
if (problems.length > 0 && !REQUIRE) {
  console.warn(
    `\n!!! kamailio reg-event test: IGNORED — ${problems.join("; ")}. ` +
      "Set CONCLAVE_REQUIRE_SERVICES=1 to make this fail.\n",
  );
}
const ignore = (problems.length > 0 && !REQUIRE) ||
  ignoreWithoutRedis("tests/e2e/kamailio_reg_event_test.ts");

/** One SIPp REGISTER of `user@kam.test` from `port` (its Contact), through Kamailio's TCP. */
function register(
  kamailio: Kamailio,
  dir: string,
  name: string,
  port: number,
  expires: number,
): Promise<SippResult> {
  return runSipp({
    scenario: scenarioPath("register"),
    remote: kamailio.address,
    localPort: port,
    dir,
    name,
    timeoutSec: 10,
    keys: {
      aor: `sip:alice@${FOREIGN}`,
      domain: FOREIGN,
      user: "alice",
      expires: String(expires),
      instance: `urn:uuid:00000000-0000-4000-8000-${String(port).padStart(12, "0")}`,
    },
  });
}

/** The Contact SIPp registers (its `[transport]` is upper case), as Kamailio must report it. */
function contactOf(port: number): string {
  return `sip:alice@127.0.0.1:${port};transport=TCP`;
}

/** What a device learnt through reg events looks like: no instance, the contact as id. */
function expectedDevice(port: number): Device {
  const contact = contactOf(port);
  return { aor: `sip:alice@${FOREIGN}`, id: contact, uri: contact, contact };
}

Deno.test({
  name: "kamailio reg-event: Conclave follows a foreign AOR's devices through Kamailio's " +
    "RFC 3680 NOTIFYs (register → added, Expires: 0 → removed)",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "conclave-regkam-" });
    const ours = uniqueDomain("regkam");
    const raw = await rawClient();
    const conclavePort = freePort();
    const kamailio = await Kamailio.start({
      dir: `${dir}/kamailio`,
      domain: FOREIGN,
      services: ["conference-factory"],
      serviceTarget: `127.0.0.1:${conclavePort}`,
      regEvent: true,
    });
    let t: TestServer | undefined;
    let ok = false;
    try {
      t = await startTestServer([
        `transport=sip:127.0.0.1:${conclavePort};transport=tcp`,
        `conference-factory-uris=sip:conference-factory@${ours}`,
        `outbound-proxy=${kamailio.uri()}`,
        "[redis]",
        "enabled=true",
      ]);
      const directory = t.server.deviceDirectory;
      assert.ok(directory instanceof RoutingDeviceDirectory);
      const aor = `sip:alice@${FOREIGN}`;
      assert.equal(directory.isLocal(aor), false, "kam.test must be a foreign domain");

      // An AOR nobody registered: Kamailio's one-time NOTIFY has no body → no devices.
      assert.deepEqual(await directory.devicesOf(`sip:nobody@${FOREIGN}`), []);

      // 1. Conclave subscribes to alice's registrations (through Kamailio, its outbound proxy).
      const events: DeviceEvent[] = [];
      const watch = directory.watch(aor, (e) => events.push(e));
      await eventually(
        "Kamailio receives the reg SUBSCRIBE",
        async () => (await kamailio.log()).includes(`REQ SUBSCRIBE sip:alice@${FOREIGN} `),
      );
      assert.deepEqual(await directory.devicesOf(aor), []);

      // 2. A first device registers at Kamailio → added, with its exact contact URI.
      const [first, second] = [freePort(), freePort()];
      const reg1 = await register(kamailio, `${dir}/sipp`, "reg1", first, 600);
      assert.equal(reg1.code, 0, `REGISTER failed: ${reg1.errors}`);
      await eventually("first device added", () => events.length >= 1);
      assert.deepEqual(events[0]?.changes, [{ kind: "added", device: expectedDevice(first) }]);
      assert.deepEqual(events[0]?.devices, [expectedDevice(first)]);

      // 3. A second one → added; the first is unchanged (Kamailio resends it in full state).
      const reg2 = await register(kamailio, `${dir}/sipp`, "reg2", second, 600);
      assert.equal(reg2.code, 0, `REGISTER failed: ${reg2.errors}`);
      await eventually("second device added", () => events.length >= 2);
      assert.deepEqual(events[1]?.changes, [{ kind: "added", device: expectedDevice(second) }]);
      assert.deepEqual(
        (await directory.devicesOf(aor)).map((d) => d.contact).sort(),
        [contactOf(first), contactOf(second)].sort(),
      );

      // 4. The first unregisters (Expires: 0) → removed; then the last one → removed, none left.
      const unreg1 = await register(kamailio, `${dir}/sipp`, "unreg1", first, 0);
      assert.equal(unreg1.code, 0, `un-REGISTER failed: ${unreg1.errors}`);
      await eventually("first device removed", () => events.length >= 3);
      assert.deepEqual(events[2]?.changes, [{ kind: "removed", device: expectedDevice(first) }]);
      assert.deepEqual(events[2]?.devices, [expectedDevice(second)]);
      const unreg2 = await register(kamailio, `${dir}/sipp`, "unreg2", second, 0);
      assert.equal(unreg2.code, 0, `un-REGISTER failed: ${unreg2.errors}`);
      await eventually("second device removed", () => events.length >= 4);
      assert.deepEqual(events[3]?.changes, [{ kind: "removed", device: expectedDevice(second) }]);
      assert.deepEqual(events[3]?.devices, []);
      assert.deepEqual(await directory.devicesOf(aor), []);
      assert.equal(events.length, 4, "no other change was reported");

      // 5. Closing the watch unsubscribes: Kamailio's presence takes the in-dialog SUBSCRIBE
      // (to its Contact, Expires: 0) and the subscription is gone.
      const unsubscribed = /reg-event SUBSCRIBE sip:reginfo@\S+ expires=0 handled: 1\b/;
      assert.doesNotMatch(await kamailio.log(), unsubscribed);
      watch.close();
      await eventually(
        "un-SUBSCRIBE handled by Kamailio",
        async () => unsubscribed.test(await kamailio.log()),
      );
      assert.equal((directory.sourceFor(aor) as RegEventDirectory).subscriptionCount, 0);
      ok = true;
    } finally {
      await t?.stop();
      await kamailio.stop();
      const log = await kamailio.log();
      await cleanDomain(raw, ours);
      raw.destroy();
      if (Deno.env.get("KEEP_REGKAM") === undefined && ok) {
        await Deno.remove(dir, { recursive: true });
      } else {console.error(
          `kamailio reg-event test left ${dir}; Kamailio log tail:\n${log.slice(-4000)}`,
        );}
    }
  },
});
