/**
 * Scripted SIP steps against a running Conclave over TCP (on top of the test SipClient):
 * create a conference through the factory (RFC 4579 §5.1: 302 with the conference URI),
 * join it (RFC 4353 §5.3 dial-in), subscribe to its state (RFC 4575 §3), leave it (BYE),
 * and acknowledge non-2xx finals within their transaction (RFC 3261 §17.1.1.3).
 * @module
 */

import assert from "node:assert/strict";
import { SipRequest, type SipResponse } from "../../lib/sip/message.ts";
import { pcmuOffer, type SipClient, textOf } from "../_helpers/sip_client.ts";

/** The default factory URI of the daemon (`conference-factory-uris`). */
export const FACTORY = "sip:conference-factory@127.0.0.1";

let calls = 0;

/** A fresh Call-ID for one more dialog of `client`. */
export function newCallId(client: SipClient): string {
  return `${client.callId}-${++calls}`;
}

/** The URI inside the Contact header of a response. */
export function contactUri(r: SipResponse): string {
  const c = r.headers.get("Contact");
  assert.ok(c, `Contact present in ${r.status}`);
  const m = /<([^>]+)>/.exec(c);
  assert.ok(m?.[1], `Contact has a URI: ${c}`);
  return m[1];
}

/** The conference id (`conf-id` parameter) of a conference URI. */
export function confIdOf(uri: string): string {
  const m = /conf-id=([^;>]+)/.exec(uri);
  assert.ok(m?.[1], `conf-id in ${uri}`);
  return m[1];
}

/** ACK for a non-2xx final response: same branch as the INVITE (RFC 3261 §17.1.1.3). */
export async function ackFailure(client: SipClient, r: SipResponse, uri: string): Promise<void> {
  const lines = [
    `ACK ${uri} SIP/2.0`,
    `Via: ${r.headers.get("Via")}`,
    `From: ${r.headers.get("From")}`,
    `To: ${r.headers.get("To")}`,
    `Call-ID: ${r.callId}`,
    `CSeq: ${r.cseq.seq} ACK`,
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ];
  await client.peer.write(lines.join("\r\n"));
}

/** INVITE to the factory; returns the final response (already acknowledged). */
export async function factoryInvite(client: SipClient, subject = "e2e"): Promise<SipResponse> {
  const cseq = await client.sendRequest("INVITE", FACTORY, {
    body: pcmuOffer(40000),
    headers: [["Subject", subject]],
    callId: newCallId(client),
  });
  const r = await client.response(cseq, "INVITE");
  if (r.status >= 300) await ackFailure(client, r, FACTORY);
  return r;
}

/** Creates a conference (302) and returns its URI from the Contact. */
export async function createConference(client: SipClient, subject = "e2e"): Promise<string> {
  const r = await factoryInvite(client, subject);
  assert.equal(r.status, 302, `factory answered ${r.status} ${r.reason}`);
  assert.match(r.headers.get("Contact") ?? "", /;isfocus/);
  return contactUri(r);
}

/** A joined call: the 200 and its Call-ID. */
export interface JoinedCall {
  readonly response: SipResponse;
  readonly callId: string;
  /** The conference's RTP port for this call (from the SDP answer). */
  readonly mediaPort: number;
}

/** INVITE to a conference URI; returns the final response (non-2xx already acknowledged). */
export async function inviteConference(
  client: SipClient,
  uri: string,
  rtpPort: number,
  callId = newCallId(client),
): Promise<SipResponse> {
  const cseq = await client.sendRequest("INVITE", uri, { body: pcmuOffer(rtpPort), callId });
  const r = await client.response(cseq, "INVITE");
  if (r.status >= 300) await ackFailure(client, r, uri);
  return r;
}

/** Joins a conference: 200 with an audio answer, then ACK. */
export async function join(client: SipClient, uri: string, rtpPort: number): Promise<JoinedCall> {
  const callId = newCallId(client);
  const r = await inviteConference(client, uri, rtpPort, callId);
  assert.equal(r.status, 200, `join answered ${r.status} ${r.reason}`);
  assert.match(r.headers.get("Contact") ?? "", /isfocus/);
  const m = /m=audio ([1-9][0-9]*) RTP\/AVP 0/.exec(textOf(r));
  assert.ok(m?.[1], `audio answer in\n${textOf(r)}`);
  await client.ack(r, uri);
  return { response: r, callId, mediaPort: Number(m[1]) };
}

/** Sends an in-dialog request of a joined call (BYE, OPTIONS, re-INVITE); returns its final. */
export async function inDialog(
  client: SipClient,
  call: JoinedCall,
  uri: string,
  method: string,
  cseq: number,
  body?: string,
): Promise<SipResponse> {
  const sent = await client.sendRequest(method, contactUri(call.response), {
    callId: call.callId,
    to: uri,
    toTag: call.response.toTag!,
    cseq,
    ...(body !== undefined ? { body } : {}),
  });
  return await client.response(sent, method);
}

/** SUBSCRIBE Event: conference; returns the 2xx status and the first NOTIFY's version. */
export async function subscribe(
  client: SipClient,
  uri: string,
): Promise<{ status: number; version: number; body: string }> {
  const callId = newCallId(client);
  const cseq = await client.sendRequest("SUBSCRIBE", uri, {
    callId,
    headers: [
      ["Event", "conference"],
      ["Accept", "application/conference-info+xml"],
      ["Expires", "600"],
    ],
  });
  const r = await client.response(cseq, "SUBSCRIBE");
  if (r.status >= 300) return { status: r.status, version: NaN, body: "" };
  const notify = await client.take((m): m is SipRequest =>
    m instanceof SipRequest && m.method === "NOTIFY" && m.callId === callId
  );
  await client.answer(notify);
  const body = textOf(notify);
  return { status: r.status, version: Number(/version="(\d+)"/.exec(body)?.[1]), body };
}
