import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { linearToUlaw } from "../../lib/media/codecs/g711.ts";
import { parseRtp } from "../../lib/media/rtp.ts";
import {
  conferenceInfoOf,
  createConference,
  joinConference,
  notifyOf,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { SipClient } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

/** One 20 ms PCMU RTP packet of a 700 Hz tone. */
function tonePacket(seq: number, ssrc: number): Uint8Array {
  const p = new Uint8Array(12 + 160);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 0;
  v.setUint16(2, seq);
  v.setUint32(4, seq * 160);
  v.setUint32(8, ssrc);
  for (let i = 0; i < 160; i++) {
    p[12 + i] = linearToUlaw(
      Math.round(8000 * Math.sin((2 * Math.PI * 700 * (seq * 160 + i)) / 8000)),
    );
  }
  return p;
}

Deno.test("src-id: conference-info shows the SSRC a device sends, which others receive as a CSRC", async () => {
  const srv = await startTestServer();
  const alice = await SipClient.connect("alice", srv.port);
  const bob = await SipClient.connect("bob", srv.port);
  const aliceRtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const bobRtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const BOB_SSRC = 0xb0b0_1234;
  let sending = true;
  try {
    const conf = await createConference(alice);
    await joinConference(alice, conf, (aliceRtp.addr as Deno.NetAddr).port);
    const bobCall = await joinConference(bob, conf, (bobRtp.addr as Deno.NetAddr).port);
    const { subscription } = await subscribeConference(alice, conf);
    const full = conferenceInfoOf(await notifyOf(alice, subscription.callId));
    assert.doesNotMatch(full.xml, /<src-id>/, "no RTP yet, no src-id");

    // Bob talks (a tone, 20 ms packets) until the test has seen what it needs.
    const talk = (async () => {
      for (let seq = 0; sending; seq++) {
        await bobRtp.send(tonePacket(seq, BOB_SSRC), {
          transport: "udp",
          hostname: "127.0.0.1",
          port: bobCall.mediaPort,
        });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    for (;;) {
      const { xml } = conferenceInfoOf(await notifyOf(alice, subscription.callId));
      if (xml.includes(`<src-id>${BOB_SSRC}</src-id>`)) break;
    }
    // What Alice receives from the focus names Bob as the contributing source.
    for (;;) {
      const [data] = await aliceRtp.receive();
      const packet = parseRtp(data);
      if (packet && packet.csrcs.includes(BOB_SSRC)) break;
    }
    sending = false;
    await talk;
  } finally {
    sending = false;
    aliceRtp.close();
    bobRtp.close();
    await alice.close();
    await bob.close();
    await srv.stop();
  }
});
