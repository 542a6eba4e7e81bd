/** RFC 4826 resource lists as chat room creation reads and writes them. */
import assert from "node:assert/strict";
import {
  buildResourceList,
  otherParticipants,
  resourceListText,
  resourceListUris,
} from "../../lib/conference/resource_list.ts";
import { parseMessage } from "../../lib/sip/parser.ts";
import { SipRequest } from "../../lib/sip/message.ts";

const FIXTURE = new URL("../fixtures/sip/valid/linphone-5.1-factory-invite.sip", import.meta.url);

Deno.test("resource list: Linphone 5.1's factory INVITE body (prefixed namespace)", async () => {
  const request = parseMessage(await Deno.readFile(FIXTURE));
  assert.ok(request instanceof SipRequest);
  const text = resourceListText(request);
  assert.ok(text !== undefined);
  assert.deepEqual(resourceListUris(text), ["sip:bob@example.org"]);
});

Deno.test("resource list: entries in order, unescaped, deduplicated; single quotes", () => {
  const xml = `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>
    <entry uri="sip:a@d?x=1&amp;y=2"/><entry uri='sip:b@d'/><entry uri="sip:a@d?x=1&amp;y=2"/>
    <entry display="no uri"/></list></resource-lists>`;
  assert.deepEqual(resourceListUris(xml), ["sip:a@d?x=1&y=2", "sip:b@d"]);
});

Deno.test("resource list: something else is a SyntaxError", () => {
  assert.throws(() => resourceListUris("<html><entry uri='sip:x@y'/></html>"), SyntaxError);
});

Deno.test("resource list: what we build reads back the same", () => {
  const uris = ["sip:alice@example.org", 'sip:b&"c@example.org'];
  assert.deepEqual(resourceListUris(buildResourceList(uris)), uris);
});

Deno.test("resource list: the other participants are AORs, in order, once, never the creator", () => {
  const uris = [
    "sip:alice@example.org",
    "sip:bob@example.org;gr=urn:uuid:1",
    "not a uri",
    "<sip:carol@example.org>",
    "sip:bob@example.org",
    "sip:dave@example.org",
  ];
  assert.deepEqual(otherParticipants(uris, "sip:alice@example.org"), [
    "sip:bob@example.org",
    "sip:dave@example.org",
  ]);
});
