/**
 * The whole server under hostile input (DEVELOPERS.md "bad input gets a clear answer and loses
 * nothing"): thousands of mutated SIP messages over UDP and TCP, seeded and deterministic, while
 * a conference with a live participant runs. Afterwards the server still answers OPTIONS, the
 * participant's dialog still works, and nothing was logged at ERROR level.
 */
import assert from "node:assert/strict";
import { setLogLevel, setLogSink } from "../lib/config/log.ts";
import { fixtureBytes, fixtureNames, prng } from "./sip/_util.ts";
import { pcmuOffer, SipClient } from "./_helpers/sip_client.ts";
import { startTestServer } from "./_helpers/test_server.ts";

const DATAGRAMS = 3000;
const STREAM_MESSAGES = 1500;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The plain factory INVITEs of the corpus: sent fresh, each one creates a conference. */
const wellFormedFactoryInvites = new Set<Uint8Array>();

/** Fixtures, with Request-URIs pointed at our factory half of the time; no resource lists (no dial-out). */
function corpus(): Uint8Array[] {
  const out: Uint8Array[] = [];
  wellFormedFactoryInvites.clear();
  for (const kind of ["valid", "invalid"] as const) {
    for (const name of fixtureNames(kind)) {
      const bytes = fixtureBytes(kind, name);
      const text = decoder.decode(bytes);
      if (/resource-lists/i.test(text)) continue;
      out.push(bytes);
      const line = /^([A-Z]+) \S+ SIP\/2\.0\r\n/.exec(text);
      if (line) {
        const factory = encoder.encode(
          text.replace(/^([A-Z]+) \S+ /, `$1 sip:conference-factory@127.0.0.1 `),
        );
        out.push(factory);
        // Captures from real clients (not the RFC 4475 torture cases) are plain, valid INVITEs.
        if (kind === "valid" && line[1] === "INVITE" && !name.startsWith("rfc4475")) {
          wellFormedFactoryInvites.add(factory);
        }
      }
    }
  }
  return out;
}

function mutate(rand: () => number, input: Uint8Array): Uint8Array {
  let b = input.slice();
  const steps = 1 + Math.floor(rand() * 3);
  for (let s = 0; s < steps; s++) {
    const at = Math.floor(rand() * (b.length + 1));
    switch (Math.floor(rand() * 5)) {
      case 0:
        if (b.length > 0) b[Math.min(at, b.length - 1)]! ^= 1 << Math.floor(rand() * 8);
        break;
      case 1:
        if (b.length > 0) {
          b[Math.min(at, b.length - 1)] = ':;,<>"\r\n 0'[Math.floor(rand() * 10)]!.charCodeAt(0);
        }
        break;
      case 2:
        b = b.slice(0, at);
        break;
      case 3: {
        const n = 1 + Math.floor(rand() * 6);
        const ins = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
        const c = new Uint8Array(b.length + n);
        c.set(b.subarray(0, at));
        c.set(ins, at);
        c.set(b.subarray(at), at + n);
        b = c;
        break;
      }
      default:
        // unchanged: valid messages get through to the focus too
        break;
    }
  }
  return b;
}

Deno.test("server survives mutated SIP over UDP and TCP; a live conference is undisturbed", async () => {
  const errors: string[] = [];
  setLogLevel("error");
  const previous = setLogSink((line, level) => {
    if (level === "error") errors.push(line);
  });
  const srv = await startTestServer([
    "transport=sip:127.0.0.1:0;transport=tcp sip:127.0.0.1:0;transport=udp",
  ]);
  const tcpPort = srv.server.addresses.find((a) => a.transport === "TCP")!.port;
  const udpPort = srv.server.addresses.find((a) => a.transport === "UDP")!.port;
  const alice = await SipClient.connect("alice", tcpPort);
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const drain = (async () => {
    try {
      for (;;) await udp.receive();
    } catch {
      // closed
    }
  })();
  try {
    // A conference with a live participant.
    const f = await alice.sendRequest("INVITE", "sip:conference-factory@127.0.0.1", {
      body: pcmuOffer(1),
    });
    const redirect = await alice.response(f, "INVITE");
    assert.equal(redirect.status, 302);
    await alice.ack(redirect, "sip:conference-factory@127.0.0.1");
    const conf = /<([^>]+)>/.exec(redirect.headers.get("Contact")!)![1]!;
    const j = await alice.sendRequest("INVITE", conf, {
      body: pcmuOffer(45000),
      callId: `${alice.callId}-j`,
    });
    const joined = await alice.response(j, "INVITE");
    assert.equal(joined.status, 200);
    await alice.ack(joined, conf);

    const rand = prng(20261121);
    const inputs = corpus();
    let fresh = 0;
    let creations = 0;
    let overUdp = true;
    const pick = () => {
      const base = inputs[Math.floor(rand() * inputs.length)]!;
      if (rand() < 0.1) {
        // A new transaction (fresh branch and Call-ID), so it is not absorbed as a retransmission.
        fresh++;
        // Counted over UDP only: on a stream, garbage before it may swallow it (framing).
        if (overUdp && wellFormedFactoryInvites.has(base)) creations++;
        return encoder.encode(
          decoder.decode(base)
            .replace(/branch=[^;\r\n]+/, `branch=z9hG4bK-fuzz-${fresh}`)
            .replace(/^(Call-ID|i):[^\r\n]*/im, `Call-ID: fuzz-${fresh}`),
        );
      }
      return mutate(rand, base);
    };

    // UDP: datagrams from one socket (answers drained, never awaited).
    for (let i = 0; i < DATAGRAMS; i++) {
      await udp.send(pick(), { transport: "udp", hostname: "127.0.0.1", port: udpPort });
    }

    overUdp = false;
    // TCP: several connections; the server may close one after a framing error: reconnect.
    let conn: Deno.Conn | undefined;
    let reader: Promise<void> | undefined;
    for (let i = 0; i < STREAM_MESSAGES; i++) {
      if (!conn || i % 200 === 0) {
        conn?.close();
        await reader;
        conn = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
        const c = conn;
        reader = (async () => {
          const buf = new Uint8Array(65536);
          try {
            while ((await c.read(buf)) !== null) { /* drain */ }
          } catch {
            // reset by the server or closed by us
          }
        })();
      }
      try {
        await conn.write(pick());
      } catch {
        conn = undefined;
      }
    }
    try {
      conn?.close();
    } catch {
      // already closed
    }
    await reader;

    // The server still answers, and alice's dialog is intact.
    const probe = await SipClient.connect("probe", tcpPort);
    const o = await probe.sendRequest("OPTIONS", "sip:conference-factory@127.0.0.1");
    assert.equal((await probe.response(o, "OPTIONS")).status, 200);
    await probe.close();
    const contact = /<([^>]+)>/.exec(joined.headers.get("Contact")!)![1]!;
    const inDialog = await alice.sendRequest("OPTIONS", contact, {
      callId: `${alice.callId}-j`,
      to: conf,
      toTag: joined.toTag!,
      cseq: 50,
    });
    assert.equal((await alice.response(inDialog, "OPTIONS")).status, 200);
    const live = [...srv.server.focus.conferences.values()].find((c) =>
      c.record.uri && conf.includes(c.id)
    );
    assert.ok(live, "alice's conference is still live");
    assert.equal(live.callCount, 1);
    // The input really reached the focus: fresh plain factory INVITEs created conferences (not
    // necessarily all: a datagram flood may overflow the socket buffer, as UDP allows).
    assert.ok(creations > 0, "the seed sent no plain factory INVITE over UDP");
    assert.ok(srv.server.focus.conferences.size > 1, "no fuzzed factory INVITE reached the focus");
    assert.deepEqual(errors, [], "nothing logged at ERROR level");
  } finally {
    udp.close();
    await drain;
    await alice.close();
    await srv.stop();
    setLogSink(previous);
    setLogLevel("info");
  }
});
