/**
 * The Flexisip record codec. The record strings are shaped exactly as Flexisip's
 * `ExtendedContact::serializeAsUrlEncodedParams` writes them (flexisip
 * src/registrar/extended-contact.cc): the device's Contact with `callid`, `expires`, `cseq`,
 * `updatedAt`, `alias`, `usedAsRoute` appended as URI parameters in that order, then
 * `?Path=&Accept=&User-Agent=` escaped as sofia-sip's `sip_headers_as_url_query` does, then the
 * header parameters, with `pub-gruu="…"` as `RegistrarDb::bind` sets it (or a bare `pub-gruu`
 * when the device asked for no GRUU); hash fields are `"<urn:uuid:…>"` or `fs-gen-…`.
 */
import assert from "node:assert/strict";
import {
  aorKey,
  contactParameter,
  expiryOf,
  FlexisipRecordError,
  instanceOf,
  isExpired,
  parseFlexisipContact,
  parseFlexisipRecord,
  pubGruuOf,
  recordKey,
  serializeFlexisipContact,
  uniqueIdOf,
} from "../../lib/registrar/flexisip_record.ts";
import { deviceOf, serverContact } from "../../lib/registrar/redis_registrar.ts";

const LINPHONE_FIELD = '"<urn:uuid:7a1d6b9c-0d8a-4a0b-9b57-2f6e1e6f3c11>"';
const LINPHONE =
  "<sip:alice@192.168.1.10:43210;transport=tcp;callid=hZ7jSU3v1W%40host;expires=3600;cseq=21;" +
  "updatedAt=1763740000;alias=no;usedAsRoute=no?Path=%3Csip:127.0.0.1:5060%3Btransport%3Dtcp%3Blr%3E" +
  "&Accept=application/sdp%2Ctext/plain&User-Agent=LinphoneAndroid/5.2%20(Pixel%207)%20LinphoneSDK/5.3>" +
  ';+sip.instance="<urn:uuid:7a1d6b9c-0d8a-4a0b-9b57-2f6e1e6f3c11>"' +
  ';+org.linphone.specs="conference/1.0,ephemeral/1.1,groupchat/1.1,lime"' +
  ';pub-gruu="sip:alice@example.org;gr=urn:uuid:7a1d6b9c-0d8a-4a0b-9b57-2f6e1e6f3c11"';

/** A device without +sip.instance: placeholder key, empty pub-gruu, push parameters. */
const PLAIN_FIELD = "fs-gen-Qm9v_x-2Lk0pZbT7";
const PLAIN =
  "<sip:bob@203.0.113.7:5060;pn-provider=fcm;pn-prid=abc123;pn-param=proj;callid=1234%40203.0.113.7;" +
  "expires=600;cseq=3;updatedAt=1763740100;alias=no;usedAsRoute=no?Path=&Accept=&User-Agent=baresip>" +
  ";message-expires=604800;pub-gruu";

Deno.test("parses a Linphone binding as Flexisip writes it", () => {
  const c = parseFlexisipContact(LINPHONE_FIELD, LINPHONE);
  assert.equal(c.key, LINPHONE_FIELD);
  assert.equal(c.uri.user, "alice");
  assert.equal(c.uri.host, "192.168.1.10");
  assert.equal(c.uri.port, 43210);
  assert.deepEqual([...c.uri.params], [["transport", "tcp"]]);
  assert.equal(c.uri.headers.size, 0);
  assert.equal(c.callId, "hZ7jSU3v1W@host");
  assert.equal(c.expires, 3600);
  assert.equal(c.cseq, 21);
  assert.equal(c.updatedAt, 1763740000);
  assert.equal(c.alias, false);
  assert.equal(c.usedAsRoute, false);
  assert.deepEqual(c.path, ["sip:127.0.0.1:5060;transport=tcp;lr"]);
  assert.deepEqual(c.accept, ["application/sdp", "text/plain"]);
  assert.equal(c.userAgent, "LinphoneAndroid/5.2 (Pixel 7) LinphoneSDK/5.3");
  assert.equal(instanceOf(c), "urn:uuid:7a1d6b9c-0d8a-4a0b-9b57-2f6e1e6f3c11");
  assert.equal(
    pubGruuOf(c),
    "sip:alice@example.org;gr=urn:uuid:7a1d6b9c-0d8a-4a0b-9b57-2f6e1e6f3c11",
  );
  assert.equal(
    contactParameter(c, "+org.linphone.specs"),
    "conference/1.0,ephemeral/1.1,groupchat/1.1,lime",
  );
  assert.equal(expiryOf(c), 1763743600);
  assert.equal(isExpired(c, 1763743599), false);
  assert.equal(isExpired(c, 1763743600), true);
});

Deno.test("serializing a parsed binding gives back Flexisip's exact bytes", () => {
  assert.equal(serializeFlexisipContact(parseFlexisipContact(LINPHONE_FIELD, LINPHONE)), LINPHONE);
  assert.equal(serializeFlexisipContact(parseFlexisipContact(PLAIN_FIELD, PLAIN)), PLAIN);
});

Deno.test("a device without instance: placeholder key, no GRUU, message-expires extends it", () => {
  const c = parseFlexisipContact(PLAIN_FIELD, PLAIN);
  assert.equal(instanceOf(c), undefined);
  assert.equal(pubGruuOf(c), undefined);
  assert.equal(c.callId, "1234@203.0.113.7");
  assert.deepEqual(c.path, []);
  assert.deepEqual(c.accept, []);
  assert.equal(c.uri.params.get("pn-provider"), "fcm");
  // Flexisip getExpireTime: updatedAt + max(expires, message-expires).
  assert.equal(expiryOf(c), 1763740100 + 604800);
  const device = deviceOf("sip:bob@example.org", c);
  assert.deepEqual(device, {
    aor: "sip:bob@example.org",
    id: "sip:bob@203.0.113.7:5060;pn-provider=fcm;pn-prid=abc123;pn-param=proj",
    uri: "sip:bob@203.0.113.7:5060;pn-provider=fcm;pn-prid=abc123;pn-param=proj",
    contact: "sip:bob@203.0.113.7:5060;pn-provider=fcm;pn-prid=abc123;pn-param=proj",
    userAgent: "baresip",
  });
});

Deno.test("legacy records: missing bookkeeping reads as 0/no; a gr URI parameter gives the GRUU", () => {
  const c = parseFlexisipContact(
    "ZwPAMpQSC9",
    "<sip:carol@198.51.100.2;gr=urn:uuid:1111;callid=ZwPAMpQSC9;expires=60>",
  );
  assert.equal(c.cseq, 0);
  assert.equal(c.updatedAt, 0);
  assert.equal(c.alias, false);
  assert.equal(deviceOf("sip:carol@example.org", c).uri, "sip:carol@example.org;gr=urn:uuid:1111");
});

Deno.test("bad fields are skipped with a warning, never thrown out of a record", () => {
  const warnings: string[] = [];
  const contacts = parseFlexisipRecord(
    {
      [LINPHONE_FIELD]: LINPHONE,
      "fs-gen-a": "<<not a contact",
      "fs-gen-b": "",
      "fs-gen-c": "<sip:x@y;expires=soon>",
      "fs-gen-d": "<http://example.org/>",
      [PLAIN_FIELD]: PLAIN,
    },
    (field, error) => warnings.push(`${field}: ${error.name}`),
  );
  assert.deepEqual(contacts.map((c) => c.key), [LINPHONE_FIELD, PLAIN_FIELD]);
  assert.deepEqual(warnings, [
    "fs-gen-a: FlexisipRecordError",
    "fs-gen-b: FlexisipRecordError",
    "fs-gen-c: FlexisipRecordError",
    "fs-gen-d: FlexisipRecordError",
  ]);
  assert.throws(() => parseFlexisipContact("k", "garbage<"), FlexisipRecordError);
});

Deno.test("record keys follow Flexisip's Record::Key (user@host, or host alone)", () => {
  assert.equal(aorKey("sip:alice@example.org:5070;transport=tcp"), "alice@example.org");
  assert.equal(recordKey("sips:bob@Example.org"), "fs:bob@Example.org");
  assert.equal(aorKey("sip:example.org"), "example.org");
  assert.equal(uniqueIdOf("urn:uuid:1"), '"<urn:uuid:1>"');
});

Deno.test("our own binding has the shape of Flexisip's conference-server binding", () => {
  const contact = serverContact({
    aor: "sip:conference-factory@example.org",
    contact: "sip:10.0.0.5:6064;transport=tcp",
    instance: "urn:uuid:00000000-0000-4000-8000-000000000001",
    path: [],
    userAgent: "Conclave/0.1.0",
  }, 1763740000);
  assert.equal(
    serializeFlexisipContact(contact),
    "<sip:10.0.0.5:6064;transport=tcp;callid=CONFERENCE;expires=2147483647;cseq=0;" +
      "updatedAt=1763740000;alias=no;usedAsRoute=no?Path=&Accept=&User-Agent=Conclave/0.1.0>" +
      ';+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>"' +
      ';pub-gruu="sip:conference-factory@example.org;gr=urn:uuid:00000000-0000-4000-8000-000000000001"',
  );
  assert.equal(contact.key, '"<urn:uuid:00000000-0000-4000-8000-000000000001>"');
});
