import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { pcmuOffer, SipClient } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

Deno.test("capacity holds under concurrent joins: exactly max-participants users get 200", async () => {
  const srv = await startTestServer(["max-participants=3"]);
  const clients = await Promise.all(
    Array.from({ length: 8 }, (_, i) => SipClient.connect(`user${i}`, srv.port)),
  );
  try {
    const creator = clients[0]!;
    const f = await creator.sendRequest("INVITE", "sip:conference-factory@127.0.0.1", {
      body: pcmuOffer(1),
    });
    const redirect = await creator.response(f, "INVITE");
    assert.equal(redirect.status, 302);
    await creator.ack(redirect, "sip:conference-factory@127.0.0.1");
    const conf = /<([^>]+)>/.exec(redirect.headers.get("Contact")!)![1]!;
    // All eight INVITEs are on the wire before any answer comes back.
    const cseqs = await Promise.all(
      clients.map((c, i) =>
        c.sendRequest("INVITE", conf, { body: pcmuOffer(50000 + 2 * i), callId: `${c.callId}-j` })
      ),
    );
    const answers = await Promise.all(clients.map((c, i) => c.response(cseqs[i]!, "INVITE")));
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 486, 486, 486, 486, 486]);
    for (const [i, r] of answers.entries()) await clients[i]!.ack(r, conf);
  } finally {
    for (const c of clients) await c.close();
    await srv.stop();
  }
});
