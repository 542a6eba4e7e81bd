/**
 * Scripted group chat interactions over real TCP (liblinphone's client side of a chat room,
 * as Linphone 5.1 puts it on the wire): create a room through the factory (INVITE with
 * `Require: recipient-list-invite` and an RFC 4826 list, 302), open it (INVITE to the room with
 * the same list), join, subscribe and answer the first NOTIFY (the device is then present),
 * send a MESSAGE to the room, take a relayed MESSAGE, prove none is pending.
 * @module
 */

import assert from "node:assert/strict";
import { type SipMessage, SipRequest, SipResponse } from "../../lib/sip/message.ts";
import {
  ackFailure,
  contactOf,
  FACTORY,
  freshCallId,
  notifyOf,
  subscribeConference,
} from "./conference_steps.ts";
import { SipClient } from "./sip_client.ts";

/** A resource list of `aors` (RFC 4826), as Linphone 5.1 writes it. */
export function resourceList(aors: readonly string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>',
    '<p1:resource-lists xmlns:p1="urn:ietf:params:xml:ns:resource-lists">',
    "  <p1:list>",
    ...aors.map((a) => `    <p1:entry uri="${a}"/>`),
    "  </p1:list>",
    "</p1:resource-lists>",
    "",
  ].join("\n");
}

/** A test UA with a GRUU in its Contact (what a registered Linphone device has). */
export async function chatClient(user: string, port: number): Promise<SipClient> {
  const client = await SipClient.connect(user, port);
  client.gr = `urn:uuid:${crypto.randomUUID()}`;
  return client;
}

/** The GRUU the server keys this device by: `<aor>;gr=<instance>`. */
export function gruuOf(client: SipClient): string {
  return `${client.aor};gr=${client.gr}`;
}

/** Factory INVITE for a chat room; returns the final response (non-2xx acknowledged). */
export async function factoryChatInvite(
  client: SipClient,
  participants: readonly string[],
  o: { subject?: string; oneToOne?: boolean; factory?: string } = {},
): Promise<SipResponse> {
  const factory = o.factory ?? FACTORY;
  const cseq = await client.sendRequest("INVITE", factory, {
    callId: freshCallId(client),
    contentType: "application/resource-lists+xml",
    body: resourceList(participants),
    headers: [
      ["Subject", o.subject ?? "Chat"],
      ["Require", "recipient-list-invite"],
      ["Content-Disposition", "recipient-list"],
      ...(o.oneToOne ? [["One-To-One-Chat-Room", "true"] as [string, string]] : []),
    ],
  });
  const r = await client.response(cseq, "INVITE");
  if (r.status >= 300) await ackFailure(client, r, factory);
  return r;
}

/** A media-less session with the room, client side. */
export interface RoomSession {
  readonly room: string;
  readonly callId: string;
  readonly response: SipResponse;
  cseq: number;
}

/** INVITE to the room (with a list when creating); returns the final response. */
export async function inviteRoom(
  client: SipClient,
  room: string,
  participants?: readonly string[],
): Promise<{ response: SipResponse; session: RoomSession }> {
  const callId = freshCallId(client);
  const cseq = await client.sendRequest("INVITE", room, {
    callId,
    ...(participants
      ? {
        contentType: "application/resource-lists+xml",
        body: resourceList(participants),
        headers: [["Require", "recipient-list-invite"], ["Subject", "Chat"]] as Array<
          [string, string]
        >,
      }
      : {}),
  });
  const response = await client.response(cseq, "INVITE");
  if (response.status >= 300) await ackFailure(client, response, room);
  else if (response.status >= 200) await client.ack(response, room);
  return { response, session: { room, callId, response, cseq: cseq + 1 } };
}

/** Creates a room (302) and opens it (200); returns the room URI and the creator's session. */
export async function createRoom(
  client: SipClient,
  participants: readonly string[],
  o: { subject?: string; oneToOne?: boolean } = {},
): Promise<{ room: string; session: RoomSession }> {
  const r = await factoryChatInvite(client, participants, o);
  assert.equal(r.status, 302, `factory answered ${r.status} ${r.reason}`);
  const room = contactOf(r);
  const { response, session } = await inviteRoom(client, room, participants);
  assert.equal(response.status, 200, `room answered ${response.status} ${response.reason}`);
  assert.match(response.headers.get("Contact") ?? "", /isfocus/);
  assert.equal(response.body.length, 0, "no SDP in a chat room's 200");
  return { room, session };
}

/** Joins a room (INVITE without body, 200). */
export async function joinRoom(client: SipClient, room: string): Promise<RoomSession> {
  const { response, session } = await inviteRoom(client, room);
  assert.equal(response.status, 200, `join answered ${response.status} ${response.reason}`);
  return session;
}

/** Subscribes to the room and answers the first NOTIFY 200: the device is present. */
export async function becomePresent(client: SipClient, room: string): Promise<SipRequest> {
  const { response, subscription } = await subscribeConference(client, room);
  assert.equal(response.status, 200, `SUBSCRIBE answered ${response.status} ${response.reason}`);
  return await notifyOf(client, subscription.callId);
}

/** A CPIM message (RFC 3862) as Linphone sends it, with an IMDN Message-ID. */
export function cpim(from: string, to: string, text: string, id = `id-${text}`): string {
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    "DateTime: 2026-06-01T10:00:00Z",
    "NS: imdn <urn:ietf:params:imdn>",
    `imdn.Message-ID: ${id}`,
    "imdn.Disposition-Notification: positive-delivery, display",
    "",
    "Content-Type: text/plain;charset=UTF-8",
    "",
    text,
  ].join("\r\n");
}

/** Sends a MESSAGE to the room; returns the final response. */
export async function sendChat(
  client: SipClient,
  room: string,
  body: string,
  contentType = "message/cpim",
): Promise<SipResponse> {
  const cseq = await client.sendRequest("MESSAGE", room, {
    callId: freshCallId(client),
    body,
    contentType,
  });
  return await client.response(cseq, "MESSAGE");
}

/** The next MESSAGE the server relays to `client`, answered with `status`. */
export async function receiveChat(client: SipClient, status = 200): Promise<SipRequest> {
  const m = await client.request("MESSAGE");
  await client.answer(m, status);
  return m;
}

/** Proves that no MESSAGE is waiting for `client` (an OPTIONS round trip is the barrier). */
export async function assertNoChat(client: SipClient): Promise<void> {
  const cseq = await client.sendRequest("OPTIONS", FACTORY, { callId: freshCallId(client) });
  const first = await client.take((m: SipMessage) =>
    (m instanceof SipRequest && m.method === "MESSAGE") ||
    (m instanceof SipResponse && m.cseq.method === "OPTIONS" && m.cseq.seq === cseq)
  );
  if (first instanceof SipRequest) {
    await client.answer(first);
    assert.fail(`unexpected MESSAGE to ${client.user}`);
  }
}

/** Sends an in-dialog request of a room session; returns its final response. */
export async function inRoomSession(
  client: SipClient,
  s: RoomSession,
  method: string,
  headers: Array<[string, string]> = [],
): Promise<SipResponse> {
  const cseq = await client.sendRequest(method, contactOf(s.response), {
    callId: s.callId,
    to: s.room,
    toTag: s.response.toTag!,
    cseq: s.cseq++,
    headers,
  });
  return await client.response(cseq, method);
}
