/**
 * VideoConference over real UDP sockets: a VP8 packet from one participant arrives at the
 * other rewritten to the SSRC the focus uses towards it, as soon as it is received (no tick);
 * a PLI from a viewer reaches the viewed sender as a PLI from the focus (RFC 4585 §6.3.1),
 * a FIR-only sender gets a FIR (RFC 5104 §4.3.1); a NACK is answered from the buffer;
 * leaving sends RTCP BYE.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { readFeedback } from "../../lib/media/rtcp_feedback.ts";
import { nackPacket, pliPacket } from "../../lib/media/rtcp_feedback.ts";
import { UdpSocket } from "../../lib/media/udp_socket.ts";
import { VideoConference } from "../../lib/media/video_conference.ts";
import { seeded } from "../_helpers/media_phone.ts";
import { RtpPeer } from "../_helpers/rtp_peer.ts";

const KEY = new Uint8Array([0x10, 0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01]);

Deno.test("video conference: forwards on receipt with rewritten SSRC; PLI relayed to the viewed sender; FIR for FIR-only senders; NACK answered; BYE on removal", async () => {
  const clock = new FakeClock(0);
  const conference = new VideoConference({ clock, random: seeded(7) });
  const peers = [new RtpPeer(), new RtpPeer()];
  const sockets = peers.map(() => UdpSocket.bind("127.0.0.1", 0));
  try {
    const ssrcs = peers.map((peer, i) =>
      conference.addStream(`s${i}`, {
        owner: `p${i}`,
        socket: sockets[i]!,
        remote: { address: "127.0.0.1", port: peer.port },
        payloadType: 96 + i,
        direction: "sendrecv",
        feedback: i === 0
          ? { nack: true, pli: true, fir: true }
          : { nack: false, pli: false, fir: true },
      })
    );
    await peers[0]!.sendRtp(sockets[0]!.port, {
      payloadType: 96,
      sequenceNumber: 10,
      timestamp: 1000,
      ssrc: 0xaaaa,
      payload: KEY,
    });
    const got = await peers[1]!.nextRtp();
    assert.equal(got.ssrc, ssrcs[1], "the focus's SSRC towards peer 1");
    assert.equal(got.payloadType, 97, "peer 1's payload type number");
    assert.deepEqual(got.payload, KEY);
    assert.equal(got.fromPort, sockets[1]!.port, "sent from peer 1's own media port");
    assert.equal(conference.remoteSsrc("s0"), 0xaaaa);

    // Peer 1 loses the picture: its PLI (about our SSRC) becomes our PLI about 0xaaaa.
    clock.advance(1000);
    await peers[1]!.sendRtcp(sockets[1]!.port, [
      { type: "rr", ssrc: 0xbbbb, reports: [] },
      pliPacket(0xbbbb, ssrcs[1]!),
    ]);
    for (;;) {
      const rtcp = await peers[0]!.nextRtcp();
      const fb = rtcp.packets.map(readFeedback).find((f) => f !== undefined);
      if (fb === undefined) continue;
      assert.deepEqual(fb, { kind: "pli", sender: ssrcs[0], media: 0xaaaa });
      break;
    }
    // Peer 1 only negotiated ccm fir: when peer 0 needs a key frame from it, it gets a FIR.
    await peers[1]!.sendRtp(sockets[1]!.port, {
      payloadType: 97,
      sequenceNumber: 1,
      timestamp: 0,
      ssrc: 0xbbbb,
      payload: KEY,
    });
    await peers[0]!.nextRtp();
    clock.advance(1000);
    await peers[0]!.sendRtcp(sockets[0]!.port, [pliPacket(0xaaaa, ssrcs[0]!)]);
    for (;;) {
      const rtcp = await peers[1]!.nextRtcp();
      const fb = rtcp.packets.map(readFeedback).find((f) => f !== undefined);
      if (fb === undefined) continue;
      assert.equal(fb.kind, "fir");
      assert.deepEqual(fb.kind === "fir" ? fb.entries[0]!.ssrc : 0, 0xbbbb);
      break;
    }
    // A NACK for the packet peer 1 got is answered with the same packet.
    await peers[1]!.sendRtcp(sockets[1]!.port, [
      nackPacket(0xbbbb, ssrcs[1]!, [got.sequenceNumber]),
    ]);
    const again = await peers[1]!.nextRtp();
    assert.equal(again.sequenceNumber, got.sequenceNumber);
    assert.deepEqual(again.payload, KEY);
    assert.equal(conference.streamStats("s1").forwarded!.retransmitted, 1);

    conference.removeStream("s0");
    for (;;) {
      const rtcp = await peers[0]!.nextRtcp();
      if (rtcp.packets.some((p) => p.type === "bye")) break;
    }
  } finally {
    conference.close();
    for (const s of sockets) await s.close();
    for (const p of peers) await p.close();
  }
  assert.equal(clock.pendingTimers, 0, "no timer left behind");
});
