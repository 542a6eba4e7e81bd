/**
 * Validation of values going into the store and decoding of rows coming out, shared by both
 * backends so that they accept and return exactly the same things (RFC 4575 data model;
 * column sizes chosen so that MySQL's 3072-byte index limit holds with utf8mb4).
 * @module
 */

import {
  type ChatMessageRecord,
  CONFERENCE_KINDS,
  type ConferenceEventRecord,
  type ConferenceKind,
  type ConferenceOptions,
  type ConferencePatch,
  type ConferenceRecord,
  DEVICE_STATES,
  type DeviceRecord,
  type DeviceState,
  JOINING_METHODS,
  type JoiningMethod,
  type NewChatMessage,
  type NewConference,
  PARTICIPANT_STATES,
  type ParticipantRecord,
  type ParticipantState,
  StoreError,
} from "./store.ts";

/** Longest conference id (characters). */
export const MAX_ID_LENGTH = 191;
/** Longest URI or AOR (characters). */
export const MAX_URI_LENGTH = 512;
/** Longest subject or display name (characters). */
export const MAX_TEXT_LENGTH = 4096;
/** Longest role, content type (characters). */
export const MAX_SHORT_LENGTH = 255;
/** Largest chat message body (bytes), below MariaDB's default max_allowed_packet. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** Longest event payload or options JSON (characters). */
export const MAX_PAYLOAD_LENGTH = 4 * 1024 * 1024;

/** A row as either driver returns it. */
export type Row = Readonly<Record<string, unknown>>;

/** A stored value that does not decode: the database holds something we never wrote. */
export class StoreCorruptError extends StoreError {}

/** Throws TypeError/RangeError unless `value` is a non-empty string of at most `max` chars. */
export function checkString(name: string, value: unknown, max: number): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string`);
  if (value.length === 0) throw new RangeError(`${name} must not be empty`);
  if (value.length > max) throw new RangeError(`${name} is longer than ${max} characters`);
  return value;
}

/** Like {@link checkString} but allows the empty string. */
export function checkText(name: string, value: unknown, max: number): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string`);
  if (value.length > max) throw new RangeError(`${name} is longer than ${max} characters`);
  return value;
}

/** Like {@link checkString} but allows null. */
export function checkNullableString(name: string, value: unknown, max: number): string | null {
  return value === null ? null : checkString(name, value, max);
}

/** Throws unless `value` is a safe integer (timestamps, versions). */
export function checkInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new RangeError(`${name} must be a safe integer`);
  }
  return value;
}

/** Like {@link checkInteger} but allows null. */
export function checkNullableInteger(name: string, value: unknown): number | null {
  return value === null ? null : checkInteger(name, value);
}

function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new RangeError(`${name} must be one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/** Serializes options, refusing anything that is not a plain JSON object. */
export function encodeOptions(options: ConferenceOptions): string {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError("options must be a JSON object");
  }
  const text = JSON.stringify(options);
  if (text.length > MAX_PAYLOAD_LENGTH) throw new RangeError("options are too large");
  return text;
}

/** A NewConference with defaults applied and every field checked. */
export function normalizeNewConference(input: NewConference): ConferenceRecord {
  return {
    id: checkString("id", input.id, MAX_ID_LENGTH),
    uri: checkString("uri", input.uri, MAX_URI_LENGTH),
    factoryUri: checkNullableString("factoryUri", input.factoryUri ?? null, MAX_URI_LENGTH),
    kind: checkOneOf<ConferenceKind>("kind", input.kind, CONFERENCE_KINDS),
    subject: checkText("subject", input.subject ?? "", MAX_TEXT_LENGTH),
    createdAt: checkInteger("createdAt", input.createdAt),
    startsAt: checkNullableInteger("startsAt", input.startsAt ?? null),
    endsAt: checkNullableInteger("endsAt", input.endsAt ?? null),
    endedAt: null,
    options: JSON.parse(encodeOptions(input.options ?? {})) as ConferenceOptions,
    lastNotifyVersion: checkInteger("lastNotifyVersion", input.lastNotifyVersion ?? 0),
  };
}

/** Checks a participant before it is written. */
export function checkParticipant(p: ParticipantRecord): void {
  checkString("conferenceId", p.conferenceId, MAX_ID_LENGTH);
  checkString("aor", p.aor, MAX_URI_LENGTH);
  checkNullableString("displayName", p.displayName, MAX_TEXT_LENGTH);
  if (typeof p.isAdmin !== "boolean") throw new TypeError("isAdmin must be a boolean");
  checkString("role", p.role, MAX_SHORT_LENGTH);
  checkOneOf<ParticipantState>("state", p.state, PARTICIPANT_STATES);
  checkInteger("joinedAt", p.joinedAt);
  checkNullableInteger("leftAt", p.leftAt);
}

/** Checks a device before it is written. */
export function checkDevice(d: DeviceRecord): void {
  checkString("conferenceId", d.conferenceId, MAX_ID_LENGTH);
  checkString("aor", d.aor, MAX_URI_LENGTH);
  checkString("deviceUri", d.deviceUri, MAX_URI_LENGTH);
  checkNullableString("name", d.name, MAX_TEXT_LENGTH);
  checkOneOf<DeviceState>("state", d.state, DEVICE_STATES);
  checkOneOf<JoiningMethod>("joiningMethod", d.joiningMethod, JOINING_METHODS);
  checkNullableInteger("joiningTime", d.joiningTime);
  checkInteger("lastNotifyVersion", d.lastNotifyVersion);
}

/** Checks a chat message; returns its recipients without duplicates. */
export function checkMessage(conferenceId: string, m: NewChatMessage): readonly string[] {
  checkString("conferenceId", conferenceId, MAX_ID_LENGTH);
  checkString("senderAor", m.senderAor, MAX_URI_LENGTH);
  checkNullableString("senderDevice", m.senderDevice, MAX_URI_LENGTH);
  checkString("contentType", m.contentType, MAX_SHORT_LENGTH);
  if (!(m.body instanceof Uint8Array)) throw new TypeError("body must be a Uint8Array");
  if (m.body.byteLength > MAX_BODY_BYTES) {
    throw new RangeError(`body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  checkInteger("receivedAt", m.receivedAt);
  if (!Array.isArray(m.recipients) || m.recipients.length === 0) {
    throw new RangeError("recipients must be a non-empty array");
  }
  const unique = [...new Set(m.recipients)];
  for (const r of unique) checkString("recipient", r, MAX_URI_LENGTH);
  return unique;
}

/** Checks an event before it is written. */
export function checkEvent(conferenceId: string, version: number, payload: string): void {
  checkString("conferenceId", conferenceId, MAX_ID_LENGTH);
  checkInteger("version", version);
  checkText("payload", payload, MAX_PAYLOAD_LENGTH);
}

function int(row: Row, column: string): number {
  const value = row[column];
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && /^-?\d+$/.test(value)) {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
  }
  throw new StoreCorruptError(`column ${column} holds ${String(value)}, not an integer`);
}

function nullableInt(row: Row, column: string): number | null {
  return row[column] === null || row[column] === undefined ? null : int(row, column);
}

function str(row: Row, column: string): string {
  const value = row[column];
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return new TextDecoder().decode(value);
  throw new StoreCorruptError(`column ${column} holds ${String(value)}, not text`);
}

function nullableStr(row: Row, column: string): string | null {
  return row[column] === null || row[column] === undefined ? null : str(row, column);
}

function oneOf<T extends string>(row: Row, column: string, allowed: readonly T[]): T {
  const value = str(row, column);
  if (!(allowed as readonly string[]).includes(value)) {
    throw new StoreCorruptError(`column ${column} holds unknown value ${value}`);
  }
  return value as T;
}

/** Decodes a `conferences` row. */
export function conferenceFromRow(row: Row): ConferenceRecord {
  let options: unknown;
  try {
    options = JSON.parse(str(row, "options"));
  } catch (error) {
    throw new StoreCorruptError("column options holds invalid JSON", { cause: error });
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new StoreCorruptError("column options holds a non-object");
  }
  return {
    id: str(row, "id"),
    uri: str(row, "uri"),
    factoryUri: nullableStr(row, "factory_uri"),
    kind: oneOf(row, "kind", CONFERENCE_KINDS),
    subject: str(row, "subject"),
    createdAt: int(row, "created_at"),
    startsAt: nullableInt(row, "starts_at"),
    endsAt: nullableInt(row, "ends_at"),
    endedAt: nullableInt(row, "ended_at"),
    options: options as ConferenceOptions,
    lastNotifyVersion: int(row, "last_notify_version"),
  };
}

/** Decodes a `participants` row. */
export function participantFromRow(row: Row): ParticipantRecord {
  return {
    conferenceId: str(row, "conference_id"),
    aor: str(row, "aor"),
    displayName: nullableStr(row, "display_name"),
    isAdmin: int(row, "is_admin") !== 0,
    role: str(row, "role"),
    state: oneOf(row, "state", PARTICIPANT_STATES),
    joinedAt: int(row, "joined_at"),
    leftAt: nullableInt(row, "left_at"),
  };
}

/** Decodes a `devices` row. */
export function deviceFromRow(row: Row): DeviceRecord {
  return {
    conferenceId: str(row, "conference_id"),
    aor: str(row, "aor"),
    deviceUri: str(row, "device_uri"),
    name: nullableStr(row, "name"),
    state: oneOf(row, "state", DEVICE_STATES),
    joiningMethod: oneOf(row, "joining_method", JOINING_METHODS),
    joiningTime: nullableInt(row, "joining_time"),
    lastNotifyVersion: int(row, "last_notify_version"),
  };
}

/** Decodes a `chat_messages` row; the body is copied into a plain Uint8Array. */
export function messageFromRow(row: Row): ChatMessageRecord {
  const body = row["body"];
  if (!(body instanceof Uint8Array)) throw new StoreCorruptError("column body is not binary");
  return {
    id: int(row, "id"),
    conferenceId: str(row, "conference_id"),
    senderAor: str(row, "sender_aor"),
    senderDevice: nullableStr(row, "sender_device"),
    contentType: str(row, "content_type"),
    body: new Uint8Array(body),
    receivedAt: int(row, "received_at"),
  };
}

/** Decodes a `conference_events` row. */
export function eventFromRow(row: Row): ConferenceEventRecord {
  return { version: int(row, "version"), payload: str(row, "payload") };
}

/**
 * True when `events` (ascending) hold every version after `since` up to `lastVersion`
 * (RFC 4575 §4.1: a subscriber can only apply partial state in order, without gaps).
 */
export function isCompleteReplay(
  since: number,
  lastVersion: number,
  events: readonly ConferenceEventRecord[],
): boolean {
  if (since > lastVersion) return false;
  if (events.length !== lastVersion - since) return false;
  return events.every((e, i) => e.version === since + 1 + i);
}

/** Conference fields equal, used to recognize our own write after an ambiguous retry. */
export function sameConference(a: ConferenceRecord, b: ConferenceRecord): boolean {
  return a.id === b.id && a.uri === b.uri && a.createdAt === b.createdAt && a.kind === b.kind &&
    a.subject === b.subject && a.factoryUri === b.factoryUri;
}

/** Column/value pairs for an UPDATE from a {@link ConferencePatch}, each value checked. */
export function patchColumns(patch: ConferencePatch): Array<[string, string | number | null]> {
  const columns: Array<[string, string | number | null]> = [];
  if (patch.factoryUri !== undefined) {
    columns.push([
      "factory_uri",
      checkNullableString("factoryUri", patch.factoryUri, MAX_URI_LENGTH),
    ]);
  }
  if (patch.subject !== undefined) {
    columns.push(["subject", checkText("subject", patch.subject, MAX_TEXT_LENGTH)]);
  }
  if (patch.startsAt !== undefined) {
    columns.push(["starts_at", checkNullableInteger("startsAt", patch.startsAt)]);
  }
  if (patch.endsAt !== undefined) {
    columns.push(["ends_at", checkNullableInteger("endsAt", patch.endsAt)]);
  }
  if (patch.options !== undefined) columns.push(["options", encodeOptions(patch.options)]);
  if (patch.lastNotifyVersion !== undefined) {
    columns.push([
      "last_notify_version",
      checkInteger("lastNotifyVersion", patch.lastNotifyVersion),
    ]);
  }
  return columns;
}

/** A fresh random token identifying one enqueue across retries. */
export function newClientToken(): string {
  return crypto.randomUUID().replaceAll("-", "");
}
