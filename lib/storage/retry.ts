/**
 * Bounded exponential backoff for storage operations: a transient failure (connection lost,
 * server restarting, deadlock) is retried after 1×, 2×, 4×… `initialDelayMs`, each delay
 * capped at `maxDelayMs`, until the next wait would pass `totalMs` since the first attempt.
 * Then the caller gets a {@link StoreUnavailableError} carrying `retryAfterSeconds`, which the
 * focus turns into `503` + `Retry-After` (RFC 3261 §21.5.4, §20.33).
 *
 * Time goes through the injected {@link Clock}, so tests decide how long "waiting" takes.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import { StoreUnavailableError } from "./store.ts";

/** How hard to try before giving up. */
export interface RetryPolicy {
  /** First wait after a failure (ms). */
  readonly initialDelayMs: number;
  /** Longest single wait (ms). */
  readonly maxDelayMs: number;
  /** No new attempt starts later than this after the first one (ms). */
  readonly totalMs: number;
  /** Value for the Retry-After header of the resulting 503. */
  readonly retryAfterSeconds: number;
}

/** ~2 s of retries (50, 100, 200, 400, 500, 500 ms…), then 503 with Retry-After: 5. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  initialDelayMs: 50,
  maxDelayMs: 500,
  totalMs: 2000,
  retryAfterSeconds: 5,
};

/** Fills a partial policy from the defaults and checks it. */
export function resolveRetryPolicy(partial: Partial<RetryPolicy> | undefined): RetryPolicy {
  const policy = { ...DEFAULT_RETRY_POLICY, ...partial };
  for (const [key, value] of Object.entries(policy)) {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`retry.${key} must be a non-negative number`);
    }
  }
  if (policy.initialDelayMs < 1) throw new RangeError("retry.initialDelayMs must be at least 1");
  return policy;
}

/** How a failure should be treated by {@link withRetry}. */
export type FailureKind = "fatal" | "transient" | "connection";

/** Callbacks of one {@link withRetry} call. */
export interface RetryHooks {
  /** Classifies an error: `fatal` is rethrown at once; the others are retried. */
  classify(error: unknown): FailureKind;
  /** Called for each `connection` failure (the store tracks up/down from these). */
  onConnectionFailure(error: unknown): void;
  /** Called after any successful attempt. */
  onSuccess(): void;
  /** Message for the final StoreUnavailableError. */
  describe(error: unknown): string;
}

/** Waits `ms` on the injected clock. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}

/**
 * Runs `attempt` until it succeeds, fails fatally, or the policy's time is spent.
 * `attempt` receives the attempt number (1-based) so that a write can recognize its own
 * earlier, possibly committed, try.
 */
export async function withRetry<T>(
  clock: Clock,
  policy: RetryPolicy,
  hooks: RetryHooks,
  attempt: (attemptNumber: number) => Promise<T>,
): Promise<T> {
  const start = clock.now();
  let delay = policy.initialDelayMs;
  for (let n = 1;; n++) {
    try {
      const result = await attempt(n);
      hooks.onSuccess();
      return result;
    } catch (error) {
      const kind = hooks.classify(error);
      if (kind === "fatal") throw error;
      if (kind === "connection") hooks.onConnectionFailure(error);
      const elapsed = clock.now() - start;
      if (elapsed + delay > policy.totalMs) {
        throw new StoreUnavailableError(
          `${hooks.describe(error)} (gave up after ${n} attempt${n === 1 ? "" : "s"})`,
          policy.retryAfterSeconds,
          { cause: error },
        );
      }
      await sleep(clock, delay);
      delay = Math.min(delay * 2, policy.maxDelayMs);
    }
  }
}
