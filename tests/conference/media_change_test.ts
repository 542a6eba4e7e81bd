/**
 * Media changes within a call over real sockets (RFC 3264 §8 re-INVITE): hold with
 * `a=sendonly` is answered `a=recvonly`, with `a=inactive` answered `a=inactive`, and the
 * conference-info endpoint shows `on-hold` (RFC 4575 §5.6), back to `connected` on resume; a
 * held call is not hung up for lack of RTP, and the no-RTP timeout counts again from the
 * resume; a participant muted by the focus stays muted across hold and resume.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { setLogLevel } from "../../lib/config/log.ts";
import {
  ackReinvite,
  byeOf,
  conferenceInfoOf,
  createConference,
  type FocusCall,
  inCall,
  joinConference,
  notifyOf,
  roundTrip,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

let offerVersion = 1;

/** A new offer (RFC 3264 §8: o= version + 1) for the same port with another direction. */
function reoffer(port: number, direction: string): string {
  offerVersion++;
  return pcmuOffer(port).replace(` 1 IN IP4`, ` ${offerVersion} IN IP4`).replace(
    "a=sendrecv",
    `a=${direction}`,
  );
}

/** Sends a re-INVITE, checks 200 and the answer's direction, ACKs it. */
async function reinvite(
  client: SipClient,
  call: FocusCall,
  port: number,
  offered: string,
  answered: string,
): Promise<void> {
  const r = await inCall(client, call, "INVITE", reoffer(port, offered));
  assert.equal(r.status, 200, `re-INVITE ${offered} answered ${r.status} ${r.reason}`);
  const answer = textOf(r);
  assert.match(answer, /m=audio [1-9]\d* RTP\/AVP 0/);
  assert.match(answer, new RegExp(`^a=${answered}\\r?$`, "m"), answer);
  assert.equal(
    Number(/m=audio (\d+)/.exec(answer)![1]),
    call.mediaPort,
    "the focus keeps its RTP port",
  );
  await ackReinvite(client, r);
}

/** DTMF packet (RFC 4733, PT 101): event `digit`, packet `i` of 4. */
function dtmf(seq: number, digit: number, i: number, ts: number): Uint8Array {
  const p = new Uint8Array(16);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 101 | (i === 0 ? 0x80 : 0);
  v.setUint16(2, seq);
  v.setUint32(4, ts);
  v.setUint32(8, 0x51a7e);
  p[12] = digit;
  p[13] = (i >= 2 ? 0x80 : 0) | 10;
  v.setUint16(14, 160 * (i + 1));
  return p;
}

Deno.test("media change: hold (sendonly → recvonly, inactive → inactive) shows on-hold, resume shows connected; no-RTP timeout skips held calls and restarts on resume (stepped clock)", async () => {
  const clock = new FakeClock(2_000_000);
  const srv = await startTestServer(["no-rtp-timeout=2s"], undefined, { clock });
  const alice = await SipClient.connect("alice", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  const rtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (rtp.addr as Deno.NetAddr).port;
  try {
    const conference = await createConference(alice);
    const call = await joinConference(alice, conference, port);
    const watch = await subscribeConference(carol, conference);
    const full = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId)).info;
    let version = full.version!;
    const endpoint = async () => {
      const { xml, info } = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId));
      assert.equal(info.state, "partial");
      assert.equal(info.version, ++version);
      const status = /<endpoint [^>]*>\s*<status>([^<]+)<\/status>/.exec(xml)?.[1];
      const media = /<media [^>]*>[\s\S]*?<status>([^<]+)<\/status>/.exec(xml)?.[1];
      return { status, media };
    };
    const settle = () => Promise.all([alice, carol].map(roundTrip));

    // t=0.5 s: hold with sendonly (RFC 3264 §8.4) → recvonly, on-hold.
    clock.advance(500);
    await reinvite(alice, call, port, "sendonly", "recvonly");
    assert.deepEqual(await endpoint(), { status: "on-hold", media: "recvonly" });
    await settle();

    // Held for 5 s, far beyond the 2 s no-RTP timeout: the call stays up.
    clock.advance(5_000);
    assert.equal((await inCall(alice, call, "OPTIONS")).status, 200, "held call kept");

    // Resume (t=5.5 s) → sendrecv, connected.
    await reinvite(alice, call, port, "sendrecv", "sendrecv");
    assert.deepEqual(await endpoint(), { status: "connected", media: "sendrecv" });

    // Hold with inactive → inactive, on-hold; resume again (t=5.5 s still).
    await reinvite(alice, call, port, "inactive", "inactive");
    assert.deepEqual(await endpoint(), { status: "on-hold", media: "inactive" });
    await reinvite(alice, call, port, "sendrecv", "sendrecv");
    assert.deepEqual(await endpoint(), { status: "connected", media: "sendrecv" });
    await settle();

    // No RTP after the resume: 1.5 s later still up, 2.5 s later hung up with a Reason.
    clock.advance(1_500);
    assert.equal((await inCall(alice, call, "OPTIONS")).status, 200, "timeout counts from resume");
    await settle();
    clock.advance(1_000);
    const bye = await byeOf(alice, call);
    assert.match(bye.headers.get("Reason") ?? "", /RTP/);
  } finally {
    await alice.close();
    await carol.close();
    rtp.close();
    const stopping = srv.stop();
    for (let i = 0; i < 20; i++) {
      clock.advance(100);
      await new Promise((r) => setTimeout(r, 0));
    }
    await stopping;
  }
});

Deno.test("media change: a participant muted by the focus (DTMF *6) stays muted-via-focus across hold and resume", async () => {
  const srv = await startTestServer();
  const alice = await SipClient.connect("alice", srv.port);
  const carol = await SipClient.connect("carol", srv.port);
  const rtp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (rtp.addr as Deno.NetAddr).port;
  try {
    const conference = await createConference(alice);
    const call = await joinConference(alice, conference, port);
    const watch = await subscribeConference(carol, conference);
    await notifyOf(carol, watch.subscription.callId);
    const status = async () => {
      const { xml } = conferenceInfoOf(await notifyOf(carol, watch.subscription.callId));
      return /<endpoint [^>]*>\s*<status>([^<]+)<\/status>/.exec(xml)?.[1];
    };
    let seq = 0;
    let ts = 0;
    for (const digit of [10, 6]) {
      ts += 1600;
      for (let i = 0; i < 4; i++) {
        await rtp.send(dtmf(seq++, digit, i, ts), {
          transport: "udp",
          hostname: "127.0.0.1",
          port: call.mediaPort,
        });
      }
    }
    // The first RTP also publishes the device's src-id (a partial without a status).
    let first = await status();
    while (first === undefined) first = await status();
    assert.equal(first, "muted-via-focus");
    await reinvite(alice, call, port, "sendonly", "recvonly");
    assert.equal(await status(), "on-hold");
    await reinvite(alice, call, port, "sendrecv", "sendrecv");
    assert.equal(await status(), "muted-via-focus", "still muted after the resume");
  } finally {
    await alice.close();
    await carol.close();
    rtp.close();
    await srv.stop();
  }
});
