import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { findCname, ntpMiddle32, type RtcpPacket } from "../../lib/media/rtcp.ts";
import type { RtpPacket } from "../../lib/media/rtp.ts";
import { RtpSession, type RtpSessionOptions } from "../../lib/media/rtp_session.ts";
import { type UdpAddress, UdpSocket } from "../../lib/media/udp_socket.ts";
import { Queue, RtpPeer } from "../_helpers/rtp_peer.ts";

function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
}

interface Harness {
  readonly clock: FakeClock;
  readonly socket: UdpSocket;
  readonly session: RtpSession;
  readonly rtp: Queue<{ packet: RtpPacket; from: UdpAddress }>;
  readonly rtcp: Queue<readonly RtcpPacket[]>;
  close(): Promise<void>;
}

function harness(options: Partial<RtpSessionOptions> = {}): Harness {
  const clock = new FakeClock(10_000);
  const socket = UdpSocket.bind("127.0.0.1", 0);
  const rtp = new Queue<{ packet: RtpPacket; from: UdpAddress }>();
  const rtcp = new Queue<readonly RtcpPacket[]>();
  const session = new RtpSession({
    socket,
    clock,
    clockRate: 8000,
    payloadType: 0,
    random: seeded(7),
    onRtp: (packet, from) => rtp.push({ packet, from }),
    onRtcp: (packets) => rtcp.push(packets),
    ...options,
  });
  session.start();
  return {
    clock,
    socket,
    session,
    rtp,
    rtcp,
    async close() {
      session.close();
      await socket.close();
    },
  };
}

const local = (port: number): UdpAddress => ({ address: "127.0.0.1", port });

Deno.test("rtp session: symmetric RTP latches to the source actually seen", async () => {
  const signalled = new RtpPeer(); // what SDP said
  const natted = new RtpPeer(); // where packets really come from
  const h = harness({ remote: local(signalled.port) });
  try {
    assert.equal(h.session.remote?.port, signalled.port, "before any packet: signalled");
    await natted.sendRtp(h.socket.port, { sequenceNumber: 1, timestamp: 0 });
    const first = await h.rtp.next();
    assert.equal(first.from.port, natted.port);
    assert.equal(h.session.remote?.port, natted.port, "latched");
    assert.ok(h.session.stats.latched);
    h.session.sendFrame(new Uint8Array(160), 160);
    const echoed = await natted.nextRtp();
    assert.equal(echoed.ssrc, h.session.ssrc);
    assert.equal(echoed.fromPort, h.socket.port, "sent from the same port we receive on");
    assert.equal(signalled.rtp.size, 0);
  } finally {
    await h.close();
    await signalled.close();
    await natted.close();
  }
});

Deno.test("rtp session: 'follow' re-latches after consecutive packets from a new source", async () => {
  const a = new RtpPeer();
  const b = new RtpPeer();
  const h = harness({ remote: local(a.port), relatchPackets: 3 });
  try {
    await a.sendRtp(h.socket.port, { sequenceNumber: 1, timestamp: 0 });
    await h.rtp.next();
    // The phone's NAT binding changes: packets now come from b.
    await b.sendRtp(h.socket.port, { sequenceNumber: 2, timestamp: 160 });
    await b.sendRtp(h.socket.port, { sequenceNumber: 3, timestamp: 320 });
    // An interleaved packet from a resets the count (a is still alive).
    await a.sendRtp(h.socket.port, { sequenceNumber: 4, timestamp: 480 });
    assert.equal((await h.rtp.next()).packet.sequenceNumber, 4);
    assert.equal(h.session.stats.packetsDropped, 2, "b's first packets were held back");
    assert.equal(h.session.remote?.port, a.port);
    for (let seq = 5; seq <= 7; seq++) {
      await b.sendRtp(h.socket.port, { sequenceNumber: seq, timestamp: seq * 160 });
    }
    const moved = await h.rtp.next();
    assert.equal(moved.packet.sequenceNumber, 7, "third consecutive packet moves the latch");
    assert.equal(moved.from.port, b.port);
    assert.equal(h.session.remote?.port, b.port);
    h.session.sendFrame(new Uint8Array(10), 160);
    assert.equal((await b.nextRtp()).fromPort, h.socket.port);
  } finally {
    await h.close();
    await a.close();
    await b.close();
  }
});

Deno.test("rtp session: 'once' never leaves the first source; 'off' keeps the signalled one", async () => {
  const a = new RtpPeer();
  const b = new RtpPeer();
  const once = harness({ remote: local(a.port), latching: "once" });
  const off = harness({ remote: local(a.port), latching: "off" });
  try {
    await b.sendRtp(once.socket.port, { sequenceNumber: 1, timestamp: 0 });
    await once.rtp.next();
    for (let seq = 2; seq < 8; seq++) {
      await a.sendRtp(once.socket.port, { sequenceNumber: seq, timestamp: seq * 160 });
    }
    await b.sendRtp(once.socket.port, { sequenceNumber: 8, timestamp: 8 * 160 });
    assert.equal((await once.rtp.next()).packet.sequenceNumber, 8);
    assert.equal(once.session.stats.packetsDropped, 6);
    assert.equal(once.session.remote?.port, b.port);

    await b.sendRtp(off.socket.port, { sequenceNumber: 1, timestamp: 0 });
    assert.equal((await off.rtp.next()).from.port, b.port, "accepted from anywhere");
    assert.equal(off.session.remote?.port, a.port, "but media still goes where SDP said");
    assert.equal(off.session.stats.latched, false);
  } finally {
    await once.close();
    await off.close();
    await a.close();
    await b.close();
  }
});

Deno.test("rtp session: sequence and timestamp continuity across talk-spurts, marker bit", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: local(peer.port) });
  try {
    const seq0 = h.session.nextSequenceNumber;
    const ts0 = h.session.nextTimestamp;
    const payload = new Uint8Array(160);
    h.session.sendFrame(payload, 160); // talk-spurt 1
    h.session.sendFrame(payload, 160);
    h.session.skipFrame(160); // two frames of silence, nothing sent
    h.session.skipFrame(160);
    h.session.sendFrame(payload, 160); // talk-spurt 2
    h.session.sendFrame(payload, 160, { payloadType: 101 });
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await peer.nextRtp());
    assert.deepEqual(got.map((p) => (p.sequenceNumber - seq0) & 0xffff), [0, 1, 2, 3]);
    assert.deepEqual(got.map((p) => (p.timestamp - ts0) >>> 0), [0, 160, 640, 800]);
    assert.deepEqual(got.map((p) => p.marker), [true, false, true, false]);
    assert.deepEqual(got.map((p) => p.payloadType), [0, 0, 0, 101]);
    assert.ok(got.every((p) => p.ssrc === h.session.ssrc));
    assert.equal(h.session.stats.packetsSent, 4);
    assert.equal(h.session.stats.bytesSent, 640);
  } finally {
    await h.close();
    await peer.close();
  }
});

Deno.test("rtp session: two sessions get different SSRCs", async () => {
  const a = harness({ random: Math.random });
  const b = harness({ random: Math.random });
  assert.notEqual(a.session.ssrc, b.session.ssrc);
  await a.close();
  await b.close();
});

Deno.test("rtp session: receive statistics — loss, jitter, lastRtpAt", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: local(peer.port) });
  try {
    // Packets 1..10 except 4 and 7, each "arriving" 20 ms apart except a 30 ms late one.
    const seqs = [1, 2, 3, 5, 6, 8, 9, 10];
    for (const seq of seqs) {
      h.clock.advance(seq === 5 ? 70 : 20);
      await peer.sendRtp(h.socket.port, { sequenceNumber: seq, timestamp: seq * 160 });
      const got = await h.rtp.next();
      assert.equal(got.packet.sequenceNumber, seq);
    }
    const s = h.session.stats;
    assert.equal(s.packetsReceived, 8);
    assert.equal(s.packetsLost, 2);
    assert.equal(s.bytesReceived, 8 * 160);
    assert.ok(s.jitterMs > 0.5 && s.jitterMs < 10, `jitter ${s.jitterMs}`);
    assert.equal(s.lastRtpAt, h.clock.now());
    assert.equal(s.remoteSsrc, 0x5eed);
  } finally {
    await h.close();
    await peer.close();
  }
});

Deno.test("rtp session: periodic SR with CNAME and a report block, on the muxed port", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: local(peer.port), cname: "focus@conclave", rtcpIntervalMs: 5000 });
  try {
    for (let seq = 100; seq < 110; seq++) {
      if (seq === 104) continue; // one loss
      await peer.sendRtp(h.socket.port, { sequenceNumber: seq, timestamp: seq * 160 });
      await h.rtp.next();
    }
    h.session.sendFrame(new Uint8Array(160), 160);
    await peer.nextRtp();
    assert.equal(peer.rtcp.size, 0);
    h.clock.advance(2500); // RFC 3550 §6.2: the first report after half the interval
    const report = await peer.nextRtcp();
    assert.equal(report.fromPort, h.socket.port, "rtcp-mux: same port");
    const sr = report.packets[0];
    assert.ok(sr && sr.type === "sr", JSON.stringify(report.packets));
    assert.equal(sr.ssrc, h.session.ssrc);
    assert.equal(sr.packetCount, 1);
    assert.equal(sr.octetCount, 160);
    assert.equal(sr.reports.length, 1);
    const block = sr.reports[0]!;
    assert.equal(block.ssrc, 0x5eed);
    assert.equal(block.cumulativeLost, 1);
    assert.equal(block.fractionLost, Math.floor(256 / 10));
    assert.equal(block.highestSequence, 109);
    assert.equal(findCname(report.packets, h.session.ssrc), "focus@conclave");
    // Nothing sent since: the next report is an RR; it comes within [0.5, 1.5] × T / 1.22.
    h.clock.advance(6200);
    const next = await peer.nextRtcp();
    assert.equal(next.packets[0]?.type, "rr");
  } finally {
    await h.close();
    await peer.close();
  }
});

Deno.test("rtp session: incoming SR/RR feed LSR/DLSR and round-trip time", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: local(peer.port), unixTimeMs: () => 1_700_000_000_000 });
  try {
    await peer.sendRtp(h.socket.port, { sequenceNumber: 1, timestamp: 0 });
    await h.rtp.next();
    const ntp = { seconds: 0xe1000000, fraction: 0x40000000 };
    await peer.sendRtcp(h.socket.port, [{
      type: "sr",
      ssrc: 0x5eed,
      ntp,
      rtpTimestamp: 0,
      packetCount: 1,
      octetCount: 160,
      reports: [],
    }]);
    const got = await h.rtcp.next();
    assert.equal(got[0]?.type, "sr");
    h.clock.advance(500);
    const ours = h.session.buildReport();
    const rr = ours[0]!;
    assert.ok(rr.type === "rr");
    assert.equal(rr.reports[0]?.lastSr, ntpMiddle32(ntp));
    assert.equal(rr.reports[0]?.delaySinceLastSr, 32768, "0.5 s in 1/65536 s");
    // The peer reports on our stream: LSR = our NTP time − 250 ms, DLSR = 100 ms → RTT 150 ms.
    const nowNtp = ntpMiddle32({
      seconds: Math.floor(1_700_000_000 + 2_208_988_800),
      fraction: 0,
    });
    await peer.sendRtcp(h.socket.port, [{
      type: "rr",
      ssrc: 0x5eed,
      reports: [{
        ssrc: h.session.ssrc,
        fractionLost: 0,
        cumulativeLost: 0,
        highestSequence: 0,
        jitter: 0,
        lastSr: (nowNtp - Math.round(0.25 * 65536)) >>> 0,
        delaySinceLastSr: Math.round(0.1 * 65536),
      }],
    }]);
    await h.rtcp.next();
    assert.ok(Math.abs(h.session.stats.rttMs! - 150) < 1, `rtt ${h.session.stats.rttMs}`);
    assert.equal(h.session.stats.remoteReport?.ssrc, h.session.ssrc);
  } finally {
    await h.close();
    await peer.close();
  }
});

Deno.test("rtp session: BYE on close", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: local(peer.port) });
  try {
    h.session.sendFrame(new Uint8Array(160), 160);
    await peer.nextRtp();
    h.session.close("bye now");
    const last = await peer.nextRtcp();
    const bye = last.packets.find((p) => p.type === "bye");
    assert.ok(bye && bye.type === "bye");
    assert.deepEqual(bye.ssrcs, [h.session.ssrc]);
    assert.equal(bye.reason, "bye now");
    assert.equal(
      last.packets[0]?.type,
      "sr",
      "BYE closes a compound packet that starts with a report",
    );
    assert.equal(h.session.sendFrame(new Uint8Array(1), 160), false, "closed");
    assert.equal(h.clock.pendingTimers, 0, "report timer cancelled");
  } finally {
    await h.close();
    await peer.close();
  }
});

Deno.test("rtp session: separate RTCP port when not multiplexed", async () => {
  const peerRtp = new RtpPeer();
  const peerRtcp = new RtpPeer();
  const rtcpSocket = UdpSocket.bind("127.0.0.1", 0);
  const h = harness({
    remote: local(peerRtp.port),
    remoteRtcp: local(peerRtcp.port),
    rtcpMux: false,
    rtcpSocket,
  });
  try {
    h.session.sendFrame(new Uint8Array(160), 160);
    await peerRtp.nextRtp();
    h.clock.advance(2500);
    const report = await peerRtcp.nextRtcp();
    assert.equal(report.fromPort, rtcpSocket.port);
    assert.equal(peerRtp.rtcp.size, 0);
    // RTCP arriving on the RTCP socket reaches the session.
    await peerRtcp.sendRtcp(rtcpSocket.port, [{ type: "rr", ssrc: 9, reports: [] }]);
    assert.equal((await h.rtcp.next())[0]?.type, "rr");
  } finally {
    await h.close();
    await rtcpSocket.close();
    await peerRtp.close();
    await peerRtcp.close();
  }
});

Deno.test("rtp session: no remote yet — nothing is sent until a packet is seen", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: { address: "0.0.0.0", port: 0 } });
  try {
    assert.equal(h.session.sendFrame(new Uint8Array(160), 160), false);
    await peer.sendRtp(h.socket.port, { sequenceNumber: 9, timestamp: 0 });
    await h.rtp.next();
    assert.equal(h.session.sendFrame(new Uint8Array(160), 160), true);
    const got = await peer.nextRtp();
    assert.equal(got.marker, true);
    assert.equal(h.socket.stats.sendErrors, 0);
  } finally {
    await h.close();
    await peer.close();
  }
});

Deno.test("rtp session: garbage and RTCP are not delivered as RTP", async () => {
  const peer = new RtpPeer();
  const h = harness({ remote: local(peer.port) });
  try {
    await peer.send(Uint8Array.of(1, 2, 3), h.socket.port);
    await peer.send(Uint8Array.of(0x80, 200, 0, 0), h.socket.port); // RTCP header, bad length
    await peer.sendRtp(h.socket.port, { sequenceNumber: 5, timestamp: 0 });
    assert.equal((await h.rtp.next()).packet.sequenceNumber, 5);
    assert.equal(h.session.stats.packetsDropped, 2);
    assert.equal(h.rtcp.size, 0);
  } finally {
    await h.close();
    await peer.close();
  }
});
