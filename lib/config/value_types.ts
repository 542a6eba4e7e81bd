/**
 * Value types of configuration keys: each one reads INI text (validating it), writes a value
 * back as INI text, and describes itself for the example file. The key table in `schema.ts` is
 * built from these factories.
 *
 * This module deliberately does not import `lib/sip/` (which sits above `config/`): SIP URIs are
 * only checked syntactically here (scheme, no angle brackets, a host part).
 * @module
 */

import { DurationSyntaxError, formatDuration, parseDuration } from "./duration.ts";

/** A value that fails its key's validator; the loader adds file, line and key. */
export class ConfigValueError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigValueError";
  }
}

/** Collects non-fatal remarks about a value (e.g. an unsupported codec that is ignored). */
export type WarnFn = (message: string) => void;

/** How one INI value is read, checked and written back. */
export interface ValueType<T> {
  /** Type and allowed values, shown in the example file and `--help`-like docs. */
  readonly description: string;
  /** Reads and validates `text` (already trimmed); throws {@link ConfigValueError}. */
  parse(text: string, warn: WarnFn): T;
  /** Writes a value as INI text that `parse` reads back to an equal value. */
  format(value: T): string;
}

/** An inclusive UDP port range for RTP; `{ min: 0, max: 0 }` lets the kernel choose. */
export interface PortRange {
  readonly min: number;
  readonly max: number;
}

/** One listening socket taken from the `transport` key (RFC 3261 §18, §19.1.2). */
export interface ListenTransport {
  /** The URI as written in the file. */
  readonly uri: string;
  readonly protocol: "udp" | "tcp" | "tls";
  /** Host to bind, without IPv6 brackets (`*` becomes `0.0.0.0`). */
  readonly host: string;
  /** Port to bind; 0 asks the kernel for a free port (useful in tests). */
  readonly port: number;
}

/** `true/false`, `1/0`, `yes/no`, `on/off` (any case). */
export function boolType(): ValueType<boolean> {
  return {
    description: "boolean (true/false, yes/no, on/off, 1/0)",
    parse(text) {
      switch (text.toLowerCase()) {
        case "true":
        case "yes":
        case "on":
        case "1":
          return true;
        case "false":
        case "no":
        case "off":
        case "0":
          return false;
      }
      throw new ConfigValueError(
        `invalid boolean "${text}" (use true/false, yes/no, on/off or 1/0)`,
      );
    },
    format: (value) => (value ? "true" : "false"),
  };
}

/** A decimal integer within `[min, max]`. */
export function intType(min: number, max: number, unit = ""): ValueType<number> {
  const suffix = unit === "" ? "" : ` ${unit}`;
  return {
    description: `integer from ${min} to ${max}${suffix}`,
    parse(text) {
      if (!/^[+-]?\d+$/.test(text)) throw new ConfigValueError(`invalid integer "${text}"`);
      const value = Number(text);
      if (!Number.isSafeInteger(value) || value < min || value > max) {
        throw new ConfigValueError(`${text} is out of range (${min} to ${max})`);
      }
      return value;
    },
    format: (value) => String(value),
  };
}

/** A duration in milliseconds within `[minMs, maxMs]` (see `duration.ts` for the syntax). */
export function durationType(minMs: number, maxMs: number, zeroNote = ""): ValueType<number> {
  const range = `from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`;
  return {
    description: `duration ${range}${zeroNote === "" ? "" : ` (${zeroNote})`}`,
    parse(text) {
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch (error) {
        if (error instanceof DurationSyntaxError) throw new ConfigValueError(error.message);
        throw error;
      }
      if (ms < minMs || ms > maxMs) {
        throw new ConfigValueError(`duration "${text}" is out of range (${range})`);
      }
      return ms;
    },
    format: formatDuration,
  };
}

/** Free text; `check` may reject it. */
export function stringType(
  description: string,
  check?: (text: string, warn: WarnFn) => void,
): ValueType<string> {
  return {
    description,
    parse(text, warn) {
      check?.(text, warn);
      return text;
    },
    format: (value) => value,
  };
}

/**
 * One of `allowed`. Values in `unimplemented` are known (e.g. Flexisip's) but refused with an
 * explanation, so a sysadmin never believes a feature is on when it is not.
 */
export function enumType<T extends string>(
  allowed: readonly T[],
  unimplemented: Readonly<Record<string, string>> = {},
): ValueType<T> {
  const known = [...allowed, ...Object.keys(unimplemented)];
  const extra = Object.keys(unimplemented).length === 0
    ? ""
    : ` (${Object.keys(unimplemented).join(", ")}: not implemented)`;
  return {
    description: `one of: ${allowed.join(", ")}${extra}`,
    parse(text) {
      const lower = text.toLowerCase();
      const hit = allowed.find((value) => value === lower);
      if (hit !== undefined) return hit;
      const reason = unimplemented[lower];
      if (reason !== undefined) {
        throw new ConfigValueError(
          `"${text}" is not implemented by Conclave: ${reason}; supported: ${allowed.join(", ")}`,
        );
      }
      throw new ConfigValueError(`invalid value "${text}" (expected one of: ${known.join(", ")})`);
    },
    format: (value) => value,
  };
}

/** Options of {@link listType}. */
export interface ListOptions {
  /** Refuse an empty list. */
  readonly nonEmpty?: boolean;
  /** Items that are accepted but dropped with a warning, with the reason. */
  readonly ignored?: Readonly<Record<string, string>>;
  /** Replaces the generated description. */
  readonly description?: string;
}

/** A whitespace-separated list (Flexisip's StringList); duplicates are dropped with a warning. */
export function listType<T>(item: ValueType<T>, options: ListOptions = {}): ValueType<T[]> {
  const ignored = options.ignored ?? {};
  return {
    description: options.description ??
      `${item.description}; several separated by spaces${
        options.nonEmpty ? ", at least one" : ", or empty"
      }`,
    parse(text, warn) {
      const values: T[] = [];
      const seen = new Set<string>();
      for (const word of text.split(/\s+/).filter((w) => w !== "")) {
        const reason = ignored[word.toLowerCase()];
        if (reason !== undefined) {
          warn(`"${word}" is ignored: ${reason}`);
          continue;
        }
        const value = item.parse(word, warn);
        const canonical = item.format(value);
        if (seen.has(canonical)) {
          warn(`"${word}" is listed twice; the duplicate is ignored`);
          continue;
        }
        seen.add(canonical);
        values.push(value);
      }
      if (options.nonEmpty && values.length === 0) {
        throw new ConfigValueError("must list at least one value");
      }
      return values;
    },
    format: (values) => values.map((value) => item.format(value)).join(" "),
  };
}

/** `0` (kernel picks), a single port `N`, or an inclusive range `A-B` (1..65535). */
export function portRangeType(): ValueType<PortRange> {
  return {
    description: "0 (any free port), a port (40000) or a range (40000-40999)",
    parse(text) {
      const match = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(text);
      if (!match) throw new ConfigValueError(`invalid port or port range "${text}"`);
      const min = Number(match[1]);
      const max = match[2] === undefined ? min : Number(match[2]);
      if (min === 0 && max === 0) return { min: 0, max: 0 };
      if (min < 1 || max > 65535 || min > max) {
        throw new ConfigValueError(
          `invalid port range "${text}" (ports are 1 to 65535 and the first must not exceed the last)`,
        );
      }
      return { min, max };
    },
    format: ({ min, max }) => (min === max ? String(min) : `${min}-${max}`),
  };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** True for a dotted-quad IPv4 literal. */
export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

/** True for an IPv6 literal (without brackets), including `::` forms and an IPv4 tail. */
export function isIpv6(text: string): boolean {
  if (!/^[0-9a-f:.]+$/i.test(text) || !text.includes(":")) return false;
  let body = text;
  const lastColon = body.lastIndexOf(":");
  const tail = body.slice(lastColon + 1);
  if (tail.includes(".")) {
    // An embedded IPv4 address (RFC 4291 §2.2 form 3) stands for the last two groups.
    if (!isIpv4(tail)) return false;
    body = body.slice(0, lastColon + 1) + "0:0";
  }
  const halves = body.split("::");
  if (halves.length > 2) return false;
  const groups = (half: string) => (half === "" ? [] : half.split(":"));
  const all = halves.flatMap(groups);
  if (!all.every((group) => /^[0-9a-f]{1,4}$/i.test(group))) return false;
  const count = all.length;
  return halves.length === 2 ? count <= 7 : count === 8;
}

/** True for a host name, an IPv4 literal or an IPv6 literal (bare or in brackets). */
export function isHost(text: string): boolean {
  if (text.startsWith("[") && text.endsWith("]")) return isIpv6(text.slice(1, -1));
  return isIpv4(text) || isIpv6(text) || HOSTNAME.test(text);
}

/** A host name or IP address. */
export function hostType(): ValueType<string> {
  return {
    description: "host name or IP address",
    parse(text) {
      if (!isHost(text)) throw new ConfigValueError(`invalid host "${text}"`);
      return text.toLowerCase();
    },
    format: (value) => value,
  };
}

interface UriParts {
  readonly scheme: "sip" | "sips";
  readonly host: string;
  readonly port: number | null;
  readonly params: ReadonlyMap<string, string>;
}

/** Syntactic split of a SIP URI (RFC 3261 §19.1.1): enough to validate and to bind. */
function splitSipUri(text: string): UriParts {
  if (text.startsWith("<") || text.endsWith(">")) {
    throw new ConfigValueError(`"${text}": write the URI without angle brackets`);
  }
  const scheme = /^(sips?):/i.exec(text);
  if (!scheme) {
    throw new ConfigValueError(`"${text}" is not a SIP URI (it must start with sip: or sips:)`);
  }
  let rest = text.slice(scheme[0].length);
  const headers = rest.indexOf("?");
  if (headers >= 0) rest = rest.slice(0, headers);
  const at = rest.lastIndexOf("@", rest.indexOf(";") >= 0 ? rest.indexOf(";") : rest.length);
  if (at >= 0) {
    if (at === 0) throw new ConfigValueError(`"${text}" has an empty user part`);
    rest = rest.slice(at + 1);
  }
  const [hostPort = "", ...paramList] = rest.split(";");
  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]");
    host = hostPort.slice(0, close + 1);
    const after = hostPort.slice(close + 1);
    if (close < 0 || (after !== "" && !after.startsWith(":"))) {
      throw new ConfigValueError(`"${text}" has a malformed IPv6 host`);
    }
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = hostPort.indexOf(":");
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    portText = colon < 0 ? undefined : hostPort.slice(colon + 1);
  }
  if (host !== "*" && !isHost(host)) {
    throw new ConfigValueError(`"${text}" has an invalid host "${host}"`);
  }
  let port: number | null = null;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw new ConfigValueError(`"${text}" has an invalid port "${portText}"`);
    }
    port = Number(portText);
  }
  const params = new Map<string, string>();
  for (const param of paramList) {
    if (param === "") continue;
    const eq = param.indexOf("=");
    const name = (eq < 0 ? param : param.slice(0, eq)).toLowerCase();
    params.set(name, eq < 0 ? "" : param.slice(eq + 1));
  }
  return {
    scheme: scheme[1]?.toLowerCase() === "sips" ? "sips" : "sip",
    host,
    port,
    params,
  };
}

/** A SIP or SIPS URI, checked syntactically (scheme, host, port). */
export function sipUriType(check?: (uri: string, warn: WarnFn) => void): ValueType<string> {
  return {
    description: "SIP URI (sip:... or sips:...)",
    parse(text, warn) {
      const parts = splitSipUri(text);
      if (parts.host === "*") throw new ConfigValueError(`"${text}": "*" is not a valid host here`);
      check?.(text, warn);
      return text;
    },
    format: (value) => value,
  };
}

/**
 * A listening URI, Flexisip style: `sip:host:port;transport=tcp`. `sips:` or `transport=tls`
 * means TLS (default port 5061). Without a `transport` parameter Conclave listens on both UDP
 * and TCP, as SIP proxies do for a bare `sip:` URI (default port 5060).
 */
export function transportListType(): ValueType<ListenTransport[]> {
  const parseOne = (text: string): ListenTransport[] => {
    const parts = splitSipUri(text);
    if (text.slice(parts.scheme.length + 1).includes("@")) {
      throw new ConfigValueError(`"${text}": a listening URI has no user part`);
    }
    const host = parts.host === "*"
      ? "0.0.0.0"
      : parts.host.startsWith("[")
      ? parts.host.slice(1, -1)
      : parts.host;
    const transport = parts.params.get("transport")?.toLowerCase();
    let protocols: ("udp" | "tcp" | "tls")[];
    if (parts.scheme === "sips") {
      if (transport !== undefined && transport !== "tcp" && transport !== "tls") {
        throw new ConfigValueError(`"${text}": sips: needs TLS over TCP, not ${transport}`);
      }
      protocols = ["tls"];
    } else if (transport === undefined) {
      protocols = ["udp", "tcp"];
    } else if (transport === "udp" || transport === "tcp" || transport === "tls") {
      protocols = [transport];
    } else {
      throw new ConfigValueError(
        `"${text}": unsupported transport "${transport}" (use udp, tcp or tls)`,
      );
    }
    return protocols.map((protocol) => ({
      uri: text,
      protocol,
      host,
      port: parts.port ?? (protocol === "tls" ? 5061 : 5060),
    }));
  };
  return {
    description: "SIP URI; several separated by spaces, at least one",
    parse(text) {
      const result: ListenTransport[] = [];
      const seen = new Set<string>();
      for (const word of text.split(/\s+/).filter((w) => w !== "")) {
        for (const transport of parseOne(word)) {
          const key = `${transport.protocol}/${transport.host}/${transport.port}`;
          if (seen.has(key) && transport.port !== 0) {
            throw new ConfigValueError(
              `"${word}": ${transport.protocol} ${transport.host}:${transport.port} is listed twice`,
            );
          }
          seen.add(key);
          result.push(transport);
        }
      }
      if (result.length === 0) throw new ConfigValueError("must list at least one URI");
      return result;
    },
    format(values) {
      return [...new Set(values.map((transport) => transport.uri))].join(" ");
    },
  };
}
