/**
 * Session timers (RFC 4028) as pure values: reading `Session-Expires`, the UAS's choice of
 * refresher (§9), and when the refresher refreshes (§7.4, §9: half the interval) or the other
 * side gives up (§10: the interval minus min(32 s, a third of it)).
 * @module
 */

import type { SipRequest, SipResponse } from "../sip/message.ts";
import { optionTags } from "./user_agent.ts";

/** Who refreshes the session (RFC 4028 §4 `refresher` parameter). */
export type Refresher = "uac" | "uas";

/** A `Session-Expires` value (RFC 4028 §4): interval in seconds, refresher if named. */
export interface SessionExpires {
  readonly seconds: number;
  readonly refresher: Refresher | undefined;
}

/** The session timer agreed for a session (RFC 4028 §7.2, §9). */
export interface SessionTimer {
  readonly seconds: number;
  readonly refresher: Refresher;
}

/**
 * Parses `Session-Expires: delta-seconds *(;se-params)` (RFC 4028 §4); undefined when absent,
 * malformed or zero.
 */
export function parseSessionExpires(value: string | undefined): SessionExpires | undefined {
  if (value === undefined) return undefined;
  const m = /^[ \t]*([0-9]{1,10})[ \t]*((?:;[^;]*)*)$/.exec(value);
  if (m === null) return undefined;
  const seconds = Number(m[1]);
  if (!(seconds > 0)) return undefined;
  let refresher: Refresher | undefined;
  for (const param of (m[2] ?? "").split(";")) {
    const [name, v] = param.split("=").map((s) => s.trim().toLowerCase());
    if (name === "refresher" && (v === "uac" || v === "uas")) refresher = v;
  }
  return { seconds, refresher };
}

/**
 * The UAS's 2xx headers for a request carrying `Session-Expires` (RFC 4028 §9), following its
 * table: a UAC without `Supported: timer` gets `refresher=uas`; otherwise the requested
 * refresher is kept, `uac` when none was named. `Require: timer` goes with it whenever the UAC
 * supports timers ("MUST" for `uac`, "SHOULD" for `uas`). Undefined without a valid header.
 */
export function answerSessionTimer(
  request: SipRequest,
): { timer: SessionTimer; headers: Array<readonly [string, string]> } | undefined {
  const se = parseSessionExpires(request.headers.get("Session-Expires"));
  if (se === undefined) return undefined;
  const supported = optionTags(request.headers.getAll("Supported")).includes("timer");
  const refresher: Refresher = supported ? (se.refresher ?? "uac") : "uas";
  const headers: Array<readonly [string, string]> = [
    ["Session-Expires", `${se.seconds};refresher=${refresher}`],
  ];
  if (supported) headers.push(["Require", "timer"]);
  return { timer: { seconds: se.seconds, refresher }, headers };
}

/**
 * The timer a 2xx to our own INVITE or UPDATE sets (RFC 4028 §7.2): its `Session-Expires`,
 * with `uac` (us) as refresher when it names none. Undefined when the 2xx has none.
 */
export function timerFromResponse(response: SipResponse): SessionTimer | undefined {
  const se = parseSessionExpires(response.headers.get("Session-Expires"));
  if (se === undefined) return undefined;
  return { seconds: se.seconds, refresher: se.refresher ?? "uac" };
}

/** When the refresher sends its refresh (RFC 4028 §10: "half the session interval"). */
export function refreshDelayMs(seconds: number): number {
  return (seconds * 1000) / 2;
}

/**
 * When the side that does not refresh gives up (RFC 4028 §10: BYE "before the session
 * expiration ... the minimum of 32 seconds and one third of the session interval").
 */
export function expiryDelayMs(seconds: number): number {
  return (seconds - Math.min(32, seconds / 3)) * 1000;
}
