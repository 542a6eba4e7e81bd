/**
 * SIP transaction timer values (RFC 3261 §17 and the table in Appendix A).
 *
 * Only T1, T2 and T4 are configurable; every lettered timer is derived from them. On reliable
 * transports (TCP, TLS) the retransmission timers (A, E, G) are never started and the
 * "linger" timers (D, I, J, K) are zero, because the transport itself absorbs retransmissions
 * (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2). Timers L and M come from RFC 6026 §8.
 * @module
 */

/** The three base values of RFC 3261 Appendix A, in milliseconds. */
export interface TimerBase {
  /** RTT estimate; default 500 ms. */
  readonly t1: number;
  /** Maximum retransmission interval for non-INVITE requests and INVITE responses; default 4 s. */
  readonly t2: number;
  /** Maximum duration a message remains in the network; default 5 s. */
  readonly t4: number;
}

/** RFC 3261 Appendix A defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s. */
export const DEFAULT_TIMER_BASE: TimerBase = Object.freeze({ t1: 500, t2: 4000, t4: 5000 });

/**
 * How long an INVITE server transaction waits for the TU before it sends 100 Trying itself
 * (RFC 3261 §17.2.1: "if it knows the TU will not generate a provisional or final response
 * within 200 ms").
 */
export const TRYING_DELAY_MS = 200;

/**
 * Lettered timer values for one transport class, in milliseconds. A value of 0 for a
 * retransmission timer (A, E, G) means "not started"; a value of 0 for a wait timer (D, I, J,
 * K) means the transaction terminates at once (RFC 3261 §17).
 */
export interface TransactionTimers {
  /** Whether these values are for a reliable transport. */
  readonly reliable: boolean;
  /** T1 (initial retransmission interval). */
  readonly t1: number;
  /** T2 (retransmission cap). */
  readonly t2: number;
  /** T4 (network lifetime). */
  readonly t4: number;
  /** Timer A: INVITE request retransmit interval, initially T1, doubling (§17.1.1.2). UDP only. */
  readonly a: number;
  /** Timer B: INVITE transaction timeout, 64*T1 (§17.1.1.2). */
  readonly b: number;
  /** Timer D: wait time for response retransmits, > 32 s for UDP, 0 reliable (§17.1.1.2). */
  readonly d: number;
  /** Timer E: non-INVITE request retransmit interval, T1 doubling to T2 (§17.1.2.2). UDP only. */
  readonly e: number;
  /** Timer F: non-INVITE transaction timeout, 64*T1 (§17.1.2.2). */
  readonly f: number;
  /** Timer G: INVITE response retransmit interval, T1 doubling to T2 (§17.2.1). UDP only. */
  readonly g: number;
  /** Timer H: wait time for ACK receipt, 64*T1 (§17.2.1). */
  readonly h: number;
  /** Timer I: wait time for ACK retransmits, T4 for UDP, 0 reliable (§17.2.1). */
  readonly i: number;
  /** Timer J: wait time for non-INVITE request retransmits, 64*T1 UDP, 0 reliable (§17.2.2). */
  readonly j: number;
  /** Timer K: wait time for response retransmits, T4 UDP, 0 reliable (§17.1.2.2). */
  readonly k: number;
  /** Timer L: wait time for accepted INVITE request retransmits, 64*T1 (RFC 6026 §8.7). */
  readonly l: number;
  /** Timer M: wait time for retransmission of 2xx to INVITE, 64*T1 (RFC 6026 §8.4). */
  readonly m: number;
}

/** Thrown when timer base values are not positive finite numbers or T2 < T1. */
export class TimerConfigError extends RangeError {
  override name = "TimerConfigError";
}

/**
 * Validates the base values (RFC 3261 §17.1.1.1: T1 MAY be changed, T2 and T4 likewise; this
 * implementation requires 0 < T1 <= T2 and T4 > 0).
 */
export function validateTimerBase(base: TimerBase): TimerBase {
  for (const key of ["t1", "t2", "t4"] as const) {
    const value = base[key];
    if (!Number.isFinite(value) || value <= 0) {
      throw new TimerConfigError(`${key.toUpperCase()} must be a positive number of ms`);
    }
  }
  if (base.t2 < base.t1) throw new TimerConfigError("T2 must not be smaller than T1");
  return base;
}

/**
 * Derives timers A–M from T1/T2/T4 for a reliable or unreliable transport (RFC 3261
 * Appendix A; RFC 6026 §8 for L and M).
 */
export function deriveTimers(base: TimerBase, reliable: boolean): TransactionTimers {
  validateTimerBase(base);
  const { t1, t2, t4 } = base;
  const sixtyFour = 64 * t1;
  return Object.freeze({
    reliable,
    t1,
    t2,
    t4,
    a: reliable ? 0 : t1,
    b: sixtyFour,
    // "Timer D ... MUST be set to at least 32 seconds for unreliable transports": 64*T1 with
    // the default T1 is exactly 32 s; keep at least 32 s even with a smaller T1.
    d: reliable ? 0 : Math.max(32_000, sixtyFour),
    e: reliable ? 0 : t1,
    f: sixtyFour,
    g: reliable ? 0 : t1,
    h: sixtyFour,
    i: reliable ? 0 : t4,
    j: reliable ? 0 : sixtyFour,
    k: reliable ? 0 : t4,
    l: sixtyFour,
    m: sixtyFour,
  });
}

/** True for transports that RFC 3261 §18 calls reliable (TCP, TLS, SCTP, WS). */
export function isReliableTransport(transport: string): boolean {
  return transport.toUpperCase() !== "UDP";
}
