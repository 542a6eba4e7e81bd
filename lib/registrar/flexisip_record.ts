/**
 * Flexisip's registrar records in Redis, parsed and built. An address of record `user@domain`
 * is the hash `fs:user@domain`; each field is one binding (RFC 3261 §10.3), keyed by the
 * device's unique id — the raw `+sip.instance` value, quotes and brackets included
 * (`"<urn:uuid:…>"`, RFC 5626 §4.1) — or by a generated `fs-gen-…` placeholder when the device
 * sent none. The value is a Contact header value whose URI carries Flexisip's bookkeeping as
 * URI parameters (`callid`, `expires` — seconds, `cseq`, `updatedAt` — Unix seconds, `alias`,
 * `usedAsRoute`) and URI headers (`?Path=&Accept=&User-Agent=`, escaped as RFC 3261 §19.1.1
 * `hvalue`s), and keeps the device's header parameters (`+sip.instance`, `pub-gruu`,
 * `+org.linphone.specs`, `message-expires`, `q`).
 *
 * Where the shape comes from (read to understand, not copied): Flexisip
 * `src/registrar/extended-contact.cc` (`serializeAsUrlEncodedParams`, `extractInfoFromUrl`),
 * `src/registrardb-redis-async.cc` (`HMSET fs:<aor> <uid> <contact>`, `EXPIREAT` at the latest
 * contact expiry, `PUBLISH <aor> <uid>`, `__keyevent@0__:expired`), `src/registrar/record.cc`
 * (`Record::Key` = `user@host`, unique id from `unique-id-parameters`), `src/utils/uri-utils.cc`
 * (`grToUniqueId`: `"<gr>"`), and `src/registrar/registrar-db.cc` (`pub-gruu="<aor>;gr=…"`).
 * @module
 */

import { formatNameAddr, type NameAddr, parseNameAddr } from "../sip/headers.ts";
import { unquote } from "../sip/lexer.ts";
import { cloneUri, formatUri, parseUri, type SipUri } from "../sip/uri.ts";

/** Prefix of every registrar record key. */
export const RECORD_KEY_PREFIX = "fs:";

/** Flexisip's `message-expires-param-name` default: push-capable devices stay longer. */
const MESSAGE_EXPIRES_PARAM = "message-expires";

/** The URI parameters Flexisip adds for its own bookkeeping (removed from `uri` on parse). */
const BOOKKEEPING = ["callid", "expires", "cseq", "updatedat", "alias", "usedasroute"] as const;

/** One binding of an address of record, as Flexisip stores it. */
export interface FlexisipContact {
  /** The hash field: the raw unique id (`"<urn:uuid:…>"`) or an `fs-gen-…` placeholder. */
  readonly key: string;
  /** The device's contact URI, without the bookkeeping parameters and URI headers. */
  readonly uri: SipUri;
  /** Header parameters (names lower-cased, values as written: quoted values keep quotes). */
  readonly params: ReadonlyMap<string, string | null>;
  readonly callId: string;
  /** Registration duration, seconds (RFC 3261 §10.2.1.1). */
  readonly expires: number;
  readonly cseq: number;
  /** When the binding was written, Unix seconds. */
  readonly updatedAt: number;
  readonly alias: boolean;
  readonly usedAsRoute: boolean;
  /** Path URIs (RFC 3327), without angle brackets. */
  readonly path: readonly string[];
  readonly accept: readonly string[];
  readonly userAgent: string;
}

/** A record field that is not a Flexisip contact. */
export class FlexisipRecordError extends SyntaxError {
  /** Creates the error; `message` names the defect. */
  constructor(message: string) {
    super(message);
    this.name = "FlexisipRecordError";
  }
}

/**
 * The record key of an address of record (Flexisip `Record::Key`): `user@host` of a SIP URI,
 * or the host alone when it has no user part. Parameters, port and scheme are ignored.
 */
export function aorKey(aor: SipUri | string): string {
  const uri = typeof aor === "string" ? parseUri(aor) : aor;
  return uri.user !== undefined && uri.user !== "" ? `${uri.user}@${uri.host}` : uri.host;
}

/** The Redis key of a record: `fs:user@host`. */
export function recordKey(aor: SipUri | string): string {
  return RECORD_KEY_PREFIX + aorKey(aor);
}

/** The `+sip.instance` form of a GRUU id (Flexisip `grToUniqueId`): `"<urn:uuid:…>"`. */
export function uniqueIdOf(instance: string): string {
  return `"<${instance}>"`;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Escapes a URI header value (RFC 3261 §25.1 `hvalue`: hnv-unreserved / unreserved). */
function escapeHeaderValue(text: string): string {
  return encodeURIComponent(text).replace(
    /%(5B|5D|2F|3F|3A|2B|24)/g,
    (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/** Escapes a URI parameter value (RFC 3261 §25.1 `paramchar`). */
function escapeParamValue(text: string): string {
  return encodeURIComponent(text).replace(
    /%(5B|5D|2F|3A|26|2B|24)/g,
    (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

function integer(value: string | null | undefined, what: string): number {
  if (value === undefined || value === null) return 0;
  const trimmed = decode(value).trim();
  if (!/^-?\d+$/.test(trimmed)) throw new FlexisipRecordError(`${what} "${value}" is not a number`);
  const n = Number(trimmed);
  if (!Number.isSafeInteger(n)) throw new FlexisipRecordError(`${what} "${value}" is out of range`);
  return n;
}

function yes(value: string | null | undefined): boolean {
  return value !== undefined && value !== null && decode(value).includes("yes");
}

/** Splits a comma-separated header value, leaving commas inside `<>` and quotes alone. */
function splitList(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' && text[i - 1] !== "\\") quoted = !quoted;
    else if (!quoted && c === "<") depth++;
    else if (!quoted && c === ">") depth = Math.max(0, depth - 1);
    else if (!quoted && depth === 0 && c === ",") {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((s) => s.trim()).filter((s) => s !== "");
}

function pathUri(entry: string): string {
  const m = /<([^>]*)>/.exec(entry);
  return (m?.[1] ?? entry).trim();
}

/**
 * Parses one hash field of a record (Flexisip `ExtendedContact(key, fullUrl)`). Throws
 * {@link FlexisipRecordError} (or `SipParseError`) when the value is not a Contact value.
 * Missing bookkeeping parameters read as 0 / "no", as in Flexisip.
 */
export function parseFlexisipContact(key: string, value: string): FlexisipContact {
  let nameAddr: NameAddr;
  try {
    nameAddr = parseNameAddr(value.trim(), "Contact");
  } catch (error) {
    throw new FlexisipRecordError(
      `field ${JSON.stringify(key)}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const uri = cloneUri(nameAddr.uri);
  const p = uri.params;
  const callId = decode(p.get("callid") ?? "");
  const expires = integer(p.get("expires"), "expires");
  const cseq = integer(p.get("cseq"), "cseq");
  const updatedAt = integer(p.get("updatedat"), "updatedAt");
  const alias = yes(p.get("alias"));
  const usedAsRoute = yes(p.get("usedasroute"));
  for (const name of BOOKKEEPING) p.delete(name);
  const path: string[] = [];
  const accept: string[] = [];
  let userAgent = "";
  for (const [name, raw] of uri.headers) {
    const text = decode(raw);
    switch (name.toLowerCase()) {
      case "path":
        for (const entry of splitList(text)) path.push(pathUri(entry));
        break;
      case "accept":
        if (text.trim() !== "") accept.push(...splitList(text));
        break;
      case "user-agent":
        userAgent = text;
        break;
    }
  }
  uri.headers = new Map();
  return {
    key,
    uri,
    params: new Map(nameAddr.params),
    callId,
    expires,
    cseq,
    updatedAt,
    alias,
    usedAsRoute,
    path,
    accept,
    userAgent,
  };
}

/**
 * Serializes a binding as Flexisip writes it (`serializeAsUrlEncodedParams`): bookkeeping
 * parameters appended to the URI in Flexisip's order, then `?Path=&Accept=&User-Agent=`, then
 * the header parameters.
 */
export function serializeFlexisipContact(contact: FlexisipContact): string {
  const uri = cloneUri(contact.uri);
  for (const name of BOOKKEEPING) uri.params.delete(name);
  uri.params.set("callid", escapeParamValue(contact.callId));
  uri.params.set("expires", String(contact.expires));
  uri.params.set("cseq", String(contact.cseq));
  uri.params.set("updatedAt", String(contact.updatedAt));
  uri.params.set("alias", contact.alias ? "yes" : "no");
  uri.params.set("usedAsRoute", contact.usedAsRoute ? "yes" : "no");
  uri.headers = new Map();
  uri.headers.set("Path", escapeHeaderValue(contact.path.map((p) => `<${p}>`).join(",")));
  uri.headers.set("Accept", escapeHeaderValue(contact.accept.join(",")));
  uri.headers.set("User-Agent", escapeHeaderValue(contact.userAgent));
  return formatNameAddr({ display: undefined, uri, params: new Map(contact.params) });
}

/**
 * Parses a whole record (the HGETALL reply). A field that is not a contact is skipped and
 * reported through `warn`; it never stops the others.
 */
export function parseFlexisipRecord(
  fields: Readonly<Record<string, string>>,
  warn: (field: string, error: Error) => void,
): FlexisipContact[] {
  const contacts: FlexisipContact[] = [];
  for (const [key, value] of Object.entries(fields)) {
    try {
      contacts.push(parseFlexisipContact(key, value));
    } catch (error) {
      warn(key, error instanceof Error ? error : new Error(String(error)));
    }
  }
  return contacts;
}

/** A header parameter of a binding, unquoted; "" for a flag; undefined when absent. */
export function contactParameter(contact: FlexisipContact, name: string): string | undefined {
  const value = contact.params.get(name.toLowerCase());
  if (value === undefined) return undefined;
  if (value === null) return "";
  try {
    return value.startsWith('"') ? unquote(value) : value;
  } catch {
    return value;
  }
}

/** The device's instance id (`urn:uuid:…`, RFC 5626 §4.1), without quotes and brackets. */
export function instanceOf(contact: FlexisipContact): string | undefined {
  const value = contactParameter(contact, "+sip.instance");
  if (value === undefined || value === "") return undefined;
  return value.startsWith("<") && value.endsWith(">") ? value.slice(1, -1) : value;
}

/** The public GRUU (RFC 5627 §3.1) Flexisip assigned, or undefined (an empty `pub-gruu`). */
export function pubGruuOf(contact: FlexisipContact): string | undefined {
  const value = contactParameter(contact, "pub-gruu");
  return value === undefined || value === "" ? undefined : value;
}

/**
 * When the binding stops counting, Unix seconds (Flexisip `getExpireTime`): `updatedAt` plus
 * the longer of `expires` and the `message-expires` header parameter.
 */
export function expiryOf(contact: FlexisipContact): number {
  let messageExpires = 0;
  const text = contactParameter(contact, MESSAGE_EXPIRES_PARAM);
  if (text !== undefined && /^\d+$/.test(text)) messageExpires = Number(text);
  return contact.updatedAt + Math.max(contact.expires, messageExpires);
}

/** Whether a binding has expired at `nowSeconds` (Unix seconds). */
export function isExpired(contact: FlexisipContact, nowSeconds: number): boolean {
  return expiryOf(contact) <= nowSeconds;
}

/** The contact URI as text (handy for logs and device ids). */
export function contactUriText(contact: FlexisipContact): string {
  return formatUri(contact.uri);
}
