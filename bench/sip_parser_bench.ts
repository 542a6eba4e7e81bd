/**
 * SIP message parse + serialize throughput on a typical INVITE with SDP (RFC 3261 §7), next
 * to a baseline that only decodes the same bytes and splits them into lines.
 */

import { StreamFramer } from "../lib/sip/framer.ts";
import { parseMessage, serializeMessage } from "../lib/sip/parser.ts";

const enc = new TextEncoder();
const sdp = [
  "v=0",
  "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
  "s=-",
  "c=IN IP4 192.0.2.10",
  "t=0 0",
  "m=audio 49170 RTP/AVP 96 0 8 101",
  "a=rtpmap:96 opus/48000/2",
  "a=fmtp:96 useinbandfec=1",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=sendrecv",
  "m=video 51372 RTP/AVP 97",
  "a=rtpmap:97 VP8/90000",
  "a=rtcp-fb:97 nack pli",
  "",
].join("\r\n");
const INVITE = enc.encode(
  [
    "INVITE sip:conference@focus.example.org;transport=tcp SIP/2.0",
    "Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK.f8a7s6d5;rport",
    "Via: SIP/2.0/TCP 198.51.100.1:5060;branch=z9hG4bK.proxy1;received=198.51.100.1",
    "Max-Forwards: 69",
    "Record-Route: <sip:198.51.100.1;transport=tcp;lr>",
    'From: "Alice Liddell" <sip:alice@example.org>;tag=9fxced76sl',
    "To: <sip:conference@focus.example.org>",
    "Call-ID: 3848276298220188511@192.0.2.10",
    "CSeq: 20 INVITE",
    'Contact: <sip:alice@192.0.2.10:5060;transport=tcp>;+sip.instance="<urn:uuid:1c1f2e9a-0000-4000-8000-0a0b0c0d0e0f>"',
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, UPDATE",
    "Supported: replaces, outbound, gruu, timer",
    "Session-Expires: 1800",
    "User-Agent: Linphone-Desktop/5.2 (belle-sip/5.2)",
    "Content-Type: application/sdp",
    `Content-Length: ${enc.encode(sdp).length}`,
    "",
    sdp,
  ].join("\r\n"),
);
const decoder = new TextDecoder();

Deno.bench({
  name: "baseline: TextDecoder + split into lines",
  group: "parse+serialize INVITE with SDP",
  baseline: true,
  fn() {
    const lines = decoder.decode(INVITE).split("\r\n");
    if (lines.length < 10) throw new Error("unexpected");
  },
});

Deno.bench({
  name: "parseMessage + serializeMessage",
  group: "parse+serialize INVITE with SDP",
  fn() {
    const out = serializeMessage(parseMessage(INVITE));
    if (out.length < INVITE.length - 10) throw new Error("unexpected");
  },
});

Deno.bench({
  name: "parseMessage only",
  group: "parse+serialize INVITE with SDP",
  fn() {
    parseMessage(INVITE);
  },
});

const STREAM = new Uint8Array(INVITE.length * 10);
for (let i = 0; i < 10; i++) STREAM.set(INVITE, i * INVITE.length);

Deno.bench({
  name: "baseline: TextDecoder + split, 10 messages",
  group: "frame 10 INVITEs from one TCP chunk",
  baseline: true,
  fn() {
    decoder.decode(STREAM).split("\r\n\r\n");
  },
});

Deno.bench({
  name: "StreamFramer.push",
  group: "frame 10 INVITEs from one TCP chunk",
  fn() {
    if (new StreamFramer().push(STREAM).length !== 10) throw new Error("unexpected");
  },
});
