import assert from "node:assert/strict";
import { SipParseError } from "../../lib/sip/errors.ts";
import { cloneUri, formatUri, parseUri, uriEquals } from "../../lib/sip/uri.ts";
import { plainUri } from "./_util.ts";

function rejects(text: string, status = 400): void {
  assert.throws(
    () => parseUri(text),
    (e: unknown) => e instanceof SipParseError && e.status === status,
    `${text} should be rejected with ${status}`,
  );
}

Deno.test("parseUri: every component of a SIP URI (RFC 3261 §19.1.1)", () => {
  const u = parseUri("sip:alice:secret@atlanta.com:5070;transport=TCP;lr?subject=hi%20there&x=y");
  assert.deepStrictEqual(plainUri(u), {
    scheme: "sip",
    user: "alice",
    password: "secret",
    host: "atlanta.com",
    port: 5070,
    params: [["transport", "TCP"], ["lr", null]],
    headers: [["subject", "hi%20there"], ["x", "y"]],
  });
});

Deno.test("parseUri: scheme is case-insensitive, parameter names are lower-cased", () => {
  const u = parseUri("SIPS:Bob@Biloxi.COM;Maddr=239.255.255.1;TTL=15");
  assert.equal(u.scheme, "sips");
  assert.equal(u.user, "Bob");
  assert.equal(u.host, "Biloxi.COM");
  assert.deepStrictEqual([...u.params], [["maddr", "239.255.255.1"], ["ttl", "15"]]);
});

Deno.test("parseUri: IPv6 references keep their brackets", () => {
  assert.equal(parseUri("sip:[2001:db8::10]:5070").host, "[2001:db8::10]");
  assert.equal(parseUri("sip:[2001:db8::10]:5070").port, 5070);
  const v = parseUri("sips:alice@[::1];transport=tls");
  assert.equal(v.host, "[::1]");
  assert.equal(v.port, undefined);
  assert.equal(formatUri(v), "sips:alice@[::1];transport=tls");
  rejects("sip:[::1");
  rejects("sip:[zz::1]");
  rejects("sip:[]");
});

Deno.test("parseUri: tel URIs (RFC 3966)", () => {
  const t = parseUri("tel:+1-201-555-0123;phone-context=example.com");
  assert.equal(t.scheme, "tel");
  assert.equal(t.user, "+1-201-555-0123");
  assert.equal(t.host, "");
  assert.equal(t.params.get("phone-context"), "example.com");
  assert.equal(formatUri(t), "tel:+1-201-555-0123;phone-context=example.com");
  rejects("tel:alice");
});

Deno.test("parseUri: user part with every allowed character (RFC 4475 intmeth)", () => {
  const text =
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
  const u = parseUri(text);
  assert.equal(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  assert.equal(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  assert.equal(u.host, "example.com");
  assert.equal(u.params.size, 0);
  assert.equal(formatUri(u), text);
});

Deno.test("parseUri: escapes are kept as written", () => {
  const u = parseUri("sip:%61lice@atlanta.com;transport=%74cp;%6C%72");
  assert.equal(u.user, "%61lice");
  assert.equal(u.params.get("transport"), "%74cp");
  assert.ok(u.params.has("%6c%72"));
  assert.deepStrictEqual(plainUri(parseUri(formatUri(u))), plainUri(u));
  assert.equal(parseUri("sip:null-%00-null@example.com").user, "null-%00-null");
});

Deno.test("parseUri: rejects malformed URIs with 400 and other schemes with 416", () => {
  for (
    const bad of [
      "sip:",
      "sip:@host",
      "sip:host:99999",
      "sip:host:",
      "sip:ho st",
      "sip:user@host;=x",
      "sip:user@host;a=",
      "sip:host?",
      "sip:host?a",
      "sip:user%4@host",
      "sip:a@b@c",
      " sip:a@b",
      "sip:a@b ",
      "sip:.host",
      "sip:a..b",
      "sip:host;a b",
      "nocolon",
      ":x",
      "1x:foo",
    ]
  ) rejects(bad);
  rejects("http://www.example.com", 416);
  rejects("nobodyKnowsThisScheme:totallyopaquecontent", 416);
  rejects("soap.beep://192.0.2.103:3002", 416);
});

Deno.test("formatUri ∘ parseUri is stable", () => {
  for (
    const text of [
      "sip:alice@atlanta.com",
      "sip:atlanta.com",
      "sips:alice:pw@[2001:db8::1]:5061;transport=tls?h=v",
      "sip:user;par=u%40example.net@example.com",
      "sip:127.0.0.1:5060;transport=tcp;lr",
      "tel:7042;phone-context=example.com",
    ]
  ) {
    const u = parseUri(text);
    assert.equal(formatUri(u), text);
    assert.deepStrictEqual(plainUri(parseUri(formatUri(u))), plainUri(u));
  }
});

Deno.test("uriEquals: RFC 3261 §19.1.4 equivalent examples", () => {
  const pairs: Array<[string, string]> = [
    ["sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"],
    ["sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"],
    ["sip:carol@chicago.com", "sip:carol@chicago.com;security=on"],
    ["sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"],
    [
      "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
      "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ],
    [
      "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
      "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ],
    ["sip:%C3%A9@example.com", "sip:é@example.com".replace("é", "%c3%a9")],
    ["tel:+1-201-555-0123", "tel:+1.201.555.0123"],
  ];
  for (const [a, b] of pairs) {
    assert.ok(uriEquals(parseUri(a), parseUri(b)), `${a} == ${b}`);
    assert.ok(uriEquals(parseUri(b), parseUri(a)), `${b} == ${a}`);
  }
});

Deno.test("uriEquals: RFC 3261 §19.1.4 non-equivalent examples", () => {
  const pairs: Array<[string, string]> = [
    ["SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"],
    ["sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"],
    ["sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"],
    ["sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"],
    ["sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"],
    ["sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"],
    ["sip:alice@atlanta.com", "sips:alice@atlanta.com"],
    ["sip:alice@atlanta.com", "sip:atlanta.com"],
    ["sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"],
    ["sip:alice@atlanta.com;maddr=1.2.3.4", "sip:alice@atlanta.com"],
    ["sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"],
    ["sip:alice@atlanta.com;ttl=1", "sip:alice@atlanta.com;ttl=2"],
    ["tel:+1-201-555-0123", "tel:+1-201-555-0124"],
  ];
  for (const [a, b] of pairs) {
    assert.ok(!uriEquals(parseUri(a), parseUri(b)), `${a} != ${b}`);
    assert.ok(!uriEquals(parseUri(b), parseUri(a)), `${b} != ${a}`);
  }
});

Deno.test("cloneUri: the copy is independent", () => {
  const u = parseUri("sip:alice@atlanta.com;lr?h=v");
  const c = cloneUri(u);
  c.params.set("transport", "tcp");
  c.headers.delete("h");
  c.user = "bob";
  assert.equal(formatUri(u), "sip:alice@atlanta.com;lr?h=v");
  assert.equal(formatUri(c), "sip:bob@atlanta.com;lr;transport=tcp");
});
