/**
 * RFC 4575 `application/conference-info+xml` documents built from a plain snapshot of a
 * conference: full state (§4.6, `state="full"`) and partial state (only what changed between
 * two snapshots, `state="partial"`), with the Linphone extension elements liblinphone reads
 * (`linphone:xml:ns:conference-info-linphone-extension`, prefix `linphone-cie`:
 * `conference-times`, `ephemeral`, `crypto-security-level`, `stream-data`).
 *
 * This module knows nothing of `conference/`: the focus copies its state into a
 * {@link ConferenceSnapshot}, keeps the snapshot it last notified, and asks for the difference.
 *
 * Element order follows the sequences of the RFC 4575 §5 schema; attribute order is fixed, so
 * the output is byte-stable for golden files. Times are written as xs:dateTime in UTC with
 * whole seconds, as liblinphone does.
 * @module
 */

import { escapeXmlAttribute, escapeXmlText } from "./xml_tree.ts";

/** Namespace of RFC 4575 (§5, `urn:ietf:params:xml:ns:conference-info`). */
export const CONFERENCE_INFO_NS = "urn:ietf:params:xml:ns:conference-info";
/** Namespace of liblinphone's extension elements (always bound to the `linphone-cie` prefix). */
export const LINPHONE_CIE_NS = "linphone:xml:ns:conference-info-linphone-extension";
/** MIME type of the documents (RFC 4575 §3.3). */
export const CONFERENCE_INFO_CONTENT_TYPE = "application/conference-info+xml";

/** RFC 4575 §5.3 media-status-type (also `available-media/entry/status`). */
export type MediaStatus = "sendrecv" | "sendonly" | "recvonly" | "inactive";
/** RFC 4575 §5.6 endpoint-status-type. */
export type EndpointStatus =
  | "pending"
  | "dialing-out"
  | "dialing-in"
  | "alerting"
  | "on-hold"
  | "connected"
  | "muted-via-focus"
  | "disconnecting"
  | "disconnected";
/** RFC 4575 §5.6 joining-type. */
export type JoiningMethod = "dialed-in" | "dialed-out" | "focus-owner";
/** RFC 4575 §5.6 disconnection-type. */
export type DisconnectionMethod = "departed" | "booted" | "failed" | "busy";
/** Values liblinphone reads in `linphone-cie:crypto-security-level/level`. */
export type CryptoSecurityLevel = "none" | "point-to-point" | "end-to-end";
/** `linphone-cie:ephemeral/mode` values. */
export type EphemeralMode = "device-managed" | "admin-managed";

/** RFC 4575 §5.6 execution-type (`joining-info`, `disconnection-info`). */
export interface ExecutionInfo {
  /** When it happened, milliseconds since the Unix epoch (written with whole seconds). */
  readonly when?: number;
  /** Free text, e.g. liblinphone's `Reason: SIP;text=Ad-hoc invitation`. */
  readonly reason?: string;
  /** URI of who caused it. */
  readonly by?: string;
}

/** RFC 4575 §5.6 `call-info/sip`: the dialog of the endpoint's session with the focus. */
export interface CallInfoSnapshot {
  readonly callId: string;
  readonly fromTag: string;
  readonly toTag: string;
}

/** One `available-media/entry` of the conference description (RFC 4575 §5.3). */
export interface AvailableMediaSnapshot {
  /** Unique label (liblinphone: "1" audio, "2" video, "3" text). */
  readonly label: string;
  /** Media type: "audio", "video", "text", ... */
  readonly type: string;
  readonly status?: MediaStatus;
  readonly displayText?: string;
}

/** One `media` element of an endpoint (RFC 4575 §5.6). */
export interface MediaSnapshot {
  /** Unique id within the endpoint (liblinphone: 1 audio, 2 video, 3 text, 4 thumbnail). */
  readonly id: string;
  /** "audio", "video", "text". */
  readonly type: string;
  /** The SDP `a=label` of the stream (RFC 4574): what clients put in their own `a=label`. */
  readonly label?: string;
  /** SSRC of the stream as a decimal string. */
  readonly srcId?: string;
  readonly status: MediaStatus;
  readonly displayText?: string;
  /** `linphone-cie:stream-data/stream-content`: "thumbnail", "slides", "main", ... */
  readonly streamContent?: string;
}

/** One device of a user (RFC 4575 §5.6 `endpoint`). */
export interface EndpointSnapshot {
  /** Device contact or GRUU. */
  readonly entity: string;
  readonly displayText?: string;
  readonly status: EndpointStatus;
  readonly joiningMethod: JoiningMethod;
  readonly joiningInfo?: ExecutionInfo;
  readonly disconnectionMethod?: DisconnectionMethod;
  readonly disconnectionInfo?: ExecutionInfo;
  readonly media: readonly MediaSnapshot[];
  readonly callInfo?: CallInfoSnapshot;
}

/** One participant (RFC 4575 §5.6 `user`). */
export interface UserSnapshot {
  /** Address of record. */
  readonly entity: string;
  readonly displayText?: string;
  /** `roles/entry` values, e.g. "organizer", "admin" | "participant", "speaker" | "listener". */
  readonly roles: readonly string[];
  readonly endpoints: readonly EndpointSnapshot[];
}

/** `linphone-cie:conference-times`; times in milliseconds since the Unix epoch. */
export interface ConferenceTimes {
  readonly start?: number;
  readonly end?: number;
}

/** `linphone-cie:ephemeral` settings of a chat room; lifetime in seconds (0 = off). */
export interface EphemeralSettings {
  readonly mode: EphemeralMode;
  readonly lifetime: number;
}

/** Everything a conference-info document says, as plain data (RFC 4575 §5). */
export interface ConferenceSnapshot {
  /** The conference URI (`conference-info/@entity`). */
  readonly entity: string;
  /** `conference-description/subject`; always written, "" when there is none. */
  readonly subject: string;
  readonly displayText?: string;
  readonly maximumUserCount?: number;
  readonly availableMedia: readonly AvailableMediaSnapshot[];
  /** `conference-state/user-count`. */
  readonly userCount: number;
  readonly active: boolean;
  readonly locked: boolean;
  readonly users: readonly UserSnapshot[];
  readonly times?: ConferenceTimes;
  /** Present for chat rooms with ephemeral messages; adds the `ephemeral` keyword when lifetime > 0. */
  readonly ephemeral?: EphemeralSettings;
  /** Adds the `one-to-one` keyword (liblinphone's one-to-one chat rooms). */
  readonly oneToOne?: boolean;
  readonly cryptoSecurityLevel?: CryptoSecurityLevel;
}

// ---------------------------------------------------------------------------------------------
// A tiny element model, rendered with two-space indentation.

interface XNode {
  readonly name: string;
  readonly attrs: ReadonlyArray<readonly [string, string]>;
  readonly children: readonly XNode[];
  /** Set for leaf elements (possibly ""). */
  readonly text?: string;
}

function el(
  name: string,
  attrs: ReadonlyArray<readonly [string, string]>,
  children: readonly XNode[],
): XNode {
  return { name, attrs, children };
}

function leaf(name: string, text: string): XNode {
  return { name, attrs: [], children: [], text };
}

function renderNode(node: XNode, depth: number, out: string[]): void {
  const pad = "  ".repeat(depth);
  const attrs = node.attrs.map(([k, v]) => ` ${k}="${escapeXmlAttribute(v)}"`).join("");
  if (node.text !== undefined && node.text !== "") {
    out.push(`${pad}<${node.name}${attrs}>${escapeXmlText(node.text)}</${node.name}>`);
  } else if (node.children.length === 0) {
    out.push(`${pad}<${node.name}${attrs}/>`);
  } else {
    out.push(`${pad}<${node.name}${attrs}>`);
    for (const child of node.children) renderNode(child, depth + 1, out);
    out.push(`${pad}</${node.name}>`);
  }
}

function render(node: XNode): string {
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  renderNode(node, 0, out);
  return out.join("\n") + "\n";
}

/** Canonical text of a node: structural equality of two fragments. */
function fingerprint(node: XNode | undefined): string {
  if (node === undefined) return "";
  const out: string[] = [];
  renderNode(node, 0, out);
  return out.join("\n");
}

function optionalLeaf(name: string, value: string | number | undefined): XNode[] {
  return value === undefined ? [] : [leaf(name, String(value))];
}

/** xs:dateTime in UTC with whole seconds, as liblinphone writes it (RFC 4575 §5.6 `when`). */
export function formatDateTime(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`invalid time ${ms}`);
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

// ---------------------------------------------------------------------------------------------
// Full-state fragments.

function rootNode(entity: string, state: string, version: number, children: XNode[]): XNode {
  if (!Number.isInteger(version) || version < 0 || version > 0xFFFFFFFF) {
    throw new RangeError(`version must be an xs:unsignedInt, got ${version}`);
  }
  return el("conference-info", [
    ["xmlns", CONFERENCE_INFO_NS],
    ["xmlns:linphone-cie", LINPHONE_CIE_NS],
    ["entity", entity],
    ["state", state],
    ["version", String(version)],
  ], children);
}

function keywordsOf(s: ConferenceSnapshot): string[] {
  const words: string[] = [];
  if (s.oneToOne === true) words.push("one-to-one");
  if (s.ephemeral !== undefined && s.ephemeral.lifetime > 0) words.push("ephemeral");
  return words;
}

/** The children of conference-description, keyed by element name, in schema order. */
function descriptionParts(s: ConferenceSnapshot): Map<string, XNode> {
  const parts = new Map<string, XNode>();
  if (s.displayText !== undefined) parts.set("display-text", leaf("display-text", s.displayText));
  parts.set("subject", leaf("subject", s.subject));
  const keywords = keywordsOf(s);
  if (keywords.length > 0) parts.set("keywords", leaf("keywords", keywords.join(" ")));
  if (s.maximumUserCount !== undefined) {
    parts.set("maximum-user-count", leaf("maximum-user-count", String(s.maximumUserCount)));
  }
  if (s.availableMedia.length > 0) {
    parts.set(
      "available-media",
      el(
        "available-media",
        [],
        s.availableMedia.map((m) =>
          el("entry", [["label", m.label]], [
            ...optionalLeaf("display-text", m.displayText),
            leaf("type", m.type),
            ...optionalLeaf("status", m.status),
          ])
        ),
      ),
    );
  }
  const times = s.times;
  if (times !== undefined && (times.start !== undefined || times.end !== undefined)) {
    parts.set("linphone-cie:conference-times", conferenceTimesNode(times));
  }
  if (s.ephemeral !== undefined) {
    parts.set(
      "linphone-cie:ephemeral",
      el("linphone-cie:ephemeral", [], [
        leaf("linphone-cie:mode", s.ephemeral.mode),
        leaf("linphone-cie:lifetime", String(s.ephemeral.lifetime)),
      ]),
    );
  }
  if (s.cryptoSecurityLevel !== undefined) {
    parts.set(
      "linphone-cie:crypto-security-level",
      el("linphone-cie:crypto-security-level", [], [
        leaf("linphone-cie:level", s.cryptoSecurityLevel),
      ]),
    );
  }
  return parts;
}

function conferenceTimesNode(times: ConferenceTimes): XNode {
  return el("linphone-cie:conference-times", [], [
    ...(times.start === undefined ? [] : [leaf("linphone-cie:start", formatDateTime(times.start))]),
    ...(times.end === undefined ? [] : [leaf("linphone-cie:end", formatDateTime(times.end))]),
  ]);
}

function stateParts(s: ConferenceSnapshot): Map<string, XNode> {
  return new Map([
    ["user-count", leaf("user-count", String(s.userCount))],
    ["active", leaf("active", String(s.active))],
    ["locked", leaf("locked", String(s.locked))],
  ]);
}

function executionNode(name: string, info: ExecutionInfo): XNode {
  return el(name, [], [
    ...(info.when === undefined ? [] : [leaf("when", formatDateTime(info.when))]),
    ...optionalLeaf("reason", info.reason),
    ...optionalLeaf("by", info.by),
  ]);
}

function mediaNode(m: MediaSnapshot): XNode {
  return el("media", [["id", m.id]], [
    ...optionalLeaf("display-text", m.displayText),
    leaf("type", m.type),
    ...optionalLeaf("label", m.label),
    ...optionalLeaf("src-id", m.srcId),
    leaf("status", m.status),
    ...(m.streamContent === undefined ? [] : [
      el("linphone-cie:stream-data", [], [leaf("linphone-cie:stream-content", m.streamContent)]),
    ]),
  ]);
}

/** Endpoint children keyed by element name (media excluded), in schema order. */
function endpointParts(e: EndpointSnapshot): Map<string, XNode> {
  const parts = new Map<string, XNode>();
  if (e.displayText !== undefined) parts.set("display-text", leaf("display-text", e.displayText));
  parts.set("status", leaf("status", e.status));
  parts.set("joining-method", leaf("joining-method", e.joiningMethod));
  if (e.joiningInfo !== undefined) {
    parts.set("joining-info", executionNode("joining-info", e.joiningInfo));
  }
  if (e.disconnectionMethod !== undefined) {
    parts.set("disconnection-method", leaf("disconnection-method", e.disconnectionMethod));
  }
  if (e.disconnectionInfo !== undefined) {
    parts.set("disconnection-info", executionNode("disconnection-info", e.disconnectionInfo));
  }
  if (e.callInfo !== undefined) {
    parts.set(
      "call-info",
      el("call-info", [], [
        el("sip", [], [
          leaf("call-id", e.callInfo.callId),
          leaf("from-tag", e.callInfo.fromTag),
          leaf("to-tag", e.callInfo.toTag),
        ]),
      ]),
    );
  }
  return parts;
}

const ENDPOINT_ORDER_BEFORE_MEDIA = [
  "display-text",
  "status",
  "joining-method",
  "joining-info",
  "disconnection-method",
  "disconnection-info",
];

function endpointNode(e: EndpointSnapshot, state: string, parts: Map<string, XNode>): XNode {
  const before = ENDPOINT_ORDER_BEFORE_MEDIA.flatMap((name) => {
    const part = parts.get(name);
    return part === undefined ? [] : [part];
  });
  const callInfo = parts.get("call-info");
  return el("endpoint", [["entity", e.entity], ["state", state]], [
    ...before,
    ...e.media.map(mediaNode),
    ...(callInfo === undefined ? [] : [callInfo]),
  ]);
}

function fullEndpoint(e: EndpointSnapshot): XNode {
  return endpointNode(e, "full", endpointParts(e));
}

function rolesNode(roles: readonly string[]): XNode {
  return el("roles", [], roles.map((role) => leaf("entry", role)));
}

function fullUser(u: UserSnapshot): XNode {
  return el("user", [["entity", u.entity], ["state", "full"]], [
    ...optionalLeaf("display-text", u.displayText),
    ...(u.roles.length === 0 ? [] : [rolesNode(u.roles)]),
    ...u.endpoints.map(fullEndpoint),
  ]);
}

/**
 * The full-state document (RFC 4575 §4.6, §5): `state="full"` and every element the snapshot
 * holds. `version` is the subscription's notification counter (§4.5), an xs:unsignedInt.
 */
export function buildFullState(snapshot: ConferenceSnapshot, version: number): string {
  return render(rootNode(snapshot.entity, "full", version, [
    el("conference-description", [], [...descriptionParts(snapshot).values()]),
    el("conference-state", [], [...stateParts(snapshot).values()]),
    el("users", [], snapshot.users.map(fullUser)),
  ]));
}

// ---------------------------------------------------------------------------------------------
// Partial state.

/** Children of conference-description and conference-state in schema order (RFC 4575 §5). */
const SCHEMA_ORDER = [
  "display-text",
  "subject",
  "keywords",
  "maximum-user-count",
  "available-media",
  "linphone-cie:conference-times",
  "linphone-cie:ephemeral",
  "linphone-cie:crypto-security-level",
  "user-count",
  "active",
  "locked",
];

/** Thrown inside the diff when a change cannot be said in a partial notification. */
class NeedsFull extends Error {}

/**
 * Children of a container without `state` (conference-description, conference-state) that
 * changed. A removed element is written in its empty form when that form means "nothing"
 * (`keywords`, `linphone-cie:conference-times`); any other removal cannot be expressed.
 */
function changedParts(previous: Map<string, XNode>, next: Map<string, XNode>): XNode[] {
  const changed: XNode[] = [];
  for (const name of SCHEMA_ORDER) {
    const node = next.get(name);
    if (node !== undefined) {
      if (fingerprint(previous.get(name)) !== fingerprint(node)) changed.push(node);
    } else if (previous.has(name)) {
      if (name === "keywords") changed.push(leaf("keywords", ""));
      else if (name === "linphone-cie:conference-times") changed.push(conferenceTimesNode({}));
      else throw new NeedsFull();
    }
  }
  return changed;
}

function partialEndpoint(previous: EndpointSnapshot, next: EndpointSnapshot): XNode {
  const prevParts = endpointParts(previous);
  const nextParts = endpointParts(next);
  for (const name of prevParts.keys()) {
    if (!nextParts.has(name)) return fullEndpoint(next); // an element cannot be removed partially
  }
  const nextIds = new Set(next.media.map((m) => m.id));
  if (previous.media.some((m) => !nextIds.has(m.id))) return fullEndpoint(next);
  const changed = new Map<string, XNode>();
  for (const [name, node] of nextParts) {
    if (fingerprint(prevParts.get(name)) !== fingerprint(node)) changed.set(name, node);
  }
  // Media are always repeated in full: liblinphone recomputes a device's thumbnail stream
  // from its video stream when an endpoint update lacks the thumbnail `media`.
  return endpointNode(next, "partial", changed);
}

function partialUser(previous: UserSnapshot, next: UserSnapshot): XNode | undefined {
  if (fingerprint(fullUser(previous)) === fingerprint(fullUser(next))) return undefined;
  if (previous.displayText !== undefined && next.displayText === undefined) return fullUser(next);
  if (previous.roles.length > 0 && next.roles.length === 0) return fullUser(next);
  const children: XNode[] = [];
  if (next.displayText !== previous.displayText) {
    children.push(leaf("display-text", next.displayText ?? ""));
  }
  if (previous.roles.join("\n") !== next.roles.join("\n")) children.push(rolesNode(next.roles));
  const before = new Map(previous.endpoints.map((e) => [e.entity, e]));
  for (const endpoint of next.endpoints) {
    const old = before.get(endpoint.entity);
    if (old === undefined) {
      children.push(fullEndpoint(endpoint));
    } else if (fingerprint(fullEndpoint(old)) !== fingerprint(fullEndpoint(endpoint))) {
      children.push(partialEndpoint(old, endpoint));
    }
  }
  const after = new Set(next.endpoints.map((e) => e.entity));
  for (const endpoint of previous.endpoints) {
    if (!after.has(endpoint.entity)) {
      children.push(el("endpoint", [["entity", endpoint.entity], ["state", "deleted"]], []));
    }
  }
  return el("user", [["entity", next.entity], ["state", "partial"]], children);
}

function usersDiff(previous: ConferenceSnapshot, next: ConferenceSnapshot): XNode[] {
  const before = new Map(previous.users.map((u) => [u.entity, u]));
  const changed: XNode[] = [];
  for (const user of next.users) {
    const old = before.get(user.entity);
    if (old === undefined) {
      changed.push(fullUser(user));
    } else {
      const partial = partialUser(old, user);
      if (partial !== undefined) changed.push(partial);
    }
  }
  const after = new Set(next.users.map((u) => u.entity));
  for (const user of previous.users) {
    if (!after.has(user.entity)) {
      changed.push(el("user", [["entity", user.entity], ["state", "deleted"]], []));
    }
  }
  return changed;
}

/**
 * A partial-state document (RFC 4575 §4.6) carrying what changed from `previous` to `next`:
 * new users as `state="full"`, removed ones as `state="deleted"`, changed ones as
 * `state="partial"` holding their changed endpoints (full, deleted, or partial with the
 * changed children and every `media`), and the changed children of conference-description
 * and conference-state. Returns `null` when nothing changed.
 *
 * RFC 4575 cannot delete an element that has no `state` attribute; when such a removal
 * happened (e.g. the maximum user count or the ephemeral settings disappeared, or the entity
 * changed) the result is the full-state document for `next` at `version`, which a notifier
 * may send at any time (§4.6). Endpoints and users fall back to `state="full"` the same way.
 */
export function buildPartialState(
  previous: ConferenceSnapshot,
  next: ConferenceSnapshot,
  version: number,
): string | null {
  if (previous.entity !== next.entity) return buildFullState(next, version);
  let description: XNode[];
  try {
    description = changedParts(descriptionParts(previous), descriptionParts(next));
  } catch (error) {
    if (error instanceof NeedsFull) return buildFullState(next, version);
    throw error;
  }
  const state = changedParts(stateParts(previous), stateParts(next));
  const users = usersDiff(previous, next);
  if (description.length === 0 && state.length === 0 && users.length === 0) return null;
  return render(rootNode(next.entity, "partial", version, [
    ...(description.length === 0 ? [] : [el("conference-description", [], description)]),
    ...(state.length === 0 ? [] : [el("conference-state", [], state)]),
    ...(users.length === 0 ? [] : [el("users", [["state", "partial"]], users)]),
  ]));
}
