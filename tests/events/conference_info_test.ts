import assert from "node:assert/strict";
import {
  buildFullState,
  buildPartialState,
  type ConferenceSnapshot,
  LINPHONE_CIE_NS,
} from "../../lib/events/conference_info.ts";
import {
  applyPartial,
  ConferenceInfoError,
  parseConferenceInfo,
} from "../../lib/events/conference_info_parser.ts";
import { parseXml, type XmlElement, XmlParseError } from "../../lib/events/xml_tree.ts";
import { validateConferenceInfo } from "./conference_info_schema.ts";
import { randomChange, Rng, threeParticipantConference } from "./conference_info_fixtures.ts";

const GOLDEN = new URL("../fixtures/events/conference_info_3p.xml", import.meta.url);

function assertValid(xml: string): XmlElement {
  const root = parseXml(xml);
  const problems = validateConferenceInfo(root);
  assert.deepEqual(problems, [], `schema problems:\n${problems.join("\n")}\n${xml}`);
  return root;
}

/** Orders keyed lists: RFC 4575 gives users, endpoints and media no order. */
function canonical(snapshot: ConferenceSnapshot | undefined): unknown {
  assert.ok(snapshot !== undefined);
  const byKey = <T>(key: (t: T) => string) => (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  return {
    ...snapshot,
    users: [...snapshot.users].sort(byKey((u) => u.entity)).map((u) => ({
      ...u,
      endpoints: [...u.endpoints].sort(byKey((e) => e.entity)).map((e) => ({
        ...e,
        media: [...e.media].sort(byKey((m) => m.id)),
      })),
    })),
  };
}

Deno.test("full state of a 3-participant conference matches the golden file", async () => {
  const xml = buildFullState(threeParticipantConference(), 7);
  if (Deno.env.get("UPDATE_GOLDEN") === "1") await Deno.writeTextFile(GOLDEN, xml);
  assert.equal(xml, await Deno.readTextFile(GOLDEN));
  assertValid(xml);
});

Deno.test("the golden file parses back to the snapshot it was built from", async () => {
  const parsed = parseConferenceInfo(await Deno.readTextFile(GOLDEN));
  assert.equal(parsed.state, "full");
  assert.equal(parsed.version, 7);
  assert.equal(parsed.entity, "sip:conference@example.org;conf-id=Q8v3-kPq_2xZ");
  assert.deepEqual(parsed.snapshot, threeParticipantConference());
});

Deno.test("full state carries the structure liblinphone reads", () => {
  const root = parseXml(buildFullState(threeParticipantConference(), 1));
  assert.equal(root.attributes["state"], "full");
  assert.equal(root.attributes["version"], "1");
  const names = root.children.map((c) => c.name);
  assert.deepEqual(names, ["conference-description", "conference-state", "users"]);
  const description = root.children[0]!;
  const extensions = description.children.filter((c) => c.ns === LINPHONE_CIE_NS);
  assert.deepEqual(extensions.map((c) => c.name), ["conference-times", "crypto-security-level"]);
  const users = root.children[2]!.children;
  assert.deepEqual(users.map((u) => u.attributes["entity"]), [
    "sip:alice@example.org",
    "sip:bob@example.org",
    "sip:carol@example.org",
  ]);
  for (const user of users) {
    assert.equal(user.attributes["state"], "full");
    for (const endpoint of user.children.filter((c) => c.name === "endpoint")) {
      assert.equal(endpoint.attributes["state"], "full");
      for (const media of endpoint.children.filter((c) => c.name === "media")) {
        // liblinphone calls get() on media type and status: both must always be present.
        assert.ok(media.children.some((c) => c.name === "type"), "media without type");
        assert.ok(media.children.some((c) => c.name === "status"), "media without status");
      }
    }
  }
});

Deno.test("liblinphone compares extension element names with the linphone-cie prefix", () => {
  const snapshot: ConferenceSnapshot = {
    ...threeParticipantConference(),
    ephemeral: { mode: "admin-managed", lifetime: 86400 },
    oneToOne: true,
  };
  const xml = buildFullState(snapshot, 3);
  for (
    const tag of [
      "<linphone-cie:conference-times>",
      "<linphone-cie:ephemeral>",
      "<linphone-cie:mode>admin-managed</linphone-cie:mode>",
      "<linphone-cie:lifetime>86400</linphone-cie:lifetime>",
      "<linphone-cie:crypto-security-level>",
      "<linphone-cie:level>point-to-point</linphone-cie:level>",
      "<linphone-cie:stream-content>thumbnail</linphone-cie:stream-content>",
      "<keywords>one-to-one ephemeral</keywords>",
      `xmlns:linphone-cie="${LINPHONE_CIE_NS}"`,
    ]
  ) assert.ok(xml.includes(tag), `missing ${tag}`);
  assertValid(xml);
  assert.deepEqual(parseConferenceInfo(xml).snapshot, snapshot);
});

Deno.test("escaping: AORs with &, names with < and quotes, UTF-8, unrepresentable characters", () => {
  const snapshot: ConferenceSnapshot = {
    entity: `sip:conf@example.org;conf-id=a&b"c'd<e>`,
    subject: `<script>alert("x")</script> & ]]> é 🎉 中文`,
    availableMedia: [{ label: `"1"&<2>`, type: "audio" }],
    userCount: 1,
    active: false,
    locked: true,
    users: [{
      entity: "sip:o'brien&co@example.org",
      displayText: 'O\'Brien <CEO> & "Co"\ttab\nline',
      roles: ["admin & <root>"],
      endpoints: [{
        entity: "sip:o'brien&co@example.org;gr=urn:uuid:1",
        displayText: "déjà vu",
        status: "connected",
        joiningMethod: "dialed-in",
        media: [{ id: `x"&<`, type: "audio", label: "l<1>&", status: "sendrecv" }],
      }],
    }],
  };
  const xml = buildFullState(snapshot, 1);
  assert.ok(xml.includes(`entity="sip:conf@example.org;conf-id=a&amp;b&quot;c'd&lt;e&gt;"`));
  assert.ok(
    xml.includes(
      '<subject>&lt;script&gt;alert("x")&lt;/script&gt; &amp; ]]&gt; é 🎉 中文</subject>',
    ),
  );
  assert.ok(xml.includes(`<entry label="&quot;1&quot;&amp;&lt;2&gt;">`));
  assert.ok([...xml].every((c) => c >= " " || c === "\n" || c === "\t"), "no control characters");
  assertValid(xml);
  assert.deepEqual(parseConferenceInfo(xml).snapshot, snapshot);
  // UTF-8 on the wire: the bytes decode back to the same text.
  const bytes = new TextEncoder().encode(xml);
  assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(bytes), xml);

  const control = buildFullState({ ...snapshot, subject: "bell\u0007 and \uD800 lone" }, 2);
  assert.equal(parseConferenceInfo(control).snapshot?.subject, "bell\uFFFD and \uFFFD lone");
});

Deno.test("partial state: a user joins, another changes, a third leaves", () => {
  const before = threeParticipantConference();
  const [alice, bob] = before.users as [
    ConferenceSnapshot["users"][0],
    ConferenceSnapshot["users"][0],
  ];
  const dave = {
    entity: "sip:dave@example.org",
    roles: ["participant", "speaker"],
    endpoints: [{
      entity: "sip:dave@example.org;gr=urn:uuid:d",
      status: "dialing-in" as const,
      joiningMethod: "dialed-in" as const,
      media: [],
    }],
  };
  const bobChanged = {
    ...bob,
    roles: ["admin", "speaker"],
    endpoints: [{ ...bob.endpoints[0]!, status: "muted-via-focus" as const }, bob.endpoints[1]!],
  };
  const after: ConferenceSnapshot = {
    ...before,
    userCount: 3,
    locked: true,
    users: [alice, bobChanged, dave],
  };
  const xml = buildPartialState(before, after, 8);
  assert.ok(xml !== null);
  assertValid(xml);
  const root = parseXml(xml);
  assert.equal(root.attributes["state"], "partial");
  assert.equal(root.attributes["version"], "8");
  assert.deepEqual(root.children.map((c) => c.name), ["conference-state", "users"]);
  const state = root.children[0]!;
  assert.deepEqual(state.children.map((c) => [c.name, c.text]), [["locked", "true"]]);
  const users = root.children[1]!;
  assert.equal(users.attributes["state"], "partial");
  const summary = users.children.map((u) => [u.attributes["entity"], u.attributes["state"]]);
  assert.deepEqual(summary, [
    ["sip:bob@example.org", "partial"],
    ["sip:dave@example.org", "full"],
    ["sip:carol@example.org", "deleted"],
  ]);
  const bobNode = users.children[0]!;
  assert.deepEqual(bobNode.children.map((c) => c.name), ["roles", "endpoint"]);
  const endpoint = bobNode.children[1]!;
  assert.equal(endpoint.attributes["state"], "partial");
  assert.deepEqual(
    endpoint.children.map((c) => c.name),
    ["status", "media", "media", "media", "media"],
    "only the status changed; media are always repeated",
  );
  assert.equal(users.children[2]!.children.length, 0);
  const merged = applyPartial(before, xml);
  assert.equal(merged.version, 8);
  assert.deepEqual(canonical(merged.snapshot), canonical(after));
});

Deno.test("partial state: endpoint removed is deleted, endpoint with a media gone is resent full", () => {
  const before = threeParticipantConference();
  const bob = before.users[1]!;
  const alice = before.users[0]!;
  const after: ConferenceSnapshot = {
    ...before,
    users: [
      {
        ...alice,
        endpoints: [{ ...alice.endpoints[0]!, media: alice.endpoints[0]!.media.slice(0, 2) }],
      },
      { ...bob, endpoints: [bob.endpoints[0]!] },
      before.users[2]!,
    ],
  };
  const xml = buildPartialState(before, after, 2);
  assert.ok(xml !== null);
  assertValid(xml);
  const users = parseXml(xml).children[0]!;
  const aliceEndpoint = users.children[0]!.children[0]!;
  assert.equal(aliceEndpoint.attributes["state"], "full");
  const bobEndpoint = users.children[1]!.children[0]!;
  assert.equal(bobEndpoint.attributes["entity"], bob.endpoints[1]!.entity);
  assert.equal(bobEndpoint.attributes["state"], "deleted");
  assert.deepEqual(canonical(applyPartial(before, xml).snapshot), canonical(after));
});

Deno.test("partial state: description changes carry only the changed children", () => {
  const before = threeParticipantConference();
  const after: ConferenceSnapshot = {
    ...before,
    subject: "New subject",
    oneToOne: true,
    availableMedia: [
      before.availableMedia[0]!,
      { ...before.availableMedia[1]!, status: "inactive" },
      before.availableMedia[2]!,
    ],
  };
  const xml = buildPartialState(before, after, 3);
  assert.ok(xml !== null);
  assertValid(xml);
  const root = parseXml(xml);
  assert.deepEqual(root.children.map((c) => c.name), ["conference-description"]);
  assert.deepEqual(root.children[0]!.children.map((c) => c.name), [
    "subject",
    "keywords",
    "available-media",
  ]);
  assert.deepEqual(canonical(applyPartial(before, xml).snapshot), canonical(after));

  const back = buildPartialState(after, before, 4);
  assert.ok(back !== null);
  assert.ok(back.includes("<keywords/>"), "a removed keyword list is sent empty");
  assert.deepEqual(canonical(applyPartial(after, back).snapshot), canonical(before));
});

Deno.test("partial state: nothing changed gives null; an inexpressible removal gives full state", () => {
  const snapshot = threeParticipantConference();
  assert.equal(buildPartialState(snapshot, structuredClone(snapshot), 2), null);
  const withEphemeral = {
    ...snapshot,
    ephemeral: { mode: "admin-managed" as const, lifetime: 60 },
  };
  const xml = buildPartialState(withEphemeral, snapshot, 5);
  assert.ok(xml !== null);
  const parsed = parseConferenceInfo(xml);
  assert.equal(parsed.state, "full");
  assert.equal(parsed.version, 5);
  assert.deepEqual(parsed.snapshot, snapshot);
});

Deno.test("applyPartial follows RFC 4575 §4.6 for partials written by liblinphone", () => {
  const before = threeParticipantConference();
  // liblinphone omits `state` on <users> in partial notifications.
  const partial = `<?xml version="1.0" encoding="UTF-8"?>
<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="${before.entity}" state="partial" version="9">
  <conference-description><subject>Renamed</subject><free-text>1773066600</free-text></conference-description>
  <users>
    <user entity="sip:carol@example.org" state="deleted"/>
    <user entity="sip:bob@example.org" state="partial"><roles><entry>admin</entry></roles></user>
  </users>
</conference-info>`;
  const merged = applyPartial(before, partial);
  assert.equal(merged.version, 9);
  assert.equal(merged.snapshot.subject, "Renamed");
  assert.deepEqual(merged.snapshot.users.map((u) => u.entity), [
    "sip:alice@example.org",
    "sip:bob@example.org",
  ]);
  assert.deepEqual(merged.snapshot.users[1]!.roles, ["admin"]);
  assert.deepEqual(merged.snapshot.users[1]!.endpoints, before.users[1]!.endpoints);
  assert.deepEqual(merged.snapshot.availableMedia, before.availableMedia);
});

Deno.test("applyPartial rejects a partial for an unknown user and a foreign entity", () => {
  const before = threeParticipantConference();
  const unknown =
    `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="${before.entity}" state="partial" version="2"><users state="partial"><user entity="sip:zed@example.org" state="partial"/></users></conference-info>`;
  assert.throws(() => applyPartial(before, unknown), ConferenceInfoError);
  const foreign = unknown.replace(`entity="${before.entity}"`, `entity="sip:other@example.org"`);
  assert.throws(() => applyPartial(before, foreign), /does not match/);
});

Deno.test("parseConferenceInfo rejects what is not a valid document", () => {
  const ok = buildFullState(threeParticipantConference(), 1);
  assert.throws(
    () => parseConferenceInfo(ok.replace("<status>connected</status>", "<status>here</status>")),
    ConferenceInfoError,
  );
  assert.throws(
    () => parseConferenceInfo(ok.replace("<locked>false</locked>", "<locked>no</locked>")),
    ConferenceInfoError,
  );
  assert.throws(
    () => parseConferenceInfo(ok.replace('version="1"', 'version="-1"')),
    ConferenceInfoError,
  );
  assert.throws(
    () => parseConferenceInfo(ok.replace(' entity="sip:conference', ' x="sip:conference')),
    /entity/,
  );
  assert.throws(
    () => parseConferenceInfo(ok.replace("urn:ietf:params:xml:ns:conference-info", "urn:x")),
    ConferenceInfoError,
  );
  assert.throws(() => parseConferenceInfo(ok.slice(0, -30)), XmlParseError);
  assert.throws(
    () => parseConferenceInfo(`<!DOCTYPE x [<!ENTITY a "b">]>${ok.slice(39)}`),
    XmlParseError,
  );
});

Deno.test("the schema validator catches structural mistakes", () => {
  const ok = buildFullState(threeParticipantConference(), 1);
  assert.deepEqual(validateConferenceInfo(parseXml(ok)), []);
  const broken: Array<[string, string, RegExp]> = [
    ["<conference-state>", "<conference-state><foo/>", /not allowed here/],
    ["<user-count>3</user-count>", "<user-count>three</user-count>", /unsignedInt/],
    ["<subject>", "<free-text>x</free-text><subject>", /out of order/],
    ['<entry label="1">', "<entry>", /missing attribute "label"/],
    ['<media id="1">', '<media id="1" bogus="1">', /attribute "bogus"/],
    ["<status>connected</status>", "<status>online</status>", /endpointStatus/],
    ["<call-id>ZmgJ43fhZ0</call-id>", "", /missing <call-id>/],
    ["<linphone-cie:level>point-to-point</linphone-cie:level>", "", /missing <level>/],
    ["<roles>", '<roles state="full">', /attribute "state"/],
    ["</users>", '<linphone-cie:x/><user entity="sip:z@x"/></users>', /after extension/],
  ];
  for (const [from, to, expected] of broken) {
    const problems = validateConferenceInfo(parseXml(ok.replace(from, to)));
    assert.ok(problems.some((p) => expected.test(p)), `${from} -> ${to}: ${problems.join("; ")}`);
  }
});

Deno.test("property: full(v1) + partial(v2) == full(v2) over random changes (seeded)", () => {
  let partials = 0;
  let fulls = 0;
  let unchanged = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const rng = new Rng(seed);
    let previous: ConferenceSnapshot = threeParticipantConference();
    let version = 1;
    const first = buildFullState(previous, version);
    assertValid(first);
    let client = parseConferenceInfo(first).snapshot as ConferenceSnapshot;
    for (let step = 0; step < 50; step++) {
      const next = randomChange(rng, previous);
      const sameDocument = buildFullState(previous, 0) === buildFullState(next, 0);
      const xml = buildPartialState(previous, next, version + 1);
      const where = `seed ${seed} step ${step}`;
      if (sameDocument) {
        assert.equal(xml, null, `${where}: no change must give null`);
        unchanged++;
        continue;
      }
      assert.ok(xml !== null, `${where}: a change must give a document`);
      version++;
      const root = assertValid(xml);
      const merged = applyPartial(client, xml);
      if (root.attributes["state"] === "full") fulls++;
      else partials++;
      assert.equal(merged.version, version);
      const expected = parseConferenceInfo(buildFullState(next, version)).snapshot;
      assert.deepEqual(canonical(merged.snapshot), canonical(expected), where);
      assert.deepEqual(canonical(expected), canonical(next), `${where}: full state round trip`);
      client = merged.snapshot;
      previous = next;
    }
  }
  assert.ok(partials > 10 * fulls, `partials ${partials}, full fallbacks ${fulls}`);
  assert.ok(unchanged > 0 && fulls > 0, `unchanged ${unchanged}, fulls ${fulls}`);
});
