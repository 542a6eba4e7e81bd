/**
 * The devices of a group chat room: how a request names the device that sent it (its GRUU,
 * RFC 5627 §3.1, as Linphone puts it in the From of MESSAGE and SUBSCRIBE and in the Contact
 * of INVITE), and the runtime state the room keeps for each device.
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import type { InviteSession } from "../dialog/invite_session.ts";
import { parseNameAddr } from "../sip/headers.ts";
import type { SipRequest, SipResponse } from "../sip/message.ts";
import { formatUri, type SipUri } from "../sip/uri.ts";
import { addressOfRecord } from "./conference_uri.ts";

/** Runtime state of one device of a chat room (keyed by its GRUU, RFC 5627 §3.1). */
export interface ChatDevice {
  /** Its GRUU (`<aor>;gr=<instance>`, RFC 5627 §3.1): the key in the roster and the store. */
  readonly uri: string;
  readonly aor: string;
  /** Where requests for it go: the Contact it last used, else its GRUU (via the proxy). */
  target: string;
  /**
   * The address the device knows the room by as its own (the To of the INVITE that brought it
   * in: the AOR when the focus could only invite the AOR through the proxy, else its GRUU).
   * liblinphone finds a chat room by (From = room, To = that address): it is the To of relayed
   * MESSAGEs, and a MESSAGE whose From is it comes from this device.
   */
  localAddress: string | undefined;
  session: InviteSession | undefined;
  /** Its first conference NOTIFY got a 2xx (or it was present before a restart). */
  present: boolean;
  pumping: boolean;
  again: boolean;
  retry: TimerHandle | undefined;
}

/** The URI of a message's Contact (RFC 3261 §20.10); undefined when absent or malformed. */
export function contactUri(request: SipRequest | SipResponse): SipUri | undefined {
  const contact = request.headers.get("Contact");
  if (contact === undefined) return undefined;
  try {
    return parseNameAddr(contact, "Contact").uri;
  } catch {
    return undefined;
  }
}

/** The GRUU of a device of `aor` whose URI carries `gr` (RFC 5627 §3.1). */
export function gruuOf(aor: string, uri: SipUri): string | undefined {
  const gr = uri.params.get("gr");
  return gr === undefined || gr === null || gr === "" ? undefined : `${aor};gr=${gr}`;
}

/** A device as a request names it: its GRUU and where to reach it (RFC 5627 §3.1). */
export interface ChatDeviceAddress {
  /** `<aor>;gr=<instance>` (the From AOR with the `gr` of the From or Contact URI). */
  readonly gruu: string;
  /** The Contact URI of the request, else the GRUU. */
  readonly target: string;
}

/**
 * The device of a request's sender (RFC 5627): Linphone puts its GRUU in the From of MESSAGE
 * and SUBSCRIBE and in the Contact of INVITE. Undefined when neither carries `gr`.
 */
export function chatDeviceOf(request: SipRequest): ChatDeviceAddress | undefined {
  const aor = addressOfRecord(request.from.uri);
  const contact = contactUri(request);
  const gruu = gruuOf(aor, request.from.uri) ?? (contact ? gruuOf(aor, contact) : undefined);
  if (gruu === undefined) return undefined;
  return { gruu, target: contact ? formatUri(contact) : gruu };
}
