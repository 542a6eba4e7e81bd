import assert from "node:assert/strict";
import { SipParseError } from "../../lib/sip/errors.ts";
import {
  canonicalHeaderName,
  formatCSeq,
  formatNameAddr,
  formatVia,
  Headers,
  parseCSeq,
  parseNameAddr,
  parseVia,
  splitHeaderValues,
  unquote,
} from "../../lib/sip/headers.ts";
import { formatUri } from "../../lib/sip/uri.ts";

function isParseError(e: unknown): boolean {
  return e instanceof SipParseError && e.status === 400;
}

Deno.test("canonicalHeaderName: compact forms and RFC spelling (RFC 3261 §7.3.3)", () => {
  const cases: Array<[string, string]> = [
    ["v", "Via"],
    ["V", "Via"],
    ["f", "From"],
    ["t", "To"],
    ["i", "Call-ID"],
    ["m", "Contact"],
    ["l", "Content-Length"],
    ["c", "Content-Type"],
    ["k", "Supported"],
    ["o", "Event"],
    ["u", "Allow-Events"],
    ["e", "Content-Encoding"],
    ["s", "Subject"],
    ["r", "Refer-To"],
    ["b", "Referred-By"],
    ["x", "Session-Expires"],
    ["cseq", "CSeq"],
    ["CALL-ID", "Call-ID"],
    ["www-authenticate", "WWW-Authenticate"],
    ["content-length", "Content-Length"],
    ["MaX-fOrWaRdS", "Max-Forwards"],
    ["NewFangledHeader", "NewFangledHeader"],
  ];
  for (const [input, expected] of cases) assert.equal(canonicalHeaderName(input), expected);
});

Deno.test("splitHeaderValues: commas inside quotes and <> do not split (RFC 3261 §7.3.1)", () => {
  assert.deepStrictEqual(
    splitHeaderValues('"Bell, Alexander" <sip:a@b>;tag=1, <sip:c@d;x=a,b>, sip:e@f ,'),
    ['"Bell, Alexander" <sip:a@b>;tag=1', "<sip:c@d;x=a,b>", "sip:e@f"],
  );
  assert.deepStrictEqual(splitHeaderValues('"a \\" , b", c'), ['"a \\" , b"', "c"]);
  assert.deepStrictEqual(splitHeaderValues("INVITE,ACK ,, BYE"), ["INVITE", "ACK", "BYE"]);
  assert.deepStrictEqual(splitHeaderValues(""), []);
});

Deno.test("parseNameAddr: quoted display name with quoted-pairs (RFC 4475 wsinv)", () => {
  const na = parseNameAddr(
    '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8',
  );
  assert.equal(na.display, 'J Rosenberg \\"');
  assert.equal(formatUri(na.uri), "sip:jdrosen@example.com");
  assert.deepStrictEqual([...na.params], [["tag", "98asjd8"]]);
  assert.deepStrictEqual(
    parseNameAddr(formatNameAddr(na)),
    na,
  );
});

Deno.test("parseNameAddr: token display names, with and without LWS before <", () => {
  assert.equal(parseNameAddr("caller<sip:caller@example.com>;tag=323").display, "caller");
  const na = parseNameAddr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>");
  assert.equal(na.display, "token1~` token2'+_ token3*%!.-");
  assert.equal(parseNameAddr("<sip:a@b>").display, undefined);
  assert.equal(parseNameAddr('"" <sip:a@b>').display, "");
});

Deno.test("parseNameAddr: addr-spec form, parameters belong to the header (RFC 3261 §20)", () => {
  const na = parseNameAddr("sip:+19725552222@gw1.example.net;unknownparam;expires=60");
  assert.equal(formatUri(na.uri), "sip:+19725552222@gw1.example.net");
  assert.deepStrictEqual([...na.params], [["unknownparam", null], ["expires", "60"]]);
  const inner = parseNameAddr("<sip:+19725552222@gw1.example.net;unknownparam>");
  assert.deepStrictEqual([...inner.uri.params], [["unknownparam", null]]);
  assert.equal(inner.params.size, 0);
  assert.equal(parseNameAddr("tel:+1234;tag=x").params.get("tag"), "x");
});

Deno.test("parseNameAddr: parameter values keep quotes, unquote() removes them", () => {
  const na = parseNameAddr('<sip:a@b>;+sip.instance="<urn:uuid:1234>";q = 0.5;Expires=60');
  assert.equal(na.params.get("+sip.instance"), '"<urn:uuid:1234>"');
  assert.equal(unquote(na.params.get("+sip.instance")!), "<urn:uuid:1234>");
  assert.equal(unquote('"a\\"b"'), 'a"b');
  assert.equal(unquote("plain"), "plain");
  assert.equal(na.params.get("q"), "0.5");
  assert.equal(na.params.get("expires"), "60");
});

Deno.test("parseNameAddr: rejects malformed values", () => {
  for (
    const bad of [
      '"Mr. J. User <sip:j.user@example.com>',
      "<sip:a@b",
      "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43",
      "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
      '"Watson, Thomas" < sip:t.watson@ieee.org >',
      "<sip:a@b> junk",
      "<sip:a@b>;;tag=1",
      "<sip:a@b>;tag=",
      '"x" sip:a@b',
      "",
    ]
  ) assert.throws(() => parseNameAddr(bad), isParseError, bad);
});

Deno.test("parseNameAddr: multi-byte UTF-8 display names round-trip", () => {
  const na = parseNameAddr('"Zoë Ångström 日本" <sip:zoe@example.com>;tag=a');
  assert.equal(na.display, "Zoë Ångström 日本");
  assert.equal(formatNameAddr(na), '"Zoë Ångström 日本" <sip:zoe@example.com>;tag=a');
});

Deno.test("formatNameAddr escapes display names and always uses <>", () => {
  const na = parseNameAddr("sip:a@b;tag=1");
  assert.equal(formatNameAddr(na), "<sip:a@b>;tag=1");
  na.display = 'say "hi" \\ bye';
  const text = formatNameAddr(na);
  assert.equal(text, '"say \\"hi\\" \\\\ bye" <sip:a@b>;tag=1');
  assert.equal(parseNameAddr(text).display, 'say "hi" \\ bye');
});

Deno.test("parseVia: LWS around slashes and parameters (RFC 3261 §20.42, RFC 4475 wsinv)", () => {
  const v = parseVia(
    "SIP  / 2.0  / tcp     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ",
  );
  assert.deepStrictEqual(
    { ...v, params: [...v.params] },
    {
      protocol: "SIP/2.0",
      transport: "TCP",
      host: "spindle.example.com",
      port: undefined,
      params: [["branch", "z9hG4bK9ikj8"]],
    },
  );
  assert.equal(formatVia(v), "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8");
});

Deno.test("parseVia: ports, IPv6, rport, received", () => {
  const v = parseVia(
    "SIP/2.0/UDP [2001:db8::9]:5070;rport=5071;received=2001:db8::9;branch=z9hG4bKa",
  );
  assert.equal(v.host, "[2001:db8::9]");
  assert.equal(v.port, 5070);
  assert.equal(v.params.get("rport"), "5071");
  assert.equal(v.params.get("received"), "2001:db8::9");
  const w = parseVia("SIP/2.0/WSS df7jal23ls0d.invalid;rport;branch=z9hG4bKx");
  assert.equal(w.transport, "WSS");
  assert.equal(w.params.get("rport"), null);
  assert.deepStrictEqual(parseVia(formatVia(v)), v);
});

Deno.test("parseVia: rejects malformed values", () => {
  for (
    const bad of [
      "SIP/2.0 host",
      "SIP/2.0/UDP",
      "SIP/2.0/UDPhost",
      "SIP/2.0/UDP host;;branch=1",
      "SIP/2.0/UDP 192.0.2.15;;",
      "SIP/2.0/UDP host:abc",
      "SIP/2.0/UDP host junk",
      "SIP//UDP host",
      "",
    ]
  ) assert.throws(() => parseVia(bad), isParseError, bad);
});

Deno.test("parseCSeq: number and method (RFC 3261 §20.16)", () => {
  assert.deepStrictEqual(parseCSeq("0009\r\n  INVITE"), { seq: 9, method: "INVITE" });
  assert.deepStrictEqual(parseCSeq(" 2147483647 ACK "), { seq: 2147483647, method: "ACK" });
  assert.equal(formatCSeq({ seq: 4, method: "BYE" }), "4 BYE");
  for (
    const bad of ["", "1", "INVITE", "1 INV@ITE", "2147483648 INVITE", "-1 INVITE", "1 A B", "x1 A"]
  ) assert.throws(() => parseCSeq(bad), isParseError, bad);
});

Deno.test("Headers: case-insensitive lookup with compact forms, order kept", () => {
  const h = new Headers([["v", "SIP/2.0/UDP a"], ["i", "x@y"], ["Via", "SIP/2.0/UDP b"]]);
  assert.equal(h.get("VIA"), "SIP/2.0/UDP a");
  assert.deepStrictEqual(h.getAll("via"), ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]);
  assert.equal(h.get("call-id"), "x@y");
  assert.ok(h.has("I"));
  assert.ok(!h.has("To"));
  assert.equal(h.get("To"), undefined);
  assert.deepStrictEqual([...h], [
    ["Via", "SIP/2.0/UDP a"],
    ["Call-ID", "x@y"],
    ["Via", "SIP/2.0/UDP b"],
  ]);
  assert.equal(h.size, 3);
});

Deno.test("Headers: set, append, prepend, delete, removeFirst", () => {
  const h = new Headers([["To", "<sip:a@b>"], ["Via", "1"], ["From", "<sip:c@d>"], ["Via", "2"]]);
  h.prepend("Via", "0");
  assert.deepStrictEqual(h.getAll("Via"), ["0", "1", "2"]);
  assert.deepStrictEqual([...h].map(([n]) => n), ["To", "Via", "Via", "From", "Via"]);
  assert.equal(h.removeFirst("v"), "0");
  assert.equal(h.removeFirst("Route"), undefined);
  h.set("via", ["a", "b"]);
  assert.deepStrictEqual([...h], [["To", "<sip:a@b>"], ["Via", "a"], ["Via", "b"], [
    "From",
    "<sip:c@d>",
  ]]);
  h.set("Max-Forwards", "70");
  h.append("Route", ["<sip:p1;lr>", "<sip:p2;lr>"]);
  h.prepend("Record-Route", "<sip:rr;lr>");
  assert.deepStrictEqual([...h].map(([n]) => n), [
    "Record-Route",
    "To",
    "Via",
    "Via",
    "From",
    "Max-Forwards",
    "Route",
    "Route",
  ]);
  assert.ok(h.delete("ROUTE"));
  assert.ok(!h.delete("Route"));
  assert.equal(h.get("Route"), undefined);
});

Deno.test("Headers: clone is independent", () => {
  const h = new Headers([["Via", "1"]]);
  const c = h.clone();
  c.append("Via", "2");
  c.set("To", "x");
  assert.deepStrictEqual([...h], [["Via", "1"]]);
  assert.deepStrictEqual([...c], [["Via", "1"], ["Via", "2"], ["To", "x"]]);
});
