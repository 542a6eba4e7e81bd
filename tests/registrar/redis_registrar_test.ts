/**
 * The Redis registrar against real Redis: the shared server (unique domains per test, only
 * those keys deleted) and a private redis-server that is killed and restarted to prove that
 * outages are survived and bindings rewritten.
 */
import assert from "node:assert/strict";
import { systemClock } from "../../lib/config/clock.ts";
import { createLogger } from "../../lib/config/log.ts";
import type { DeviceEvent } from "../../lib/registrar/device_directory.ts";
import {
  parseFlexisipContact,
  serializeFlexisipContact,
} from "../../lib/registrar/flexisip_record.ts";
import {
  CONFERENCE_CALL_ID,
  NEVER_EXPIRES,
  RedisRegistrar,
  type ServerBinding,
} from "../../lib/registrar/redis_registrar.ts";
import { freePort, LogCapture } from "../storage/_support.ts";
import {
  cleanDomain,
  eventually,
  ignoreWithoutRedis,
  ignoreWithoutRedisServer,
  PrivateRedis,
  rawClient,
  SHARED_REDIS,
  uniqueDomain,
} from "./_redis.ts";

const ignore = ignoreWithoutRedis("tests/registrar/redis_registrar_test.ts");
const ignorePrivate = ignoreWithoutRedisServer("tests/registrar/redis_registrar_test.ts");
const logger = createLogger("registrar-test");
const fastBackoff = { initialMs: 20, maxMs: 200 };
const UUID = "urn:uuid:6d0f6f2e-2b8e-4a39-9d8c-3f3b1f1c9a10";

function bindingsFor(domain: string): ServerBinding[] {
  return ["conference-factory", "conference-focus"].map((user) => ({
    aor: `sip:${user}@${domain}`,
    contact: "sip:127.0.0.1:6064;transport=tcp",
    instance: UUID,
    path: ["sip:127.0.0.1:5060;transport=tcp;lr"],
    userAgent: "Conclave/test",
  }));
}

/** A Linphone device's binding, serialized exactly as Flexisip's registrar writes it. */
function linphoneRecord(user: string, domain: string, uuid: string, updatedAt: number): string {
  return `<sip:${user}@192.168.1.20:41234;transport=tcp;callid=Gh3k9Lq2Za;expires=3600;cseq=20;` +
    `updatedAt=${updatedAt};alias=no;usedAsRoute=no?Path=%3Csip:127.0.0.1:5060%3Btransport%3Dtcp%3Blr%3E` +
    `&Accept=&User-Agent=LinphoneDesktop/5.1.65%20(host)%20Debian/12%20LinphoneSDK/5.1.65>;` +
    `+sip.instance="<urn:uuid:${uuid}>";+org.linphone.specs="ephemeral/1.1,groupchat/1.1";` +
    `pub-gruu="sip:${user}@${domain};gr=urn:uuid:${uuid}"`;
}

const now = () => Math.floor(Date.now() / 1000);

Deno.test({
  name: "registrar: factory and focus URIs are bound as Flexisip fs: hashes",
  ignore,
  async fn() {
    const domain = uniqueDomain("bind");
    const raw = await rawClient();
    const registrar = new RedisRegistrar({
      endpoint: SHARED_REDIS,
      clock: systemClock,
      logger,
      backoff: fastBackoff,
      bindings: bindingsFor(domain),
    });
    try {
      const before = now();
      await registrar.start();
      await eventually("bindings written", () => registrar.bindRuns > 0);
      for (const user of ["conference-factory", "conference-focus"]) {
        const key = `fs:${user}@${domain}`;
        const hash = await raw.hGetAll(key);
        assert.deepEqual(Object.keys(hash), [`"<${UUID}>"`]);
        const value = hash[`"<${UUID}>"`] as string;
        assert.match(
          value,
          /^<sip:127\.0\.0\.1:6064;transport=tcp;callid=CONFERENCE;expires=2147483647;cseq=0;updatedAt=\d+;alias=no;usedAsRoute=no\?Path=%3Csip:127\.0\.0\.1:5060%3Btransport%3Dtcp%3Blr%3E&Accept=&User-Agent=Conclave\/test>;\+sip\.instance="<urn:uuid:6d0f6f2e-2b8e-4a39-9d8c-3f3b1f1c9a10>";pub-gruu="sip:conference-[a-z]+@[^;]+;gr=urn:uuid:6d0f6f2e-2b8e-4a39-9d8c-3f3b1f1c9a10"$/,
        );
        const contact = parseFlexisipContact(`"<${UUID}>"`, value);
        assert.equal(contact.callId, CONFERENCE_CALL_ID);
        assert.equal(contact.expires, NEVER_EXPIRES);
        assert.ok(contact.updatedAt >= before && contact.updatedAt <= now());
        assert.equal(contact.params.get("pub-gruu"), `"sip:${user}@${domain};gr=${UUID}"`);
        // EXPIREAT = updatedAt + INT_MAX, as Flexisip sets the record's latest expiry.
        const ttl = await raw.expireTime(key);
        assert.equal(ttl, contact.updatedAt + NEVER_EXPIRES);
      }
      // The registrar reads its own bindings as devices of those URIs (a proxy would too).
      const devices = await registrar.devicesOf(`sip:conference-factory@${domain}`);
      assert.equal(devices.length, 1);
      assert.equal(devices[0]?.uri, `sip:conference-factory@${domain};gr=${UUID}`);
      assert.equal(devices[0]?.instance, UUID);
    } finally {
      await registrar.stop();
      await cleanDomain(raw, domain);
      raw.destroy();
    }
  },
});

Deno.test({
  name: "registrar: a device registered by the proxy (HSET + PUBLISH) reaches the change feed",
  ignore,
  async fn() {
    const domain = uniqueDomain("feed");
    const raw = await rawClient();
    const registrar = new RedisRegistrar({
      endpoint: SHARED_REDIS,
      clock: systemClock,
      logger,
      backoff: fastBackoff,
    });
    const events: DeviceEvent[] = [];
    try {
      await registrar.start();
      await eventually("connected", () => registrar.connected);
      const aor = `sip:alice@${domain}`;
      const key = `fs:alice@${domain}`;
      // A phone already registered before the watch starts.
      const phone = "0b8c7e0e-1111-4c55-8e9a-7a6a4b0c1d01";
      await raw.hSet(key, `"<urn:uuid:${phone}>"`, linphoneRecord("alice", domain, phone, now()));
      await raw.expireAt(key, now() + 3600);
      const watch = registrar.watch(aor, (event) => events.push(event));
      await eventually("initial device reported", () => events.length === 1);
      assert.deepEqual(events[0]?.changes.map((c) => [c.kind, c.device.instance]), [
        ["added", `urn:uuid:${phone}`],
      ]);
      await eventually("channel subscribed", async () => {
        const counts = await raw.pubSubNumSub(`alice@${domain}`);
        return (counts[`alice@${domain}`] ?? 0) > 0;
      });

      // A second device registers: Flexisip writes the field then PUBLISHes its unique id.
      const laptop = "0b8c7e0e-2222-4c55-8e9a-7a6a4b0c1d02";
      await raw.hSet(key, `"<urn:uuid:${laptop}>"`, linphoneRecord("alice", domain, laptop, now()));
      await raw.publish(`alice@${domain}`, `"<urn:uuid:${laptop}>"`);
      await eventually("second device reported", () => events.length === 2);
      const added = events[1]?.changes ?? [];
      assert.equal(added.length, 1);
      assert.equal(added[0]?.kind, "added");
      assert.deepEqual(added[0]?.device, {
        aor,
        id: `urn:uuid:${laptop}`,
        instance: `urn:uuid:${laptop}`,
        uri: `sip:alice@${domain};gr=urn:uuid:${laptop}`,
        contact: "sip:alice@192.168.1.20:41234;transport=tcp",
        userAgent: "LinphoneDesktop/5.1.65 (host) Debian/12 LinphoneSDK/5.1.65",
        specs: "ephemeral/1.1,groupchat/1.1",
      });
      assert.equal(events[1]?.devices.length, 2);

      // A malformed field written by someone else is skipped with one warning.
      const capture = new LogCapture();
      try {
        await raw.hSet(key, "fs-gen-garbage", "<<not a contact");
        await raw.publish(`alice@${domain}`, "fs-gen-garbage");
        await eventually(
          "warning",
          () => capture.matching("bad registrar record field skipped").length === 1,
        );
        assert.equal((await registrar.devicesOf(aor)).length, 2);
      } finally {
        capture.restore();
      }

      // The laptop unregisters (HDEL + PUBLISH): removal.
      await raw.hDel(key, `"<urn:uuid:${laptop}>"`);
      await raw.publish(`alice@${domain}`, `"<urn:uuid:${laptop}>"`);
      await eventually("removal reported", () => events.length === 3);
      assert.deepEqual(events[2]?.changes.map((c) => [c.kind, c.device.instance]), [
        ["removed", `urn:uuid:${laptop}`],
      ]);
      watch.close();
      await eventually("channel left", async () => {
        const counts = await raw.pubSubNumSub(`alice@${domain}`);
        return (counts[`alice@${domain}`] ?? 0) === 0;
      });
    } finally {
      await registrar.stop();
      await cleanDomain(raw, domain);
      raw.destroy();
    }
  },
});

Deno.test({
  name: "registrar: an expired binding is not a device; a record round-trips through our codec",
  ignore,
  async fn() {
    const domain = uniqueDomain("stale");
    const raw = await rawClient();
    const registrar = new RedisRegistrar({
      endpoint: SHARED_REDIS,
      clock: systemClock,
      logger,
      backoff: fastBackoff,
    });
    try {
      await registrar.start();
      await eventually("connected", () => registrar.connected);
      const key = `fs:bob@${domain}`;
      const fresh = "aaaaaaaa-0000-4000-8000-000000000001";
      const stale = "aaaaaaaa-0000-4000-8000-000000000002";
      const freshValue = linphoneRecord("bob", domain, fresh, now());
      await raw.hSet(key, `"<urn:uuid:${fresh}>"`, freshValue);
      await raw.hSet(key, `"<urn:uuid:${stale}>"`, linphoneRecord("bob", domain, stale, 1000));
      await raw.expireAt(key, now() + 3600);
      const devices = await registrar.devicesOf(`sip:bob@${domain};transport=tcp`);
      assert.deepEqual(devices.map((d) => d.instance), [`urn:uuid:${fresh}`]);
      const reparsed = parseFlexisipContact(`"<urn:uuid:${fresh}>"`, freshValue);
      assert.equal(serializeFlexisipContact(reparsed), freshValue);
    } finally {
      await registrar.stop();
      await cleanDomain(raw, domain);
      raw.destroy();
    }
  },
});

Deno.test({
  name:
    "registrar: Redis down at start, killed mid-run and back: logged once, re-bound, feed resumes",
  ignore: ignorePrivate,
  async fn() {
    const port = freePort();
    const server = new PrivateRedis(port);
    const domain = uniqueDomain("outage");
    const capture = new LogCapture();
    const registrar = new RedisRegistrar({
      endpoint: { host: "127.0.0.1", port, password: "", database: 0 },
      clock: systemClock,
      logger,
      backoff: fastBackoff,
      bindings: bindingsFor(domain),
    });
    const events: DeviceEvent[] = [];
    try {
      // Nothing listens yet: start() returns, devicesOf says "unavailable", nothing throws.
      await registrar.start();
      const watch = registrar.watch(`sip:carol@${domain}`, (event) => events.push(event));
      await eventually("outage reported", () => capture.matching("Redis unreachable").length > 0);
      await assert.rejects(registrar.devicesOf(`sip:carol@${domain}`), {
        name: "DirectoryUnavailableError",
      });
      await server.start();
      await eventually("bound after Redis came up", () => registrar.bindRuns === 1);
      let raw = await rawClient({ host: "127.0.0.1", port });
      assert.equal(Object.keys(await raw.hGetAll(`fs:conference-factory@${domain}`)).length, 1);
      raw.destroy();

      // Killed mid-run (nothing kept on disk), then restarted on the same port.
      await server.kill();
      await eventually("loss noticed", () => !registrar.connected);
      await server.start();
      await eventually("re-bound after restart", () => registrar.bindRuns === 2);
      raw = await rawClient({ host: "127.0.0.1", port });
      try {
        assert.equal(Object.keys(await raw.hGetAll(`fs:conference-focus@${domain}`)).length, 1);
        // One warning for the whole first outage, one for the second: never a flood.
        assert.equal(capture.matching("Redis unreachable").length, 2);
        assert.equal(capture.matching("Redis connection restored").length, 2);

        // The channel subscription came back: a registration is heard.
        await eventually("channel restored", async () => {
          const counts = await raw.pubSubNumSub(`carol@${domain}`);
          return (counts[`carol@${domain}`] ?? 0) > 0;
        });
        const uuid = "cccccccc-0000-4000-8000-000000000003";
        await raw.hSet(
          `fs:carol@${domain}`,
          `"<urn:uuid:${uuid}>"`,
          linphoneRecord("carol", domain, uuid, now()),
        );
        await raw.publish(`carol@${domain}`, `"<urn:uuid:${uuid}>"`);
        await eventually("device heard after outage", () => events.length === 1);
        assert.equal(events[0]?.changes[0]?.kind, "added");

        // The record expires in Redis (key event `expired`): the device is reported gone.
        await raw.pExpire(`fs:carol@${domain}`, 50);
        await eventually("expiry reported", () => events.length === 2);
        assert.deepEqual(events[1]?.changes.map((c) => c.kind), ["removed"]);
        assert.deepEqual(events[1]?.devices, []);
      } finally {
        raw.destroy();
      }
      watch.close();
    } finally {
      capture.restore();
      await registrar.stop();
      await server.kill();
    }
  },
});
