/**
 * Test helpers for the SIP message layer: a plain, comparable view of a message (Maps and
 * private fields do not survive naive deep-equality) and fixture loading.
 * @module
 */

import type { SipMessage } from "../../lib/sip/message.ts";
import { isRequest } from "../../lib/sip/message.ts";
import type { SipUri } from "../../lib/sip/uri.ts";

/** A URI as plain data. */
export function plainUri(u: SipUri): unknown {
  return {
    scheme: u.scheme,
    user: u.user,
    password: u.password,
    host: u.host,
    port: u.port,
    params: [...u.params],
    headers: [...u.headers],
  };
}

/** Bytes as a string of char codes 0–255 (cheap to compare and to print). */
export function byteString(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return out;
}

/** A message as plain data: start line fields, header entries in order, body bytes. */
export function plainMessage(m: SipMessage): unknown {
  const common = { headers: [...m.headers], body: byteString(m.body) };
  return isRequest(m)
    ? { kind: "request", method: m.method, uri: plainUri(m.uri), ...common }
    : { kind: "response", status: m.status, reason: m.reason, ...common };
}

/** Directory of the SIP fixtures. */
export const FIXTURES = new URL("../fixtures/sip/", import.meta.url);

/** Names (without extension) of the `.sip` files in `valid/` or `invalid/`, sorted. */
export function fixtureNames(kind: "valid" | "invalid"): string[] {
  const names: string[] = [];
  for (const e of Deno.readDirSync(new URL(`${kind}/`, FIXTURES))) {
    if (e.isFile && e.name.endsWith(".sip")) names.push(e.name.slice(0, -4));
  }
  return names.sort();
}

/** The exact bytes of a fixture. */
export function fixtureBytes(kind: "valid" | "invalid", name: string): Uint8Array {
  return Deno.readFileSync(new URL(`${kind}/${name}.sip`, FIXTURES));
}

/** Deterministic PRNG (mulberry32) for fuzzing and random splits. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
