/**
 * The composition root builds the device directory from `[redis]`: with Redis enabled the
 * factory, focus and dial-in URIs appear in the shared Redis as Flexisip bindings under the
 * instance id kept in the state directory (the same after a restart); disabled, there is none.
 */
import assert from "node:assert/strict";
import { RoutingDeviceDirectory } from "../../lib/registrar/device_directory.ts";
import { parseFlexisipContact } from "../../lib/registrar/flexisip_record.ts";
import type { SipRequest } from "../../lib/sip/message.ts";
import { RawStreamPeer } from "../_helpers/sip_transport.ts";
import { startTestServer } from "../_helpers/test_server.ts";
import { cleanDomain, eventually, ignoreWithoutRedis, rawClient, uniqueDomain } from "./_redis.ts";

const ignore = ignoreWithoutRedis("tests/registrar/server_directory_test.ts");

Deno.test("server: no device directory when [redis] is disabled", async () => {
  const t = await startTestServer();
  try {
    assert.equal(t.server.deviceDirectory, undefined);
  } finally {
    await t.stop();
  }
});

Deno.test({
  name: "server: with [redis] enabled, our URIs are bound with a persistent instance id",
  ignore,
  async fn() {
    const domain = uniqueDomain("server");
    const raw = await rawClient();
    const dir = await Deno.makeTempDir({ prefix: "conclave-reg-" });
    const extra = [
      `conference-factory-uris=sip:conference-factory@${domain}`,
      `conference-focus-uris=sip:conference-focus@${domain}`,
      `dial-in-rooms=sip:standup@${domain}`,
      "outbound-proxy=sip:127.0.0.1:5060;transport=tcp",
      "[redis]",
      "enabled=true",
    ];
    const keys = ["conference-factory", "conference-focus", "standup"].map((u) =>
      `fs:${u}@${domain}`
    );
    try {
      let t = await startTestServer(extra, dir);
      let instance: string;
      try {
        assert.ok(t.server.deviceDirectory instanceof RoutingDeviceDirectory);
        const routing = t.server.deviceDirectory as RoutingDeviceDirectory;
        assert.equal(routing.isLocal(`sip:alice@${domain}`), true);
        assert.equal(routing.isLocal("sip:bob@elsewhere.example"), false);
        instance = (await Deno.readTextFile(`${dir}/uuid`)).trim();
        assert.match(instance, /^urn:uuid:[0-9a-f-]{36}$/);
        await eventually("bindings in Redis", async () => (await raw.exists(keys)) === 3);
        for (const key of keys) {
          const hash = await raw.hGetAll(key);
          const value = hash[`"<${instance}>"`];
          assert.ok(value !== undefined, `${key} has our field`);
          const contact = parseFlexisipContact(`"<${instance}>"`, value);
          assert.equal(contact.uri.host, "127.0.0.1");
          assert.equal(contact.uri.port, t.port);
          assert.equal(contact.uri.params.get("transport"), "tcp");
          assert.deepEqual(contact.path, ["sip:127.0.0.1:5060;transport=tcp;lr"]);
          assert.equal(contact.callId, "CONFERENCE");
        }
      } finally {
        await t.stop();
      }
      // Bindings stay after a clean stop (as Flexisip's conference server leaves them), and a
      // restart reuses the instance id: same field, rewritten.
      assert.equal(await raw.exists(keys), 3);
      await raw.del(keys);
      t = await startTestServer(extra, dir);
      try {
        await eventually("re-bound", async () => (await raw.exists(keys)) === 3);
        assert.deepEqual(Object.keys(await raw.hGetAll(keys[0]!)), [`"<${instance}>"`]);
      } finally {
        await t.stop();
      }
    } finally {
      await cleanDomain(raw, domain);
      raw.destroy();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// A Contact without a transport parameter sends the notifier to UDP (RFC 3261 §18.2.2), where
// a TCP-only server listens to nothing: Kamailio's NOTIFYs were lost that way.
Deno.test({
  name: "server: the reg subscription's Contact names the transport we listen on",
  ignore,
  async fn() {
    const domain = uniqueDomain("contact");
    const raw = await rawClient();
    const proxy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const proxyPort = (proxy.addr as Deno.NetAddr).port;
    const t = await startTestServer([
      `conference-factory-uris=sip:conference-factory@${domain}`,
      `outbound-proxy=sip:127.0.0.1:${proxyPort};transport=tcp`,
      "[redis]",
      "enabled=true",
    ]);
    let peer: RawStreamPeer | undefined;
    try {
      const watch = t.server.deviceDirectory?.watch("sip:bob@elsewhere.example", () => {});
      assert.ok(watch);
      peer = await RawStreamPeer.accept(proxy);
      const subscribe = await peer.nextMessage() as SipRequest;
      assert.equal(subscribe.method, "SUBSCRIBE");
      assert.equal(subscribe.headers.get("Event"), "reg");
      assert.equal(
        subscribe.headers.get("Contact"),
        `<sip:conference-factory@127.0.0.1:${t.port};transport=tcp>`,
      );
    } finally {
      peer?.close();
      await t.stop();
      proxy.close();
      await cleanDomain(raw, domain);
      raw.destroy();
    }
  },
});
