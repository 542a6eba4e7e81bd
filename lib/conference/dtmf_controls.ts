/**
 * In-call controls typed on the keypad (RFC 4733 telephone-events): `*6` toggles the typing
 * device's mute via the focus (RFC 4575 §5.7 `muted-via-focus`), `*5` from an admin toggles
 * the conference lock (RFC 4353 §5.1 membership policy; RFC 4575 §5.4 `locked`). Plain phones
 * have no other way to reach conference policy: SIP has no standard lock request (CCMP,
 * RFC 6503, is HTTP), and Linphone 5.1 has no lock UI.
 * @module
 */

import type { Logger } from "../config/log.ts";
import { type DtmfDigitEvent, DtmfSequenceMatcher } from "../media/telephone_event.ts";
import type { Call } from "./call.ts";

/** DTMF sequence that toggles a participant's mute (as conference bridges do). */
export const MUTE_TOGGLE_SEQUENCE = "*6";

/** DTMF sequence with which an admin locks or unlocks the conference; see the module docs. */
export const LOCK_TOGGLE_SEQUENCE = "*5";

/** What the keypad controls act on. */
export interface DtmfControlsHost {
  readonly conferenceId: string;
  readonly logger: Logger;
  isAdmin(aor: string): boolean;
  /** Toggles the mute of the call's device. */
  toggleMute(call: Call): void;
  /** Toggles the conference lock on behalf of `by` (an admin's AOR). */
  toggleLock(by: string): void;
}

/**
 * A DTMF digit from a participant: `*6` toggles its mute via the focus; `*5` from an admin
 * toggles the conference lock (ignored, and logged, from others).
 */
export function onControlDigit(host: DtmfControlsHost, call: Call, event: DtmfDigitEvent): void {
  call.dtmf ??= new DtmfSequenceMatcher([MUTE_TOGGLE_SEQUENCE, LOCK_TOGGLE_SEQUENCE]);
  const sequence = call.dtmf.feed(event.digit, event.at);
  if (sequence === MUTE_TOGGLE_SEQUENCE) {
    host.toggleMute(call);
  } else if (sequence === LOCK_TOGGLE_SEQUENCE) {
    if (host.isAdmin(call.aor)) {
      host.toggleLock(call.aor);
    } else {
      host.logger.info("lock request from a non-admin ignored", {
        conference: host.conferenceId,
        device: call.deviceUri,
      });
    }
  }
}
