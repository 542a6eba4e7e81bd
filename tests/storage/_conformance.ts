/**
 * The one conformance suite every {@link Store} backend must pass, unchanged.
 * `defineStoreConformance(label, factory)` registers one Deno test per case.
 * @module
 */

import assert from "node:assert/strict";
import {
  type ConferenceRecord,
  type DeviceRecord,
  type NewConference,
  type ParticipantRecord,
  type Store,
  StoreClosedError,
  StoreConflictError,
  StoreNotFoundError,
} from "../../lib/storage/store.ts";
import { rejectsWith } from "./_support.ts";

/** A fresh, empty store for one test, which can be closed and opened again on the same data. */
export interface StoreFixture {
  readonly store: Store;
  /** Closes `store` and opens the same database again. */
  reopen(): Promise<Store>;
  /** Closes whatever is open and deletes the data. */
  dispose(): Promise<void>;
}

/** Options every factory must honour. */
export interface FixtureOptions {
  readonly maxEventsPerConference?: number;
}

/** Makes a fresh fixture. */
export type StoreFactory = (options: FixtureOptions) => Promise<StoreFixture>;

interface Case {
  readonly name: string;
  readonly options?: FixtureOptions;
  run(store: Store, fixture: StoreFixture): Promise<void>;
}

const T0 = 1_790_000_000_000;

function conference(n: number, extra: Partial<NewConference> = {}): NewConference {
  return {
    id: `conf-${n}`,
    uri: `sip:conf-${n}@conference.example.org`,
    kind: "audio-video",
    createdAt: T0 + n,
    ...extra,
  };
}

function participant(conferenceId: string, aor: string, extra: Partial<ParticipantRecord> = {}) {
  return {
    conferenceId,
    aor,
    displayName: null,
    isAdmin: false,
    role: "participant",
    state: "present",
    joinedAt: T0,
    leftAt: null,
    ...extra,
  } satisfies ParticipantRecord;
}

function device(
  conferenceId: string,
  aor: string,
  deviceUri: string,
  extra: Partial<DeviceRecord> = {},
) {
  return {
    conferenceId,
    aor,
    deviceUri,
    name: null,
    state: "present",
    joiningMethod: "dialed-in",
    joiningTime: T0,
    lastNotifyVersion: 0,
    ...extra,
  } satisfies DeviceRecord;
}

function message(recipients: string[], n = 0, receivedAt = T0 + n) {
  return {
    senderAor: "sip:alice@example.org",
    senderDevice: "sip:alice@example.org;gr=urn:uuid:a1",
    contentType: "text/plain",
    body: new TextEncoder().encode(`hello ${n}`),
    receivedAt,
    recipients,
  };
}

const CASES: readonly Case[] = [
  {
    name: "creates a conference and reads it back by id and by URI, every field intact",
    async run(store) {
      const input: NewConference = {
        id: "0a1b2c",
        uri: "sip:chat-0a1b2c@conference.example.org;transport=tcp",
        factoryUri: "sip:factory@conference.example.org",
        kind: "chat",
        subject: "Équipe 🚀 « weekly »",
        createdAt: T0,
        startsAt: T0 + 60_000,
        endsAt: T0 + 3_600_000,
        options: {
          locked: true,
          maxParticipants: 12,
          mediaTypes: ["text"],
          nested: { a: [1, null] },
        },
        lastNotifyVersion: 7,
      };
      const created = await store.createConference(input);
      const expected: ConferenceRecord = {
        id: input.id,
        uri: input.uri,
        factoryUri: "sip:factory@conference.example.org",
        kind: "chat",
        subject: "Équipe 🚀 « weekly »",
        createdAt: T0,
        startsAt: T0 + 60_000,
        endsAt: T0 + 3_600_000,
        endedAt: null,
        options: {
          locked: true,
          maxParticipants: 12,
          mediaTypes: ["text"],
          nested: { a: [1, null] },
        },
        lastNotifyVersion: 7,
      };
      assert.deepEqual(created, expected);
      assert.deepEqual(await store.getConference("0a1b2c"), expected);
      assert.deepEqual(await store.getConferenceByUri(input.uri), expected);
    },
  },
  {
    name: "applies defaults for omitted fields",
    async run(store) {
      await store.createConference(conference(1));
      assert.deepEqual(await store.getConference("conf-1"), {
        id: "conf-1",
        uri: "sip:conf-1@conference.example.org",
        factoryUri: null,
        kind: "audio-video",
        subject: "",
        createdAt: T0 + 1,
        startsAt: null,
        endsAt: null,
        endedAt: null,
        options: {},
        lastNotifyVersion: 0,
      });
    },
  },
  {
    name: "refuses a duplicate id or URI with StoreConflictError and keeps the original",
    async run(store) {
      await store.createConference(conference(1, { subject: "first" }));
      await rejectsWith(
        store.createConference(conference(1, { uri: "sip:other@x", subject: "dup id" })),
        StoreConflictError,
      );
      await rejectsWith(
        store.createConference({ ...conference(2), uri: "sip:conf-1@conference.example.org" }),
        StoreConflictError,
      );
      assert.equal((await store.getConference("conf-1"))?.subject, "first");
      assert.equal(await store.getConference("conf-2"), null);
    },
  },
  {
    name: "treats ids and URIs as exact, case-sensitive strings",
    async run(store) {
      await store.createConference({ ...conference(1), id: "AbC", uri: "sip:AbC@x.org" });
      await store.createConference({ ...conference(2), id: "abc", uri: "sip:abc@x.org" });
      assert.equal((await store.getConferenceByUri("sip:AbC@x.org"))?.id, "AbC");
      assert.equal((await store.getConferenceByUri("sip:abc@x.org"))?.id, "abc");
      assert.equal(await store.getConferenceByUri("sip:ABC@x.org"), null);
    },
  },
  {
    name: "answers null/false/empty for unknown conferences",
    async run(store) {
      assert.equal(await store.getConference("nope"), null);
      assert.equal(await store.getConferenceByUri("sip:nope@x"), null);
      assert.equal(await store.isEnded("nope"), false);
      assert.deepEqual(await store.listParticipants("nope"), []);
      assert.deepEqual(await store.listDevices("nope"), []);
      assert.deepEqual(await store.eventsSince("nope", 0), { complete: false, events: [] });
      assert.equal(await store.getParticipant("nope", "sip:a@x"), null);
    },
  },
  {
    name: "lists live conferences oldest first, without ended ones",
    async run(store) {
      await store.createConference(conference(3));
      await store.createConference(conference(1));
      await store.createConference(conference(2));
      await store.endConference("conf-2", T0 + 100);
      const live = await store.listLiveConferences();
      assert.deepEqual(live.map((c) => c.id), ["conf-1", "conf-3"]);
    },
  },
  {
    name: "updates only the patched fields; options are replaced as a whole",
    async run(store) {
      await store.createConference(
        conference(1, { subject: "old", options: { locked: false, oneToOne: true } }),
      );
      const updated = await store.updateConference("conf-1", {
        subject: "new",
        options: { locked: true },
        endsAt: T0 + 5,
        lastNotifyVersion: 3,
      });
      assert.equal(updated.subject, "new");
      assert.deepEqual(updated.options, { locked: true });
      assert.equal(updated.endsAt, T0 + 5);
      assert.equal(updated.startsAt, null);
      assert.equal(updated.lastNotifyVersion, 3);
      assert.deepEqual(await store.getConference("conf-1"), updated);
      const cleared = await store.updateConference("conf-1", {
        endsAt: null,
        factoryUri: "sip:f@x",
      });
      assert.equal(cleared.endsAt, null);
      assert.equal(cleared.factoryUri, "sip:f@x");
      assert.equal(cleared.subject, "new");
      assert.deepEqual(await store.updateConference("conf-1", {}), cleared);
      await rejectsWith(store.updateConference("nope", { subject: "x" }), StoreNotFoundError);
      await rejectsWith(store.updateConference("nope", {}), StoreNotFoundError);
    },
  },
  {
    name: "ends a conference once: the first end time is kept",
    async run(store) {
      await store.createConference(conference(1));
      assert.equal(await store.isEnded("conf-1"), false);
      const ended = await store.endConference("conf-1", T0 + 10);
      assert.equal(ended.endedAt, T0 + 10);
      assert.equal(await store.isEnded("conf-1"), true);
      assert.equal((await store.endConference("conf-1", T0 + 99)).endedAt, T0 + 10);
      assert.equal((await store.getConferenceByUri(ended.uri))?.endedAt, T0 + 10);
      await rejectsWith(store.endConference("nope", T0), StoreNotFoundError);
    },
  },
  {
    name: "upserts, reads, lists and removes participants",
    async run(store) {
      await store.createConference(conference(1));
      await store.upsertParticipant(participant("conf-1", "sip:bob@x", { joinedAt: T0 + 2 }));
      await store.upsertParticipant(
        participant("conf-1", "sip:alice@x", {
          isAdmin: true,
          displayName: "Alice Ö",
          joinedAt: T0 + 1,
        }),
      );
      await store.upsertParticipant(
        participant("conf-1", "sip:bob@x", {
          state: "left",
          leftAt: T0 + 9,
          role: "listener",
          joinedAt: T0 + 2,
        }),
      );
      const list = await store.listParticipants("conf-1");
      assert.deepEqual(list, [
        participant("conf-1", "sip:alice@x", {
          isAdmin: true,
          displayName: "Alice Ö",
          joinedAt: T0 + 1,
        }),
        participant("conf-1", "sip:bob@x", {
          state: "left",
          leftAt: T0 + 9,
          role: "listener",
          joinedAt: T0 + 2,
        }),
      ]);
      assert.deepEqual(await store.getParticipant("conf-1", "sip:alice@x"), list[0]);
      assert.equal(await store.removeParticipant("conf-1", "sip:bob@x"), true);
      assert.equal(await store.removeParticipant("conf-1", "sip:bob@x"), false);
      assert.equal(await store.getParticipant("conf-1", "sip:bob@x"), null);
      await rejectsWith(
        store.upsertParticipant(participant("nope", "sip:a@x")),
        StoreNotFoundError,
      );
    },
  },
  {
    name: "keeps a participant's devices when the participant is updated, drops them with it",
    async run(store) {
      await store.createConference(conference(1));
      await store.upsertParticipant(participant("conf-1", "sip:alice@x"));
      await store.upsertDevice(device("conf-1", "sip:alice@x", "sip:alice@x;gr=urn:uuid:1"));
      await store.upsertParticipant(participant("conf-1", "sip:alice@x", { isAdmin: true }));
      assert.equal((await store.listDevices("conf-1")).length, 1);
      await store.removeParticipant("conf-1", "sip:alice@x");
      assert.deepEqual(await store.listDevices("conf-1"), []);
    },
  },
  {
    name: "upserts, lists and removes devices; a device needs its participant",
    async run(store) {
      await store.createConference(conference(1));
      await store.upsertParticipant(participant("conf-1", "sip:alice@x"));
      await store.upsertParticipant(participant("conf-1", "sip:bob@x"));
      const a2 = device("conf-1", "sip:alice@x", "sip:alice@x;gr=urn:uuid:2", {
        state: "joining",
        joiningMethod: "dialed-out",
        joiningTime: null,
      });
      await store.upsertDevice(a2);
      await store.upsertDevice(device("conf-1", "sip:bob@x", "sip:bob@x;gr=urn:uuid:9"));
      await store.upsertDevice(device("conf-1", "sip:alice@x", "sip:alice@x;gr=urn:uuid:1"));
      const a2present = {
        ...a2,
        state: "present" as const,
        joiningTime: T0 + 4,
        name: "Alice's phone",
        lastNotifyVersion: 5,
      };
      await store.upsertDevice(a2present);
      assert.deepEqual(
        (await store.listDevices("conf-1")).map((d) => d.deviceUri),
        ["sip:alice@x;gr=urn:uuid:1", "sip:alice@x;gr=urn:uuid:2", "sip:bob@x;gr=urn:uuid:9"],
      );
      const alice = await store.listDevices("conf-1", "sip:alice@x");
      assert.deepEqual(alice, [
        device("conf-1", "sip:alice@x", "sip:alice@x;gr=urn:uuid:1"),
        a2present,
      ]);
      assert.equal(await store.removeDevice("conf-1", "sip:alice@x;gr=urn:uuid:1"), true);
      assert.equal(await store.removeDevice("conf-1", "sip:alice@x;gr=urn:uuid:1"), false);
      assert.equal((await store.listDevices("conf-1", "sip:alice@x")).length, 1);
      await rejectsWith(
        store.upsertDevice(device("conf-1", "sip:carol@x", "sip:carol@x;gr=1")),
        StoreNotFoundError,
      );
      await rejectsWith(
        store.upsertDevice(device("nope", "sip:alice@x", "sip:a;gr=1")),
        StoreNotFoundError,
      );
    },
  },
  {
    name: "queues chat messages per device until each one has them",
    async run(store) {
      await store.createConference(conference(1, { kind: "chat" }));
      await store.createConference(conference(2, { kind: "chat" }));
      const body = new Uint8Array([0, 255, 1, 0, 128, 10, 13]);
      const id1 = await store.enqueueMessage("conf-1", {
        ...message(["dev:a", "dev:b", "dev:a"], 1),
        body,
        contentType: "message/cpim",
      });
      const id2 = await store.enqueueMessage("conf-1", {
        ...message(["dev:b"], 2),
        senderDevice: null,
      });
      const other = await store.enqueueMessage("conf-2", message(["dev:a"], 3));
      assert.ok(id2 > id1 && other > id2, "ids grow");
      const forA = await store.pendingMessagesFor("conf-1", "dev:a");
      assert.deepEqual(forA, [{
        id: id1,
        conferenceId: "conf-1",
        senderAor: "sip:alice@example.org",
        senderDevice: "sip:alice@example.org;gr=urn:uuid:a1",
        contentType: "message/cpim",
        body,
        receivedAt: T0 + 1,
      }]);
      assert.ok(forA[0]?.body instanceof Uint8Array);
      assert.deepEqual((await store.pendingMessagesFor("conf-1", "dev:b")).map((m) => m.id), [
        id1,
        id2,
      ]);
      assert.equal((await store.pendingMessagesFor("conf-1", "dev:b"))[1]?.senderDevice, null);
      assert.equal(await store.markDelivered(id1, "dev:a"), true);
      assert.equal(await store.markDelivered(id1, "dev:a"), false);
      assert.deepEqual(await store.pendingMessagesFor("conf-1", "dev:a"), []);
      assert.equal(await store.markDelivered(id1, "dev:b"), true);
      assert.deepEqual((await store.pendingMessagesFor("conf-1", "dev:b")).map((m) => m.id), [id2]);
      assert.equal(await store.markDelivered(id1, "dev:b"), false);
      assert.deepEqual((await store.pendingMessagesFor("conf-2", "dev:a")).map((m) => m.id), [
        other,
      ]);
      await rejectsWith(store.enqueueMessage("nope", message(["dev:a"])), StoreNotFoundError);
      await assert.rejects(store.enqueueMessage("conf-1", message([])), RangeError);
    },
  },
  {
    name: "stores a 1 MiB binary message body byte for byte",
    async run(store) {
      await store.createConference(conference(1, { kind: "chat" }));
      const body = new Uint8Array(1024 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
      const id = await store.enqueueMessage("conf-1", { ...message(["dev:a"]), body });
      const [got] = await store.pendingMessagesFor("conf-1", "dev:a");
      assert.equal(got?.id, id);
      assert.equal(got?.body.length, body.length);
      assert.ok(got?.body.every((b, i) => b === body[i]));
    },
  },
  {
    name: "purges queued messages received before a time",
    async run(store) {
      await store.createConference(conference(1, { kind: "chat" }));
      await store.enqueueMessage("conf-1", message(["dev:a"], 1, T0 + 100));
      const kept = await store.enqueueMessage("conf-1", message(["dev:a"], 2, T0 + 200));
      assert.equal(await store.purgeMessagesOlderThan(T0 + 200), 1);
      assert.deepEqual((await store.pendingMessagesFor("conf-1", "dev:a")).map((m) => m.id), [
        kept,
      ]);
      assert.equal(await store.purgeMessagesOlderThan(T0 + 200), 0);
    },
  },
  {
    name: "replays conference events after a version, and raises lastNotifyVersion",
    async run(store) {
      await store.createConference(conference(1));
      for (let v = 1; v <= 5; v++) await store.appendEvent("conf-1", v, `<v${v}/>`);
      assert.equal((await store.getConference("conf-1"))?.lastNotifyVersion, 5);
      assert.deepEqual(await store.eventsSince("conf-1", 2), {
        complete: true,
        events: [{ version: 3, payload: "<v3/>" }, { version: 4, payload: "<v4/>" }, {
          version: 5,
          payload: "<v5/>",
        }],
      });
      assert.deepEqual(await store.eventsSince("conf-1", 5), { complete: true, events: [] });
      assert.equal((await store.eventsSince("conf-1", 0)).complete, true);
      // a subscriber claiming a future version cannot be served a partial replay
      assert.equal((await store.eventsSince("conf-1", 9)).complete, false);
      // the same event again is accepted (idempotent), a different one is a conflict
      await store.appendEvent("conf-1", 5, "<v5/>");
      await rejectsWith(store.appendEvent("conf-1", 5, "<other/>"), StoreConflictError);
      // a version bumped without an event leaves a gap
      await store.updateConference("conf-1", { lastNotifyVersion: 6 });
      assert.equal((await store.eventsSince("conf-1", 2)).complete, false);
      assert.deepEqual(await store.eventsSince("conf-1", 6), { complete: true, events: [] });
      await rejectsWith(store.appendEvent("nope", 1, "x"), StoreNotFoundError);
    },
  },
  {
    name: "trims old events beyond the configured limit",
    options: { maxEventsPerConference: 3 },
    async run(store) {
      await store.createConference(conference(1));
      for (let v = 1; v <= 6; v++) await store.appendEvent("conf-1", v, `e${v}`);
      const all = await store.eventsSince("conf-1", 0);
      assert.deepEqual(all.events.map((e) => e.version), [4, 5, 6]);
      assert.equal(all.complete, false);
      assert.equal((await store.eventsSince("conf-1", 3)).complete, true);
    },
  },
  {
    name: "purges ended conferences older than the cut-off with all their rows",
    async run(store) {
      for (const n of [1, 2, 3]) {
        await store.createConference(conference(n, { kind: "chat" }));
        await store.upsertParticipant(participant(`conf-${n}`, "sip:a@x"));
        await store.upsertDevice(device(`conf-${n}`, "sip:a@x", "dev:a"));
        await store.enqueueMessage(`conf-${n}`, message(["dev:a"], n));
        await store.appendEvent(`conf-${n}`, 1, "e");
      }
      await store.endConference("conf-1", T0 + 1000);
      await store.endConference("conf-2", T0 + 5000);
      assert.equal(await store.purgeExpired(T0 + 2000), 1);
      assert.equal(await store.getConference("conf-1"), null);
      assert.deepEqual(await store.listParticipants("conf-1"), []);
      assert.deepEqual(await store.listDevices("conf-1"), []);
      assert.deepEqual(await store.pendingMessagesFor("conf-1", "dev:a"), []);
      // a conference re-created at the same id starts empty: nothing of the old one is left
      await store.createConference(conference(1));
      assert.deepEqual((await store.eventsSince("conf-1", 0)).events, []);
      assert.notEqual(await store.getConference("conf-2"), null);
      assert.equal((await store.pendingMessagesFor("conf-2", "dev:a")).length, 1);
      assert.equal((await store.listParticipants("conf-3")).length, 1);
      assert.equal(await store.purgeExpired(T0 + 2000), 0);
      assert.equal(await store.purgeExpired(T0 + 5001), 1);
    },
  },
  {
    name: "rejects values the schema cannot hold, as rejected promises",
    async run(store) {
      await assert.rejects(
        store.createConference({ ...conference(1), id: "x".repeat(192) }),
        RangeError,
      );
      await assert.rejects(store.createConference({ ...conference(1), id: "" }), RangeError);
      await assert.rejects(
        store.createConference({ ...conference(1), createdAt: 1.5 }),
        RangeError,
      );
      await assert.rejects(
        store.createConference({ ...conference(1), kind: "video" as unknown as "chat" }),
        RangeError,
      );
      await store.createConference(conference(1));
      await assert.rejects(
        store.upsertParticipant(
          participant("conf-1", "sip:a@x", { state: "gone" as unknown as "left" }),
        ),
        RangeError,
      );
      await assert.rejects(store.appendEvent("conf-1", Number.NaN, "x"), RangeError);
      assert.equal((await store.listLiveConferences()).length, 1);
    },
  },
  {
    name: "handles concurrent creations",
    async run(store) {
      const created = await Promise.all(
        Array.from({ length: 25 }, (_, i) => store.createConference(conference(i))),
      );
      assert.equal(created.length, 25);
      assert.equal((await store.listLiveConferences()).length, 25);
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => store.createConference(conference(100))),
      );
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      for (const r of results) {
        if (r.status === "rejected") assert.ok(r.reason instanceof StoreConflictError);
      }
    },
  },
  {
    name: "keeps everything across close and reopen",
    async run(store, fixture) {
      await store.createConference(conference(1, { kind: "chat", subject: "kept" }));
      await store.createConference(conference(2));
      await store.endConference("conf-2", T0 + 7);
      await store.upsertParticipant(participant("conf-1", "sip:a@x", { isAdmin: true }));
      await store.upsertDevice(device("conf-1", "sip:a@x", "dev:a"));
      const id = await store.enqueueMessage("conf-1", message(["dev:a"]));
      await store.appendEvent("conf-1", 1, "e1");
      const reopened = await fixture.reopen();
      assert.deepEqual((await reopened.listLiveConferences()).map((c) => c.subject), ["kept"]);
      assert.equal(await reopened.isEnded("conf-2"), true);
      assert.equal((await reopened.getParticipant("conf-1", "sip:a@x"))?.isAdmin, true);
      assert.equal((await reopened.listDevices("conf-1")).length, 1);
      assert.deepEqual((await reopened.pendingMessagesFor("conf-1", "dev:a")).map((m) => m.id), [
        id,
      ]);
      assert.deepEqual(await reopened.eventsSince("conf-1", 0), {
        complete: true,
        events: [{ version: 1, payload: "e1" }],
      });
      // ids keep growing after a restart
      assert.ok((await reopened.enqueueMessage("conf-1", message(["dev:a"]))) > id);
    },
  },
  {
    name: "answers ping, and StoreClosedError after close",
    async run(store) {
      await store.ping();
      await store.close();
      await store.close();
      await rejectsWith(store.getConference("x"), StoreClosedError);
      await rejectsWith(store.createConference(conference(1)), StoreClosedError);
      await rejectsWith(store.ping(), StoreClosedError);
    },
  },
];

/** Registers the whole suite for one backend. */
export function defineStoreConformance(
  label: string,
  factory: StoreFactory,
  ignore = false,
): void {
  for (const c of CASES) {
    Deno.test({
      name: `${label} conformance: ${c.name}`,
      ignore,
      async fn() {
        const fixture = await factory(c.options ?? {});
        try {
          await c.run(fixture.store, fixture);
        } finally {
          await fixture.dispose();
        }
      },
    });
  }
}
