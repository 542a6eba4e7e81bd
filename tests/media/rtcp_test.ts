import assert from "node:assert/strict";
import {
  cnameSdes,
  findCname,
  isRtcpPacket,
  ntpFromUnixMs,
  ntpMiddle32,
  parseRtcp,
  type ReportBlock,
  type RtcpPacket,
  RtcpType,
  serializeRtcp,
} from "../../lib/media/rtcp.ts";
import { serializeRtp } from "../../lib/media/rtp.ts";

const block: ReportBlock = {
  ssrc: 0x01020304,
  fractionLost: 25,
  cumulativeLost: -3,
  highestSequence: 0x0001_0005,
  jitter: 77,
  lastSr: 0xabcdef01,
  delaySinceLastSr: 65536,
};

Deno.test("rtcp: compound SR + SDES + BYE round trip", () => {
  const packets: RtcpPacket[] = [
    {
      type: "sr",
      ssrc: 0xdeadbeef,
      ntp: { seconds: 0xe0000000, fraction: 0x80000000 },
      rtpTimestamp: 123456,
      packetCount: 50,
      octetCount: 8000,
      reports: [block],
    },
    cnameSdes(0xdeadbeef, "conclave@example.org"),
    { type: "bye", ssrcs: [0xdeadbeef], reason: "done" },
  ];
  const bytes = serializeRtcp(packets);
  assert.equal(bytes.length % 4, 0);
  assert.equal(bytes[1], RtcpType.SR);
  assert.ok(isRtcpPacket(bytes));
  const parsed = parseRtcp(bytes);
  assert.deepEqual(parsed, packets);
  assert.equal(findCname(parsed!, 0xdeadbeef), "conclave@example.org");
  assert.equal(findCname(parsed!, 1), undefined);
});

Deno.test("rtcp: RR with several blocks, BYE without reason, SDES with many items", () => {
  const packets: RtcpPacket[] = [
    { type: "rr", ssrc: 1, reports: [block, { ...block, ssrc: 9, cumulativeLost: 0x7fffff }] },
    { type: "rr", ssrc: 2, reports: [] },
    {
      type: "sdes",
      chunks: [
        { ssrc: 1, items: [{ type: 1, value: "a" }, { type: 6, value: "tool 1.0" }] },
        { ssrc: 2, items: [{ type: 1, value: "abc" }] },
      ],
    },
    { type: "bye", ssrcs: [1, 2] },
  ];
  assert.deepEqual(parseRtcp(serializeRtcp(packets)), packets);
});

Deno.test("rtcp: report block byte layout (RFC 3550 §6.4.1)", () => {
  const bytes = serializeRtcp([{ type: "rr", ssrc: 0x0a0b0c0d, reports: [block] }]);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x81, 201, 0, 7]);
  assert.deepEqual([...bytes.subarray(8, 12)], [1, 2, 3, 4]);
  assert.equal(bytes[12], 25);
  assert.deepEqual(
    [...bytes.subarray(13, 16)],
    [0xff, 0xff, 0xfd],
    "-3 as 24-bit two's complement",
  );
});

Deno.test("rtcp: unknown packet types (feedback) are kept and round-trip", () => {
  const packets: RtcpPacket[] = [
    { type: "rr", ssrc: 5, reports: [] },
    { type: "other", packetType: 205, count: 1, body: Uint8Array.of(0, 0, 0, 5, 0, 0, 0, 6) },
  ];
  assert.deepEqual(parseRtcp(serializeRtcp(packets)), packets);
});

Deno.test("rtcp: malformed compound packets are rejected", () => {
  const good = serializeRtcp([{ type: "rr", ssrc: 1, reports: [block] }, cnameSdes(1, "x")]);
  assert.ok(parseRtcp(good));
  assert.equal(parseRtcp(good.subarray(0, good.length - 2)), null, "truncated");
  const badVersion = good.slice();
  badVersion[0] = 0x41;
  assert.equal(parseRtcp(badVersion), null);
  const lyingCount = good.slice();
  lyingCount[0] = 0x82; // claims 2 report blocks, has 1
  assert.equal(parseRtcp(lyingCount), null);
  const sdesNoTerminator = Uint8Array.of(0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, 0x61, 0x62);
  assert.equal(parseRtcp(sdesNoTerminator), null);
});

Deno.test("rtcp: padded packet parses (P bit)", () => {
  const bytes = Uint8Array.of(0xa0, 201, 0, 2, 0, 0, 0, 7, 0, 0, 0, 4);
  assert.deepEqual(parseRtcp(bytes), [{ type: "rr", ssrc: 7, reports: [] }]);
});

Deno.test("rtcp-mux demultiplexing uses the second octet range 192-223 (RFC 5761 §4)", () => {
  for (const pt of [200, 201, 202, 203, 204, 205, 206]) {
    assert.ok(isRtcpPacket(Uint8Array.of(0x80, pt, 0, 1, 0, 0, 0, 0)), `type ${pt}`);
  }
  for (const pt of [0, 8, 9, 96, 101, 111, 127]) {
    for (const marker of [false, true]) {
      const rtp = serializeRtp({
        marker,
        payloadType: pt,
        sequenceNumber: 1,
        timestamp: 1,
        ssrc: 1,
        csrcs: [],
        extensions: [],
        payload: new Uint8Array(4),
      });
      assert.equal(isRtcpPacket(rtp), false, `RTP PT ${pt} marker ${marker}`);
    }
  }
  assert.equal(isRtcpPacket(Uint8Array.of(0x80, 200)), false, "too short");
});

Deno.test("rtcp: NTP conversion and middle 32 bits", () => {
  const ntp = ntpFromUnixMs(0);
  assert.deepEqual(ntp, { seconds: 2208988800, fraction: 0 });
  const half = ntpFromUnixMs(1500);
  assert.equal(half.seconds, 2208988801);
  assert.equal(half.fraction, 0x80000000);
  assert.equal(ntpMiddle32({ seconds: 0x12345678, fraction: 0x9abcdef0 }), 0x56789abc);
});
