/**
 * Key-frame requests through SIP (RFC 5168, XML schema for media control): an in-dialog INFO
 * with `application/media_control+xml` carrying `picture_fast_update`. The SFU uses it for a
 * video source that negotiated no RTCP feedback (no `nack pli`, no `ccm fir`, RFC 4585/5104),
 * whose sender would not hear an RTCP PLI. Linphone is such a source when it adds video by
 * re-INVITE after an audio-only answer (no `rtcp-fb` offered any more); liblinphone answers the
 * INFO by making its encoder send a key frame (`vfu_request` → `video_stream_send_vfu`).
 *
 * One request per call at a time. 491 (RFC 3261 §14.2: the device has an INVITE of its own in
 * progress — liblinphone answers so while its re-INVITE adding video awaits our ACK, which is
 * exactly when the first key frame is wanted) is retried after {@link RETRY_491_MS}, up to
 * {@link MAX_491_RETRIES} times; a call that refuses INFO or the body (405, 415, 469, 501 …)
 * is not asked again this way.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import type { InviteSession } from "../dialog/invite_session.ts";

/** Content type of RFC 5168 bodies. */
export const MEDIA_CONTROL_TYPE = "application/media_control+xml";

/** The RFC 5168 §3 body asking the sender's encoder for a full picture. */
export const PICTURE_FAST_UPDATE = [
  '<?xml version="1.0" encoding="utf-8" ?>',
  "<media_control>",
  "  <vc_primitive>",
  "    <to_encoder>",
  "      <picture_fast_update/>",
  "    </to_encoder>",
  "  </vc_primitive>",
  "</media_control>",
  "",
].join("\r\n");

const body = new TextEncoder().encode(PICTURE_FAST_UPDATE);

/** Wait before asking again after a 491. */
export const RETRY_491_MS = 500;
/** Retries after 491 for one request. */
export const MAX_491_RETRIES = 4;

/** Sends `picture_fast_update` INFOs for the calls of one conference; see the module docs. */
export class KeyFrameInfo {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #inFlight = new Set<string>();
  readonly #refused = new Set<string>();
  #sent = 0;

  constructor(clock: Clock, logger: Logger) {
    this.#clock = clock;
    this.#logger = logger;
  }

  /** INFO requests sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /**
   * Asks the call's device for a key frame, unless one request is pending or it refused.
   * `session` is looked up again for a retry (the call may have left).
   */
  request(callId: string, session: () => InviteSession | undefined, attempt = 0): void {
    const current = session();
    if (!current || current.state !== "confirmed") {
      if (attempt > 0) this.#inFlight.delete(callId);
      return;
    }
    if (this.#refused.has(callId) || (attempt === 0 && this.#inFlight.has(callId))) return;
    this.#inFlight.add(callId);
    this.#sent++;
    current.request("INFO", { body, contentType: MEDIA_CONTROL_TYPE }).then((response) => {
      if (response.status === 491 && attempt < MAX_491_RETRIES) {
        this.#clock.setTimer(RETRY_491_MS, () => {
          if (this.#inFlight.has(callId)) this.request(callId, session, attempt + 1);
        });
        return;
      }
      this.#inFlight.delete(callId);
      if (response.status >= 300 && response.status !== 491) {
        this.#refused.add(callId);
        this.#logger.info("picture_fast_update INFO refused", {
          call: callId,
          status: response.status,
        });
      }
    }, (error: unknown) => {
      this.#inFlight.delete(callId);
      this.#logger.debug("picture_fast_update INFO failed", {
        call: callId,
        error: String(error),
      });
    });
  }

  /** Forgets a call that left. */
  forget(callId: string): void {
    this.#inFlight.delete(callId);
    this.#refused.delete(callId);
  }
}
