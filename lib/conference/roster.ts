/**
 * The roster of one conference: users (AORs), their devices and roles, and the conference's
 * own state (subject, lock, capacity). Pure data with policy rules (RFC 4353 §5.1 conference
 * policy; RFC 4579 §5.2 roles as Flexisip/liblinphone use them); the focus owns the calls and
 * media, this owns who is in the conference. It renders the RFC 4575 snapshot that the
 * notifier turns into conference-info documents.
 * @module
 */

import type {
  AvailableMediaSnapshot,
  ConferenceSnapshot,
  ConferenceTimes,
  EndpointSnapshot,
  EndpointStatus,
  JoiningMethod,
  MediaSnapshot,
  UserSnapshot,
} from "../events/conference_info.ts";

/** A device (one SIP user agent of a user, by contact or GRUU) in a conference. */
export interface RosterDevice {
  /** Device contact or GRUU (`endpoint/@entity`). */
  readonly uri: string;
  status: EndpointStatus;
  joiningMethod: JoiningMethod;
  joinedAt: number;
  /** Media streams as the device negotiated them (RFC 4575 `media`). */
  media: MediaSnapshot[];
  /** Dialog of the device's call with the focus, for `call-info/sip`. */
  call?: { callId: string; fromTag: string; toTag: string };
}

/** A user (RFC 4575 `user`, by address of record). */
export interface RosterUser {
  readonly aor: string;
  displayName: string | undefined;
  admin: boolean;
  /** The creator of the conference (`organizer` role). */
  organizer: boolean;
  joinedAt: number;
  devices: Map<string, RosterDevice>;
}

/** Why a join is refused (status codes per RFC 3261 §21 used by the focus). */
export type JoinRefusal =
  | { status: 403; reason: "Conference locked" }
  | { status: 486; reason: "Conference full" };

/** Fixed properties of a roster. */
export interface RosterOptions {
  readonly entity: string;
  readonly subject: string;
  readonly maxParticipants: number;
  readonly locked?: boolean;
  readonly availableMedia?: readonly AvailableMediaSnapshot[];
  readonly times?: ConferenceTimes;
}

/**
 * Users, devices and roles of one conference. Mutations return whether anything changed so
 * the caller knows when to notify.
 */
export class Roster {
  readonly entity: string;
  subject: string;
  locked: boolean;
  maxParticipants: number;
  availableMedia: AvailableMediaSnapshot[];
  times: ConferenceTimes | undefined;
  readonly #users = new Map<string, RosterUser>();

  constructor(options: RosterOptions) {
    this.entity = options.entity;
    this.subject = options.subject;
    this.locked = options.locked ?? false;
    this.maxParticipants = options.maxParticipants;
    this.availableMedia = [...(options.availableMedia ?? [])];
    this.times = options.times;
  }

  /** Users in join order. */
  get users(): readonly RosterUser[] {
    return [...this.#users.values()];
  }

  /** Number of users with at least one device that is not disconnected. */
  get activeUserCount(): number {
    let n = 0;
    for (const u of this.#users.values()) if (hasLiveDevice(u)) n++;
    return n;
  }

  /** The user with this AOR. */
  user(aor: string): RosterUser | undefined {
    return this.#users.get(aor);
  }

  /** The device with this URI, with its user. */
  device(uri: string): { user: RosterUser; device: RosterDevice } | undefined {
    for (const user of this.#users.values()) {
      const device = user.devices.get(uri);
      if (device) return { user, device };
    }
    return undefined;
  }

  /**
   * Whether a new device of `aor` may join (RFC 4353 §5.1 membership policy): a locked
   * conference admits only users already in it, unless the focus itself `invited` them (an
   * admin's dial-out: the lock is on dialling in); a full one admits only another device of a
   * user already in it. `pending` are users whose join was admitted but is not in the roster
   * yet (still being stored): they hold their seat, so concurrent joins cannot overfill.
   */
  admission(
    aor: string,
    pending: ReadonlySet<string> = new Set(),
    invited = false,
  ): JoinRefusal | undefined {
    const existing = this.#users.get(aor);
    if (existing && hasLiveDevice(existing)) return undefined;
    if (pending.has(aor)) return undefined;
    if (this.locked && !existing && !invited) return { status: 403, reason: "Conference locked" };
    let seated = this.activeUserCount;
    for (const p of pending) {
      const u = this.#users.get(p);
      if (!u || !hasLiveDevice(u)) seated++;
    }
    if (seated >= this.maxParticipants) {
      return { status: 486, reason: "Conference full" };
    }
    return undefined;
  }

  /**
   * Adds (or reuses) a user. The first user ever added becomes organizer and admin (the
   * creator is admin, Flexisip behaviour).
   */
  addUser(aor: string, displayName: string | undefined, now: number): RosterUser {
    let user = this.#users.get(aor);
    if (!user) {
      const first = this.#users.size === 0;
      user = {
        aor,
        displayName,
        admin: first,
        organizer: first,
        joinedAt: now,
        devices: new Map(),
      };
      this.#users.set(aor, user);
    } else if (displayName !== undefined && user.displayName === undefined) {
      user.displayName = displayName;
    }
    return user;
  }

  /** Adds or replaces a device of a user (creating the user if needed). */
  upsertDevice(
    aor: string,
    displayName: string | undefined,
    device: Omit<RosterDevice, "media"> & { media?: MediaSnapshot[] },
  ): RosterDevice {
    const user = this.addUser(aor, displayName, device.joinedAt);
    const stored: RosterDevice = { ...device, media: device.media ?? [] };
    user.devices.set(device.uri, stored);
    return stored;
  }

  /**
   * Removes a device; a user left without devices is removed too. Returns the removed user
   * when that happened. Re-applies the admin rule (RFC 4579 §5.2 via Flexisip: when no admin
   * is left another participant is promoted).
   */
  removeDevice(
    uri: string,
  ): { userRemoved: RosterUser | undefined; promoted: RosterUser | undefined } {
    for (const user of this.#users.values()) {
      if (!user.devices.delete(uri)) continue;
      let userRemoved: RosterUser | undefined;
      if (user.devices.size === 0) {
        this.#users.delete(user.aor);
        userRemoved = user;
      }
      return { userRemoved, promoted: this.ensureAdmin() };
    }
    return { userRemoved: undefined, promoted: undefined };
  }

  /** Removes a user and all its devices. */
  removeUser(aor: string): { removed: RosterUser | undefined; promoted: RosterUser | undefined } {
    const removed = this.#users.get(aor);
    if (removed) this.#users.delete(aor);
    return { removed, promoted: removed ? this.ensureAdmin() : undefined };
  }

  /** Sets a user's admin role; refuses to remove the last admin's role when others remain. */
  setAdmin(aor: string, admin: boolean): boolean {
    const user = this.#users.get(aor);
    if (!user || user.admin === admin) return false;
    user.admin = admin;
    this.ensureAdmin(aor);
    return true;
  }

  /**
   * When users remain but none is admin, promotes the longest-present one (excluding
   * `except` when another candidate exists). Returns the promoted user.
   */
  ensureAdmin(except?: string): RosterUser | undefined {
    const users = [...this.#users.values()];
    if (users.length === 0 || users.some((u) => u.admin)) return undefined;
    const candidates = users.filter((u) => u.aor !== except && hasLiveDevice(u));
    const pick = candidates[0] ?? users.find((u) => u.aor !== except) ?? users[0];
    if (!pick) return undefined;
    pick.admin = true;
    return pick;
  }

  /** The RFC 4575 snapshot of the roster. */
  snapshot(active: boolean): ConferenceSnapshot {
    const users: UserSnapshot[] = [];
    for (const user of this.#users.values()) {
      const roles = [
        ...(user.organizer ? ["organizer"] : []),
        user.admin ? "admin" : "participant",
      ];
      const endpoints: EndpointSnapshot[] = [];
      for (const d of user.devices.values()) {
        endpoints.push({
          entity: d.uri,
          status: d.status,
          joiningMethod: d.joiningMethod,
          joiningInfo: { when: d.joinedAt },
          media: d.media,
          ...(d.call ? { callInfo: d.call } : {}),
        });
      }
      users.push({
        entity: user.aor,
        ...(user.displayName !== undefined ? { displayText: user.displayName } : {}),
        roles,
        endpoints,
      });
    }
    return {
      entity: this.entity,
      subject: this.subject,
      maximumUserCount: this.maxParticipants,
      availableMedia: this.availableMedia,
      userCount: this.activeUserCount,
      active,
      locked: this.locked,
      users,
      ...(this.times ? { times: this.times } : {}),
    };
  }
}

function hasLiveDevice(user: RosterUser): boolean {
  for (const d of user.devices.values()) if (d.status !== "disconnected") return true;
  return false;
}
