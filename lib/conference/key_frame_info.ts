/**
 * Key-frame requests through SIP (RFC 5168, XML schema for media control): an in-dialog INFO
 * with `application/media_control+xml` carrying `picture_fast_update`. The SFU uses it for a
 * video source that negotiated no RTCP feedback (no `nack pli`, no `ccm fir`, RFC 4585/5104),
 * whose sender would not hear an RTCP PLI. Linphone is such a source when it adds video by
 * re-INVITE after an audio-only answer (no `rtcp-fb` offered any more); liblinphone answers the
 * INFO by making its encoder send a key frame (`vfu_request` → `video_stream_send_vfu`).
 *
 * One request per call at a time; a call that refuses INFO or the body (RFC 5168 §4: 415,
 * 501, 405, 469, 489…) is not asked again this way.
 * @module
 */

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

/** Sends `picture_fast_update` INFOs for the calls of one conference; see the module docs. */
export class KeyFrameInfo {
  readonly #logger: Logger;
  readonly #inFlight = new Set<string>();
  readonly #refused = new Set<string>();
  #sent = 0;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** INFO requests sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Asks the call's device for a key frame, unless one request is pending or it refused. */
  request(callId: string, session: InviteSession | undefined): void {
    if (!session || session.state !== "confirmed") return;
    if (this.#inFlight.has(callId) || this.#refused.has(callId)) return;
    this.#inFlight.add(callId);
    this.#sent++;
    session.request("INFO", { body, contentType: MEDIA_CONTROL_TYPE }).then((response) => {
      if (response.status >= 300) {
        this.#refused.add(callId);
        this.#logger.info("picture_fast_update INFO refused", {
          call: callId,
          status: response.status,
        });
      }
    }, (error: unknown) => {
      this.#logger.debug("picture_fast_update INFO failed", { call: callId, error: String(error) });
    }).finally(() => this.#inFlight.delete(callId));
  }

  /** Forgets a call that left. */
  forget(callId: string): void {
    this.#inFlight.delete(callId);
    this.#refused.delete(callId);
  }
}
