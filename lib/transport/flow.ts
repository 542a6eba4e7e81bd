/**
 * Addresses and flows shared by every transport (RFC 3261 §18; RFC 5626 §3 "flow").
 * @module
 */

/** Transport protocols Conclave speaks (RFC 3261 §18; TLS per §26.2). */
export type TransportName = "UDP" | "TCP" | "TLS";

/** A host (IP address or name, IPv6 without brackets) and port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * One flow (RFC 5626 §3: "a transport-layer association between two hosts"): the transport,
 * our local address and the peer's address. For stream transports `connectionId` names the
 * connection the message travelled on, so that answers can reuse it (RFC 3261 §18.2.2).
 */
export interface Flow {
  readonly transport: TransportName;
  readonly local: HostPort;
  readonly remote: HostPort;
  readonly connectionId?: number;
}

/** A destination chosen by the caller (RFC 3261 §18.1.1 / RFC 3263): transport, host, port. */
export interface Target {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
}

/** True for a {@link Flow} (it has local and remote ends), false for a plain {@link Target}. */
export function isFlow(value: Flow | Target): value is Flow {
  return "remote" in value && "local" in value;
}

/** Default port of a transport (RFC 3261 §19.1.2: 5060, 5061 for TLS). */
export function defaultPort(transport: TransportName): number {
  return transport === "TLS" ? 5061 : 5060;
}

/** Parses a Via/URI transport name into a {@link TransportName}, or undefined if unsupported. */
export function toTransportName(text: string): TransportName | undefined {
  const t = text.toUpperCase();
  return t === "UDP" || t === "TCP" || t === "TLS" ? t : undefined;
}

/** `host:port` with IPv6 hosts bracketed (RFC 3261 §25.1 hostport); also the connection key. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Strips IPv6 brackets from a host as written in SIP (`[::1]` → `::1`). */
export function bareHost(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
