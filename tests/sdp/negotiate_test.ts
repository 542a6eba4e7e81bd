import assert from "node:assert/strict";
import {
  answerOffer,
  type AnswerOptions,
  type AnswerResult,
  createOffer,
  type LocalMedia,
  type OfferedStream,
  parseAnswer,
} from "../../lib/sdp/negotiate.ts";
import { type NegotiatedStream, SdpError } from "../../lib/sdp/sdp_types.ts";

const FIXTURES = new URL("../fixtures/sdp/", import.meta.url);
const read = (name: string) => Deno.readTextFile(new URL(name, FIXTURES));

const LOCAL: LocalMedia = {
  address: "127.0.0.1",
  audioCodecs: ["opus", "pcmu", "pcma"],
  videoCodecs: ["vp8"],
  telephoneEvent: true,
  sessionId: "3141592653",
  sessionVersion: 1,
};

/** Ports 20000, 20002, ... in the order the allocator is asked; records what it was told. */
function counting(
  start = 20000,
): { allocate: (s: OfferedStream) => number; seen: OfferedStream[] } {
  let next = start;
  const seen: OfferedStream[] = [];
  return {
    seen,
    allocate: (stream) => {
      seen.push(stream);
      const port = next;
      next += 2;
      return port;
    },
  };
}

function answer(offer: string, extra: Partial<AnswerOptions> = {}): AnswerResult {
  return answerOffer(offer, { ...LOCAL, allocate: counting().allocate, ...extra });
}

function accepted(result: AnswerResult): Extract<AnswerResult, { ok: true }> {
  assert.ok(result.ok, `expected an answer, got ${JSON.stringify(result)}`);
  return result;
}

/** Splits an SDP body into session lines and one line list per m= section. */
function sections(sdp: string): { session: string[]; media: string[][] } {
  assert.ok(sdp.endsWith("\r\n"), "SDP ends with CRLF");
  const lines = sdp.slice(0, -2).split("\r\n");
  assert.ok(lines.every((l) => !l.includes("\n") && !l.includes("\r")), "lines end with CRLF");
  const session: string[] = [];
  const media: string[][] = [];
  for (const line of lines) {
    if (line.startsWith("m=")) media.push([line]);
    else if (media.length === 0) session.push(line);
    else media[media.length - 1]!.push(line);
  }
  return { session, media };
}

function stream(result: { streams: readonly NegotiatedStream[] }, index: number): NegotiatedStream {
  const s = result.streams[index];
  assert.ok(s !== undefined, `stream ${index}`);
  return s;
}

const GOLDEN_OFFERS = [
  "linphone-5.1-audio",
  "baresip-1.0-audio",
  "baresip-1.0-video",
  "baresip-1.0-rtcp-mux",
  "sipp-3.6-uac",
  "linphone-5.1-hold-sendonly",
  "rfc2543-hold",
  "conference-video-labels",
];

Deno.test("answers to real offers match their golden answers", async () => {
  for (const name of GOLDEN_OFFERS) {
    const result = accepted(answer(await read(`${name}.offer.sdp`)));
    const golden = new URL(`${name}.expected-answer.sdp`, FIXTURES);
    if (Deno.env.get("UPDATE_GOLDEN") === "1") await Deno.writeTextFile(golden, result.sdp);
    assert.equal(result.sdp, await Deno.readTextFile(golden), name);
  }
});

Deno.test("Linphone 5.1 focus INVITE: Opus on the offerer's PT, telephone-event/48000, RTCP port", async () => {
  const offer = await read("linphone-5.1-audio.offer.sdp");
  const result = accepted(answer(offer));
  assert.equal(result.streams.length, 1);
  const audio = stream(result, 0);
  assert.deepEqual(audio.codec, {
    name: "opus",
    payloadType: 96,
    clockRate: 48000,
    channels: 2,
    fmtp: { useinbandfec: "1" },
  });
  assert.deepEqual(audio.telephoneEvent, { payloadType: 99, clockRate: 48000 });
  assert.deepEqual(audio.remote, {
    address: "127.0.0.1",
    port: 43254,
    rtcpMux: false,
    rtcpPort: 34089,
    rtcpAddress: "127.0.0.1",
  });
  assert.deepEqual(
    [audio.accepted, audio.port, audio.direction, audio.remoteDirection, audio.hold],
    [true, 20000, "sendrecv", "sendrecv", false],
  );
  assert.deepEqual(result.timing, { start: 0, stop: 0 });
  const { session, media } = sections(result.sdp);
  assert.deepEqual(session, [
    "v=0",
    "o=conclave 3141592653 1 IN IP4 127.0.0.1",
    "s=Conclave",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
  ]);
  assert.deepEqual(media, [[
    "m=audio 20000 RTP/AVP 96 99",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:99 telephone-event/48000",
    "a=fmtp:96 useinbandfec=1",
    "a=fmtp:99 0-15",
    "a=ptime:20",
    "a=sendrecv",
  ]]);
});

Deno.test("codec preference is ours; telephone-event follows the chosen codec's clock", async () => {
  const offer = await read("linphone-5.1-audio.offer.sdp");
  const g711 = accepted(answer(offer, { audioCodecs: ["pcma", "pcmu"] }));
  assert.deepEqual([stream(g711, 0).codec?.name, stream(g711, 0).codec?.payloadType], ["pcma", 8]);
  assert.deepEqual(stream(g711, 0).telephoneEvent, { payloadType: 101, clockRate: 8000 });
  assert.equal(sections(g711.sdp).media[0]![0], "m=audio 20000 RTP/AVP 8 101");
  const noDtmf = accepted(answer(offer, { telephoneEvent: false }));
  assert.equal(stream(noDtmf, 0).telephoneEvent, undefined);
  assert.equal(sections(noDtmf.sdp).media[0]![0], "m=audio 20000 RTP/AVP 96");
});

Deno.test("baresip 1.0: Opus stereo fmtp, telephone-event/8000 fallback, label and ssrc", async () => {
  const result = accepted(answer(await read("baresip-1.0-audio.offer.sdp")));
  const audio = stream(result, 0);
  assert.deepEqual(audio.codec?.fmtp, { stereo: "1", "sprop-stereo": "1" });
  assert.deepEqual(audio.telephoneEvent, { payloadType: 101, clockRate: 8000 });
  assert.equal(audio.label, "1");
  assert.deepEqual(audio.ssrcs, [{ id: 1298952340, cname: "sip:a@127.0.0.1:5080" }]);
  assert.equal(audio.ptime, 20);
  assert.deepEqual(audio.remote, {
    address: "127.0.0.1",
    port: 10256,
    rtcpMux: false,
    rtcpPort: 10257,
    rtcpAddress: "127.0.0.1",
  });
  const lines = sections(result.sdp).media[0]!;
  assert.equal(lines[0], "m=audio 20000 RTP/AVP 96 101");
  assert.ok(lines.includes("a=rtpmap:101 telephone-event/8000"));
  assert.ok(lines.includes("a=label:1"), "offered label echoed");
  assert.ok(!lines.includes("a=rtcp-mux"), "rtcp-mux only when offered");

  const mux = accepted(answer(await read("baresip-1.0-rtcp-mux.offer.sdp")));
  assert.deepEqual([stream(mux, 0).remote.rtcpMux, stream(mux, 0).remote.rtcpPort], [
    true,
    stream(mux, 0).remote.port,
  ]);
  assert.ok(sections(mux.sdp).media[0]!.includes("a=rtcp-mux"));
});

Deno.test("baresip 1.0 video call: VP8 with its feedback and content; refused when video is off", async () => {
  const offer = await read("baresip-1.0-video.offer.sdp");
  const result = accepted(answer(offer));
  const video = stream(result, 1);
  assert.deepEqual(
    [video.type, video.codec?.name, video.codec?.payloadType, video.codec?.clockRate],
    ["video", "vp8", 96, 90000],
  );
  assert.deepEqual(video.codec?.fmtp, { "max-fs": "3600" });
  assert.deepEqual(video.rtcpFeedback, [{ type: "nack", subtype: "pli" }]);
  assert.deepEqual([video.content, video.label, video.port], ["main", "2", 20002]);
  const lines = sections(result.sdp).media[1]!;
  assert.deepEqual(lines.slice(0, 3), [
    "m=video 20002 RTP/AVP 96",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 nack pli",
  ]);
  assert.ok(lines.includes("a=content:main"));

  const audioOnly = accepted(answer(offer, { videoCodecs: [] }));
  assert.equal(stream(audioOnly, 1).accepted, false);
  assert.equal(stream(audioOnly, 1).rejectReason, "video not enabled");
  assert.deepEqual(sections(audioOnly.sdp).media[1], ["m=video 0 RTP/AVP 96"]);
});

Deno.test("SIPp's default uac SDP gets PCMU, with ports from an array allocator", async () => {
  const result = accepted(
    answerOffer(await read("sipp-3.6-uac.offer.sdp"), { ...LOCAL, allocate: [30000] }),
  );
  const audio = stream(result, 0);
  assert.deepEqual([audio.codec?.name, audio.codec?.payloadType, audio.telephoneEvent], [
    "pcmu",
    0,
    undefined,
  ]);
  assert.deepEqual([audio.remote.address, audio.remote.port, audio.port], [
    "127.0.0.1",
    6000,
    30000,
  ]);
  assert.deepEqual(sections(result.sdp).media[0], [
    "m=audio 30000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "a=ptime:20",
    "a=sendrecv",
  ]);
});

Deno.test("hold: sendonly answered recvonly, c=0.0.0.0 (RFC 2543) too, inactive stays inactive", async () => {
  const linphoneHold = accepted(answer(await read("linphone-5.1-hold-sendonly.offer.sdp")));
  assert.deepEqual(
    [
      stream(linphoneHold, 0).remoteDirection,
      stream(linphoneHold, 0).direction,
      stream(linphoneHold, 0).hold,
    ],
    ["sendonly", "recvonly", true],
  );
  assert.ok(sections(linphoneHold.sdp).media[0]!.includes("a=recvonly"));

  const old = accepted(answer(await read("rfc2543-hold.offer.sdp")));
  const audio = stream(old, 0);
  assert.deepEqual(
    [audio.remote.address, audio.remoteDirection, audio.direction, audio.hold],
    ["0.0.0.0", "sendrecv", "recvonly", true],
  );
  assert.deepEqual([audio.codec?.name, audio.telephoneEvent?.payloadType], ["pcmu", 101]);
  assert.ok(sections(old.sdp).session.includes("c=IN IP4 127.0.0.1"), "our address, never 0.0.0.0");

  const base = await read("linphone-5.1-audio.offer.sdp");
  for (
    const [attribute, expected] of [
      ["inactive", "inactive"],
      ["recvonly", "sendonly"],
      ["sendrecv", "sendrecv"],
    ] as const
  ) {
    const result = accepted(
      answer(base.replace("a=rtcp:34089\r\n", `a=rtcp:34089\r\na=${attribute}\r\n`)),
    );
    assert.equal(stream(result, 0).direction, expected, attribute);
    assert.equal(stream(result, 0).hold, attribute === "inactive", attribute);
    assert.ok(sections(result.sdp).media[0]!.includes(`a=${expected}`));
  }
  const sessionLevel = accepted(answer(base.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")));
  assert.equal(stream(sessionLevel, 0).direction, "recvonly", "session-level direction applies");
});

Deno.test("conference client offer: labels, content, mids, rtcp-mux, audio level, SRTP refused", async () => {
  const offer = await read("conference-video-labels.offer.sdp");
  const { allocate, seen } = counting();
  const result = accepted(answerOffer(offer, { ...LOCAL, allocate }));
  assert.deepEqual(result.timing, { start: 1773066600, stop: 1773070200 });
  assert.deepEqual(
    seen.map((s) => [s.index, s.type, s.label, s.content, s.mid, s.remoteDirection]),
    [
      [0, "audio", "ca1", undefined, "as", "sendrecv"],
      [1, "video", "cv1", "main", "vs", "sendrecv"],
      [2, "video", "ct1", "thumbnail", "vt", "sendonly"],
      [3, "video", "a1-thumb", "thumbnail", "v2", "recvonly"],
    ],
    "the allocator is asked for acceptable lines only",
  );
  const audio = stream(result, 0);
  assert.deepEqual(
    [audio.audioLevelExtId, audio.csrcAudioLevelExtId, audio.mid, audio.remote.rtcpMux],
    [1, 2, "as", true],
  );
  assert.deepEqual(audio.codec?.fmtp, { useinbandfec: "1", maxplaybackrate: "24000" });
  assert.deepEqual(audio.telephoneEvent, { payloadType: 100, clockRate: 48000 });
  const main = stream(result, 1);
  assert.deepEqual(main.rtcpFeedback, [
    { type: "nack" },
    { type: "nack", subtype: "pli" },
    { type: "ccm", subtype: "fir" },
  ]);
  assert.deepEqual([main.codec?.name, main.direction, main.protocol], [
    "vp8",
    "sendrecv",
    "RTP/AVPF",
  ]);
  assert.deepEqual([stream(result, 2).direction, stream(result, 2).content], [
    "recvonly",
    "thumbnail",
  ]);
  assert.deepEqual([stream(result, 3).direction, stream(result, 3).label], [
    "sendonly",
    "a1-thumb",
  ]);
  const srtp = stream(result, 4);
  assert.deepEqual([srtp.accepted, srtp.port, srtp.rejectReason], [
    false,
    0,
    "transport RTP/SAVPF not supported",
  ]);

  const { media } = sections(result.sdp);
  assert.equal(media.length, 5, "same number of m= lines (RFC 3264 §6)");
  assert.deepEqual(media.map((m) => m[0]), [
    "m=audio 20000 RTP/AVP 96 100",
    "m=video 20002 RTP/AVPF 96",
    "m=video 20004 RTP/AVPF 96",
    "m=video 20006 RTP/AVPF 96",
    "m=video 0 RTP/SAVPF 96",
  ]);
  assert.deepEqual(media[4], ["m=video 0 RTP/SAVPF 96", "a=mid:vx"]);
  for (
    const line of [
      "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
      "a=extmap:2 urn:ietf:params:rtp-hdrext:csrc-audio-level",
      "a=mid:as",
      "a=rtcp-mux",
      "a=label:ca1",
    ]
  ) assert.ok(media[0]!.includes(line), line);
  assert.ok(
    !media[1]!.some((l) => l.includes("H264") || l.includes("tmmbr") || l.includes("trr-int")),
  );
  assert.ok(media[2]!.includes("a=content:thumbnail") && media[2]!.includes("a=label:ct1"));
});

Deno.test("allocator decisions: labels only when the offer has none, direction, content, ssrc", async () => {
  const offer = await read("conference-video-labels.offer.sdp");
  const result = accepted(answerOffer(offer, {
    ...LOCAL,
    allocate: (s) => ({
      port: 40000 + s.index * 2,
      label: `focus-${s.index}`,
      ...(s.index === 1
        ? {
          direction: "sendonly" as const,
          content: "speaker",
          ssrc: 424242,
          cname: "focus@example.org",
        }
        : {}),
    }),
  }));
  const main = sections(result.sdp).media[1]!;
  assert.ok(main.includes("a=label:cv1"), "an offered label is echoed (liblinphone does so)");
  assert.ok(main.includes("a=sendonly") && main.includes("a=content:speaker"));
  assert.ok(main.includes("a=ssrc:424242 cname:focus@example.org"));
  assert.deepEqual([stream(result, 1).direction, stream(result, 1).content], [
    "sendonly",
    "speaker",
  ]);

  const sipp = accepted(answerOffer(await read("sipp-3.6-uac.offer.sdp"), {
    ...LOCAL,
    allocate: () => ({ port: 40000, label: "focus-audio" }),
  }));
  assert.equal(stream(sipp, 0).label, "focus-audio");
  assert.ok(sections(sipp.sdp).media[0]!.includes("a=label:focus-audio"));
});

Deno.test("no common codec: 488 with Warning 305 and no port allocated", async () => {
  const { allocate, seen } = counting();
  const result = answerOffer(await read("no-common-codec.offer.sdp"), { ...LOCAL, allocate });
  assert.ok(!result.ok);
  assert.deepEqual([result.status, result.reason], [488, "Not Acceptable Here"]);
  assert.deepEqual(result.warning, { code: 305, text: "no common audio codec" });
  assert.equal(seen.length, 0);
  assert.deepEqual(result.streams.map((s) => [s.accepted, s.port]), [[false, 0], [false, 0]]);
  assert.equal(stream(result, 0).rejectReason, "no common audio codec");
  assert.match(stream(result, 1).rejectReason ?? "", /session refused/);
});

Deno.test("other refusals: unsupported media only (304), offerer-disabled lines, no port (503)", async () => {
  const text =
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=text 4000 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\nm=application 9 TCP/MSRP *\r\n";
  const textOnly = answer(text);
  assert.ok(!textOnly.ok);
  assert.deepEqual([textOnly.status, textOnly.warning.code], [488, 304]);

  const base = await read("baresip-1.0-video.offer.sdp");
  const withExtras = accepted(
    answer(base + "m=application 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"),
  );
  assert.deepEqual(sections(withExtras.sdp).media[2], ["m=application 0 TCP/MSRP *"]);
  assert.equal(stream(withExtras, 2).type, "other");

  const disabled = accepted(answer(base.replace("m=video 10230", "m=video 0")));
  assert.deepEqual([stream(disabled, 1).accepted, stream(disabled, 1).rejectReason], [
    false,
    "disabled by the offerer",
  ]);
  assert.equal(sections(disabled.sdp).media[1]![0], "m=video 0 RTP/AVP 96");

  const noPorts = answerOffer(base, {
    ...LOCAL,
    allocate: (s) => (s.type === "video" ? 50000 : undefined),
  });
  assert.ok(!noPorts.ok);
  assert.equal(noPorts.status, 503);
  assert.deepEqual(noPorts.streams.map((s) => [s.type, s.accepted, s.port]), [["audio", false, 0], [
    "video",
    true,
    50000,
  ]]);

  const videoRefused = accepted(answerOffer(base, { ...LOCAL, allocate: [20000, 0] }));
  assert.equal(stream(videoRefused, 1).rejectReason, "no media port available");
  assert.throws(() => answerOffer(base, { ...LOCAL, allocate: [70000] }), RangeError);
});

Deno.test("malformed offers throw SdpError", () => {
  const ok =
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n";
  assert.ok(answer(ok).ok, "a media-level c= is enough");
  assert.throws(() => answer(ok.replace("c=IN IP4 192.0.2.1\r\n", "")), SdpError);
  assert.throws(() => answer(ok.replace("v=0", "v=1")), SdpError);
  assert.throws(() => answer("INVITE sip:x SIP/2.0\r\n"), SdpError);
  assert.throws(() => answer(ok.replace("o=- 1 1 IN IP4 192.0.2.1\r\n", "")), SdpError);
  assert.throws(() => answer(ok.replace("t=0 0\r\n", "")), SdpError);
  assert.throws(
    () => answer(ok.replace("m=audio 4000 RTP/AVP 0", "m=audio x RTP/AVP 0")),
    SdpError,
  );
});

Deno.test("IPv6 local address and LF-only offers", async () => {
  const result = accepted(
    answer((await read("sipp-3.6-uac.offer.sdp")).replaceAll("\r\n", "\n"), { address: "::1" }),
  );
  const { session } = sections(result.sdp);
  assert.ok(session.includes("c=IN IP6 ::1"));
  assert.ok(session.includes("o=conclave 3141592653 1 IN IP6 ::1"));
});

Deno.test("createOffer writes the offers that were sent to baresip and SIPp", async () => {
  const audio = createOffer(LOCAL, [{
    type: "audio",
    port: 40000,
    ssrc: 287454020,
    cname: "focus@example.org",
    mid: "0",
  }]);
  assert.equal(audio, await read("conclave-audio.sent-offer.sdp"));
  const av = createOffer(LOCAL, [
    { type: "audio", port: 40000, mid: "0" },
    { type: "video", port: 40002, mid: "1", label: "conf-v1", content: "main" },
  ]);
  assert.equal(av, await read("conclave-av.sent-offer.sdp"));
  const { media } = sections(audio);
  assert.equal(media[0]![0], "m=audio 40000 RTP/AVP 96 0 8 97 98");
  for (
    const line of [
      "a=rtpmap:96 opus/48000/2",
      "a=rtpmap:0 PCMU/8000",
      "a=rtpmap:8 PCMA/8000",
      "a=rtpmap:97 telephone-event/48000",
      "a=rtpmap:98 telephone-event/8000",
      "a=rtcp-mux",
    ]
  ) assert.ok(media[0]!.includes(line), line);
  const scheduled = createOffer({ ...LOCAL, audioCodecs: ["pcmu"], telephoneEvent: false }, [
    { type: "audio", port: 0, rtcpMux: false, audioLevelExtId: 1 },
  ], { start: 1773066600, stop: 1773070200 });
  assert.ok(scheduled.includes("t=1773066600 1773070200\r\n"));
  assert.deepEqual(sections(scheduled).media[0], [
    "m=audio 0 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=ptime:20",
    "a=sendrecv",
  ]);
  assert.throws(
    () => createOffer({ ...LOCAL, videoCodecs: [] }, [{ type: "video", port: 4 }]),
    RangeError,
  );
});

Deno.test("parseAnswer reads baresip's real answer to our audio offer", async () => {
  const result = parseAnswer(
    await read("conclave-audio.sent-offer.sdp"),
    await read("baresip-1.0-audio.received-answer.sdp"),
  );
  assert.ok(result.ok);
  const audio = stream(result, 0);
  assert.deepEqual(audio.codec, {
    name: "opus",
    payloadType: 96,
    clockRate: 48000,
    channels: 2,
    fmtp: { stereo: "1", "sprop-stereo": "1" },
  });
  assert.deepEqual(audio.telephoneEvent, { payloadType: 98, clockRate: 8000 });
  assert.deepEqual(audio.remote, {
    address: "127.0.0.1",
    port: 10286,
    rtcpMux: false,
    rtcpPort: 10287,
    rtcpAddress: "127.0.0.1",
  });
  assert.deepEqual([audio.port, audio.direction, audio.label, audio.mid], [
    40000,
    "sendrecv",
    "1",
    "0",
  ]);
  assert.deepEqual(audio.ssrcs, [{ id: 2230615732, cname: "sip:b@127.0.0.1" }]);
});

Deno.test("parseAnswer reads baresip's audio+video answer and SIPp's PCMU-only answer", async () => {
  const av = parseAnswer(
    await read("conclave-av.sent-offer.sdp"),
    await read("baresip-1.0-av.received-answer.sdp"),
  );
  const video = stream(av, 1);
  assert.deepEqual([video.codec?.name, video.port, video.remote.port, video.content, video.label], [
    "vp8",
    40002,
    10266,
    "main",
    "2",
  ]);
  assert.deepEqual(video.rtcpFeedback, [{ type: "nack", subtype: "pli" }]);
  const sipp = parseAnswer(
    await read("conclave-audio.sent-offer.sdp"),
    await read("sipp-3.6-uas.received-answer.sdp"),
  );
  const audio = stream(sipp, 0);
  assert.deepEqual([audio.codec?.name, audio.codec?.payloadType, audio.telephoneEvent], [
    "pcmu",
    0,
    undefined,
  ]);
  assert.deepEqual([audio.remote.address, audio.remote.port], ["127.0.0.1", 6000]);
});

Deno.test("parseAnswer: rejection, hold in the answer, and RFC 3264 violations", async () => {
  const offer = await read("conclave-av.sent-offer.sdp");
  const real = await read("baresip-1.0-av.received-answer.sdp");
  const videoRefused = parseAnswer(offer, real.replace("m=video 10266", "m=video 0"));
  assert.deepEqual([
    videoRefused.ok,
    stream(videoRefused, 1).accepted,
    stream(videoRefused, 1).rejectReason,
  ], [true, false, "rejected by the answerer"]);
  const recvonly = parseAnswer(
    offer,
    real.replace("a=sendrecv\r\na=label:1", "a=recvonly\r\na=label:1"),
  );
  assert.deepEqual([stream(recvonly, 0).direction, stream(recvonly, 0).hold], ["sendonly", false]);
  const held = parseAnswer(
    offer,
    real.replace("a=sendrecv\r\na=label:1", "a=inactive\r\na=label:1"),
  );
  assert.deepEqual([stream(held, 0).direction, stream(held, 0).hold], ["inactive", true]);
  const foreignCodec = parseAnswer(
    offer,
    real.replace("m=audio 10228 RTP/AVP 96 0 8 98", "m=audio 10228 RTP/AVP 18").replace(
      "a=rtpmap:96 opus/48000/2",
      "a=rtpmap:18 G729/8000",
    ),
  );
  assert.equal(stream(foreignCodec, 0).rejectReason, "no codec we offered");
  const audioOnly = real.slice(0, real.indexOf("m=video"));
  assert.throws(() => parseAnswer(offer, audioOnly), /RFC 3264 §6/);
  assert.throws(() => parseAnswer(offer, real.replace("m=video", "m=audio")), SdpError);
});

Deno.test("our answer to our own offer reads back consistently", () => {
  const offer = createOffer(LOCAL, [{ type: "audio", port: 40000, mid: "a" }, {
    type: "video",
    port: 40002,
    mid: "v",
    direction: "sendonly",
    content: "thumbnail",
  }]);
  const result = accepted(
    answerOffer(offer, { ...LOCAL, sessionId: "77", allocate: [50000, 50002] }),
  );
  const readBack = parseAnswer(offer, result.sdp);
  assert.deepEqual(
    readBack.streams.map((
      s,
    ) => [
      s.codec?.name,
      s.codec?.payloadType,
      s.port,
      s.remote.port,
      s.remote.rtcpMux,
      s.direction,
      s.mid,
    ]),
    [
      ["opus", 96, 40000, 50000, true, "sendrecv", "a"],
      ["vp8", 96, 40002, 50002, true, "sendonly", "v"],
    ],
  );
  assert.deepEqual(stream(readBack, 0).telephoneEvent, { payloadType: 97, clockRate: 48000 });
  assert.equal(stream(result, 1).direction, "recvonly");
});
