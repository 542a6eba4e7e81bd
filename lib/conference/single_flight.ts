/**
 * At most one load per key at a time: concurrent requests for a conference or chat room that
 * is being restored from storage (after a restart) share one load instead of each building
 * its own live object (RFC 4353 §5: one focus per conference).
 * @module
 */

/** Runs `work` once per key while it is pending; later callers get the same promise. */
export class SingleFlight<V> {
  readonly #pending = new Map<string, Promise<V>>();

  /** The pending work of `key`, or `work()` started now. */
  run(key: string, work: () => Promise<V>): Promise<V> {
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const started = work().finally(() => this.#pending.delete(key));
    this.#pending.set(key, started);
    return started;
  }
}
