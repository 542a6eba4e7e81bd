/**
 * Test helper: checks an element tree against the structure of the RFC 4575 §5 schema and of
 * liblinphone's conference-info-linphone-extension schema — which children each element
 * allows, in which order and how often, which attributes it takes, and the lexical form of
 * simple-typed content. Written from the schema's rules, not a copy of the XSD.
 * @module
 */

import { CONFERENCE_INFO_NS, LINPHONE_CIE_NS } from "../../lib/events/conference_info.ts";
import type { XmlElement } from "../../lib/events/xml_tree.ts";

type Simple =
  | "string"
  | "anyURI"
  | "unsignedInt"
  | "boolean"
  | "dateTime"
  | "state"
  | "endpointStatus"
  | "joining"
  | "disconnection"
  | "mediaStatus"
  | "list";

interface Particle {
  readonly name: string;
  readonly type: string; // a complex type below, or a Simple
  readonly min: number;
  readonly max: number;
}

interface Complex {
  readonly sequence: readonly Particle[];
  /** `xs:any namespace="##other"` at the end of the sequence. */
  readonly anyOther: boolean;
  readonly attributes: Readonly<Record<string, { required: boolean; type: Simple }>>;
  /** Only one particle of the sequence may appear (xs:choice). */
  readonly choice?: boolean;
}

const U = Infinity;
const p = (name: string, type: string, min = 0, max = 1): Particle => ({ name, type, min, max });
const stateAttr = { state: { required: false, type: "state" as Simple } };

const TYPES: Readonly<Record<string, Complex>> = {
  "conference-type": {
    sequence: [
      p("conference-description", "conference-description-type"),
      p("host-info", "host-type"),
      p("conference-state", "conference-state-type"),
      p("users", "users-type"),
      p("sidebars-by-ref", "uris-type"),
      p("sidebars-by-val", "sidebars-by-val-type"),
    ],
    anyOther: true,
    attributes: {
      entity: { required: true, type: "anyURI" },
      state: { required: false, type: "state" },
      version: { required: false, type: "unsignedInt" },
    },
  },
  "conference-description-type": {
    sequence: [
      p("display-text", "string"),
      p("subject", "string"),
      p("free-text", "string"),
      p("keywords", "list"),
      p("conf-uris", "uris-type"),
      p("service-uris", "uris-type"),
      p("maximum-user-count", "unsignedInt"),
      p("available-media", "conference-media-type"),
    ],
    anyOther: true,
    attributes: {},
  },
  "host-type": {
    sequence: [p("display-text", "string"), p("web-page", "anyURI"), p("uris", "uris-type")],
    anyOther: true,
    attributes: {},
  },
  "conference-state-type": {
    sequence: [
      p("user-count", "unsignedInt"),
      p("active", "boolean"),
      p("locked", "boolean"),
    ],
    anyOther: true,
    attributes: {},
  },
  "conference-media-type": {
    sequence: [p("entry", "conference-medium-type", 1, U)],
    anyOther: false,
    attributes: {},
  },
  "conference-medium-type": {
    sequence: [
      p("display-text", "string"),
      p("type", "string", 1, 1),
      p("status", "mediaStatus"),
    ],
    anyOther: true,
    attributes: { label: { required: true, type: "string" } },
  },
  "uris-type": {
    sequence: [p("entry", "uri-type", 1, U)],
    anyOther: false,
    attributes: stateAttr,
  },
  "uri-type": {
    sequence: [
      p("uri", "anyURI", 1, 1),
      p("display-text", "string"),
      p("purpose", "string"),
      p("modified", "execution-type"),
    ],
    anyOther: true,
    attributes: {},
  },
  "users-type": {
    sequence: [p("user", "user-type", 0, U)],
    anyOther: true,
    attributes: stateAttr,
  },
  "user-type": {
    sequence: [
      p("display-text", "string"),
      p("associated-aors", "uris-type"),
      p("roles", "user-roles-type"),
      p("languages", "list"),
      p("cascaded-focus", "anyURI"),
      p("endpoint", "endpoint-type", 0, U),
    ],
    anyOther: true,
    attributes: { entity: { required: false, type: "anyURI" }, ...stateAttr },
  },
  "user-roles-type": {
    sequence: [p("entry", "string", 1, U)],
    anyOther: false,
    attributes: {},
  },
  "endpoint-type": {
    sequence: [
      p("display-text", "string"),
      p("referred", "execution-type"),
      p("status", "endpointStatus"),
      p("joining-method", "joining"),
      p("joining-info", "execution-type"),
      p("disconnection-method", "disconnection"),
      p("disconnection-info", "execution-type"),
      p("media", "media-type", 0, U),
      p("call-info", "call-type"),
    ],
    anyOther: true,
    attributes: { entity: { required: false, type: "string" }, ...stateAttr },
  },
  "execution-type": {
    sequence: [p("when", "dateTime"), p("reason", "string"), p("by", "anyURI")],
    anyOther: false,
    attributes: {},
  },
  "call-type": {
    sequence: [p("sip", "sip-dialog-id-type")],
    anyOther: true,
    attributes: {},
    choice: true,
  },
  "sip-dialog-id-type": {
    sequence: [
      p("display-text", "string"),
      p("call-id", "string", 1, 1),
      p("from-tag", "string", 1, 1),
      p("to-tag", "string", 1, 1),
    ],
    anyOther: true,
    attributes: {},
  },
  "media-type": {
    sequence: [
      p("display-text", "string"),
      p("type", "string"),
      p("label", "string"),
      p("src-id", "string"),
      p("status", "mediaStatus"),
    ],
    anyOther: true,
    attributes: { id: { required: true, type: "string" } },
  },
  "sidebars-by-val-type": {
    sequence: [p("entry", "conference-type", 0, U)],
    anyOther: false,
    attributes: stateAttr,
  },
};

/** Global elements of the linphone extension schema, validated where they appear (lax). */
const EXTENSION: Readonly<Record<string, Complex>> = {
  "ephemeral": {
    sequence: [p("mode", "string", 1, 1), p("lifetime", "string", 1, 1)],
    anyOther: false,
    attributes: {},
  },
  "crypto-security-level": {
    sequence: [p("level", "string", 1, 1)],
    anyOther: false,
    attributes: {},
  },
  "conference-times": {
    sequence: [p("start", "dateTime"), p("end", "dateTime")],
    anyOther: false,
    attributes: {},
  },
  "stream-data": {
    sequence: [p("stream-content", "string", 1, 1)],
    anyOther: false,
    attributes: {},
  },
  "service-description": {
    sequence: [p("service-id", "string", 1, 1), p("version", "string", 1, 1)],
    anyOther: false,
    attributes: {},
  },
};

const ENUMS: Readonly<Partial<Record<Simple, readonly string[]>>> = {
  state: ["full", "partial", "deleted"],
  endpointStatus: [
    "pending",
    "dialing-out",
    "dialing-in",
    "alerting",
    "on-hold",
    "connected",
    "muted-via-focus",
    "disconnecting",
    "disconnected",
  ],
  joining: ["dialed-in", "dialed-out", "focus-owner"],
  disconnection: ["departed", "booted", "failed", "busy"],
  mediaStatus: ["recvonly", "sendonly", "sendrecv", "inactive"],
};

function checkSimple(value: string, type: Simple, where: string, problems: string[]): void {
  const v = value.trim();
  const enumeration = ENUMS[type];
  let ok = true;
  if (enumeration !== undefined) ok = enumeration.includes(v);
  else if (type === "unsignedInt") ok = /^\d+$/.test(v) && Number(v) <= 0xFFFFFFFF;
  else if (type === "boolean") ok = ["true", "false", "1", "0"].includes(v);
  else if (type === "dateTime") {
    ok = /^-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.test(v);
  } else if (type === "anyURI") ok = !/\s/.test(v);
  if (!ok) problems.push(`${where}: "${value}" is not a valid ${type}`);
}

function checkComplex(
  element: XmlElement,
  type: Complex,
  ns: string,
  where: string,
  problems: string[],
): void {
  for (const [name, value] of Object.entries(element.attributes)) {
    const spec = type.attributes[name];
    if (spec !== undefined) checkSimple(value, spec.type, `${where}/@${name}`, problems);
    else if (!name.startsWith("{")) problems.push(`${where}: attribute "${name}" not allowed`);
  }
  for (const [name, spec] of Object.entries(type.attributes)) {
    if (spec.required && element.attributes[name] === undefined) {
      problems.push(`${where}: missing attribute "${name}"`);
    }
  }
  const counts = new Array<number>(type.sequence.length).fill(0);
  let position = 0;
  let inAny = false;
  let used = 0;
  for (const child of element.children) {
    const childWhere = `${where}/${child.name}`;
    if (child.ns !== ns) {
      if (!type.anyOther || child.ns === "") {
        problems.push(`${childWhere}: foreign element not allowed here`);
      } else {
        inAny = true;
        used++;
        const extension = child.ns === LINPHONE_CIE_NS ? EXTENSION[child.name] : undefined;
        if (extension !== undefined) {
          checkComplex(child, extension, LINPHONE_CIE_NS, childWhere, problems);
        }
      }
      continue;
    }
    if (inAny) {
      problems.push(`${childWhere}: element after extension elements`);
      continue;
    }
    let index = position;
    while (index < type.sequence.length && type.sequence[index]?.name !== child.name) index++;
    const particle = type.sequence[index];
    if (particle === undefined) {
      problems.push(`${childWhere}: not allowed here (unknown or out of order)`);
      continue;
    }
    position = index;
    counts[index] = (counts[index] ?? 0) + 1;
    if (counts[index]! === 1) used++;
    if (counts[index]! > particle.max) problems.push(`${childWhere}: too many`);
    validateAs(child, particle.type, ns, childWhere, problems);
  }
  if (type.choice === true && used > 1) problems.push(`${where}: choice holds several elements`);
  type.sequence.forEach((particle, index) => {
    if (type.choice !== true && (counts[index] ?? 0) < particle.min) {
      problems.push(`${where}: missing <${particle.name}>`);
    }
  });
}

function validateAs(
  element: XmlElement,
  typeName: string,
  ns: string,
  where: string,
  problems: string[],
): void {
  const complex = TYPES[typeName] ?? (ns === LINPHONE_CIE_NS ? EXTENSION[typeName] : undefined);
  if (complex !== undefined) {
    checkComplex(element, complex, ns, where, problems);
    return;
  }
  if (element.children.length > 0) problems.push(`${where}: simple content expected`);
  for (const name of Object.keys(element.attributes)) {
    if (!(typeName === "string" && name === `{http://www.w3.org/XML/1998/namespace}lang`)) {
      problems.push(`${where}: attribute "${name}" not allowed`);
    }
  }
  checkSimple(element.text, typeName as Simple, where, problems);
}

/**
 * Validates a `conference-info` tree; returns the list of problems (empty when valid).
 */
export function validateConferenceInfo(root: XmlElement): string[] {
  const problems: string[] = [];
  if (root.ns !== CONFERENCE_INFO_NS || root.name !== "conference-info") {
    return [`root must be {${CONFERENCE_INFO_NS}}conference-info`];
  }
  validateAs(root, "conference-type", CONFERENCE_INFO_NS, "/conference-info", problems);
  return problems;
}
