/**
 * Scripted focus interactions over real TCP for conference integration tests, on top of
 * {@link SipClient}: create a conference through the factory (RFC 4579 §5.1, 302), join it
 * (RFC 4353 §5.3), send in-dialog requests, subscribe to `conference` (RFC 4575 §3 over
 * RFC 6665), take the NOTIFYs of one subscription, prove that none is pending, and read the
 * conference-info bodies (validated against the RFC 4575 schema structure).
 * @module
 */

import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import {
  parseConferenceInfo,
  type ParsedConferenceInfo,
} from "../../lib/events/conference_info_parser.ts";
import { parseXml } from "../../lib/events/xml_tree.ts";
import { type SipMessage, SipRequest, SipResponse } from "../../lib/sip/message.ts";
import { validateConferenceInfo } from "../events/conference_info_schema.ts";
import { pcmuOffer, type SipClient, textOf } from "./sip_client.ts";

/** The default factory URI of the test server (`conference-factory-uris`). */
export const FACTORY = "sip:conference-factory@127.0.0.1";

let dialogs = 0;

/** A fresh Call-ID for one more dialog of `client`. */
export function freshCallId(client: SipClient): string {
  return `${client.callId}-d${++dialogs}`;
}

/** The URI inside the Contact header of a message. */
export function contactOf(m: SipMessage): string {
  const c = m.headers.get("Contact");
  assert.ok(c, "Contact present");
  const uri = /<([^>]+)>/.exec(c)?.[1];
  assert.ok(uri, `Contact has a URI: ${c}`);
  return uri;
}

/** ACK for a non-2xx final response to INVITE, in its transaction (RFC 3261 §17.1.1.3). */
export async function ackFailure(client: SipClient, r: SipResponse, uri: string): Promise<void> {
  await client.peer.write(
    [
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
    ].join("\r\n"),
  );
}

/** Creates a conference through the factory (302) and returns the conference URI. */
export async function createConference(client: SipClient, subject = "Standup"): Promise<string> {
  const cseq = await client.sendRequest("INVITE", FACTORY, {
    body: pcmuOffer(40000),
    headers: [["Subject", subject]],
    callId: freshCallId(client),
  });
  const r = await client.response(cseq, "INVITE");
  assert.equal(r.status, 302, `factory answered ${r.status} ${r.reason}`);
  await ackFailure(client, r, FACTORY);
  return contactOf(r);
}

/** A call with the focus, as the client sees it. */
export interface FocusCall {
  readonly conference: string;
  readonly callId: string;
  readonly response: SipResponse;
  /** The focus's RTP port for this call (from its SDP answer). */
  readonly mediaPort: number;
  /** Next CSeq number for in-dialog requests. */
  cseq: number;
}

/** INVITE to a conference URI with a PCMU offer; returns the final (non-2xx acknowledged). */
export async function invite(
  client: SipClient,
  conference: string,
  rtpPort: number,
  callId = freshCallId(client),
  extra: { headers?: Array<[string, string]>; routes?: string[] } = {},
): Promise<SipResponse> {
  const cseq = await client.sendRequest("INVITE", conference, {
    body: pcmuOffer(rtpPort),
    callId,
    ...(extra.headers ? { headers: extra.headers } : {}),
    ...(extra.routes ? { routes: extra.routes } : {}),
  });
  const r = await client.response(cseq, "INVITE");
  if (r.status >= 300) await ackFailure(client, r, conference);
  return r;
}

/** Joins: 200 with an SDP answer, then ACK. */
export async function joinConference(
  client: SipClient,
  conference: string,
  rtpPort: number,
  extra: { headers?: Array<[string, string]>; routes?: string[] } = {},
): Promise<FocusCall> {
  const callId = freshCallId(client);
  const r = await invite(client, conference, rtpPort, callId, extra);
  assert.equal(r.status, 200, `join answered ${r.status} ${r.reason}`);
  assert.match(r.headers.get("Contact") ?? "", /isfocus/);
  const port = /m=audio ([1-9][0-9]*) /.exec(textOf(r))?.[1];
  assert.ok(port, `audio answer in\n${textOf(r)}`);
  await client.ack(r, conference);
  return { conference, callId, response: r, mediaPort: Number(port), cseq: 10 };
}

/** Sends a request in the dialog of a call; returns its final response. */
export async function inCall(
  client: SipClient,
  call: FocusCall,
  method: string,
  body?: string,
): Promise<SipResponse> {
  const sent = await client.sendRequest(method, contactOf(call.response), {
    callId: call.callId,
    to: call.conference,
    toTag: call.response.toTag!,
    cseq: call.cseq++,
    ...(body !== undefined ? { body } : {}),
  });
  return await client.response(sent, method);
}

/** ACK for a 2xx to a re-INVITE of a call. */
export async function ackReinvite(client: SipClient, r: SipResponse): Promise<void> {
  await client.ack(r, contactOf(r));
}

/** The next BYE the focus sends in a call's dialog (answered 200). */
export async function byeOf(client: SipClient, call: FocusCall): Promise<SipRequest> {
  const bye = await client.take((m): m is SipRequest =>
    m instanceof SipRequest && m.method === "BYE" && m.callId === call.callId
  );
  await client.answer(bye);
  return bye;
}

/** A subscription to a conference, subscriber side. */
export interface ConferenceSubscription {
  readonly conference: string;
  readonly callId: string;
  readonly response: SipResponse;
  cseq: number;
}

/**
 * SUBSCRIBE `Event: conference` (RFC 4575 §3.1) with extra headers (Expires defaults to 600).
 * Returns the response; for a 2xx also the subscription (its NOTIFYs are not taken).
 */
export async function subscribeConference(
  client: SipClient,
  conference: string,
  headers: Array<[string, string]> = [],
  event = "conference",
): Promise<{ response: SipResponse; subscription: ConferenceSubscription }> {
  const callId = freshCallId(client);
  const all: Array<[string, string]> = [
    ["Event", event],
    ["Accept", "application/conference-info+xml"],
    ...(headers.some(([n]) => n.toLowerCase() === "expires") ? [] : [["Expires", "600"]] as [
      string,
      string,
    ][]),
    ...headers,
  ];
  const cseq = await client.sendRequest("SUBSCRIBE", conference, { callId, headers: all });
  const response = await client.response(cseq, "SUBSCRIBE");
  return { response, subscription: { conference, callId, response, cseq: cseq + 1 } };
}

/** An in-dialog SUBSCRIBE (refresh, or unsubscribe with 0) (RFC 6665 §4.1.2.2, §4.1.2.3). */
export async function resubscribe(
  client: SipClient,
  sub: ConferenceSubscription,
  expires: number,
): Promise<SipResponse> {
  const cseq = await client.sendRequest("SUBSCRIBE", contactOf(sub.response), {
    callId: sub.callId,
    to: sub.conference,
    toTag: sub.response.toTag!,
    cseq: sub.cseq++,
    headers: [["Event", "conference"], ["Expires", String(expires)]],
  });
  return await client.response(cseq, "SUBSCRIBE");
}

/** The next NOTIFY of the dialog `callId`, answered with `status`. */
export async function notifyOf(
  client: SipClient,
  callId: string,
  status = 200,
): Promise<SipRequest> {
  const n = await client.take((m): m is SipRequest =>
    m instanceof SipRequest && m.method === "NOTIFY" && m.callId === callId
  );
  await client.answer(n, status);
  return n;
}

/**
 * Proves that no NOTIFY of `callId` is waiting: an OPTIONS round trip on the same connection
 * is a barrier (what the server sent before answering it arrived before its answer).
 */
export async function assertNoNotify(client: SipClient, callId: string): Promise<void> {
  const cseq = await client.sendRequest("OPTIONS", FACTORY, { callId: freshCallId(client) });
  const first = await client.take((m) =>
    (m instanceof SipRequest && m.method === "NOTIFY" && m.callId === callId) ||
    (m instanceof SipResponse && m.cseq.method === "OPTIONS" && m.cseq.seq === cseq)
  );
  if (first instanceof SipRequest) {
    await client.answer(first);
    assert.fail(
      `unexpected NOTIFY (${first.headers.get("Subscription-State")}):\n${textOf(first)}`,
    );
  }
}

/**
 * An OPTIONS round trip on the client's connection: once it returns, the server has read
 * everything the client wrote before (e.g. answers to NOTIFYs), so a stepped clock can be
 * advanced without racing them.
 */
export async function roundTrip(client: SipClient): Promise<void> {
  const cseq = await client.sendRequest("OPTIONS", FACTORY, { callId: freshCallId(client) });
  const r = await client.response(cseq, "OPTIONS");
  assert.equal(r.status, 200);
}

/** The conference-info document of a NOTIFY (inflated when deflated), schema-checked. */
export function conferenceInfoOf(n: SipRequest): { xml: string; info: ParsedConferenceInfo } {
  assert.match(n.headers.get("Event") ?? "", /^conference/);
  assert.equal(n.contentType, "application/conference-info+xml");
  const encoding = n.headers.get("Content-Encoding");
  const xml = encoding === "deflate" ? new TextDecoder().decode(inflateSync(n.body)) : textOf(n);
  const problems = validateConferenceInfo(parseXml(xml));
  assert.deepEqual(problems, [], `schema problems in\n${xml}`);
  return { xml, info: parseConferenceInfo(xml) };
}
