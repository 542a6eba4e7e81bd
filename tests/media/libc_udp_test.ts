import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  encodeSockaddr,
  formatIpv4,
  formatIpv6,
  isIpLiteral,
  SOCKADDR_SIZE,
} from "../../lib/media/libc_udp.ts";

function roundTrip(text: string): string {
  const out = new Uint8Array(SOCKADDR_SIZE);
  assert.equal(encodeSockaddr(AF_INET6, text, 5004, out), 28, text);
  return formatIpv6(out, 8);
}

Deno.test("libc udp: sockaddr_in is family, port in network order, address (RFC 791)", () => {
  const out = new Uint8Array(SOCKADDR_SIZE);
  assert.equal(encodeSockaddr(AF_INET, "192.0.2.10", 0x1f90, out), 16);
  assert.deepEqual([...out.subarray(0, 8)], [2, 0, 0x1f, 0x90, 192, 0, 2, 10]);
  assert.equal(formatIpv4(out, 4), "192.0.2.10");
  for (const bad of ["192.0.2", "256.1.1.1", "a.b.c.d", "1.2.3.4.5", "", "::1"]) {
    assert.equal(encodeSockaddr(AF_INET, bad, 1, out), 0, bad);
  }
  assert.equal(encodeSockaddr(AF_INET, "192.0.2.1", 70000, out), 0, "port out of range");
});

Deno.test("libc udp: sockaddr_in6 and IPv6 text as Deno prints it (RFC 5952, mapped IPv4)", () => {
  assert.equal(roundTrip("::1"), "::1");
  assert.equal(roundTrip("::"), "::");
  assert.equal(roundTrip("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(roundTrip("1:0:0:2:0:0:0:3"), "1:0:0:2::3", "the longest zero run");
  assert.equal(roundTrip("1:0:0:2:3:0:0:4"), "1::2:3:0:0:4", "the first of equal runs");
  assert.equal(roundTrip("1:2:3:4:5:6:0:8"), "1:2:3:4:5:6:0:8", "one zero group stays");
  assert.equal(roundTrip("fe80::1:2"), "fe80::1:2");
  assert.equal(roundTrip("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
  const out = new Uint8Array(SOCKADDR_SIZE);
  assert.equal(encodeSockaddr(AF_INET6, "192.0.2.1", 5004, out), 28, "IPv4 becomes mapped");
  assert.equal(formatIpv6(out, 8), "::ffff:192.0.2.1");
  assert.deepEqual([...out.subarray(0, 4)], [10, 0, 0x13, 0x8c]);
  assert.equal(encodeSockaddr(AF_INET6, "fe80::1%3", 1, out), 28);
  assert.equal(new DataView(out.buffer).getUint32(24, true), 3, "numeric zone = scope id");
  for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "fe80::1%eth0", "1:2"]) {
    assert.equal(encodeSockaddr(AF_INET6, bad, 1, out), 0, bad);
  }
  assert.equal(isIpLiteral("127.0.0.1"), true);
  assert.equal(isIpLiteral("::"), true);
  assert.equal(isIpLiteral("localhost"), false);
});
