/**
 * The TLS transport (RFC 3261 §26.2, §18.3 framing as for TCP): `Deno.listenTls` with
 * certificate and key files, `Deno.connectTls` for outgoing connections. Connections are
 * {@link StreamConnection}s, exactly like TCP.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { bareHost } from "./flow.ts";
import { TcpListener } from "./tcp.ts";

/** Server certificate for a TLS listener (PEM files). */
export interface TlsServerOptions {
  /** Path of the PEM certificate chain. */
  readonly certFile: string;
  /** Path of the PEM private key. */
  readonly keyFile: string;
}

/** Client-side TLS settings. */
export interface TlsClientOptions {
  /** Extra trusted root certificates (PEM text). */
  readonly caCerts?: readonly string[];
}

/** Opens a TLS listener on `host:port` reading the certificate and key from disk. */
export async function listenTls(
  host: string,
  port: number,
  options: TlsServerOptions,
  accept: (conn: Deno.Conn) => void,
  logger: Logger,
): Promise<TcpListener> {
  const [cert, key] = await Promise.all([
    Deno.readTextFile(options.certFile),
    Deno.readTextFile(options.keyFile),
  ]);
  const listener = Deno.listenTls({ hostname: bareHost(host), port, cert, key, transport: "tcp" });
  return new TcpListener(listener, accept, logger);
}

/**
 * Opens an outgoing TLS connection, verifying the server certificate against the system
 * roots plus `caCerts`, and completes the handshake before returning (so a failed handshake is
 * a transport error, RFC 3261 §18.4). Aborts after `timeoutMs` on the injected clock.
 */
export async function connectTls(
  host: string,
  port: number,
  timeoutMs: number,
  clock: Clock,
  options: TlsClientOptions,
): Promise<Deno.Conn> {
  let conn: Deno.TlsConn | undefined;
  let timedOut = false;
  const timer = timeoutMs > 0
    ? clock.setTimer(timeoutMs, () => {
      timedOut = true;
      try {
        conn?.close();
      } catch {
        // Already closed.
      }
    })
    : undefined;
  try {
    const opts: Deno.ConnectTlsOptions = options.caCerts === undefined
      ? { hostname: bareHost(host), port }
      : { hostname: bareHost(host), port, caCerts: [...options.caCerts] };
    conn = await Deno.connectTls(opts);
    await conn.handshake();
    if (timedOut) throw new Deno.errors.TimedOut(`TLS connect to ${host}:${port} timed out`);
    return conn;
  } catch (error) {
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
    if (timedOut) throw new Deno.errors.TimedOut(`TLS connect to ${host}:${port} timed out`);
    throw error;
  } finally {
    timer?.cancel();
  }
}
