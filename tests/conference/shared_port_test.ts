import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { linearToUlaw, ulawToLinear } from "../../lib/media/codecs/g711.ts";
import { parseRtp } from "../../lib/media/rtp.ts";
import {
  createConference,
  type FocusCall,
  inCall,
  joinConference,
} from "../_helpers/conference_steps.ts";
import { goertzel } from "../_helpers/media_phone.ts";
import { SipClient } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

/** One 20 ms PCMU packet of a `hz` tone. */
function tonePacket(seq: number, ssrc: number, hz: number): Uint8Array {
  const p = new Uint8Array(12 + 160);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  v.setUint16(2, seq);
  v.setUint32(4, seq * 160);
  v.setUint32(8, ssrc);
  for (let i = 0; i < 160; i++) {
    p[12 + i] = linearToUlaw(
      Math.round(6000 * Math.sin((2 * Math.PI * hz * (seq * 160 + i)) / 8000)),
    );
  }
  return p;
}

/** A participant's media: sends its tone, keeps the decoded audio and the source ports. */
class Talker {
  readonly conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  readonly heard: number[] = [];
  readonly sources = new Set<number>();
  readonly #loop: Promise<void>;
  constructor(readonly hz: number) {
    this.#loop = this.#receive();
  }
  get port(): number {
    return (this.conn.addr as Deno.NetAddr).port;
  }
  async #receive(): Promise<void> {
    try {
      for (;;) {
        const [data, from] = await this.conn.receive();
        const packet = parseRtp(data);
        if (!packet || packet.payloadType !== 0) continue;
        this.sources.add((from as Deno.NetAddr).port);
        for (const b of packet.payload) this.heard.push(ulawToLinear(b));
      }
    } catch {
      // closed
    }
  }
  send(seq: number, to: number): Promise<number> {
    return this.conn.send(tonePacket(seq, 0x5000 + this.hz, this.hz), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: to,
    });
  }
  power(hz: number): number {
    const tail = Int16Array.from(this.heard.slice(-8000));
    return goertzel(tail, hz, 8000);
  }
  async close(): Promise<void> {
    this.conn.close();
    await this.#loop;
  }
}

Deno.test("server on a single shared audio-port: three callers hear each other, not themselves; nothing left after", async () => {
  const audioPort = 20000 + 2 * Math.floor(Math.random() * 5000);
  const srv = await startTestServer([`audio-port=${audioPort}`]);
  const users = ["alice", "bob", "carol"];
  const freqs = [500, 900, 1400];
  const clients = await Promise.all(users.map((u) => SipClient.connect(u, srv.port)));
  const talkers = freqs.map((hz) => new Talker(hz));
  try {
    const conference = await createConference(clients[0]!);
    const calls: FocusCall[] = [];
    for (const [i, client] of clients.entries()) {
      calls.push(await joinConference(client, conference, talkers[i]!.port));
    }
    assert.deepEqual(calls.map((c) => c.mediaPort), [audioPort, audioPort, audioPort]);
    assert.equal(srv.server.resources.mediaPorts, 3);

    // Everybody talks for 1.5 s of 20 ms packets (real time: the server's ticker is real).
    for (let seq = 0; seq < 75; seq++) {
      await Promise.all(talkers.map((t) => t.send(seq, audioPort)));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const [i, t] of talkers.entries()) {
      assert.deepEqual([...t.sources], [audioPort], `${users[i]} hears from the shared port`);
      assert.ok(t.heard.length >= 8000, `${users[i]} heard ${t.heard.length} samples`);
      const own = t.power(t.hz);
      for (const other of talkers.filter((o) => o !== t)) {
        const p = t.power(other.hz);
        assert.ok(
          p > 50 * own + 1e3,
          `${users[i]} hears ${other.hz} Hz (${p}) over its own (${own})`,
        );
      }
    }

    for (const [i, client] of clients.entries()) {
      assert.equal((await inCall(client, calls[i]!, "BYE")).status, 200);
    }
    for (let i = 0; i < 50 && srv.server.resources.mediaPorts > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    assert.equal(srv.server.resources.mediaPorts, 0, "every stream released");
    // The shared socket closed with the last stream: the port can be bound again.
    const again = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: audioPort });
    again.close();
  } finally {
    for (const t of talkers) await t.close();
    for (const c of clients) await c.close();
    await srv.stop();
  }
});
