/**
 * Up/down state of a database connection, logged once per change: one warning when the
 * first operation fails to reach the server, one info line (with the outage length) when an
 * operation succeeds again — never one line per failed query (issue 5, "reconnection is
 * automatic and logged").
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";

/** Tracks whether the database is reachable. */
export class ConnectionHealth {
  readonly #log: Logger;
  readonly #what: string;
  readonly #clock: Clock;
  #downSince: number | null = null;

  /** `what` names the database in log lines, e.g. `MySQL at 127.0.0.1:3306`. */
  constructor(log: Logger, what: string, clock: Clock) {
    this.#log = log;
    this.#what = what;
    this.#clock = clock;
  }

  /** True while the last attempt failed to reach the server. */
  get down(): boolean {
    return this.#downSince !== null;
  }

  /** An attempt could not reach the server (`reason`: error code). Logs on the first one. */
  lost(reason: string): void {
    if (this.#downSince !== null) return;
    this.#downSince = this.#clock.now();
    this.#log.warn(`lost connection to ${this.#what}; retrying`, { error: reason });
  }

  /** An attempt succeeded. Logs the recovery if the server had been lost. */
  ok(): void {
    if (this.#downSince === null) return;
    const downMs = Math.round(this.#clock.now() - this.#downSince);
    this.#downSince = null;
    this.#log.info(`connection to ${this.#what} restored`, { downMs });
  }
}
