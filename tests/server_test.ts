/**
 * The composition root's resource accounting over real TCP on a stepped clock: calls that
 * end leave no dialog, call or media port behind at once, and no transaction once the
 * INVITE server transactions' Timer L (RFC 6026 §8.7, 64×T1) has run.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../lib/config/clock.ts";
import { setLogLevel } from "../lib/config/log.ts";
import type { ServerResources } from "../lib/server.ts";
import {
  createConference,
  type FocusCall,
  inCall,
  joinConference,
} from "./_helpers/conference_steps.ts";
import { SipClient } from "./_helpers/sip_client.ts";
import { startTestServer, type TestServer } from "./_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

const NOTHING: ServerResources = {
  serverTransactions: 0,
  clientTransactions: 0,
  dialogs: 0,
  calls: 0,
  mediaPorts: 0,
  tickingConferences: 0,
};

/** Lets pending I/O completions (socket closes) run: macrotask turns, no timers involved. */
async function settle(turns = 50): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Stops a server driven by a stepped clock (shutdown waits on that clock). */
async function stopStepped(srv: TestServer, clock: FakeClock): Promise<void> {
  const stopping = srv.stop();
  for (let i = 0; i < 20; i++) {
    clock.advance(100);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await stopping;
}

Deno.test("server: ended calls leave no dialog, call, media port or transaction behind", async () => {
  const clock = new FakeClock(1_000_000);
  const srv = await startTestServer([], undefined, { clock });
  const users = ["alice", "bob", "carol"];
  const clients = await Promise.all(users.map((u) => SipClient.connect(u, srv.port)));
  try {
    assert.deepEqual(srv.server.resources, NOTHING, "a fresh server holds nothing");
    const conference = await createConference(clients[0]!);
    const calls: FocusCall[] = [];
    for (const [i, client] of clients.entries()) {
      calls.push(await joinConference(client, conference, 40000 + 2 * i));
    }
    const during = srv.server.resources;
    assert.equal(during.dialogs, 3);
    assert.equal(during.calls, 3);
    assert.equal(during.mediaPorts, 3, "one allocation per call (RTP + RTCP: no rtcp-mux)");
    assert.equal(during.tickingConferences, 1, "one conference on the media tick");

    for (const [i, client] of clients.entries()) {
      assert.equal((await inCall(client, calls[i]!, "BYE")).status, 200);
    }
    await settle();
    const ended = srv.server.resources;
    assert.equal(ended.tickingConferences, 0, "the conference left the media tick");
    assert.equal(ended.dialogs, 0, "dialogs end with the BYE");
    assert.equal(ended.calls, 0);
    assert.equal(ended.mediaPorts, 0, "media sockets closed and ports returned");
    assert.equal(ended.clientTransactions, 0);
    // The 2xx-answered INVITEs' server transactions absorb retransmissions until Timer L
    // (RFC 6026 §8.7); BYE transactions over TCP end at once (Timer J = 0, §17.2.2).
    assert.equal(ended.serverTransactions, 3, "only the three accepted INVITEs remain");

    clock.advance(64 * 500 - 1);
    await settle(5);
    assert.equal(srv.server.resources.serverTransactions, 3, "still within Timer L");
    clock.advance(2);
    await settle(5);
    const later = srv.server.resources;
    assert.deepEqual(later, NOTHING, "after Timer L nothing is left (the empty conference ended)");
  } finally {
    for (const client of clients) await client.close();
    await stopStepped(srv, clock);
  }
});
