import assert from "node:assert/strict";
import {
  boolType,
  ConfigValueError,
  durationType,
  enumType,
  intType,
  isHost,
  isIpv4,
  isIpv6,
  listType,
  portRangeType,
  sipUriType,
  transportListType,
  type ValueType,
} from "../../lib/config/value_types.ts";

const noWarn = (message: string) => assert.fail(`unexpected warning: ${message}`);

function rejects<T>(type: ValueType<T>, text: string, pattern: RegExp): void {
  assert.throws(() => type.parse(text, noWarn), (error: unknown) => {
    assert.ok(error instanceof ConfigValueError, `${text}: ${error}`);
    assert.match(error.message, pattern, text);
    return true;
  });
}

Deno.test("booleans", () => {
  const type = boolType();
  for (const text of ["true", "TRUE", "yes", "on", "1"]) {
    assert.equal(type.parse(text, noWarn), true);
  }
  for (const text of ["false", "No", "off", "0"]) assert.equal(type.parse(text, noWarn), false);
  rejects(type, "maybe", /invalid boolean "maybe"/);
  rejects(type, "", /invalid boolean/);
  assert.equal(type.format(true), "true");
});

Deno.test("integers with ranges", () => {
  const type = intType(1, 10);
  assert.equal(type.parse("7", noWarn), 7);
  assert.equal(type.parse("+10", noWarn), 10);
  rejects(type, "0", /out of range \(1 to 10\)/);
  rejects(type, "11", /out of range/);
  rejects(type, "3.5", /invalid integer/);
  rejects(type, "0x5", /invalid integer/);
  rejects(type, "", /invalid integer/);
});

Deno.test("durations with ranges", () => {
  const type = durationType(50, 10_000);
  assert.equal(type.parse("500ms", noWarn), 500);
  assert.equal(type.parse("2", noWarn), 2_000);
  rejects(type, "20ms", /out of range \(from 50ms to 10s\)/);
  rejects(type, "1min", /out of range/);
  rejects(type, "soon", /invalid duration "soon"/);
});

Deno.test("enums, with not-implemented values explained", () => {
  const type = enumType(["none"], { sdes: "SRTP is not available yet" });
  assert.equal(type.parse("NONE", noWarn), "none");
  rejects(type, "sdes", /"sdes" is not implemented by Conclave: SRTP is not available yet/);
  rejects(type, "rot13", /invalid value "rot13" \(expected one of: none, sdes\)/);
});

Deno.test("port ranges", () => {
  const type = portRangeType();
  assert.deepEqual(type.parse("0", noWarn), { min: 0, max: 0 });
  assert.deepEqual(type.parse("5004", noWarn), { min: 5004, max: 5004 });
  assert.deepEqual(type.parse("40000-40999", noWarn), { min: 40000, max: 40999 });
  assert.deepEqual(type.parse("40000 - 40999", noWarn), { min: 40000, max: 40999 });
  assert.equal(type.format({ min: 1, max: 2 }), "1-2");
  assert.equal(type.format({ min: 7, max: 7 }), "7");
  rejects(type, "40999-40000", /invalid port range/);
  rejects(type, "0-100", /invalid port range/);
  rejects(type, "65536", /invalid port range/);
  rejects(type, "a-b", /invalid port or port range/);
  rejects(type, "1,2", /invalid port or port range/);
});

Deno.test("lists drop duplicates and ignored items with warnings", () => {
  const warnings: string[] = [];
  const type = listType(enumType(["a", "b"]), { nonEmpty: true, ignored: { c: "no c here" } });
  assert.deepEqual(type.parse("a  b a c", (m) => warnings.push(m)), ["a", "b"]);
  assert.deepEqual(warnings, [
    '"a" is listed twice; the duplicate is ignored',
    '"c" is ignored: no c here',
  ]);
  rejects(type, "", /at least one/);
  assert.throws(() => type.parse("c", () => {}), /at least one/);
  assert.deepEqual(listType(enumType(["a"])).parse("", noWarn), []);
});

Deno.test("SIP URIs are checked syntactically", () => {
  const type = sipUriType();
  for (const uri of ["sip:f@example.org", "sips:f@[2001:db8::1]:5061", "sip:example.org;lr"]) {
    assert.equal(type.parse(uri, noWarn), uri);
  }
  rejects(type, "<sip:f@x>", /without angle brackets/);
  rejects(type, "tel:+331234", /must start with sip: or sips:/);
  rejects(type, "f@example.org", /must start with sip:/);
  rejects(type, "sip:@example.org", /empty user part/);
  rejects(type, "sip:f@exa mple", /invalid host/);
  rejects(type, "sip:f@example.org:99999", /invalid port/);
  rejects(type, "sip:f@[::1", /malformed IPv6 host/);
});

Deno.test("listening transports", () => {
  const type = transportListType();
  assert.deepEqual(type.parse("sip:127.0.0.1:6064;transport=tcp", noWarn), [
    { uri: "sip:127.0.0.1:6064;transport=tcp", protocol: "tcp", host: "127.0.0.1", port: 6064 },
  ]);
  assert.deepEqual(type.parse("sip:*", noWarn), [
    { uri: "sip:*", protocol: "udp", host: "0.0.0.0", port: 5060 },
    { uri: "sip:*", protocol: "tcp", host: "0.0.0.0", port: 5060 },
  ]);
  assert.deepEqual(type.parse("sip:[::1];transport=TLS sips:h.example:0", noWarn), [
    { uri: "sip:[::1];transport=TLS", protocol: "tls", host: "::1", port: 5061 },
    { uri: "sips:h.example:0", protocol: "tls", host: "h.example", port: 0 },
  ]);
  assert.equal(type.format(type.parse("sip:*", noWarn)), "sip:*");
  rejects(type, "sip:1.2.3.4;transport=sctp", /unsupported transport "sctp"/);
  rejects(type, "sips:1.2.3.4;transport=udp", /sips: needs TLS over TCP/);
  rejects(type, "sip:user@1.2.3.4", /no user part/);
  rejects(
    type,
    "sip:1.2.3.4:5060 sip:1.2.3.4:5060;transport=udp",
    /udp 1.2.3.4:5060 is listed twice/,
  );
  rejects(type, "", /at least one URI/);
});

Deno.test("host syntax", () => {
  for (const ip of ["0.0.0.0", "255.255.255.255", "192.0.2.1"]) assert.ok(isIpv4(ip), ip);
  for (const ip of ["256.0.0.1", "1.2.3", "01.2.3.4", "1.2.3.4.5"]) assert.ok(!isIpv4(ip), ip);
  for (const ip of ["::", "::1", "2001:db8::7", "1:2:3:4:5:6:7:8", "::ffff:192.0.2.1", "1::"]) {
    assert.ok(isIpv6(ip), ip);
  }
  for (const ip of [":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "g::1", "1:2:3:4:5:6:7", "::1.2.3"]) {
    assert.ok(!isIpv6(ip), ip);
  }
  for (const host of ["example.org", "a-b.example.", "localhost", "[::1]"]) {
    assert.ok(isHost(host), host);
  }
  for (const host of ["-a.example", "a_b.example", "exa mple", "", "[1.2.3.4]"]) {
    assert.ok(!isHost(host), host);
  }
});
