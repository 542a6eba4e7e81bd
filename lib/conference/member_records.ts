/**
 * The stored side of a conference's membership, so that a restart brings back who is in it
 * (RFC 4575 §5.6 users and §5.7 endpoints as store rows): a participant present with its
 * device and `joining-method` (dialed-in or dialed-out), a role change (RFC
 * 4579 §5.5 `admin`), and a departure (the device row goes; the user is marked left when it
 * was its last device). Each is one retryable unit for the focus's `persist`.
 * @module
 */

import type { Store } from "../storage/store.ts";
import type { RosterUser } from "./roster.ts";

/** A participant present through one device. */
export interface PresentMember {
  readonly aor: string;
  readonly displayName: string | null;
  readonly isAdmin: boolean;
  readonly deviceUri: string;
  readonly joiningMethod: "dialed-in" | "dialed-out";
  readonly at: number;
}

/**
 * Stores a present participant and its device; `notifyVersion` is read when the device row is
 * written (the conference-info version current at that attempt).
 */
export async function storeMember(
  store: Store,
  conferenceId: string,
  m: PresentMember,
  notifyVersion: () => number,
): Promise<void> {
  await store.upsertParticipant({
    conferenceId,
    aor: m.aor,
    displayName: m.displayName,
    isAdmin: m.isAdmin,
    role: "participant",
    state: "present",
    joinedAt: m.at,
    leftAt: null,
  });
  await store.upsertDevice({
    conferenceId,
    aor: m.aor,
    deviceUri: m.deviceUri,
    name: null,
    state: "present",
    joiningMethod: m.joiningMethod,
    joiningTime: m.at,
    lastNotifyVersion: notifyVersion(),
  });
}

/** Stores a present user's role as `user()` holds it when written. */
export async function storeRole(
  store: Store,
  conferenceId: string,
  aor: string,
  user: () => RosterUser | undefined,
): Promise<void> {
  await store.upsertParticipant({
    conferenceId,
    aor,
    displayName: user()?.displayName ?? null,
    isAdmin: user()?.admin ?? false,
    role: "participant",
    state: "present",
    joinedAt: user()?.joinedAt ?? Date.now(),
    leftAt: null,
  });
}

/** Forgets a device that left; with `userLeft`, marks its user left at `leftAt`. */
export async function storeLeave(
  store: Store,
  conferenceId: string,
  left: { readonly aor: string; readonly deviceUri: string; readonly userLeft: boolean },
  leftAt: number,
): Promise<void> {
  await store.removeDevice(conferenceId, left.deviceUri);
  if (!left.userLeft) return;
  const p = await store.getParticipant(conferenceId, left.aor);
  if (p) await store.upsertParticipant({ ...p, state: "left", leftAt });
}
