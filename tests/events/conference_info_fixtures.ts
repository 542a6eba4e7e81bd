/**
 * Test data for the conference-info tests: a three-participant conference in the shape the
 * focus produces for Linphone clients, and a seeded generator of random snapshot changes.
 * @module
 */

import type {
  ConferenceSnapshot,
  EndpointSnapshot,
  MediaSnapshot,
  UserSnapshot,
} from "../../lib/events/conference_info.ts";

/** Deeply mutable copy of a snapshot type, for building test changes. */
export type Draft<T> = T extends readonly (infer E)[] ? Draft<E>[]
  : T extends object ? { -readonly [K in keyof T]: Draft<T[K]> }
  : T;

const T0 = Date.UTC(2026, 2, 9, 14, 30, 0);

function linphoneMedia(
  audio: { label: string; ssrc: string },
  video?: { label: string; ssrc: string; thumbnail: { label: string; ssrc: string } },
): MediaSnapshot[] {
  return [
    {
      id: "1",
      displayText: "audio",
      type: "audio",
      label: audio.label,
      srcId: audio.ssrc,
      status: "sendrecv",
    },
    video === undefined ? { id: "2", displayText: "video", type: "video", status: "inactive" } : {
      id: "2",
      displayText: "video",
      type: "video",
      label: video.label,
      srcId: video.ssrc,
      status: "sendrecv",
    },
    { id: "3", displayText: "text", type: "text", status: "inactive" },
    video === undefined
      ? {
        id: "4",
        displayText: "thumbnail",
        type: "video",
        status: "inactive",
        streamContent: "thumbnail",
      }
      : {
        id: "4",
        displayText: "thumbnail",
        type: "video",
        label: video.thumbnail.label,
        srcId: video.thumbnail.ssrc,
        status: "sendonly",
        streamContent: "thumbnail",
      },
  ];
}

/** The conference checked against `tests/fixtures/events/conference_info_3p.xml`. */
export function threeParticipantConference(): ConferenceSnapshot {
  const alice: UserSnapshot = {
    entity: "sip:alice@example.org",
    displayText: "Alice Liddell",
    roles: ["organizer", "admin", "speaker"],
    endpoints: [{
      entity: "sip:alice@example.org;gr=urn:uuid:11111111-2222-3333-4444-555555555555",
      displayText: "Linphone Desktop",
      status: "connected",
      joiningMethod: "dialed-in",
      joiningInfo: { when: T0, reason: "Reason: SIP;text=Ad-hoc invitation" },
      media: linphoneMedia({ label: "a1", ssrc: "1148237659" }, {
        label: "v1",
        ssrc: "3087412650",
        thumbnail: { label: "t1", ssrc: "2214573412" },
      }),
      callInfo: { callId: "ZmgJ43fhZ0", fromTag: "yHUJx~vpu", toTag: "c0nf1" },
    }],
  };
  const bob: UserSnapshot = {
    entity: "sip:bob@example.org",
    displayText: "Bob & <Co>",
    roles: ["participant", "speaker"],
    endpoints: [
      {
        entity: "sip:bob@example.org;gr=urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
        status: "connected",
        joiningMethod: "dialed-out",
        joiningInfo: { when: T0 + 65_000, reason: "Reason: SIP;text=Added by focus" },
        media: linphoneMedia({ label: "a2", ssrc: "42" }),
        callInfo: { callId: "b0b-call", fromTag: "c0nf2", toTag: "b0b" },
      },
      {
        entity: "sip:bob@example.org;gr=urn:uuid:aaaaaaaa-0000-0000-0000-000000000002",
        status: "on-hold",
        joiningMethod: "dialed-in",
        joiningInfo: { when: T0 + 120_000 },
        media: [{ id: "1", type: "audio", label: "a3", status: "inactive" }],
      },
    ],
  };
  const carol: UserSnapshot = {
    entity: "sip:carol@example.org",
    displayText: "Carol Ærø 佐藤",
    roles: ["participant", "listener"],
    endpoints: [{
      entity: "sip:carol@example.org",
      status: "alerting",
      joiningMethod: "dialed-out",
      media: [],
    }],
  };
  return {
    entity: "sip:conference@example.org;conf-id=Q8v3-kPq_2xZ",
    subject: 'Weekly sync: Q1 "roadmap" & <budget>',
    availableMedia: [
      { label: "1", displayText: "audio", type: "audio", status: "sendrecv" },
      { label: "2", displayText: "video", type: "video", status: "sendrecv" },
      { label: "3", displayText: "text", type: "text", status: "inactive" },
    ],
    userCount: 3,
    active: true,
    locked: false,
    users: [alice, bob, carol],
    times: { start: T0, end: T0 + 3_600_000 },
    cryptoSecurityLevel: "point-to-point",
  };
}

/** mulberry32: a small seeded PRNG, so failures reproduce from the seed. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6D2B79F5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new RangeError("pick from an empty list");
    return item;
  }
}

const NAMES = ["ann", "b&b", "chloé", "dan<x>", 'eve"q"', "fay", "guo郭", "hal"];
const STATUSES = [
  "connected",
  "on-hold",
  "alerting",
  "dialing-in",
  "muted-via-focus",
  "pending",
] as const;
const MEDIA_STATUS = ["sendrecv", "sendonly", "recvonly", "inactive"] as const;
const ROLES = ["admin", "participant", "speaker", "listener", "organizer"];

function randomMedia(rng: Rng, id: string): Draft<MediaSnapshot> {
  const media: Draft<MediaSnapshot> = {
    id,
    type: rng.pick(["audio", "video", "text"]),
    status: rng.pick(MEDIA_STATUS),
  };
  if (rng.chance(0.6)) media.label = `l${rng.int(1000)}`;
  if (rng.chance(0.5)) media.srcId = String(rng.int(0xFFFFFFFF));
  if (rng.chance(0.3)) media.displayText = rng.pick(["audio", "video", "thumbnail", "x & y"]);
  if (rng.chance(0.3)) media.streamContent = rng.pick(["thumbnail", "main", "slides"]);
  return media;
}

function randomEndpoint(rng: Rng, aor: string, n: number): Draft<EndpointSnapshot> {
  const endpoint: Draft<EndpointSnapshot> = {
    entity: `${aor};gr=urn:uuid:${n}`,
    status: rng.pick(STATUSES),
    joiningMethod: rng.pick(["dialed-in", "dialed-out"] as const),
    media: [],
  };
  const count = rng.int(5);
  for (let i = 1; i <= count; i++) endpoint.media.push(randomMedia(rng, String(i)));
  if (rng.chance(0.7)) endpoint.joiningInfo = { when: T0 + rng.int(100_000) * 1000 };
  return endpoint;
}

let counter = 0;

function newUser(rng: Rng): Draft<UserSnapshot> {
  counter++;
  const aor = `sip:${rng.pick(NAMES)}${counter}@example.org`;
  const user: Draft<UserSnapshot> = {
    entity: aor,
    roles: ["participant"],
    endpoints: [],
  };
  const devices = rng.int(3);
  for (let i = 0; i < devices; i++) user.endpoints.push(randomEndpoint(rng, aor, counter * 10 + i));
  return user;
}

function mutateEndpoint(rng: Rng, endpoint: Draft<EndpointSnapshot>): void {
  switch (rng.int(10)) {
    case 0:
      endpoint.status = rng.pick(STATUSES);
      break;
    case 1:
      if (endpoint.joiningInfo === undefined || rng.chance(0.5)) {
        endpoint.joiningInfo = { when: T0 + rng.int(1000) * 1000, reason: "Reason: SIP;text=x" };
      } else delete endpoint.joiningInfo;
      break;
    case 2:
      if (endpoint.displayText === undefined) endpoint.displayText = rng.pick(NAMES);
      else delete endpoint.displayText;
      break;
    case 3:
      if (endpoint.disconnectionMethod === undefined) {
        endpoint.status = "disconnected";
        endpoint.disconnectionMethod = rng.pick(["departed", "booted", "failed", "busy"] as const);
        endpoint.disconnectionInfo = {
          when: T0 + 5000,
          reason: "bye",
          by: "sip:focus@example.org",
        };
      } else {
        delete endpoint.disconnectionMethod;
        delete endpoint.disconnectionInfo;
      }
      break;
    case 4:
      if (endpoint.callInfo === undefined) {
        endpoint.callInfo = { callId: `c${rng.int(1e6)}`, fromTag: "f", toTag: "t&t" };
      } else delete endpoint.callInfo;
      break;
    case 5: {
      const id = String(100 + rng.int(900));
      if (!endpoint.media.some((m) => m.id === id)) endpoint.media.push(randomMedia(rng, id));
      break;
    }
    case 6:
      if (endpoint.media.length > 0) endpoint.media.splice(rng.int(endpoint.media.length), 1);
      break;
    default: {
      const media = endpoint.media.length > 0 ? rng.pick(endpoint.media) : undefined;
      if (media === undefined) break;
      const choice = rng.int(4);
      if (choice === 0) media.status = rng.pick(MEDIA_STATUS);
      else if (choice === 1) media.label = `l${rng.int(1000)}`;
      else if (choice === 2) media.srcId = String(rng.int(1e9));
      else if (media.streamContent === undefined) media.streamContent = "thumbnail";
      else delete media.streamContent;
    }
  }
}

function mutateUser(rng: Rng, user: Draft<UserSnapshot>): void {
  switch (rng.int(6)) {
    case 0:
      if (user.displayText === undefined) user.displayText = `${rng.pick(NAMES)} ${rng.int(99)}`;
      else if (rng.chance(0.5)) delete user.displayText;
      else user.displayText = `${rng.pick(NAMES)} <${rng.int(99)}>`;
      break;
    case 1:
      user.roles = ROLES.filter(() => rng.chance(0.4));
      break;
    case 2: {
      counter++;
      user.endpoints.push(randomEndpoint(rng, user.entity, counter * 10));
      break;
    }
    case 3:
      if (user.endpoints.length > 0) user.endpoints.splice(rng.int(user.endpoints.length), 1);
      break;
    default:
      if (user.endpoints.length > 0) mutateEndpoint(rng, rng.pick(user.endpoints));
  }
}

function mutateConference(rng: Rng, s: Draft<ConferenceSnapshot>): void {
  switch (rng.int(10)) {
    case 0:
      s.subject = rng.chance(0.2) ? "" : `Subject ${rng.pick(NAMES)} ${rng.int(100)}`;
      break;
    case 1:
      s.locked = !s.locked;
      break;
    case 2:
      s.active = !s.active;
      break;
    case 3: {
      const entry = s.availableMedia.length > 0 ? rng.pick(s.availableMedia) : undefined;
      if (entry !== undefined && rng.chance(0.7)) entry.status = rng.pick(MEDIA_STATUS);
      else {
        s.availableMedia.push({
          label: String(s.availableMedia.length + 1),
          type: "video",
          status: "sendrecv",
        });
      }
      break;
    }
    case 4:
      if (s.times === undefined) s.times = { start: T0 + rng.int(1000) * 1000 };
      else if (rng.chance(0.5)) delete s.times;
      else s.times = { ...s.times, end: T0 + 7_200_000 };
      break;
    case 5:
      if (s.ephemeral === undefined) {
        s.ephemeral = { mode: "admin-managed", lifetime: rng.pick([0, 60, 86400]) };
      } else if (rng.chance(0.7)) {
        s.ephemeral = {
          mode: rng.pick(["admin-managed", "device-managed"]),
          lifetime: rng.int(3) * 60,
        };
      } else delete s.ephemeral;
      break;
    case 6:
      if (s.oneToOne === true) delete s.oneToOne;
      else s.oneToOne = true;
      break;
    case 7:
      if (s.cryptoSecurityLevel === undefined || rng.chance(0.7)) {
        s.cryptoSecurityLevel = rng.pick(["none", "point-to-point", "end-to-end"]);
      } else delete s.cryptoSecurityLevel;
      break;
    case 8:
      if (s.maximumUserCount === undefined || rng.chance(0.7)) s.maximumUserCount = 1 + rng.int(50);
      else delete s.maximumUserCount;
      break;
    default:
      if (s.displayText === undefined) s.displayText = "Room <1>";
      else if (rng.chance(0.8)) s.displayText = `Room ${rng.int(10)}`;
      else delete s.displayText;
  }
}

/**
 * One random step: 0 to 3 changes to users, endpoints, media, description or state. The
 * user count follows the user list, as the focus keeps it.
 */
export function randomChange(rng: Rng, snapshot: ConferenceSnapshot): ConferenceSnapshot {
  const s = structuredClone(snapshot) as Draft<ConferenceSnapshot>;
  const changes = rng.int(4);
  for (let i = 0; i < changes; i++) {
    const what = rng.int(10);
    if (what < 2 && s.users.length < 8) s.users.push(newUser(rng));
    else if (what < 3 && s.users.length > 0) s.users.splice(rng.int(s.users.length), 1);
    else if (what < 7 && s.users.length > 0) mutateUser(rng, rng.pick(s.users));
    else mutateConference(rng, s);
  }
  s.userCount = s.users.length;
  return s;
}
