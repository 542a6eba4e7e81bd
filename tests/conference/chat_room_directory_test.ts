/**
 * Chat rooms with Flexisip's registrar database (real Redis): once the creator opened the
 * room, the focus INVITEs every registered device of the other participants (From the room,
 * Contact `;text;isfocus`, Subject, the list of the others as `recipient-list-history`, no
 * SDP), skipping devices whose specs lack `groupchat`; a device that registers later is
 * invited too (the proxy's PUBLISH on the AOR channel); an invited device that subscribes gets
 * the room's messages.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { serializeFlexisipContact } from "../../lib/registrar/flexisip_record.ts";
import { createResponse, type SipRequest } from "../../lib/sip/message.ts";
import { parseUri } from "../../lib/sip/uri.ts";
import {
  becomePresent,
  chatClient,
  cpim,
  createRoom,
  receiveChat,
  sendChat,
} from "../_helpers/chat_steps.ts";
import { contactOf } from "../_helpers/conference_steps.ts";
import type { SipClient } from "../_helpers/sip_client.ts";
import { textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";
import { ignoreWithoutRedis, rawClient } from "../registrar/_redis.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

const ignore = ignoreWithoutRedis("tests/conference/chat_room_directory_test.ts");

/** A Flexisip binding of `client` (its contact, instance = its gr) with these specs. */
function binding(client: SipClient, specs: string): [string, string] {
  const instance = client.gr!;
  const key = `"<${instance}>"`;
  const value = serializeFlexisipContact({
    key,
    uri: parseUri(`sip:${client.user}@127.0.0.1:${client.peer.port};transport=tcp`),
    params: new Map([
      ["+sip.instance", key],
      ["pub-gruu", `"${client.aor};gr=${instance}"`],
      ["+org.linphone.specs", `"${specs}"`],
    ]),
    callId: crypto.randomUUID(),
    expires: 3600,
    cseq: 1,
    updatedAt: Math.floor(Date.now() / 1000),
    alias: false,
    usedAsRoute: false,
    path: [],
    accept: [],
    userAgent: "test",
  });
  return [key, value];
}

/** Answers the focus's INVITE 200 with our Contact (a device accepting the room). */
async function acceptInvite(client: SipClient): Promise<SipRequest> {
  const invite = await client.request("INVITE");
  await client.send(
    createResponse(invite, 200, undefined, {
      toTag: `a${client.tag}`,
      headers: [["Contact", `${client.contact};text`]],
    }),
  );
  await client.request("ACK");
  return invite;
}

Deno.test({
  name: "chat room + Redis directory: the focus invites registered devices, then later ones",
  ignore,
  async fn() {
    const t = await startTestServer(["local-domains=example.org", "[redis]", "enabled=true"]);
    const raw = await rawClient();
    const tag = crypto.randomUUID().slice(0, 8);
    const keys: string[] = [];
    const clients: SipClient[] = [];
    try {
      const alice = await chatClient(`alice${tag}`, t.port);
      const bob = await chatClient(`bob${tag}`, t.port);
      const bobOld = await chatClient(`bob${tag}`, t.port);
      const carol = await chatClient(`carol${tag}`, t.port);
      clients.push(alice, bob, bobOld, carol);
      const bobKey = `fs:${bob.user}@example.org`;
      const carolKey = `fs:${carol.user}@example.org`;
      keys.push(bobKey, carolKey);
      await raw.hSet(bobKey, ...binding(bob, "ephemeral/1.1,groupchat/1.1"));
      await raw.hSet(bobKey, ...binding(bobOld, "ephemeral/1.1"));

      const { room } = await createRoom(alice, [bob.aor, carol.aor], { subject: "Found" });
      const invite = await acceptInvite(bob);
      assert.match(invite.headers.get("From") ?? "", /conf-id=/);
      assert.equal(invite.uri.port, bob.peer.port, "sent straight to the registered contact");
      assert.match(invite.headers.get("Contact") ?? "", /;text/);
      assert.match(invite.headers.get("Contact") ?? "", /isfocus/);
      assert.equal(invite.headers.get("Subject"), "Found");
      assert.equal(invite.contentType, "application/resource-lists+xml");
      assert.match(invite.headers.get("Content-Disposition") ?? "", /recipient-list-history/);
      assert.match(textOf(invite), new RegExp(`${alice.aor}`));
      assert.match(textOf(invite), new RegExp(`${carol.aor}`));
      assert.doesNotMatch(textOf(invite), new RegExp(`"${bob.aor}"`));
      assert.equal(contactOf(invite).includes("conf-id="), true);

      // carol registers after the room was made: her device is invited then.
      await raw.hSet(carolKey, ...binding(carol, "groupchat/1.1"));
      await raw.publish(`${carol.user}@example.org`, `"<${carol.gr}>"`);
      await acceptInvite(carol);

      for (const c of [alice, bob, carol]) await becomePresent(c, room);
      const body = cpim(alice.aor, room, "found you");
      assert.equal((await sendChat(alice, room, body)).status, 202);
      assert.equal(textOf(await receiveChat(bob)), body);
      assert.equal(textOf(await receiveChat(carol)), body);
      // bob's old device (no groupchat) was never invited.
      const cseq = await bobOld.sendRequest("OPTIONS", "sip:conference-factory@127.0.0.1");
      const first = await bobOld.take((m) =>
        ("method" in m && m.method === "INVITE") ||
        ("status" in m && m.cseq.seq === cseq)
      );
      assert.ok(!("method" in first), "no INVITE to a device without groupchat");
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await t.stop();
      if (keys.length > 0) await raw.del(keys);
      raw.destroy();
    }
  },
});
