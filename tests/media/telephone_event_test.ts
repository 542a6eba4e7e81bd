import assert from "node:assert/strict";
import {
  dtmfDigit,
  type DtmfDigitEvent,
  DtmfReceiver,
  DtmfSequenceMatcher,
  parseTelephoneEvent,
  serializeTelephoneEvent,
} from "../../lib/media/telephone_event.ts";

Deno.test("telephone-event: payload parse per RFC 4733 §2.3", () => {
  // Event 11 (#), E=1, R=0, volume 10, duration 800.
  assert.deepEqual(parseTelephoneEvent(Uint8Array.of(11, 0x8a, 0x03, 0x20)), {
    event: 11,
    end: true,
    volume: 10,
    duration: 800,
  });
  // The reserved R bit is ignored.
  assert.deepEqual(parseTelephoneEvent(Uint8Array.of(1, 0x40 | 7, 0, 160)), {
    event: 1,
    end: false,
    volume: 7,
    duration: 160,
  });
  assert.equal(parseTelephoneEvent(Uint8Array.of(1, 2, 3)), null);
});

Deno.test("telephone-event: serialize round trip", () => {
  const e = { event: 15, end: true, volume: 63, duration: 0xffff };
  assert.deepEqual(parseTelephoneEvent(serializeTelephoneEvent(e)), e);
});

Deno.test("telephone-event: digit mapping (RFC 4733 §3.2)", () => {
  const mapped = Array.from({ length: 17 }, (_, i) => dtmfDigit(i) ?? "-").join("");
  assert.equal(mapped, "0123456789*#ABCD-");
});

/** The packets a sender emits for one digit: start, updates, three end packets. */
function digitPackets(event: number, timestamp: number): { ts: number; payload: Uint8Array }[] {
  const list = [];
  for (let d = 160; d <= 800; d += 160) {
    list.push({
      ts: timestamp,
      payload: serializeTelephoneEvent({ event, end: false, volume: 10, duration: d }),
    });
  }
  for (let i = 0; i < 3; i++) {
    list.push({
      ts: timestamp,
      payload: serializeTelephoneEvent({ event, end: true, volume: 10, duration: 960 }),
    });
  }
  return list;
}

Deno.test("DTMF receiver: one digit per event despite updates and end retransmissions", () => {
  const digits: DtmfDigitEvent[] = [];
  const rx = new DtmfReceiver((d) => digits.push(d));
  const packets = [
    ...digitPackets(10, 1000), // *
    ...digitPackets(6, 5000), // 6
    ...digitPackets(6, 9000), // 6 again: a new event (new timestamp)
  ];
  let now = 0;
  for (const p of packets) rx.receive(p.ts, p.payload, now += 20);
  assert.deepEqual(digits.map((d) => d.digit), ["*", "6", "6"]);
  assert.deepEqual(digits.map((d) => d.timestamp), [1000, 5000, 9000]);
});

Deno.test("DTMF receiver: a reordered late end packet of an old event is not a new digit", () => {
  const digits: string[] = [];
  const rx = new DtmfReceiver((d) => digits.push(d.digit));
  const a = digitPackets(1, 1000);
  const b = digitPackets(2, 3000);
  for (const p of a.slice(0, -1)) rx.receive(p.ts, p.payload, 0);
  for (const p of b) rx.receive(p.ts, p.payload, 0);
  const lateEnd = a[a.length - 1]!;
  rx.receive(lateEnd.ts, lateEnd.payload, 0);
  assert.deepEqual(digits, ["1", "2"]);
});

Deno.test("DTMF receiver: first packet lost — the update still reports the digit once", () => {
  const digits: string[] = [];
  const rx = new DtmfReceiver((d) => digits.push(d.digit));
  for (const p of digitPackets(9, 700).slice(2)) rx.receive(p.ts, p.payload, 0);
  assert.deepEqual(digits, ["9"]);
});

Deno.test("DTMF receiver: long-event segment continuation is the same digit (§2.5.1.3)", () => {
  const digits: string[] = [];
  const rx = new DtmfReceiver((d) => digits.push(d.digit));
  rx.receive(0, serializeTelephoneEvent({ event: 5, end: false, volume: 10, duration: 0xffff }), 0);
  rx.receive(
    0xffff,
    serializeTelephoneEvent({ event: 5, end: false, volume: 10, duration: 800 }),
    0,
  );
  rx.receive(
    0xffff,
    serializeTelephoneEvent({ event: 5, end: true, volume: 10, duration: 1600 }),
    0,
  );
  assert.deepEqual(digits, ["5"]);
});

Deno.test("DTMF receiver: non-DTMF events (flash) produce no digit", () => {
  const digits: string[] = [];
  const rx = new DtmfReceiver((d) => digits.push(d.digit));
  assert.equal(
    rx.receive(10, serializeTelephoneEvent({ event: 16, end: true, volume: 0, duration: 1 }), 0),
    undefined,
  );
  assert.deepEqual(digits, []);
});

Deno.test("DTMF sequence matcher: *6 matches, with inter-digit timeout", () => {
  const m = new DtmfSequenceMatcher(["*6", "*7", "#"], 3000);
  assert.equal(m.feed("*", 0), undefined);
  assert.equal(m.feed("6", 500), "*6");
  assert.equal(m.feed("6", 600), undefined, "buffer cleared after a match");
  assert.equal(m.feed("*", 1000), undefined);
  assert.equal(m.feed("7", 5000), undefined, "too slow: * forgotten");
  assert.equal(m.feed("1", 5100), undefined);
  assert.equal(m.feed("*", 5200), undefined);
  assert.equal(m.feed("7", 5300), "*7");
  assert.equal(m.feed("#", 5400), "#");
  assert.throws(() => new DtmfSequenceMatcher(["*x"]), SyntaxError);
});

Deno.test("DTMF sequence matcher: longer sequences win over their suffixes", () => {
  const m = new DtmfSequenceMatcher(["6", "*6"]);
  assert.equal(m.feed("*", 0), undefined);
  assert.equal(m.feed("6", 1), "*6");
  assert.equal(m.feed("6", 2), "6");
});
