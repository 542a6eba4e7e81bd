/**
 * Where the conference server learns which devices a participant has (RFC 4579 §4: a focus
 * reaches each device of a user; Flexisip invites every registered device into a chat room
 * and re-invites one that registers later). One interface, several sources: Flexisip's Redis
 * registrar for local domains, RFC 3680 `reg` subscriptions for the others.
 * @module
 */

/** One registered device of an address of record (RFC 3261 §10 binding). */
export interface Device {
  /** The address of record, `sip:user@domain`. */
  readonly aor: string;
  /** Stable id of the device: its instance id (RFC 5626 §4.1) or, without one, its contact. */
  readonly id: string;
  /** `urn:uuid:…` from `+sip.instance`, when the device sent one. */
  readonly instance?: string;
  /** Where to send requests for this device: its public GRUU (RFC 5627) or its contact URI. */
  readonly uri: string;
  /** The registered contact URI. */
  readonly contact: string;
  readonly userAgent?: string;
  /** `+org.linphone.specs` (e.g. `groupchat/1.1,ephemeral/1.1`), when present. */
  readonly specs?: string;
}

/** What changed for one device. */
export type DeviceChangeKind = "added" | "updated" | "removed";

/** One change of an address of record's device set. */
export interface DeviceChange {
  readonly kind: DeviceChangeKind;
  readonly device: Device;
}

/** A change feed event: the changes and the device set after them. */
export interface DeviceEvent {
  readonly aor: string;
  readonly changes: readonly DeviceChange[];
  readonly devices: readonly Device[];
}

/** Receives a watched address of record's changes. */
export type DeviceListener = (event: DeviceEvent) => void;

/** A running watch; `close` stops it (and the subscription behind it when it was the last). */
export interface DeviceWatch {
  close(): void;
}

/** The directory could not answer (its backend is down or unreachable). */
export class DirectoryUnavailableError extends Error {
  /** Creates the error; `message` says which backend and why. */
  constructor(message: string) {
    super(message);
    this.name = "DirectoryUnavailableError";
  }
}

/** Devices of users, and their changes. */
export interface DeviceDirectory {
  /**
   * The devices registered now for `aor` (a SIP URI). Rejects with
   * {@link DirectoryUnavailableError} when the source cannot be asked right now.
   */
  devicesOf(aor: string): Promise<readonly Device[]>;
  /**
   * Follows `aor`: `listener` hears every change (devices appearing, changing, leaving)
   * until the watch is closed. Survives outages of the source: after one, the current set is
   * fetched again and the differences are reported.
   */
  watch(aor: string, listener: DeviceListener): DeviceWatch;
  /** Starts the sources (never fails because a source is down). */
  start(): Promise<void>;
  /** Stops the sources and every watch. */
  stop(): Promise<void>;
}

/** Compares two device sets of one AOR (by `id`), in a stable order. */
export function diffDevices(
  before: readonly Device[],
  after: readonly Device[],
): DeviceChange[] {
  const changes: DeviceChange[] = [];
  const old = new Map(before.map((d) => [d.id, d]));
  const now = new Map(after.map((d) => [d.id, d]));
  for (const device of after) {
    const previous = old.get(device.id);
    if (previous === undefined) changes.push({ kind: "added", device });
    else if (!sameDevice(previous, device)) changes.push({ kind: "updated", device });
  }
  for (const device of before) {
    if (!now.has(device.id)) changes.push({ kind: "removed", device });
  }
  return changes;
}

function sameDevice(a: Device, b: Device): boolean {
  return a.uri === b.uri && a.contact === b.contact && a.userAgent === b.userAgent &&
    a.specs === b.specs && a.instance === b.instance;
}

/**
 * Routes each address of record to the source for its domain: `local` for the domains it
 * serves (case-insensitive), `remote` for the others. Either may be absent: its AORs then
 * have no devices and watches on them never fire.
 */
export class RoutingDeviceDirectory implements DeviceDirectory {
  readonly #localDomains: ReadonlySet<string>;
  readonly #local: DeviceDirectory | undefined;
  readonly #remote: DeviceDirectory | undefined;

  constructor(options: {
    localDomains: Iterable<string>;
    local: DeviceDirectory | undefined;
    remote: DeviceDirectory | undefined;
  }) {
    this.#localDomains = new Set([...options.localDomains].map((d) => d.toLowerCase()));
    this.#local = options.local;
    this.#remote = options.remote;
  }

  /** The source that answers for `aor` (undefined: none). */
  sourceFor(aor: string): DeviceDirectory | undefined {
    return this.isLocal(aor) ? this.#local : this.#remote;
  }

  /** Whether `aor`'s domain is served locally. */
  isLocal(aor: string): boolean {
    const at = aor.lastIndexOf("@");
    let host = at < 0 ? aor.replace(/^sips?:/i, "") : aor.slice(at + 1);
    host = host.split(/[;:>?]/)[0] ?? host;
    return this.#localDomains.has(host.toLowerCase());
  }

  /** @inheritdoc */
  devicesOf(aor: string): Promise<readonly Device[]> {
    return this.sourceFor(aor)?.devicesOf(aor) ?? Promise.resolve([]);
  }

  /** @inheritdoc */
  watch(aor: string, listener: DeviceListener): DeviceWatch {
    return this.sourceFor(aor)?.watch(aor, listener) ?? { close: () => {} };
  }

  /** @inheritdoc */
  async start(): Promise<void> {
    await this.#local?.start();
    await this.#remote?.start();
  }

  /** @inheritdoc */
  async stop(): Promise<void> {
    await this.#remote?.stop();
    await this.#local?.stop();
  }
}
