/**
 * The registration event package body, `application/reginfo+xml` (RFC 3680 §5), with the
 * GRUU extension (RFC 5628 §5: `gr:pub-gruu`, `gr:temp-gruu`): parse into typed records,
 * build for serving or tests, and apply partial notifications (RFC 3680 §5.3).
 *
 * The conference server subscribes to `Event: reg` for participants of foreign domains and
 * reads each contact's URI (the device GRUU, as Flexisip serves it), display name and
 * `unknown-param`s (`+sip.instance`, `+org.linphone.specs`).
 * @module
 */

import {
  childNamed,
  childrenNamed,
  escapeXmlAttribute,
  escapeXmlText,
  parseXml,
  XML_NAMESPACE,
  type XmlElement,
} from "./xml_tree.ts";

/** Namespace of RFC 3680 (§5.4). */
export const REGINFO_NS = "urn:ietf:params:xml:ns:reginfo";
/** Namespace of the RFC 5628 GRUU extension. */
export const GRUUINFO_NS = "urn:ietf:params:xml:ns:gruuinfo";
/** MIME type of the documents (RFC 3680 §5.1). */
export const REGINFO_CONTENT_TYPE = "application/reginfo+xml";

/** RFC 3680 §5.4 registration state. */
export type RegistrationState = "init" | "active" | "terminated";
/** RFC 3680 §5.4 contact state. */
export type ContactState = "active" | "terminated";
/** RFC 3680 §5.4 contact event: what made the contact reach its state. */
export type ContactEvent =
  | "registered"
  | "created"
  | "refreshed"
  | "shortened"
  | "expired"
  | "deactivated"
  | "probation"
  | "unregistered"
  | "rejected";

/** An `unknown-param`: a Contact header parameter the schema has no element for. */
export interface UnknownParam {
  readonly name: string;
  /** The value as carried (may be "" for a flag parameter). */
  readonly value: string;
}

/** RFC 5628 §5 `gr:temp-gruu`. */
export interface TempGruu {
  readonly uri: string;
  readonly firstCseq: number;
}

/** One contact of a registration (RFC 3680 §5.4 `contact`). */
export interface RegContact {
  readonly id: string;
  readonly state: ContactState;
  readonly event: ContactEvent;
  /** The contact URI (Flexisip serves the device's public GRUU here). */
  readonly uri: string;
  readonly displayName?: string;
  readonly displayNameLang?: string;
  /** Seconds. */
  readonly expires?: number;
  /** Seconds. */
  readonly durationRegistered?: number;
  /** Seconds. */
  readonly retryAfter?: number;
  readonly q?: string;
  readonly callId?: string;
  readonly cseq?: number;
  readonly unknownParams: readonly UnknownParam[];
  /** RFC 5628 public GRUU of this contact. */
  readonly pubGruu?: string;
  readonly tempGruus?: readonly TempGruu[];
}

/** One address of record (RFC 3680 §5.4 `registration`). */
export interface Registration {
  readonly aor: string;
  readonly id: string;
  readonly state: RegistrationState;
  readonly contacts: readonly RegContact[];
}

/** A whole `reginfo` document (RFC 3680 §5.4). */
export interface RegInfo {
  readonly version: number;
  readonly state: "full" | "partial";
  readonly registrations: readonly Registration[];
}

/** A reginfo body is well-formed XML but breaks the RFC 3680 §5.4 schema. */
export class RegInfoError extends SyntaxError {
  /** Creates the error; `message` names the defect. */
  constructor(message: string) {
    super(message);
    this.name = "RegInfoError";
  }
}

const REGISTRATION_STATES: readonly RegistrationState[] = ["init", "active", "terminated"];
const CONTACT_STATES: readonly ContactState[] = ["active", "terminated"];
const CONTACT_EVENTS: readonly ContactEvent[] = [
  "registered",
  "created",
  "refreshed",
  "shortened",
  "expired",
  "deactivated",
  "probation",
  "unregistered",
  "rejected",
];

function oneOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  what: string,
): T {
  const trimmed = value?.trim();
  if (trimmed === undefined || !(allowed as readonly string[]).includes(trimmed)) {
    throw new RegInfoError(`invalid ${what} ${JSON.stringify(value ?? null)}`);
  }
  return trimmed as T;
}

function unsigned(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    throw new RegInfoError(`invalid ${what} "${value}"`);
  }
  return Number(trimmed);
}

function requiredAttribute(element: XmlElement, name: string): string {
  const value = element.attributes[name];
  if (value === undefined) throw new RegInfoError(`<${element.name}> lacks "${name}"`);
  return value;
}

function parseContact(element: XmlElement): RegContact {
  const uri = childNamed(element, REGINFO_NS, "uri");
  if (uri === undefined) throw new RegInfoError("<contact> lacks <uri>");
  const displayName = childNamed(element, REGINFO_NS, "display-name");
  const lang = displayName?.attributes[`{${XML_NAMESPACE}}lang`];
  const pubGruu = childNamed(element, GRUUINFO_NS, "pub-gruu");
  const tempGruus = childrenNamed(element, GRUUINFO_NS, "temp-gruu").map((t) => ({
    uri: requiredAttribute(t, "uri"),
    firstCseq: unsigned(requiredAttribute(t, "first-cseq"), "first-cseq") as number,
  }));
  const a = element.attributes;
  const expires = unsigned(a["expires"], "expires");
  const duration = unsigned(a["duration-registered"], "duration-registered");
  const retryAfter = unsigned(a["retry-after"], "retry-after");
  const cseq = unsigned(a["cseq"], "cseq");
  return {
    id: requiredAttribute(element, "id"),
    state: oneOf(a["state"], CONTACT_STATES, "contact state"),
    event: oneOf(a["event"], CONTACT_EVENTS, "contact event"),
    uri: uri.text.trim(),
    ...(displayName === undefined ? {} : { displayName: displayName.text }),
    ...(lang === undefined ? {} : { displayNameLang: lang }),
    ...(expires === undefined ? {} : { expires }),
    ...(duration === undefined ? {} : { durationRegistered: duration }),
    ...(retryAfter === undefined ? {} : { retryAfter }),
    ...(a["q"] === undefined ? {} : { q: a["q"] }),
    ...(a["callid"] === undefined ? {} : { callId: a["callid"] }),
    ...(cseq === undefined ? {} : { cseq }),
    unknownParams: childrenNamed(element, REGINFO_NS, "unknown-param").map((p) => ({
      name: requiredAttribute(p, "name"),
      value: p.text,
    })),
    ...(pubGruu === undefined ? {} : { pubGruu: requiredAttribute(pubGruu, "uri") }),
    ...(tempGruus.length === 0 ? {} : { tempGruus }),
  };
}

/**
 * Parses an `application/reginfo+xml` body (RFC 3680 §5.4, RFC 5628 §5). Throws
 * {@link RegInfoError} (or `XmlParseError`) when it is not a valid document.
 */
export function parseRegInfo(xml: string): RegInfo {
  const root = parseXml(xml);
  if (root.ns !== REGINFO_NS || root.name !== "reginfo") {
    throw new RegInfoError(`root is {${root.ns}}${root.name}, not reginfo`);
  }
  return {
    version: unsigned(requiredAttribute(root, "version"), "version") as number,
    state: oneOf(root.attributes["state"], ["full", "partial"] as const, "reginfo state"),
    registrations: childrenNamed(root, REGINFO_NS, "registration").map((r) => ({
      aor: requiredAttribute(r, "aor").trim(),
      id: requiredAttribute(r, "id"),
      state: oneOf(r.attributes["state"], REGISTRATION_STATES, "registration state"),
      contacts: childrenNamed(r, REGINFO_NS, "contact").map(parseContact),
    })),
  };
}

function attrs(pairs: ReadonlyArray<readonly [string, string | number | undefined]>): string {
  return pairs
    .filter((pair): pair is readonly [string, string | number] => pair[1] !== undefined)
    .map(([name, value]) => ` ${name}="${escapeXmlAttribute(String(value))}"`)
    .join("");
}

function contactXml(c: RegContact): string[] {
  const lines = [
    `    <contact${
      attrs([
        ["id", c.id],
        ["state", c.state],
        ["event", c.event],
        ["duration-registered", c.durationRegistered],
        ["expires", c.expires],
        ["retry-after", c.retryAfter],
        ["q", c.q],
        ["callid", c.callId],
        ["cseq", c.cseq],
      ])
    }>`,
    `      <uri>${escapeXmlText(c.uri)}</uri>`,
  ];
  if (c.displayName !== undefined) {
    lines.push(
      `      <display-name${attrs([["xml:lang", c.displayNameLang]])}>${
        escapeXmlText(c.displayName)
      }</display-name>`,
    );
  }
  for (const p of c.unknownParams) {
    lines.push(
      `      <unknown-param${attrs([["name", p.name]])}>${escapeXmlText(p.value)}</unknown-param>`,
    );
  }
  if (c.pubGruu !== undefined) lines.push(`      <gr:pub-gruu${attrs([["uri", c.pubGruu]])}/>`);
  for (const t of c.tempGruus ?? []) {
    lines.push(`      <gr:temp-gruu${attrs([["uri", t.uri], ["first-cseq", t.firstCseq]])}/>`);
  }
  lines.push("    </contact>");
  return lines;
}

/**
 * Serializes a {@link RegInfo} as `application/reginfo+xml` (RFC 3680 §5.4); the `gr`
 * prefix (RFC 5628) is declared when a contact carries a GRUU. Attribute order is fixed.
 */
export function buildRegInfo(info: RegInfo): string {
  const gruu = info.registrations.some((r) =>
    r.contacts.some((c) => c.pubGruu !== undefined || (c.tempGruus?.length ?? 0) > 0)
  );
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<reginfo${
      attrs([
        ["xmlns", REGINFO_NS],
        ["xmlns:gr", gruu ? GRUUINFO_NS : undefined],
        ["version", info.version],
        ["state", info.state],
      ])
    }>`,
  ];
  for (const r of info.registrations) {
    const open = `  <registration${attrs([["aor", r.aor], ["id", r.id], ["state", r.state]])}`;
    if (r.contacts.length === 0) {
      lines.push(`${open}/>`);
      continue;
    }
    lines.push(`${open}>`);
    for (const c of r.contacts) lines.push(...contactXml(c));
    lines.push("  </registration>");
  }
  lines.push("</reginfo>");
  return lines.join("\n") + "\n";
}

/**
 * Applies a notification to the subscriber's view (RFC 3680 §5.3): a full document replaces
 * the view (whatever its version: a new subscription counts from 0 again); a partial one
 * updates the registrations it names, contact by contact (matched by `id`). The view keeps
 * active contacts only: a contact reported `terminated` is removed. A stale partial (version
 * not above the view's) leaves the view unchanged; one more than one above means
 * notifications were missed, and RFC 3680 §5.3 asks the subscriber to refresh the
 * subscription to get full state — the caller checks for that.
 */
export function applyRegInfo(view: RegInfo | undefined, incoming: RegInfo): RegInfo {
  const activeOnly = (r: Registration): Registration => ({
    ...r,
    contacts: r.contacts.filter((c) => c.state === "active"),
  });
  if (incoming.state === "full" || view === undefined) {
    return { ...incoming, state: "full", registrations: incoming.registrations.map(activeOnly) };
  }
  if (incoming.version <= view.version) return view;
  const registrations = [...view.registrations];
  for (const update of incoming.registrations) {
    const index = registrations.findIndex((r) => r.aor === update.aor);
    const current = index < 0 ? undefined : registrations[index];
    const contacts = [...(current?.contacts ?? [])];
    for (const contact of update.contacts) {
      const at = contacts.findIndex((c) => c.id === contact.id);
      if (contact.state === "terminated") {
        if (at >= 0) contacts.splice(at, 1);
      } else if (at >= 0) {
        contacts[at] = contact;
      } else {
        contacts.push(contact);
      }
    }
    const merged: Registration = { aor: update.aor, id: update.id, state: update.state, contacts };
    if (index < 0) registrations.push(merged);
    else registrations[index] = merged;
  }
  return { version: incoming.version, state: "full", registrations };
}

/**
 * Value of a contact's `unknown-param` by name (case-insensitive, RFC 3261 §7.3.1), with
 * one level of surrounding double quotes removed (Flexisip stores them unquoted, RFC 5628
 * examples keep them); "" for a flag parameter, undefined when absent.
 */
export function contactParam(contact: RegContact, name: string): string | undefined {
  const wanted = name.toLowerCase();
  const param = contact.unknownParams.find((p) => p.name.toLowerCase() === wanted);
  if (param === undefined) return undefined;
  const value = param.value.trim();
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"')
    ? value.slice(1, -1).replace(/\\(.)/g, "$1")
    : value;
}

/** The device's instance id (RFC 5626 §4.1 `+sip.instance`) without quotes or brackets. */
export function contactInstance(contact: RegContact): string | undefined {
  const value = contactParam(contact, "+sip.instance");
  if (value === undefined) return undefined;
  return value.startsWith("<") && value.endsWith(">") ? value.slice(1, -1) : value;
}

/**
 * The address that reaches this one device: its public GRUU when the registrar minted one
 * (RFC 5628), else the contact URI (which Flexisip already sets to the GRUU).
 */
export function contactDeviceUri(contact: RegContact): string {
  return contact.pubGruu ?? contact.uri;
}
