/**
 * The focus hangs up calls that last too long or carry no media: the call timeout (config
 * `call-timeout`) and the no-RTP timeout (config `no-rtp-timeout`), checked for devices meant to
 * send (our answer sendrecv; a held or listen-only device sends nothing, RFC 3264 §8.4). Either
 * ends the call with a BYE carrying a Reason (RFC 3326 §2). Time comes from the injected clock.
 * @module
 */

import type { Clock, TimerHandle } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { Call } from "./call.ts";

/** Longest interval between no-RTP checks; shorter timeouts are checked every timeout/2. */
const NO_RTP_CHECK_MS = 5000;

/** What the timers need from their conference. */
export interface CallTimersHost {
  readonly conferenceId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Call timeout in ms; 0 disables it. */
  readonly callTimeoutMs: number;
  /** No-RTP timeout in ms; 0 disables it. */
  readonly noRtpTimeoutMs: number;
  /** The conference's calls now. */
  calls(): readonly Call[];
  /** True while `call` is the device's current call. */
  isCurrent(call: Call): boolean;
  /** True once the conference ended. */
  ended(): boolean;
  /**
   * When the mix last received RTP from the call (undefined: never), or `null` when the mix
   * does not know the call (no audio conference yet, or the call is not in it).
   */
  lastRtpAt(call: Call): number | undefined | null;
}

/** The call-timeout timer of each call and one periodic no-RTP check for the conference. */
export class CallTimers {
  readonly #host: CallTimersHost;
  #rtpCheck: TimerHandle | undefined;

  constructor(host: CallTimersHost) {
    this.#host = host;
  }

  /** A call was answered: its call timeout starts, and the no-RTP check if not running. */
  arm(call: Call): void {
    const h = this.#host;
    if (h.callTimeoutMs > 0) {
      call.timeout = h.clock.setTimer(h.callTimeoutMs, () => {
        if (!h.isCurrent(call)) return;
        const session = call.session;
        h.logger.info("call timeout", { conference: h.conferenceId, device: call.deviceUri });
        void session?.bye([["Reason", 'SIP;cause=200;text="Call timeout"']]).catch(() => {});
      });
    }
    if (h.noRtpTimeoutMs > 0 && !this.#rtpCheck) this.#scheduleRtpCheck();
  }

  /** A call left (`remaining` calls stay): its timer stops, the check with the last call. */
  disarm(call: Call, remaining: number): void {
    call.timeout?.cancel();
    if (remaining === 0) this.stop();
  }

  /** Stops the no-RTP check (the conference ends or the server shuts down). */
  stop(): void {
    this.#rtpCheck?.cancel();
    this.#rtpCheck = undefined;
  }

  #scheduleRtpCheck(): void {
    const h = this.#host;
    const interval = Math.max(1, Math.min(NO_RTP_CHECK_MS, h.noRtpTimeoutMs / 2));
    this.#rtpCheck = h.clock.setTimer(interval, () => {
      this.#rtpCheck = undefined;
      if (h.ended()) return;
      const now = h.clock.now();
      for (const call of h.calls()) {
        // Only a device that is meant to send (sendrecv; not on hold, not listen-only).
        if (call.audio?.direction !== "sendrecv") continue;
        const last = h.lastRtpAt(call);
        if (last === null) continue;
        if (now - Math.max(last ?? -Infinity, call.rtpExpectedSince) > h.noRtpTimeoutMs) {
          h.logger.info("no RTP, hanging up", {
            conference: h.conferenceId,
            device: call.deviceUri,
          });
          void call.session?.bye([["Reason", 'SIP;cause=408;text="No RTP"']]).catch(() => {});
        }
      }
      if (h.calls().length > 0) this.#scheduleRtpCheck();
    });
  }
}
