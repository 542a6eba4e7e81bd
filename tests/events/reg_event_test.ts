import assert from "node:assert/strict";
import {
  applyRegInfo,
  buildRegInfo,
  contactDeviceUri,
  contactInstance,
  contactParam,
  parseRegInfo,
  type RegInfo,
  RegInfoError,
} from "../../lib/events/reg_event.ts";
import { XmlParseError } from "../../lib/events/xml_tree.ts";

const fixture = (name: string) =>
  Deno.readTextFile(new URL(`../fixtures/events/${name}`, import.meta.url));

Deno.test("parses an RFC 3680 document with RFC 5628 GRUUs", async () => {
  const info = parseRegInfo(await fixture("reginfo_rfc5628.xml"));
  assert.equal(info.version, 3);
  assert.equal(info.state, "full");
  assert.equal(info.registrations.length, 2);
  const [callee, nobody] = info.registrations;
  assert.deepEqual(nobody, {
    aor: "sip:nobody@example.com",
    id: "a8",
    state: "init",
    contacts: [],
  });
  assert.ok(callee !== undefined);
  assert.equal(callee.aor, "sip:callee@example.com");
  assert.equal(callee.state, "active");
  const [desk, gone] = callee.contacts;
  assert.deepEqual(desk, {
    id: "76",
    state: "active",
    event: "registered",
    uri: "sip:callee@192.0.2.2",
    displayName: "Callee's desk phone",
    displayNameLang: "en",
    expires: 3600,
    durationRegistered: 7322,
    q: "0.8",
    callId: "hjka8a7dh1@pc.example.com",
    cseq: 9,
    unknownParams: [
      { name: "+sip.instance", value: '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"' },
      { name: "audio", value: "" },
    ],
    pubGruu: "sip:callee@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    tempGruus: [{
      uri: "sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr",
      firstCseq: 9,
    }],
  });
  assert.ok(desk !== undefined && gone !== undefined);
  assert.equal(contactInstance(desk), "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
  assert.equal(contactParam(desk, "AUDIO"), "");
  assert.equal(contactParam(desk, "video"), undefined);
  assert.equal(contactDeviceUri(desk), desk.pubGruu);
  assert.deepEqual([gone.state, gone.event, contactDeviceUri(gone)], [
    "terminated",
    "expired",
    "sip:callee@192.0.2.9",
  ]);
});

Deno.test("parses Flexisip's reg-event NOTIFY shape (prefixed, GRUU as contact URI, unquoted params)", async () => {
  const info = parseRegInfo(await fixture("reginfo_flexisip.xml"));
  const contact = info.registrations[0]?.contacts[0];
  assert.ok(contact !== undefined);
  assert.equal(
    contactDeviceUri(contact),
    "sip:bob@example.org;gr=urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
  );
  assert.equal(contactInstance(contact), "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001");
  assert.equal(
    contactParam(contact, "+org.linphone.specs"),
    "groupchat/1.2,lime,ephemeral/1.1,conference/2.0",
  );
  assert.equal(contact.displayName, "Pixel 7");
  assert.equal(contact.expires, 3600);
});

Deno.test("build then parse gives the same records, with escaping and UTF-8", async () => {
  const original = parseRegInfo(await fixture("reginfo_rfc5628.xml"));
  const tricky: RegInfo = {
    ...original,
    registrations: [...original.registrations, {
      aor: "sip:r&d<lab>@example.com",
      id: `x"y`,
      state: "terminated",
      contacts: [{
        id: "1",
        state: "active",
        event: "created",
        uri: "sip:r&d@[2001:db8::1]:5060;transport=tcp",
        displayName: 'Zoë <R&D> "lab" 研究',
        unknownParams: [{ name: "+org.linphone.specs", value: "groupchat/1.1,ephemeral/1.1" }],
      }],
    }],
  };
  const xml = buildRegInfo(tricky);
  assert.ok(xml.includes('xmlns:gr="urn:ietf:params:xml:ns:gruuinfo"'));
  assert.ok(xml.includes('aor="sip:r&amp;d&lt;lab&gt;@example.com" id="x&quot;y"'));
  assert.deepEqual(parseRegInfo(xml), tricky);
  const plain = buildRegInfo({ version: 0, state: "full", registrations: [] });
  assert.ok(!plain.includes("xmlns:gr"));
  assert.deepEqual(parseRegInfo(plain), { version: 0, state: "full", registrations: [] });
});

Deno.test("applyRegInfo follows RFC 3680 §5.3: full replaces, partial updates contacts by id", () => {
  const contact = (
    id: string,
    state: "active" | "terminated",
    event: "registered" | "created" | "expired" | "refreshed",
  ) => ({
    id,
    state,
    event,
    uri: `sip:u@h${id}`,
    unknownParams: [],
  });
  const full: RegInfo = {
    version: 0,
    state: "full",
    registrations: [{
      aor: "sip:u@d",
      id: "r",
      state: "active",
      contacts: [contact("1", "active", "registered"), contact("2", "terminated", "expired")],
    }],
  };
  const view = applyRegInfo(undefined, full);
  assert.deepEqual(view.registrations[0]?.contacts.map((c) => c.id), ["1"]);
  const partial: RegInfo = {
    version: 1,
    state: "partial",
    registrations: [
      {
        aor: "sip:u@d",
        id: "r",
        state: "active",
        contacts: [contact("3", "active", "created"), contact("1", "terminated", "expired")],
      },
      { aor: "sip:v@d", id: "s", state: "active", contacts: [contact("9", "active", "created")] },
    ],
  };
  const next = applyRegInfo(view, partial);
  assert.equal(next.version, 1);
  assert.deepEqual(next.registrations.map((r) => [r.aor, r.contacts.map((c) => c.id)]), [[
    "sip:u@d",
    ["3"],
  ], ["sip:v@d", ["9"]]]);
  const refreshed = applyRegInfo(next, {
    version: 2,
    state: "partial",
    registrations: [{
      aor: "sip:u@d",
      id: "r",
      state: "active",
      contacts: [{ ...contact("3", "active", "refreshed"), expires: 60 }],
    }],
  });
  assert.equal(refreshed.registrations[0]?.contacts[0]?.expires, 60);
  assert.equal(
    applyRegInfo(refreshed, { ...partial, version: 2 }),
    refreshed,
    "stale partial ignored",
  );
  const resubscribed = applyRegInfo(refreshed, { ...full, version: 0 });
  assert.deepEqual(
    resubscribed.registrations[0]?.contacts.map((c) => c.id),
    ["1"],
    "a new subscription's full state wins",
  );
});

Deno.test("invalid reginfo documents are refused", async () => {
  const ok = await fixture("reginfo_rfc5628.xml");
  assert.throws(
    () => parseRegInfo(ok.replace('event="registered"', 'event="arrived"')),
    RegInfoError,
  );
  assert.throws(() => parseRegInfo(ok.replace('version="3"', 'version="x"')), RegInfoError);
  assert.throws(() => parseRegInfo(ok.replace('state="init"', "")), RegInfoError);
  assert.throws(
    () => parseRegInfo(ok.replace("<uri>sip:callee@192.0.2.9</uri>", "")),
    /lacks <uri>/,
  );
  assert.throws(
    () => parseRegInfo(ok.replaceAll("urn:ietf:params:xml:ns:reginfo", "urn:x")),
    RegInfoError,
  );
  assert.throws(() => parseRegInfo(ok.replace("</reginfo>", "")), XmlParseError);
});
