/**
 * Vocabulary shared by client and server transactions (RFC 3261 §17): why a transaction
 * ended, how it hands messages to the transport, its timer slots and branch ids.
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";

/**
 * Why a transaction reached the Terminated state (RFC 3261 §17):
 * - `completed`: the normal end (final response exchanged, linger timer expired);
 * - `timeout`: Timer B or F (client: no final response) or Timer H (INVITE server: no ACK);
 * - `transport-error`: the transport failed to send (§17.1.4, §17.2.4);
 * - `closed`: the transaction layer was shut down.
 */
export type TerminationReason = "completed" | "timeout" | "transport-error" | "closed";

/**
 * Hands one message to the transport layer (RFC 3261 §18). The promise rejects when the
 * transport reports a failure, which the transaction treats as a transport error input.
 */
export type MessageSender<M> = (message: M) => Promise<void>;

/** The RFC 3261 branch magic cookie (§8.1.1.7). */
export const MAGIC_COOKIE = "z9hG4bK";

const BRANCH_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/**
 * A fresh branch: `z9hG4bK` followed by 20 random characters (RFC 3261 §8.1.1.7: "unique
 * across space and time for all requests sent by the UA").
 */
export function generateBranch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  let out = MAGIC_COOKIE;
  for (const b of bytes) out += BRANCH_ALPHABET[b % BRANCH_ALPHABET.length];
  return out;
}

/** A random tag for From/To (RFC 3261 §19.3: at least 32 bits of randomness). */
export function generateTag(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * Named one-shot timers of one transaction, started and stopped through an injected
 * {@link Clock} (RFC 3261 §17 timers A–M). Starting a slot that is running restarts it.
 */
export class TimerSlots<Name extends string> {
  readonly #clock: Clock;
  readonly #handles = new Map<Name, TimerHandle>();

  /** Creates an empty set bound to `clock`. */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Starts (or restarts) timer `name` to call `fire` after `delayMs`. */
  start(name: Name, delayMs: number, fire: () => void): void {
    this.stop(name);
    const handle = this.#clock.setTimer(delayMs, () => {
      this.#handles.delete(name);
      fire();
    });
    this.#handles.set(name, handle);
  }

  /** Stops timer `name` if it is running. */
  stop(name: Name): void {
    const handle = this.#handles.get(name);
    if (handle !== undefined) {
      handle.cancel();
      this.#handles.delete(name);
    }
  }

  /** True while timer `name` is pending. */
  running(name: Name): boolean {
    return this.#handles.has(name);
  }

  /** Stops every timer. */
  stopAll(): void {
    for (const handle of this.#handles.values()) handle.cancel();
    this.#handles.clear();
  }
}

/** Response class helpers (RFC 3261 §7.2). */
export function isProvisional(status: number): boolean {
  return status >= 100 && status < 200;
}

/** True for 2xx (RFC 3261 §7.2). */
export function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}
