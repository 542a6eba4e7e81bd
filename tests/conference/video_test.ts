/**
 * Video conferences through the whole server over real sockets (issue #4 "media changes",
 * product spec "Video: a Selective Forwarding Unit"): VP8 offers are answered with VP8, the
 * feedback both sides know, `a=label` and `a=ssrc`; a participant's VP8 reaches the others
 * rewritten to the SSRC the focus announced to each; a receive-only line with `a=label`
 * selects that participant's stream; conference-info shows video media (label, src-id,
 * status) and available-media video; and the first camera makes the focus re-INVITE the
 * video-capable participants (their `m=video 0` slot reused, o= version raised), not the
 * ones that never offered video, while the last camera leaving removes video again. A source
 * without RTCP feedback (Linphone's video added by re-INVITE) is asked for key frames with an
 * RFC 5168 `picture_fast_update` INFO.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import type { ConferenceSnapshot } from "../../lib/events/conference_info.ts";
import { applyPartial } from "../../lib/events/conference_info_parser.ts";
import { createResponse, SipRequest, SipResponse } from "../../lib/sip/message.ts";
import {
  ackReinvite,
  conferenceInfoOf,
  createConference,
  FACTORY,
  type FocusCall,
  freshCallId,
  inCall,
  notifyOf,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { RtpPeer } from "../_helpers/rtp_peer.ts";
import { type SipClient, SipClient as Client, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

type Video =
  | { port: number; direction?: string; label?: string; ssrc?: number; feedback?: false }
  | "disabled"
  | undefined;

/** An audio (PCMU) offer with an optional VP8 line (port 0 = "I can, not now"). */
function avOffer(audioPort: number, video: Video, version = 1): string {
  const lines = [
    "v=0",
    `o=test ${audioPort} ${version} IN IP4 127.0.0.1`,
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    `m=audio ${audioPort} RTP/AVP 0`,
    "a=rtpmap:0 PCMU/8000",
    "a=sendrecv",
  ];
  if (video === "disabled") lines.push("m=video 0 RTP/AVP 96", "a=rtpmap:96 VP8/90000");
  else if (video !== undefined) {
    lines.push(
      `m=video ${video.port} RTP/AVP 96`,
      "a=rtpmap:96 VP8/90000",
      ...(video.feedback === false
        ? []
        : ["a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 ccm fir"]),
      "a=rtcp-mux",
      `a=${video.direction ?? "sendrecv"}`,
      ...(video.label ? [`a=label:${video.label}`] : []),
      ...(video.ssrc ? [`a=ssrc:${video.ssrc} cname:test`] : []),
    );
  }
  return [...lines, ""].join("\r\n");
}

/** The focus's video line in an SDP: port, label, SSRC. */
function videoOf(sdp: string): { port: number; label?: string; ssrc?: number; text: string } {
  const at = sdp.indexOf("m=video");
  assert.ok(at >= 0, `no m=video in\n${sdp}`);
  const text = sdp.slice(at);
  const port = Number(/^m=video (\d+)/.exec(text)![1]);
  const label = /^a=label:(\S+)/m.exec(text)?.[1];
  const ssrc = /^a=ssrc:(\d+)/m.exec(text)?.[1];
  return {
    port,
    ...(label ? { label } : {}),
    ...(ssrc ? { ssrc: Number(ssrc) } : {}),
    text,
  };
}

/** Joins with a custom offer; returns the call and the answer. */
async function join(client: SipClient, conference: string, offer: string): Promise<FocusCall> {
  const callId = freshCallId(client);
  const cseq = await client.sendRequest("INVITE", conference, { body: offer, callId });
  const r = await client.response(cseq, "INVITE");
  assert.equal(r.status, 200, `join answered ${r.status} ${r.reason}`);
  await client.ack(r, conference);
  return {
    conference,
    callId,
    response: r,
    mediaPort: Number(/m=audio (\d+)/.exec(textOf(r))![1]),
    cseq: 10,
  };
}

/** A VP8 packet whose payload is a key frame tagged with `tag` (to tell sources apart). */
function vp8(peer: RtpPeer, to: number, ssrc: number, seq: number, tag: number): Promise<void> {
  return peer.sendRtp(to, {
    payloadType: 96,
    sequenceNumber: seq,
    timestamp: seq * 3000,
    ssrc,
    marker: true,
    payload: new Uint8Array([0x10, 0x50, 0, 0, 0x9d, 0x01, 0x2a, tag, tag]),
  });
}

/** Waits for a re-INVITE from the focus in `call`'s dialog. */
function reinviteOf(client: SipClient, call: FocusCall): Promise<SipRequest> {
  return client.take((m): m is SipRequest =>
    m instanceof SipRequest && m.method === "INVITE" && m.callId === call.callId
  );
}

/** Answers the focus's re-INVITE with an SDP answer, and takes the ACK. */
async function answerReinvite(client: SipClient, request: SipRequest, sdp: string) {
  await client.send(createResponse(request, 200, undefined, {
    headers: [["Contact", client.contact], ["Content-Type", "application/sdp"]],
    body: new TextEncoder().encode(sdp),
  }));
  await client.take((m) => m instanceof SipRequest && m.method === "ACK");
}

async function clients(port: number): Promise<[SipClient, SipClient, SipClient, SipClient]> {
  return [
    await Client.connect("alice", port),
    await Client.connect("bob", port),
    await Client.connect("carol", port),
    await Client.connect("watcher", port),
  ];
}

function media(snapshot: ConferenceSnapshot, user: string) {
  const u = snapshot.users.find((x) => x.entity === `sip:${user}@example.org`);
  assert.ok(u, `user ${user}`);
  return u.endpoints[0]!.media;
}

Deno.test("video: VP8 answered with label/ssrc/feedback; forwarded with the focus's SSRC per receiver; a=label pins a stream; conference-info shows labels and src-id", async () => {
  const srv = await startTestServer();
  const [alice, bob, carol, watcher] = await clients(srv.port);
  const peers = Array.from({ length: 6 }, () => new RtpPeer());
  const [aA, aV, bA, bV, cA, cV] = peers as [RtpPeer, RtpPeer, RtpPeer, RtpPeer, RtpPeer, RtpPeer];
  try {
    const conference = await createConference(alice);
    const a = await join(alice, conference, avOffer(aA.port, { port: aV.port, ssrc: 0xa11ce }));
    const aAns = videoOf(textOf(a.response));
    assert.ok(aAns.port > 0, "video accepted");
    assert.match(aAns.text, /^a=rtpmap:96 VP8\/90000/m);
    assert.match(aAns.text, /^a=rtcp-fb:96 nack pli/m);
    assert.match(aAns.text, /^a=rtcp-fb:96 ccm fir/m);
    assert.match(aAns.text, /^a=sendrecv/m);
    assert.ok(aAns.label && aAns.ssrc, "label and ssrc announced");
    const b = await join(bob, conference, avOffer(bA.port, { port: bV.port, ssrc: 0xb0b }));
    const bAns = videoOf(textOf(b.response));
    assert.notEqual(bAns.label, aAns.label);

    // Alice's VP8 reaches Bob with the SSRC the focus announced to Bob, and vice versa.
    await vp8(aV, aAns.port, 0xa11ce, 100, 0xaa);
    const atBob = await bV.nextRtp();
    assert.equal(atBob.ssrc, bAns.ssrc);
    assert.equal(atBob.payloadType, 96);
    assert.equal(atBob.payload[7], 0xaa);
    assert.equal(atBob.fromPort, bAns.port);
    await vp8(bV, bAns.port, 0xb0b, 500, 0xbb);
    const atAlice = await aV.nextRtp();
    assert.equal(atAlice.ssrc, aAns.ssrc);
    assert.equal(atAlice.payload[7], 0xbb);

    // Carol only views, and picks Bob's stream by its label (Alice sent first).
    const c = await join(
      carol,
      conference,
      avOffer(cA.port, { port: cV.port, direction: "recvonly", label: bAns.label! }),
    );
    const cAns = videoOf(textOf(c.response));
    assert.match(cAns.text, /^a=sendonly/m);
    assert.match(cAns.text, new RegExp(`^a=label:${bAns.label}`, "m"), "the label is echoed");
    await vp8(aV, aAns.port, 0xa11ce, 101, 0xa1);
    await vp8(bV, bAns.port, 0xb0b, 501, 0xb1);
    const atCarol = await cV.nextRtp();
    assert.equal(atCarol.payload[7], 0xb1, "Carol gets Bob's stream");
    assert.equal(atCarol.ssrc, cAns.ssrc);
    assert.equal((await bV.nextRtp()).payload[7], 0xa1, "the focus handled Alice's packet");
    assert.equal(cV.rtp.drain().filter((p) => p.payload[7] === 0xa1).length, 0);

    // conference-info: video media with label, src-id and status; available-media video.
    const { subscription } = await subscribeConference(watcher, conference);
    const full = conferenceInfoOf(await notifyOf(watcher, subscription.callId)).info.snapshot!;
    assert.ok(full.availableMedia.some((m) => m.type === "video" && m.label === "2"));
    assert.deepEqual(media(full, "alice").find((m) => m.type === "video"), {
      id: "2",
      type: "video",
      label: aAns.label,
      srcId: String(0xa11ce),
      status: "sendrecv",
    });
    assert.deepEqual(media(full, "carol").find((m) => m.type === "video"), {
      id: "2",
      type: "video",
      status: "sendonly",
    }, "a selecting line advertises no label of its own");
  } finally {
    for (const p of peers) await p.close();
    for (const cl of [alice, bob, carol, watcher]) await cl.close();
    await srv.stop();
  }
});

Deno.test("video: the first camera re-INVITEs the video-capable (m=video 0) participant, not the audio-only one; the last camera leaving removes video again", async () => {
  const srv = await startTestServer();
  const [alice, bob, carol, watcher] = await clients(srv.port);
  const peers = Array.from({ length: 5 }, () => new RtpPeer());
  const [aA, aV, bA, bV, cA] = peers as [RtpPeer, RtpPeer, RtpPeer, RtpPeer, RtpPeer];
  try {
    const conference = await createConference(alice);
    const a = await join(alice, conference, avOffer(aA.port, "disabled"));
    assert.match(textOf(a.response), /^m=video 0 /m);
    const b = await join(bob, conference, avOffer(bA.port, "disabled"));
    const c = await join(carol, conference, avOffer(cA.port, undefined));
    assert.doesNotMatch(textOf(c.response), /m=video/);
    const { subscription } = await subscribeConference(watcher, conference);
    const first = conferenceInfoOf(await notifyOf(watcher, subscription.callId)).info;
    let state = first.snapshot!;
    assert.ok(!state.availableMedia.some((m) => m.type === "video"), "no video yet");

    // Alice turns her camera on (re-INVITE, RFC 3264 §8).
    const r = await inCall(alice, a, "INVITE", avOffer(aA.port, { port: aV.port }, 2));
    assert.equal(r.status, 200);
    const aAns = videoOf(textOf(r));
    assert.ok(aAns.port > 0);
    await ackReinvite(alice, r);

    // Bob (m=video 0: capable) is re-INVITEd with video in the same slot.
    const reinvite = await reinviteOf(bob, b);
    const offer = textOf(reinvite);
    const previousVersion = Number(/^o=\S+ \S+ (\d+)/m.exec(textOf(b.response))![1]);
    assert.ok(Number(/^o=\S+ \S+ (\d+)/m.exec(offer)![1]) > previousVersion, "o= version raised");
    const mLines = [...offer.matchAll(/^m=(\w+) (\d+)/gm)].map((m) => [m[1], Number(m[2]) > 0]);
    assert.deepEqual(mLines, [["audio", true], ["video", true]], "same two lines, video enabled");
    const bOffer = videoOf(offer);
    assert.match(bOffer.text, /^a=rtpmap:\d+ VP8\/90000/m);
    assert.ok(bOffer.label && bOffer.ssrc);
    assert.match(offer, /^m=video \d+ RTP\/AVP 96/m, "VP8 on 96, as Bob's answer below says");
    const bAnswer = avOffer(bA.port, { port: bV.port, direction: "recvonly" }, 2);
    await answerReinvite(bob, reinvite, bAnswer);

    // Conference-info: available-media gains video; Alice's endpoint shows her video.
    for (;;) {
      const n = await notifyOf(watcher, subscription.callId);
      state = applyPartial(state, conferenceInfoOf(n).xml).snapshot;
      const bobVideo = media(state, "bob").find((m) => m.type === "video");
      if (bobVideo?.status === "sendonly") break;
    }
    assert.ok(state.availableMedia.some((m) => m.type === "video"));
    assert.equal(media(state, "alice").find((m) => m.type === "video")?.label, aAns.label);

    // Alice's video reaches Bob through the re-negotiated line; Carol was never re-INVITEd.
    await vp8(aV, aAns.port, 0x1234, 7, 0x77);
    const atBob = await bV.nextRtp();
    assert.equal(atBob.payload[7], 0x77);
    assert.equal(atBob.ssrc, bOffer.ssrc);
    // An OPTIONS round trip is a barrier: a re-INVITE to Carol would have come before.
    const cseq = await carol.sendRequest("OPTIONS", FACTORY, { callId: freshCallId(carol) });
    const next = await carol.take((m) =>
      (m instanceof SipRequest && m.method === "INVITE" && m.callId === c.callId) ||
      (m instanceof SipResponse && m.cseq.method === "OPTIONS" && m.cseq.seq === cseq)
    );
    assert.ok(next instanceof SipResponse, "Carol (never offered video) is not re-INVITEd");

    // Alice turns her camera off (port 0): Bob's video line is disabled by re-INVITE.
    const off = await inCall(alice, a, "INVITE", avOffer(aA.port, "disabled", 3));
    assert.equal(off.status, 200);
    await ackReinvite(alice, off);
    const removal = await reinviteOf(bob, b);
    assert.deepEqual(
      [...textOf(removal).matchAll(/^m=(\w+) (\d+)/gm)].map((m) => [m[1], Number(m[2]) > 0]),
      [["audio", true], ["video", false]],
    );
    await answerReinvite(
      bob,
      removal,
      avOffer(bA.port, "disabled", 3),
    );
    for (;;) {
      const n = await notifyOf(watcher, subscription.callId);
      state = applyPartial(state, conferenceInfoOf(n).xml).snapshot;
      if (!media(state, "bob").some((m) => m.type === "video")) break;
    }
    assert.ok(!state.availableMedia.some((m) => m.type === "video"), "video gone");
  } finally {
    for (const p of peers) await p.close();
    for (const cl of [alice, bob, carol, watcher]) await cl.close();
    await srv.stop();
  }
});

Deno.test("video: a source that negotiated no RTCP feedback is asked for a key frame with an RFC 5168 picture_fast_update INFO (again after 491); one with PLI is not", async () => {
  const srv = await startTestServer();
  const [alice, bob, carol, watcher] = await clients(srv.port);
  const peers = Array.from({ length: 4 }, () => new RtpPeer());
  const [aA, aV, bA, bV] = peers as [RtpPeer, RtpPeer, RtpPeer, RtpPeer];
  try {
    const conference = await createConference(alice);
    // Alice's video line carries no rtcp-fb (as Linphone's after an audio-only answer).
    const a = await join(
      alice,
      conference,
      avOffer(aA.port, { port: aV.port, ssrc: 0xa11ce, feedback: false }),
    );
    const aAns = videoOf(textOf(a.response));
    assert.doesNotMatch(aAns.text, /^a=rtcp-fb/m, "no feedback answered that was not offered");
    await vp8(aV, aAns.port, 0xa11ce, 1, 0xaa);
    // Bob (with PLI) joins and views Alice: the focus wants a key frame from her.
    const b = await join(bob, conference, avOffer(bA.port, { port: bV.port, ssrc: 0xb0b }));
    const info = await alice.take((m): m is SipRequest =>
      m instanceof SipRequest && m.method === "INFO" && m.callId === a.callId
    );
    assert.equal(info.headers.get("Content-Type"), "application/media_control+xml");
    assert.match(textOf(info), /<to_encoder>\s*<picture_fast_update\s*\/>\s*<\/to_encoder>/);
    // 491 (liblinphone answers so while its own re-INVITE awaits our ACK): asked again.
    await alice.send(createResponse(info, 491));
    const again = await alice.take((m): m is SipRequest =>
      m instanceof SipRequest && m.method === "INFO" && m.callId === a.callId
    );
    assert.notEqual(again.cseq.seq, info.cseq.seq, "a new INFO, not a retransmission");
    await alice.send(createResponse(again, 200));
    const conf = [...srv.server.focus.conferences.values()][0]!;
    assert.equal(conf.keyFrameInfosSent, 2);

    // Bob negotiated PLI: Alice viewing Bob asks him by RTCP only, never by INFO.
    await vp8(bV, videoOf(textOf(b.response)).port, 0xb0b, 1, 0xbb);
    assert.equal((await aV.nextRtp()).payload[7], 0xbb, "Alice views Bob");
    const cseq = await bob.sendRequest("OPTIONS", FACTORY, { callId: freshCallId(bob) });
    const next = await bob.take((m) =>
      (m instanceof SipRequest && m.method === "INFO") ||
      (m instanceof SipResponse && m.cseq.method === "OPTIONS" && m.cseq.seq === cseq)
    );
    assert.ok(next instanceof SipResponse, "Bob (PLI negotiated) gets no INFO");
    assert.equal(conf.keyFrameInfosSent, 2);
  } finally {
    for (const p of peers) await p.close();
    for (const cl of [alice, bob, carol, watcher]) await cl.close();
    await srv.stop();
  }
});
