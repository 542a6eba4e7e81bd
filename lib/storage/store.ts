/**
 * The persistent conference state behind the focus (RFC 4353 §5: the focus keeps the
 * conference's URI, membership and policy; RFC 4575 §4.1 versioned conference state).
 *
 * The focus sees only the {@link Store} interface and the record types below: typed values of
 * our own, never SQL. Two backends implement it (`sqlite_store.ts`, `mysql_store.ts`) and one
 * conformance suite runs against both.
 *
 * All timestamps are wall-clock milliseconds since the Unix epoch, supplied by the caller (the
 * store never reads the clock for stored data, so tests decide every value).
 * @module
 */

/** Name of a backend, as in the `database-backend` setting (Flexisip's spelling). */
export type StoreBackend = "sqlite3" | "mysql";

/** A JSON value, as stored in {@link ConferenceRecord.options}. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** What a conference is for (RFC 4353 §3 conference types as Linphone uses them). */
export type ConferenceKind = "audio-video" | "chat" | "dial-in";

/** Every {@link ConferenceKind}, for validation. */
export const CONFERENCE_KINDS: readonly ConferenceKind[] = ["audio-video", "chat", "dial-in"];

/**
 * Conference policy as a JSON object (RFC 4353 §5.2 "conference policy"; RFC 4575 §5.3
 * conference-description). Known keys are typed; any other JSON-valued key is kept as is.
 */
export interface ConferenceOptions {
  readonly [key: string]: JsonValue | undefined;
  /** No new participant may join (Linphone "locked"). */
  readonly locked?: boolean;
  /** RFC 4575 §5.3.5 maximum-user-count. */
  readonly maxParticipants?: number;
  /** A one-to-one chat room (Linphone `One-To-One-Chat-Room: true`). */
  readonly oneToOne?: boolean;
  /** Ephemeral messages (Linphone `ephemeral/1.1`). */
  readonly ephemeral?: boolean;
  /** RFC 4575 §5.3.4 available-media, e.g. `["audio", "video", "text"]`. */
  readonly mediaTypes?: readonly string[];
}

/** One conference (RFC 4353 §5; RFC 4575 §5.1 `entity` is {@link uri}). */
export interface ConferenceRecord {
  /** Conference id (the user part of the conference URI), primary key. */
  readonly id: string;
  /** Full conference URI (RFC 4353 §6), unique. */
  readonly uri: string;
  /** URI of the conference factory that created it (RFC 4353 §5.4), if any. */
  readonly factoryUri: string | null;
  readonly kind: ConferenceKind;
  /** RFC 4575 §5.3.1 subject; empty when none. */
  readonly subject: string;
  readonly createdAt: number;
  /** Scheduled start/end (RFC 4575 §5.3 conf-uris times, Linphone conference_info). */
  readonly startsAt: number | null;
  readonly endsAt: number | null;
  /** When the conference ended; `null` while it is live (an ended one answers 410). */
  readonly endedAt: number | null;
  readonly options: ConferenceOptions;
  /** Last RFC 4575 §4.1 `version` sent in a NOTIFY for this conference. */
  readonly lastNotifyVersion: number;
}

/** Input of {@link Store.createConference}; omitted optional fields take the shown defaults. */
export interface NewConference {
  readonly id: string;
  readonly uri: string;
  /** Default `null`. */
  readonly factoryUri?: string | null;
  readonly kind: ConferenceKind;
  /** Default `""`. */
  readonly subject?: string;
  readonly createdAt: number;
  /** Default `null`. */
  readonly startsAt?: number | null;
  /** Default `null`. */
  readonly endsAt?: number | null;
  /** Default `{}`. */
  readonly options?: ConferenceOptions;
  /** Default `0`. */
  readonly lastNotifyVersion?: number;
}

/** Fields {@link Store.updateConference} can change; `options` replaces the whole object. */
export interface ConferencePatch {
  readonly factoryUri?: string | null;
  readonly subject?: string;
  readonly startsAt?: number | null;
  readonly endsAt?: number | null;
  readonly options?: ConferenceOptions;
  readonly lastNotifyVersion?: number;
}

/** Participant status (RFC 4575 §5.6 user, plus Linphone's scheduled/invited states). */
export type ParticipantState = "scheduled" | "invited" | "joining" | "present" | "left";

/** Every {@link ParticipantState}, for validation. */
export const PARTICIPANT_STATES: readonly ParticipantState[] = [
  "scheduled",
  "invited",
  "joining",
  "present",
  "left",
];

/** One participant (an AOR) of a conference (RFC 4575 §5.6 `user` element). */
export interface ParticipantRecord {
  readonly conferenceId: string;
  /** Address of record (RFC 4575 §5.6 `entity`), unique within the conference. */
  readonly aor: string;
  /** RFC 4575 §5.6.1 display-text. */
  readonly displayName: string | null;
  /** Linphone chat-room administrator flag. */
  readonly isAdmin: boolean;
  /** RFC 4575 §5.6.3 roles entry, e.g. `"participant"`, `"speaker"`, `"listener"`. */
  readonly role: string;
  readonly state: ParticipantState;
  readonly joinedAt: number;
  readonly leftAt: number | null;
}

/** Device status (RFC 4575 §5.7.2 endpoint status, Linphone's scheduled states). */
export type DeviceState =
  | "scheduled-for-joining"
  | "joining"
  | "present"
  | "scheduled-for-leaving"
  | "leaving"
  | "left";

/** Every {@link DeviceState}, for validation. */
export const DEVICE_STATES: readonly DeviceState[] = [
  "scheduled-for-joining",
  "joining",
  "present",
  "scheduled-for-leaving",
  "leaving",
  "left",
];

/** RFC 4575 §5.7.3 joining-info `method`. */
export type JoiningMethod = "dialed-in" | "dialed-out" | "focus-owner";

/** Every {@link JoiningMethod}, for validation. */
export const JOINING_METHODS: readonly JoiningMethod[] = ["dialed-in", "dialed-out", "focus-owner"];

/** One device (an endpoint, RFC 4575 §5.7) of a participant; {@link deviceUri} is its key. */
export interface DeviceRecord {
  readonly conferenceId: string;
  /** The participant this device belongs to (must exist). */
  readonly aor: string;
  /** GRUU or Contact URI (RFC 4575 §5.7 endpoint `entity`), unique within the conference. */
  readonly deviceUri: string;
  /** RFC 4575 §5.7.1 display-text of the endpoint, if known. */
  readonly name: string | null;
  readonly state: DeviceState;
  readonly joiningMethod: JoiningMethod;
  /** RFC 4575 §5.7.3 joining-info `when`. */
  readonly joiningTime: number | null;
  /** Last conference-info version this device was notified of. */
  readonly lastNotifyVersion: number;
}

/** A chat message to queue for the devices that have not received it yet. */
export interface NewChatMessage {
  readonly senderAor: string;
  readonly senderDevice: string | null;
  readonly contentType: string;
  readonly body: Uint8Array;
  readonly receivedAt: number;
  /** Device URIs that must still receive it; must not be empty. */
  readonly recipients: readonly string[];
}

/** A queued chat message, as returned by {@link Store.pendingMessagesFor}. */
export interface ChatMessageRecord {
  readonly id: number;
  readonly conferenceId: string;
  readonly senderAor: string;
  readonly senderDevice: string | null;
  readonly contentType: string;
  readonly body: Uint8Array;
  readonly receivedAt: number;
}

/** One stored conference-info change (RFC 4575 §4.1 partial state, by version). */
export interface ConferenceEventRecord {
  readonly version: number;
  /** The partial notification body (XML or JSON, opaque to the store). */
  readonly payload: string;
}

/**
 * Answer of {@link Store.eventsSince}: the stored events after a version, oldest first.
 * `complete` is true only when they cover every version from the asked one up to the
 * conference's {@link ConferenceRecord.lastNotifyVersion} with no gap, i.e. a partial
 * replay is possible (RFC 4575 §4.1); otherwise the caller must send full state.
 */
export interface EventReplay {
  readonly complete: boolean;
  readonly events: readonly ConferenceEventRecord[];
}

/**
 * Persistent conference state. Every method is async and may reject with
 * {@link StoreUnavailableError} (database unreachable after retries: answer 503 with
 * Retry-After), {@link StoreConflictError}, {@link StoreNotFoundError} (a write that names a
 * missing conference/participant), {@link StoreClosedError}, or `RangeError`/`TypeError` for
 * values the schema cannot hold.
 */
export interface Store {
  /** Which backend this is. */
  readonly backend: StoreBackend;

  /** Creates a conference; StoreConflictError when its id or URI exists already. */
  createConference(conference: NewConference): Promise<ConferenceRecord>;
  /** The conference with this id, or null. */
  getConference(id: string): Promise<ConferenceRecord | null>;
  /** The conference with this URI (exact string match), or null. */
  getConferenceByUri(uri: string): Promise<ConferenceRecord | null>;
  /** Every conference that has not ended, oldest first (reloaded at start). */
  listLiveConferences(): Promise<readonly ConferenceRecord[]>;
  /** Changes some fields; StoreNotFoundError when the conference does not exist. */
  updateConference(id: string, patch: ConferencePatch): Promise<ConferenceRecord>;
  /**
   * Marks the conference ended at `at` (kept if it had ended already); its rows stay until
   * {@link purgeExpired}. StoreNotFoundError when it does not exist.
   */
  endConference(id: string, at: number): Promise<ConferenceRecord>;
  /** True when the conference exists and has ended (the focus answers 410). */
  isEnded(id: string): Promise<boolean>;
  /**
   * Deletes every conference that ended before `endedBefore` (epoch ms; the caller passes
   * `now - conferences-expiry-time`) with its participants, devices, messages and events.
   * Returns how many conferences were removed.
   */
  purgeExpired(endedBefore: number): Promise<number>;

  /** Inserts or replaces a participant; StoreNotFoundError when the conference is missing. */
  upsertParticipant(participant: ParticipantRecord): Promise<void>;
  /** The participant, or null. */
  getParticipant(conferenceId: string, aor: string): Promise<ParticipantRecord | null>;
  /** Deletes a participant and its devices; false when it was not there. */
  removeParticipant(conferenceId: string, aor: string): Promise<boolean>;
  /** Participants of a conference, by joinedAt then aor. */
  listParticipants(conferenceId: string): Promise<readonly ParticipantRecord[]>;

  /** Inserts or replaces a device; StoreNotFoundError when its participant is missing. */
  upsertDevice(device: DeviceRecord): Promise<void>;
  /** Deletes a device; false when it was not there. */
  removeDevice(conferenceId: string, deviceUri: string): Promise<boolean>;
  /** Devices of a conference (or of one participant), by aor then deviceUri. */
  listDevices(conferenceId: string, aor?: string): Promise<readonly DeviceRecord[]>;

  /** Queues a chat message for its recipients; returns its id (ids only grow). */
  enqueueMessage(conferenceId: string, message: NewChatMessage): Promise<number>;
  /** Messages of a conference not yet delivered to this device, oldest first. */
  pendingMessagesFor(
    conferenceId: string,
    deviceUri: string,
  ): Promise<readonly ChatMessageRecord[]>;
  /**
   * Records delivery to one device; a message delivered to all its recipients is deleted.
   * False when that device had nothing pending for the message.
   */
  markDelivered(messageId: number, deviceUri: string): Promise<boolean>;
  /** Deletes queued messages received before `receivedBefore`; returns how many. */
  purgeMessagesOlderThan(receivedBefore: number): Promise<number>;

  /**
   * Stores the partial notification of `version` (RFC 4575 §4.1), raises the conference's
   * lastNotifyVersion to it if lower, and trims the oldest events beyond the store's limit.
   * StoreConflictError when that version is stored already with another payload.
   */
  appendEvent(conferenceId: string, version: number, payload: string): Promise<void>;
  /** Stored events with a version above `version`, oldest first (see {@link EventReplay}). */
  eventsSince(conferenceId: string, version: number): Promise<EventReplay>;

  /** One round-trip to the database; rejects with StoreUnavailableError when it fails. */
  ping(): Promise<void>;
  /** Releases the database; later calls reject with StoreClosedError. Idempotent. */
  close(): Promise<void>;
}

/** Base class of every storage error. */
export class StoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The database cannot be reached (after the configured retries). The focus refuses the
 * request that needed storage with `503 Service Unavailable` and
 * `Retry-After: retryAfterSeconds` (RFC 3261 §21.5.4, §20.33) instead of losing it.
 */
export class StoreUnavailableError extends StoreError {
  /** Seconds after which a retry makes sense. */
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A record with the same key (conference id or URI, event version) exists already. */
export class StoreConflictError extends StoreError {}

/** A write named a conference or participant that does not exist. */
export class StoreNotFoundError extends StoreError {}

/** The store was closed. */
export class StoreClosedError extends StoreError {
  constructor() {
    super("store is closed");
  }
}

/**
 * The store cannot be opened for a reason retrying will not fix (access denied, missing
 * database, unusable state directory).
 */
export class StoreOpenError extends StoreError {}

/** The database schema was written by a newer Conclave than this one. */
export class StoreSchemaTooNewError extends StoreError {
  readonly databaseVersion: number;
  readonly supportedVersion: number;

  constructor(where: string, databaseVersion: number, supportedVersion: number) {
    super(
      `database schema version ${databaseVersion} at ${where} is newer than this Conclave ` +
        `supports (${supportedVersion}); upgrade Conclave or use another database`,
    );
    this.databaseVersion = databaseVersion;
    this.supportedVersion = supportedVersion;
  }
}
