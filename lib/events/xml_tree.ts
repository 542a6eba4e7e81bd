/**
 * The small XML toolkit shared by the event-package bodies (RFC 4575 conference-info, RFC 3680
 * reginfo): escaping for the hand-written serializers, and a namespace-aware element tree read
 * through npm:fast-xml-parser (Namespaces in XML 1.0 §6 scoping, XML 1.0 §4.6 predefined
 * entities and §4.1 character references, §3.3.3 attribute-value normalization).
 *
 * Documents with a DOCTYPE are refused: no SIP event body needs one, and refusing it closes the
 * door on entity-expansion attacks.
 * @module
 */

import { XMLParser, XMLValidator } from "fast-xml-parser";

/** The namespace bound to the `xml` prefix (Namespaces in XML 1.0 §3). */
export const XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace";

/** A body is not well-formed XML (XML 1.0 §2.1) or uses an undeclared namespace prefix. */
export class XmlParseError extends SyntaxError {
  /** 1-based line of the defect, when known. */
  readonly line: number | undefined;
  /** 1-based column of the defect, when known. */
  readonly column: number | undefined;

  /** Creates the error; `message` names the defect. */
  constructor(message: string, line?: number, column?: number) {
    super(line === undefined ? message : `${message} (line ${line}, column ${column ?? 0})`);
    this.name = "XmlParseError";
    this.line = line;
    this.column = column;
  }
}

/**
 * One element with its name resolved to a namespace URI (Namespaces in XML 1.0 §6).
 * Unprefixed attributes keep their plain name; a prefixed attribute is keyed `{uri}local`.
 * `text` is the decoded concatenation of the element's own character data.
 */
export interface XmlElement {
  /** Namespace URI, "" when the element is in no namespace. */
  readonly ns: string;
  /** Local name. */
  readonly name: string;
  /** Attributes (namespace declarations excluded). */
  readonly attributes: Readonly<Record<string, string>>;
  /** Child elements in document order. */
  readonly children: readonly XmlElement[];
  /** Character data directly inside this element (CDATA included), entity-decoded. */
  readonly text: string;
}

// Characters XML 1.0 §2.2 does not allow at all, even as references.
const INVALID_XML_CHARS =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Escapes character data (XML 1.0 §2.4): `&`, `<`, `>`. Characters XML cannot carry (C0
 * controls other than TAB/LF/CR, lone surrogates) become U+FFFD.
 */
export function escapeXmlText(value: string): string {
  return value.replace(INVALID_XML_CHARS, "\uFFFD").replace(/[&<>\r]/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      default:
        return "&#13;"; // a literal CR would be normalized away (XML 1.0 §2.11)
    }
  });
}

/**
 * Escapes an attribute value for a double-quoted attribute (XML 1.0 §2.3, §3.3.3): `&`, `<`,
 * `>`, `"`, and TAB/LF/CR as character references so normalization keeps them.
 */
export function escapeXmlAttribute(value: string): string {
  return value.replace(INVALID_XML_CHARS, "\uFFFD").replace(/[&<>"\t\n\r]/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      default:
        return `&#${c.charCodeAt(0)};`;
    }
  });
}

const PREDEFINED: Readonly<Record<string, string>> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** Decodes the predefined entities and character references (XML 1.0 §4.1, §4.6). */
function decodeReferences(raw: string): string {
  if (!raw.includes("&")) return raw;
  return raw.replace(/&([^;&\s]*);?/g, (whole, body: string) => {
    if (!whole.endsWith(";")) throw new XmlParseError(`unterminated reference "${whole}"`);
    if (body.startsWith("#x")) return fromCodePoint(parseInt(body.slice(2), 16), whole);
    if (body.startsWith("#")) return fromCodePoint(parseInt(body.slice(1), 10), whole);
    const predefined = PREDEFINED[body];
    if (predefined === undefined) throw new XmlParseError(`undefined entity "${whole}"`);
    return predefined;
  });
}

function fromCodePoint(code: number, ref: string): string {
  const ok = Number.isInteger(code) &&
    (code === 0x9 || code === 0xA || code === 0xD || (code >= 0x20 && code <= 0xD7FF) ||
      (code >= 0xE000 && code <= 0xFFFD) || (code >= 0x10000 && code <= 0x10FFFF));
  if (!ok) throw new XmlParseError(`character reference "${ref}" is not an XML character`);
  return String.fromCodePoint(code);
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  allowBooleanAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  cdataPropName: "#cdata",
});

type RawNode = Record<string, unknown>;

/**
 * Parses a document into its root {@link XmlElement}. Throws {@link XmlParseError} on a
 * document that is not well-formed, has a DOCTYPE, or uses an undeclared prefix.
 */
export function parseXml(xml: string): XmlElement {
  if (/<!DOCTYPE/i.test(xml)) throw new XmlParseError("DOCTYPE is not allowed");
  const verdict = XMLValidator.validate(xml, { allowBooleanAttributes: false });
  if (verdict !== true) {
    throw new XmlParseError(verdict.err.msg, verdict.err.line, verdict.err.col);
  }
  const nodes = parser.parse(xml) as RawNode[];
  const roots = nodes.filter((node) => elementName(node) !== undefined);
  const root = roots[0];
  if (root === undefined || roots.length !== 1) {
    throw new XmlParseError("a document must have exactly one root element");
  }
  return convert(root, new Map([["xml", XML_NAMESPACE]]));
}

function elementName(node: RawNode): string | undefined {
  for (const key of Object.keys(node)) {
    if (key !== ":@" && key !== "#text" && key !== "#cdata" && !key.startsWith("?")) return key;
  }
  return undefined;
}

function convert(node: RawNode, scope: ReadonlyMap<string, string>): XmlElement {
  const qname = elementName(node) as string;
  const rawAttributes = (node[":@"] ?? {}) as Record<string, string>;
  let localScope: Map<string, string> | undefined;
  for (const [name, value] of Object.entries(rawAttributes)) {
    if (name === "xmlns" || name.startsWith("xmlns:")) {
      localScope ??= new Map(scope);
      localScope.set(name === "xmlns" ? "" : name.slice(6), decodeAttribute(value));
    }
  }
  const inScope = localScope ?? scope;
  const attributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(rawAttributes)) {
    if (name === "xmlns" || name.startsWith("xmlns:")) continue;
    const colon = name.indexOf(":");
    if (colon < 0) {
      attributes[name] = decodeAttribute(value);
    } else {
      const uri = resolvePrefix(name.slice(0, colon), inScope);
      attributes[`{${uri}}${name.slice(colon + 1)}`] = decodeAttribute(value);
    }
  }
  const colon = qname.indexOf(":");
  const prefix = colon < 0 ? "" : qname.slice(0, colon);
  const ns = colon < 0 ? (inScope.get("") ?? "") : resolvePrefix(prefix, inScope);
  const children: XmlElement[] = [];
  let text = "";
  for (const child of (node[qname] ?? []) as RawNode[]) {
    if (typeof child["#text"] === "string") {
      text += decodeReferences(child["#text"]);
    } else if (Array.isArray(child["#cdata"])) {
      for (const part of child["#cdata"] as RawNode[]) {
        if (typeof part["#text"] === "string") text += part["#text"];
      }
    } else if (elementName(child) !== undefined) {
      children.push(convert(child, inScope));
    }
  }
  return { ns, name: qname.slice(colon + 1), attributes, children, text };
}

function resolvePrefix(prefix: string, scope: ReadonlyMap<string, string>): string {
  const uri = scope.get(prefix);
  if (uri === undefined || uri === "") throw new XmlParseError(`undeclared prefix "${prefix}"`);
  return uri;
}

function decodeAttribute(raw: string): string {
  return decodeReferences(raw.replace(/[\t\n\r]/g, " "));
}

/** Child elements of `parent` named `name` in namespace `ns`, in document order. */
export function childrenNamed(parent: XmlElement, ns: string, name: string): XmlElement[] {
  return parent.children.filter((child) => child.ns === ns && child.name === name);
}

/** The first child element named `name` in namespace `ns`, if any. */
export function childNamed(parent: XmlElement, ns: string, name: string): XmlElement | undefined {
  return parent.children.find((child) => child.ns === ns && child.name === name);
}
