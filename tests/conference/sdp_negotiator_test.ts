/**
 * Re-offers keep the previous m-line layout (RFC 3264 §8): every earlier line in order, a
 * video slot with port 0 reused, other unused lines kept disabled with their media and
 * formats, new video appended when there was no slot; the o= version grows.
 */
import assert from "node:assert/strict";
import { sdpNegotiator } from "../../lib/conference/sdp_negotiator.ts";
import type { LocalMediaCaps } from "../../lib/conference/media_negotiation.ts";

const previous = (lines: string[]) =>
  ["v=0", "o=conclave 1 5 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", ...lines, ""]
    .join("\r\n");

function caps(video: Map<number, { port: number; ssrc: number; label: string }>): LocalMediaCaps {
  return {
    address: "127.0.0.1",
    audioCodecs: ["pcmu"],
    audioPort: 4000,
    video: { codecs: ["vp8"], allocate: () => undefined, offer: video },
  };
}

const mLines = (sdp: string) =>
  [...sdp.matchAll(/^m=(\w+) (\d+) (\S+) (.*)$/gm)].map((m) =>
    `${m[1]} ${m[2]} ${m[3]} ${m[4]!.trim()}`
  );

Deno.test("re-offer: a port-0 video slot is reused, a text line stays disabled, order kept", () => {
  const prev = previous([
    "m=audio 4000 RTP/AVP 0",
    "m=text 0 RTP/AVP 98",
    "m=video 0 RTP/AVP 96",
  ]);
  const offer = sdpNegotiator.offer(
    caps(new Map([[2, { port: 5000, ssrc: 77, label: "vid-c1-2" }]])),
    prev,
  );
  assert.deepEqual(mLines(offer), [
    "audio 4000 RTP/AVP 0 96",
    "text 0 RTP/AVP 98",
    "video 5000 RTP/AVP 96",
  ]);
  assert.match(offer, /^a=label:vid-c1-2/m);
  assert.match(offer, /^a=ssrc:77 cname:/m);
  assert.ok(Number(/^o=\S+ \S+ (\d+)/m.exec(offer)![1]) > 0);
});

Deno.test("re-offer: video appended after the existing lines; removing it leaves port 0", () => {
  const prev = previous(["m=audio 4000 RTP/AVP 0"]);
  const added = sdpNegotiator.offer(
    caps(new Map([[1, { port: 5000, ssrc: 1, label: "v" }]])),
    prev,
  );
  assert.deepEqual(mLines(added).map((l) => l.split(" ").slice(0, 2).join(" ")), [
    "audio 4000",
    "video 5000",
  ]);
  const removed = sdpNegotiator.offer(caps(new Map()), added);
  assert.deepEqual(mLines(removed).map((l) => l.split(" ").slice(0, 2).join(" ")), [
    "audio 4000",
    "video 0",
  ]);
  const v1 = Number(/^o=\S+ \S+ (\d+)/m.exec(added)![1]);
  const v2 = Number(/^o=\S+ \S+ (\d+)/m.exec(removed)![1]);
  assert.ok(v2 > v1, "o= version grows with every offer");
});
