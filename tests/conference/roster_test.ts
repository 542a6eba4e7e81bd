import assert from "node:assert/strict";
import { Roster } from "../../lib/conference/roster.ts";

function roster(max = 3): Roster {
  return new Roster({
    entity: "sip:focus@example.org;conf-id=x",
    subject: "S",
    maxParticipants: max,
  });
}

function join(r: Roster, aor: string, device = `${aor};gr=1`, now = 0): void {
  r.upsertDevice(aor, undefined, {
    uri: device,
    status: "connected",
    joiningMethod: "dialed-in",
    joinedAt: now,
  });
}

Deno.test("the first user is organizer and admin, later ones are participants", () => {
  const r = roster();
  join(r, "sip:alice@example.org");
  join(r, "sip:bob@example.org");
  const snap = r.snapshot(true);
  assert.deepEqual(snap.users.map((u) => u.roles), [["organizer", "admin"], ["participant"]]);
  assert.equal(snap.userCount, 2);
});

Deno.test("when the last admin leaves the longest-present user is promoted", () => {
  const r = roster();
  join(r, "sip:alice@example.org");
  join(r, "sip:bob@example.org");
  join(r, "sip:carol@example.org");
  const { userRemoved, promoted } = r.removeDevice("sip:alice@example.org;gr=1");
  assert.equal(userRemoved?.aor, "sip:alice@example.org");
  assert.equal(promoted?.aor, "sip:bob@example.org");
  assert.equal(r.user("sip:carol@example.org")?.admin, false);
});

Deno.test("a user keeps its entry while another device remains", () => {
  const r = roster();
  join(r, "sip:alice@example.org", "sip:alice@example.org;gr=a");
  join(r, "sip:alice@example.org", "sip:alice@example.org;gr=b");
  assert.equal(r.removeDevice("sip:alice@example.org;gr=a").userRemoved, undefined);
  assert.equal(r.snapshot(true).users[0]?.endpoints.length, 1);
});

Deno.test("admission: full conference refuses a new user but not another device", () => {
  const r = roster(2);
  join(r, "sip:a@d");
  join(r, "sip:b@d");
  assert.deepEqual(r.admission("sip:c@d"), { status: 486, reason: "Conference full" });
  assert.equal(r.admission("sip:a@d"), undefined);
});

Deno.test("admission: a locked conference refuses newcomers", () => {
  const r = roster(10);
  join(r, "sip:a@d");
  r.locked = true;
  assert.deepEqual(r.admission("sip:z@d"), { status: 403, reason: "Conference locked" });
  assert.equal(r.admission("sip:a@d"), undefined);
});

Deno.test("demoting the only admin promotes someone else", () => {
  const r = roster();
  join(r, "sip:a@d");
  join(r, "sip:b@d");
  assert.equal(r.setAdmin("sip:a@d", false), true);
  assert.equal(r.user("sip:b@d")?.admin, true);
  assert.equal(r.user("sip:a@d")?.admin, false);
});

Deno.test("admission: a locked conference still admits those the focus invites (dial-out)", () => {
  const r = roster(2);
  r.locked = true;
  assert.equal(r.admission("sip:z@d", new Set(), true), undefined);
  join(r, "sip:a@d");
  join(r, "sip:b@d");
  // The lock does not lift the capacity limit.
  assert.deepEqual(r.admission("sip:z@d", new Set(), true), {
    status: 486,
    reason: "Conference full",
  });
});
