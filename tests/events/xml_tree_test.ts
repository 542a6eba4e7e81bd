import assert from "node:assert/strict";
import {
  childNamed,
  childrenNamed,
  escapeXmlAttribute,
  escapeXmlText,
  parseXml,
  XML_NAMESPACE,
  XmlParseError,
} from "../../lib/events/xml_tree.ts";

Deno.test("parseXml resolves namespaces per scope, prefixed attributes included", () => {
  const root = parseXml(
    `<?xml version="1.0"?><a xmlns="urn:a" xmlns:b="urn:b" b:x="1" y="2"><b:c/><d xmlns="urn:d"><e/></d><f xmlns=""/><g xml:lang="fr"/></a>`,
  );
  assert.deepEqual([root.ns, root.name], ["urn:a", "a"]);
  assert.deepEqual(root.attributes, { "{urn:b}x": "1", y: "2" });
  assert.deepEqual(root.children.map((c) => `{${c.ns}}${c.name}`), [
    "{urn:b}c",
    "{urn:d}d",
    "{}f",
    "{urn:a}g",
  ]);
  assert.equal(childNamed(root, "urn:d", "d")?.children[0]?.ns, "urn:d");
  assert.equal(childrenNamed(root, "urn:b", "c").length, 1);
  assert.equal(childNamed(root, "urn:a", "g")?.attributes[`{${XML_NAMESPACE}}lang`], "fr");
});

Deno.test("parseXml decodes references, CDATA and normalizes attribute whitespace", () => {
  const root = parseXml(
    `<a v="x&#9;y&#10;z\tw&quot;">&lt;&amp;&gt;&apos;&quot;&#233;&#x1F600;<![CDATA[<raw & text>]]></a>`,
  );
  assert.equal(root.attributes["v"], 'x\ty\nz w"');
  assert.equal(root.text, `<&>'"é😀<raw & text>`);
});

Deno.test("escape functions round-trip through the parser", () => {
  const nasty = `a&b<c>d"e'f\tg\nh\ri ]]> é 😀`;
  const root = parseXml(`<a v="${escapeXmlAttribute(nasty)}">${escapeXmlText(nasty)}</a>`);
  assert.equal(root.attributes["v"], nasty);
  assert.equal(root.text, nasty);
  assert.equal(escapeXmlText("x\u0000y\uDC00"), "x\uFFFDy\uFFFD");
});

Deno.test("parseXml refuses malformed input, DOCTYPE, unknown entities and prefixes", () => {
  for (
    const bad of [
      "<a><b></a>",
      "<a>&nbsp;</a>",
      "<a>&#1;</a>",
      "<a>& b</a>",
      "<p:a/>",
      "<a/><b/>",
      "",
      '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
    ]
  ) {
    assert.throws(() => parseXml(bad), XmlParseError, bad);
  }
});
