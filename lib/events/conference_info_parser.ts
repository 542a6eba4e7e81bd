/**
 * Reading RFC 4575 conference-info documents back: {@link parseConferenceInfo} turns a
 * document into a {@link ConferenceSnapshot}, and {@link applyPartial} merges a partial
 * notification into a known state following RFC 4575 §4.6 ("Constructing Coherent State").
 * Tests use both to prove that full(v1) + partial(v2) == full(v2); a client-side subscriber
 * (e.g. a cascaded focus) could use them too.
 * @module
 */

import {
  buildFullState,
  CONFERENCE_INFO_NS,
  type ConferenceSnapshot,
  type CryptoSecurityLevel,
  type DisconnectionMethod,
  type EndpointSnapshot,
  type EndpointStatus,
  type ExecutionInfo,
  type JoiningMethod,
  LINPHONE_CIE_NS,
  type MediaSnapshot,
  type MediaStatus,
  type UserSnapshot,
} from "./conference_info.ts";
import { childNamed, childrenNamed, parseXml, type XmlElement } from "./xml_tree.ts";

/** A conference-info body is well-formed XML but breaks the RFC 4575 §5 schema. */
export class ConferenceInfoError extends SyntaxError {
  /** Creates the error; `message` names the defect. */
  constructor(message: string) {
    super(message);
    this.name = "ConferenceInfoError";
  }
}

/** RFC 4575 §5.1 state-type. */
export type DocumentState = "full" | "partial" | "deleted";

/** A parsed conference-info document. */
export interface ParsedConferenceInfo {
  readonly entity: string;
  readonly state: DocumentState;
  /** `version` attribute, when present (RFC 4575 §4.6). */
  readonly version: number | undefined;
  /** The document as a snapshot; only meaningful for `state="full"` (absent otherwise). */
  readonly snapshot: ConferenceSnapshot | undefined;
  /** The namespace-resolved element tree. */
  readonly document: XmlElement;
}

/** Result of {@link applyPartial}. */
export interface MergedConferenceInfo {
  readonly snapshot: ConferenceSnapshot;
  readonly version: number | undefined;
}

const MEDIA_STATUS: readonly MediaStatus[] = ["sendrecv", "sendonly", "recvonly", "inactive"];
const ENDPOINT_STATUS: readonly EndpointStatus[] = [
  "pending",
  "dialing-out",
  "dialing-in",
  "alerting",
  "on-hold",
  "connected",
  "muted-via-focus",
  "disconnecting",
  "disconnected",
];
const JOINING: readonly JoiningMethod[] = ["dialed-in", "dialed-out", "focus-owner"];
const DISCONNECTION: readonly DisconnectionMethod[] = ["departed", "booted", "failed", "busy"];
const SECURITY: readonly CryptoSecurityLevel[] = ["none", "point-to-point", "end-to-end"];
const STATES: readonly DocumentState[] = ["full", "partial", "deleted"];

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  const trimmed = value.trim();
  if (!(allowed as readonly string[]).includes(trimmed)) {
    throw new ConferenceInfoError(`invalid ${what} "${value}"`);
  }
  return trimmed as T;
}

function unsignedInt(value: string, what: string): number {
  const trimmed = value.trim();
  if (!/^\+?\d+$/.test(trimmed) || Number(trimmed) > 0xFFFFFFFF) {
    throw new ConferenceInfoError(`invalid ${what} "${value}"`);
  }
  return Number(trimmed);
}

function xsBoolean(value: string, what: string): boolean {
  const trimmed = value.trim();
  if (trimmed === "true" || trimmed === "1") return true;
  if (trimmed === "false" || trimmed === "0") return false;
  throw new ConferenceInfoError(`invalid ${what} "${value}"`);
}

/** Reads an xs:dateTime (no zone means UTC) into milliseconds since the epoch. */
function dateTime(value: string, what: string): number {
  const trimmed = value.trim();
  const match = /^-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.exec(trimmed);
  const ms = match === null ? NaN : Date.parse(match[2] === undefined ? `${trimmed}Z` : trimmed);
  if (Number.isNaN(ms)) throw new ConferenceInfoError(`invalid ${what} "${value}"`);
  return ms;
}

function ci(parent: XmlElement, name: string): XmlElement | undefined {
  return childNamed(parent, CONFERENCE_INFO_NS, name);
}

function required(parent: XmlElement, name: string): XmlElement {
  const child = ci(parent, name);
  if (child === undefined) throw new ConferenceInfoError(`<${parent.name}> lacks <${name}>`);
  return child;
}

function attribute(element: XmlElement, name: string): string {
  const value = element.attributes[name];
  if (value === undefined) {
    throw new ConferenceInfoError(`<${element.name}> lacks the "${name}" attribute`);
  }
  return value;
}

function execution(element: XmlElement | undefined): ExecutionInfo | undefined {
  if (element === undefined) return undefined;
  const when = ci(element, "when");
  const reason = ci(element, "reason");
  const by = ci(element, "by");
  return {
    ...(when === undefined ? {} : { when: dateTime(when.text, "when") }),
    ...(reason === undefined ? {} : { reason: reason.text }),
    ...(by === undefined ? {} : { by: by.text.trim() }),
  };
}

function media(element: XmlElement): MediaSnapshot {
  const displayText = ci(element, "display-text");
  const label = ci(element, "label");
  const srcId = ci(element, "src-id");
  const streamData = childNamed(element, LINPHONE_CIE_NS, "stream-data");
  const content = streamData && childNamed(streamData, LINPHONE_CIE_NS, "stream-content");
  if (streamData !== undefined && content === undefined) {
    throw new ConferenceInfoError("<stream-data> lacks <stream-content>");
  }
  return {
    id: attribute(element, "id"),
    type: required(element, "type").text.trim(),
    ...(label === undefined ? {} : { label: label.text }),
    ...(srcId === undefined ? {} : { srcId: srcId.text.trim() }),
    status: oneOf(required(element, "status").text, MEDIA_STATUS, "media status"),
    ...(displayText === undefined ? {} : { displayText: displayText.text }),
    ...(content === undefined ? {} : { streamContent: content.text.trim() }),
  };
}

function endpoint(element: XmlElement): EndpointSnapshot {
  const displayText = ci(element, "display-text");
  const joiningInfo = execution(ci(element, "joining-info"));
  const method = ci(element, "disconnection-method");
  const disconnectionInfo = execution(ci(element, "disconnection-info"));
  const sip = ci(element, "call-info") && ci(ci(element, "call-info") as XmlElement, "sip");
  return {
    entity: attribute(element, "entity"),
    ...(displayText === undefined ? {} : { displayText: displayText.text }),
    status: oneOf(required(element, "status").text, ENDPOINT_STATUS, "endpoint status"),
    joiningMethod: oneOf(required(element, "joining-method").text, JOINING, "joining-method"),
    ...(joiningInfo === undefined ? {} : { joiningInfo }),
    ...(method === undefined
      ? {}
      : { disconnectionMethod: oneOf(method.text, DISCONNECTION, "disconnection-method") }),
    ...(disconnectionInfo === undefined ? {} : { disconnectionInfo }),
    media: childrenNamed(element, CONFERENCE_INFO_NS, "media").map(media),
    ...(sip === undefined ? {} : {
      callInfo: {
        callId: required(sip, "call-id").text,
        fromTag: required(sip, "from-tag").text,
        toTag: required(sip, "to-tag").text,
      },
    }),
  };
}

function user(element: XmlElement): UserSnapshot {
  const displayText = ci(element, "display-text");
  const roles = ci(element, "roles");
  return {
    entity: attribute(element, "entity"),
    ...(displayText === undefined ? {} : { displayText: displayText.text }),
    roles: roles === undefined
      ? []
      : childrenNamed(roles, CONFERENCE_INFO_NS, "entry").map((e) => e.text),
    endpoints: childrenNamed(element, CONFERENCE_INFO_NS, "endpoint").map(endpoint),
  };
}

function lcie(parent: XmlElement, name: string): XmlElement | undefined {
  return childNamed(parent, LINPHONE_CIE_NS, name);
}

/** Converts a full-state `conference-info` tree into a snapshot (RFC 4575 §5). */
function snapshotOf(root: XmlElement): ConferenceSnapshot {
  const description = required(root, "conference-description");
  const state = required(root, "conference-state");
  const users = ci(root, "users");
  const displayText = ci(description, "display-text");
  const maximum = ci(description, "maximum-user-count");
  const keywords = (ci(description, "keywords")?.text ?? "").split(/\s+/).filter((w) => w !== "");
  const available = ci(description, "available-media");
  const times = lcie(description, "conference-times");
  const start = times && lcie(times, "start");
  const end = times && lcie(times, "end");
  const ephemeral = lcie(description, "ephemeral");
  const security = lcie(description, "crypto-security-level");
  const securityLevel = security && lcie(security, "level");
  if (security !== undefined && securityLevel === undefined) {
    throw new ConferenceInfoError("<crypto-security-level> lacks <level>");
  }
  return {
    entity: attribute(root, "entity"),
    subject: ci(description, "subject")?.text ?? "",
    ...(displayText === undefined ? {} : { displayText: displayText.text }),
    ...(maximum === undefined
      ? {}
      : { maximumUserCount: unsignedInt(maximum.text, "maximum-user-count") }),
    availableMedia: available === undefined
      ? []
      : childrenNamed(available, CONFERENCE_INFO_NS, "entry").map((entry) => {
        const text = ci(entry, "display-text");
        const status = ci(entry, "status");
        return {
          label: attribute(entry, "label"),
          type: required(entry, "type").text.trim(),
          ...(status === undefined
            ? {}
            : { status: oneOf(status.text, MEDIA_STATUS, "available-media status") }),
          ...(text === undefined ? {} : { displayText: text.text }),
        };
      }),
    userCount: unsignedInt(required(state, "user-count").text, "user-count"),
    active: xsBoolean(required(state, "active").text, "active"),
    locked: xsBoolean(required(state, "locked").text, "locked"),
    users: users === undefined ? [] : childrenNamed(users, CONFERENCE_INFO_NS, "user").map(user),
    ...(start === undefined && end === undefined ? {} : {
      times: {
        ...(start === undefined ? {} : { start: dateTime(start.text, "start") }),
        ...(end === undefined ? {} : { end: dateTime(end.text, "end") }),
      },
    }),
    ...(ephemeral === undefined ? {} : {
      ephemeral: {
        mode: oneOf(
          lcie(ephemeral, "mode")?.text ?? "",
          ["device-managed", "admin-managed"],
          "ephemeral mode",
        ),
        lifetime: unsignedInt(lcie(ephemeral, "lifetime")?.text ?? "", "ephemeral lifetime"),
      },
    }),
    ...(keywords.includes("one-to-one") ? { oneToOne: true } : {}),
    ...(securityLevel === undefined
      ? {}
      : { cryptoSecurityLevel: oneOf(securityLevel.text, SECURITY, "crypto-security-level") }),
  };
}

function readDocument(xml: string): {
  root: XmlElement;
  entity: string;
  state: DocumentState;
  version: number | undefined;
} {
  const root = parseXml(xml);
  if (root.ns !== CONFERENCE_INFO_NS || root.name !== "conference-info") {
    throw new ConferenceInfoError(`root is {${root.ns}}${root.name}, not conference-info`);
  }
  const version = root.attributes["version"];
  return {
    root,
    entity: attribute(root, "entity"),
    state: oneOf(root.attributes["state"] ?? "full", STATES, "state"),
    version: version === undefined ? undefined : unsignedInt(version, "version"),
  };
}

/**
 * Parses an `application/conference-info+xml` body (RFC 4575 §5). Throws
 * {@link ConferenceInfoError} (or `XmlParseError`) when it is not a valid document.
 */
export function parseConferenceInfo(xml: string): ParsedConferenceInfo {
  const { root, entity, state, version } = readDocument(xml);
  return {
    entity,
    state,
    version,
    snapshot: state === "full" ? snapshotOf(root) : undefined,
    document: root,
  };
}

// ---------------------------------------------------------------------------------------------
// RFC 4575 §4.6 merge.

/** Elements carrying the `state` attribute (RFC 4575 §5: users, user, endpoint, uris types). */
const STATEFUL = new Set([
  "users",
  "user",
  "endpoint",
  "conf-uris",
  "service-uris",
  "associated-aors",
  "sidebars-by-ref",
  "sidebars-by-val",
]);
/** Containers without `state` whose children are merged one by one. */
const MERGED = new Set(["conference-description", "conference-state", "host-info"]);

/** The attribute identifying a child among its siblings (RFC 4575 §4.6 "key"). */
function keyOf(parent: XmlElement, child: XmlElement): string | undefined {
  if (child.ns !== CONFERENCE_INFO_NS) return undefined;
  switch (child.name) {
    case "user":
    case "endpoint":
      return "entity";
    case "media":
      return "id";
    case "entry":
      if (parent.name === "available-media") return "label";
      if (parent.name === "sidebars-by-val") return "entity";
      if (parent.name === "roles") return undefined;
      return "uri";
    default:
      return undefined;
  }
}

function sameElement(parent: XmlElement, a: XmlElement, b: XmlElement): boolean {
  if (a.ns !== b.ns || a.name !== b.name) return false;
  const key = keyOf(parent, b);
  return key === undefined || a.attributes[key] === b.attributes[key];
}

function merge(local: XmlElement, patch: XmlElement): XmlElement {
  const children = [...local.children];
  for (const change of patch.children) {
    const index = children.findIndex((c) => sameElement(patch, c, change));
    const stateful = change.ns === CONFERENCE_INFO_NS && STATEFUL.has(change.name);
    // liblinphone writes <users> without `state` in partial notifications and means "partial".
    const fallback = change.name === "users" ? "partial" : "full";
    const state = stateful ? oneOf(change.attributes["state"] ?? fallback, STATES, "state") : "";
    const existing = index < 0 ? undefined : children[index];
    if (state === "deleted") {
      if (index >= 0) children.splice(index, 1);
    } else if (state === "partial") {
      if (existing === undefined) {
        throw new ConferenceInfoError(`partial <${change.name}> for an unknown element`);
      }
      children[index] = merge(existing, change);
    } else if (
      existing !== undefined && change.ns === CONFERENCE_INFO_NS && MERGED.has(change.name)
    ) {
      children[index] = merge(existing, change);
    } else if (existing !== undefined) {
      children[index] = change;
    } else {
      children.push(change);
    }
  }
  const attributes: Record<string, string> = { ...local.attributes };
  for (const [name, value] of Object.entries(patch.attributes)) {
    if (name !== "state" && name !== "version") attributes[name] = value;
  }
  return { ...local, attributes, children };
}

/**
 * Applies a partial notification to a known full state (RFC 4575 §4.6): keyed elements
 * (user and endpoint by `entity`, media by `id`, available-media entries by `label`) with
 * `state="full"` replace or add, `"deleted"` remove, `"partial"` merge recursively;
 * conference-description and conference-state merge child by child; any other element
 * replaces its namesake. A full-state body simply replaces the state. Throws
 * {@link ConferenceInfoError} when the entity differs or a partial element is unknown.
 */
export function applyPartial(full: ConferenceSnapshot, partialXml: string): MergedConferenceInfo {
  const patch = readDocument(partialXml);
  if (patch.entity !== full.entity) {
    throw new ConferenceInfoError(`entity ${patch.entity} does not match ${full.entity}`);
  }
  if (patch.state === "full") return { snapshot: snapshotOf(patch.root), version: patch.version };
  if (patch.state === "deleted") throw new ConferenceInfoError("conference-info state=deleted");
  const base = readDocument(buildFullState(full, 0)).root;
  return { snapshot: snapshotOf(merge(base, patch.root)), version: patch.version };
}
