/**
 * Header field names: compact forms, canonical spelling, and which fields are comma lists
 * (RFC 3261 §7.3.1, §7.3.3, §20; compact forms registered with IANA).
 * @module
 */

const CANONICAL_NAMES = [
  "Accept",
  "Accept-Contact",
  "Accept-Encoding",
  "Accept-Language",
  "Accept-Resource-Priority",
  "Alert-Info",
  "Allow",
  "Allow-Events",
  "Answer-Mode",
  "Authentication-Info",
  "Authorization",
  "Call-ID",
  "Call-Info",
  "Contact",
  "Content-Disposition",
  "Content-Encoding",
  "Content-ID",
  "Content-Language",
  "Content-Length",
  "Content-Transfer-Encoding",
  "Content-Type",
  "CSeq",
  "Date",
  "Error-Info",
  "Event",
  "Expires",
  "Flow-Timer",
  "From",
  "Geolocation",
  "History-Info",
  "Identity",
  "Identity-Info",
  "In-Reply-To",
  "Join",
  "Max-Breadth",
  "Max-Forwards",
  "MIME-Version",
  "Min-Expires",
  "Min-SE",
  "Organization",
  "P-Asserted-Identity",
  "P-Preferred-Identity",
  "Path",
  "Priority",
  "Privacy",
  "Proxy-Authenticate",
  "Proxy-Authorization",
  "Proxy-Require",
  "RAck",
  "Reason",
  "Record-Route",
  "Refer-Sub",
  "Refer-To",
  "Referred-By",
  "Reject-Contact",
  "Replaces",
  "Reply-To",
  "Request-Disposition",
  "Require",
  "Resource-Priority",
  "Retry-After",
  "Route",
  "RSeq",
  "Security-Client",
  "Security-Server",
  "Security-Verify",
  "Server",
  "Service-Route",
  "Session-Expires",
  "SIP-ETag",
  "SIP-If-Match",
  "Subject",
  "Subscription-State",
  "Supported",
  "Target-Dialog",
  "Timestamp",
  "To",
  "Unsupported",
  "User-Agent",
  "Via",
  "Warning",
  "WWW-Authenticate",
] as const;

/** Compact forms (RFC 3261 §7.3.3 and later RFCs' IANA registrations). */
const COMPACT: Readonly<Record<string, string>> = {
  a: "Accept-Contact",
  b: "Referred-By",
  c: "Content-Type",
  d: "Request-Disposition",
  e: "Content-Encoding",
  f: "From",
  i: "Call-ID",
  j: "Reject-Contact",
  k: "Supported",
  l: "Content-Length",
  m: "Contact",
  n: "Identity-Info",
  o: "Event",
  r: "Refer-To",
  s: "Subject",
  t: "To",
  u: "Allow-Events",
  v: "Via",
  x: "Session-Expires",
  y: "Identity",
};

const BY_LOWER = new Map<string, string>();
for (const name of CANONICAL_NAMES) BY_LOWER.set(name.toLowerCase(), name);
for (const [short, full] of Object.entries(COMPACT)) BY_LOWER.set(short, full);
const KEY_BY_LOWER = new Map<string, string>();
for (const [lower, name] of BY_LOWER) KEY_BY_LOWER.set(lower, name.toLowerCase());
/** Keys by exact spelling for canonical and compact names: the common case skips lower-casing. */
const KEY_BY_EXACT = new Map<string, string>(KEY_BY_LOWER);
for (const name of CANONICAL_NAMES) KEY_BY_EXACT.set(name, name.toLowerCase());
for (const [short, full] of Object.entries(COMPACT)) {
  KEY_BY_EXACT.set(short.toUpperCase(), full.toLowerCase());
}

/**
 * Header fields whose value is a comma-separated list (RFC 3261 §7.3.1: "multiple header field
 * rows ... can be combined into one ... comma-separated list"); the parser splits them into one
 * entry per element. Lower-case canonical names.
 */
export const LIST_HEADERS: ReadonlySet<string> = new Set([
  "accept",
  "accept-contact",
  "accept-encoding",
  "accept-language",
  "alert-info",
  "allow",
  "allow-events",
  "call-info",
  "contact",
  "content-encoding",
  "content-language",
  "error-info",
  "history-info",
  "in-reply-to",
  "p-asserted-identity",
  "p-preferred-identity",
  "path",
  "proxy-require",
  "reason",
  "record-route",
  "reject-contact",
  "request-disposition",
  "require",
  "route",
  "security-client",
  "security-server",
  "security-verify",
  "service-route",
  "supported",
  "unsupported",
  "via",
  "warning",
]);

/**
 * The canonical spelling of a header name (RFC 3261 §7.3.3, §20): compact forms expand
 * (`v` → `Via`, `i` → `Call-ID`), known names take their RFC spelling (`cseq` → `CSeq`,
 * `www-authenticate` → `WWW-Authenticate`), unknown names are returned as given.
 */
export function canonicalHeaderName(name: string): string {
  return BY_LOWER.get(name.toLowerCase()) ?? name;
}

/** Lower-case lookup key of a header name (compact forms expanded). */
export function headerKey(name: string): string {
  const exact = KEY_BY_EXACT.get(name);
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  return KEY_BY_LOWER.get(lower) ?? lower;
}

/** Canonical spelling and lookup key of a header name. */
export interface HeaderNameInfo {
  readonly canonical: string;
  readonly key: string;
}

const INFO_CACHE = new Map<string, HeaderNameInfo>();

/** {@link canonicalHeaderName} and {@link headerKey} at once, memoised (parser fast path). */
export function headerNameInfo(name: string): HeaderNameInfo {
  let info = INFO_CACHE.get(name);
  if (info === undefined) {
    info = { canonical: canonicalHeaderName(name), key: headerKey(name) };
    if (INFO_CACHE.size >= 1024) INFO_CACHE.clear();
    INFO_CACHE.set(name, info);
  }
  return info;
}
