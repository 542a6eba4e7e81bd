/**
 * What Linphone 5.1 actually sends, as bytes, against a real server over TCP: the audio/video
 * factory INVITE with a multipart body (SDP + RFC 4826 resource-lists) gets a 302 to the new
 * conference, and once the creator joins (with Linphone's own focus INVITE) the focus dials
 * out to the listed URIs — here a real SIPp `uas` — with From = conference URI; Linphone's
 * focus INVITE gets a 200 whose SDP is a valid RFC 3264 answer. Requests carrying a top
 * Route that names this server (loose routing, RFC 3261 §16.4/§16.12 as a UAS sees it) are
 * routed by their Request-URI, and the Route never leaks into responses or our own requests.
 */
import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import type { ConferenceSnapshot } from "../../lib/events/conference_info.ts";
import { applyPartial } from "../../lib/events/conference_info_parser.ts";
import { parseAnswer } from "../../lib/sdp/negotiate.ts";
import type { SipRequest, SipResponse } from "../../lib/sip/message.ts";
import {
  ackFailure,
  byeOf,
  conferenceInfoOf,
  contactOf,
  createConference,
  FACTORY,
  inCall,
  joinConference,
  notifyOf,
  subscribeConference,
} from "../_helpers/conference_steps.ts";
import { SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel(Deno.env.get("TEST_LOG") === "debug" ? "debug" : "warn");

const FIXTURES = new URL("../fixtures/sip/valid/", import.meta.url);
const AV_FACTORY_INVITE = await Deno.readTextFile(
  new URL("linphone-5.1-av-factory-invite.sip", FIXTURES),
);
const FOCUS_INVITE = await Deno.readTextFile(new URL("linphone-5.1-focus-invite.sip", FIXTURES));

const haveSipp = (() => {
  try {
    new Deno.Command("sipp", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
})();
const required = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
if (!haveSipp && !required) {
  console.warn("⚠ sipp is not installed: the factory dial-out test against SIPp is IGNORED");
}

/** A captured request with only what must change to reach this server changed. */
function adapt(
  capture: string,
  o: { viaPort: number; routePort: number; uri?: string; entries?: Map<string, string> },
): string {
  const split = capture.indexOf("\r\n\r\n");
  let head = capture.slice(0, split);
  let body = capture.slice(split + 4);
  const lines = head.split("\r\n").map((line, i) => {
    if (i === 0 && o.uri !== undefined) return line.replace(/^(\w+) \S+/, `$1 ${o.uri}`);
    if (/^To:/i.test(line) && o.uri !== undefined) return `To: <${o.uri}>`;
    if (/^Via:/i.test(line)) return line.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${o.viaPort}`);
    if (/^Route:/i.test(line)) return line.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${o.routePort}`);
    return line;
  });
  head = lines.join("\r\n");
  if (o.entries) {
    for (const [from, to] of o.entries) body = body.replaceAll(`"${from}"`, `"${to}"`);
    // Each MIME part keeps a correct Content-Length (RFC 2046 parts as Linphone writes them).
    body = body.replace(
      /Content-Length: \d+\r\n\r\n([\s\S]*?)\r\n(?=-{5,})/g,
      (_m, part: string) => `Content-Length: ${part.length}\r\n\r\n${part}\r\n`,
    );
    head = head.replace(/^Content-Length: \d+$/m, `Content-Length: ${body.length}`);
  }
  return `${head}\r\n\r\n${body}`;
}

/** The audio SDP offer inside the Linphone focus INVITE. */
const LINPHONE_OFFER = FOCUS_INVITE.slice(FOCUS_INVITE.indexOf("\r\n\r\n") + 4);

/** Checks a 200's SDP as an RFC 3264 answer to Linphone's offer and returns it. */
function checkAnswer(r: SipResponse): string {
  assert.equal(r.status, 200, `${r.status} ${r.reason}`);
  assert.equal(r.contentType, "application/sdp");
  const answer = textOf(r);
  const parsed = parseAnswer(LINPHONE_OFFER, answer);
  assert.ok(parsed.ok, `usable answer:\n${answer}`);
  const audio = parsed.streams[0]!;
  assert.equal(audio.type, "audio");
  assert.ok(audio.codec !== undefined, "a codec Linphone offered was kept");
  assert.match(answer, /^c=IN IP4 127\.0\.0\.1\r$/m);
  assert.match(answer, /^m=audio [1-9]\d* RTP\/AVP /m);
  // RFC 3264 §6.1: the answer uses the offer's payload type numbers.
  const pts = /^m=audio \d+ RTP\/AVP ([\d ]+)\r$/m.exec(answer)![1]!.split(" ");
  for (const pt of pts) assert.match(LINPHONE_OFFER, new RegExp(`^a=rtpmap:${pt} `, "m"));
  assert.match(r.headers.get("Contact") ?? "", /;isfocus/);
  return answer;
}

/** BYE in the dialog a 200 created, with the dialog's own From/To (raw, like Linphone). */
async function rawBye(client: SipClient, ok: SipResponse, cseq: number): Promise<SipResponse> {
  await client.peer.write(
    [
      `BYE ${contactOf(ok)} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${client.peer.port};branch=z9hG4bK${crypto.randomUUID()};rport`,
      `From: ${ok.headers.get("From")}`,
      `To: ${ok.headers.get("To")}`,
      `Call-ID: ${ok.callId}`,
      `CSeq: ${cseq} BYE`,
      "Max-Forwards: 70",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n"),
  );
  return await client.response(cseq, "BYE");
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test({
  name:
    "factory: Linphone's multipart (SDP + resource-lists) factory INVITE → 302; the creator joins with Linphone's focus INVITE → 200; the focus dials out to the listed URIs (real SIPp uas) with From = conference URI",
  ignore: !haveSipp && !required,
  async fn() {
    const srv = await startTestServer([
      "conference-factory-uris=sip:videoconference-factory@example.org",
      "conference-focus-uris=sip:conference-focus@example.org",
    ]);
    const uasPort = freePort();
    const dir = await Deno.makeTempDir({ prefix: "sipp-factory-" });
    const uas = new Deno.Command("sipp", {
      args: [
        ...["-sn", "uas", "-t", "t1", "-i", "127.0.0.1", "-ci", "127.0.0.1"],
        ...["-p", String(uasPort), "-m", "2", "-nostdin", "-timeout", "60s", "-timeout_error"],
        ...["-trace_msg", "-trace_err"],
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const alice = await SipClient.connect("alice", srv.port);
    try {
      const bobUri = `sip:bob@127.0.0.1:${uasPort};transport=tcp`;
      const carolUri = `sip:carol@127.0.0.1:${uasPort};transport=tcp`;
      const factory = adapt(AV_FACTORY_INVITE, {
        viaPort: alice.peer.port,
        routePort: srv.port,
        entries: new Map([["sip:bob@example.org", bobUri], ["sip:carol@example.org", carolUri]]),
      });
      assert.match(factory, /^Route: <sip:127\.0\.0\.1:\d+;transport=tcp;lr>\r$/m);
      await alice.peer.write(factory);
      const redirect = await alice.response(20, "INVITE");
      assert.equal(redirect.status, 302, `${redirect.status} ${redirect.reason}`);
      await ackFailure(alice, redirect, "sip:videoconference-factory@example.org");
      const contact = redirect.headers.get("Contact")!;
      assert.match(contact, /;isfocus/);
      const conference = contactOf(redirect);
      assert.match(conference, /^sip:conference-focus@127\.0\.0\.1:\d+;transport=tcp;conf-id=/);
      const confId = /conf-id=([^;>]+)/.exec(conference)![1]!;

      // Watch the conference from the start (its subject is the creator's Subject).
      const watch = await subscribeConference(alice, conference);
      assert.equal(watch.response.status, 200);
      const first = conferenceInfoOf(await notifyOf(alice, watch.subscription.callId)).info;
      assert.equal(first.snapshot!.subject, "Weekly");
      assert.equal(first.snapshot!.users.length, 0, "nobody is dialled before the creator joins");
      let state: ConferenceSnapshot = first.snapshot!;

      // The creator follows the 302 with Linphone's own focus INVITE (same Route to us).
      await alice.peer.write(
        adapt(FOCUS_INVITE, { uri: conference, viaPort: alice.peer.port, routePort: srv.port }),
      );
      const ok = await alice.response(20, "INVITE");
      checkAnswer(ok);
      await alice.ack(ok, conference);

      // The focus dials out to both listed URIs; both answer (SIPp) and show as connected.
      const connected = (s: ConferenceSnapshot, aor: string) =>
        s.users.find((u) => u.entity === aor)?.endpoints.some((e) =>
          e.status === "connected" && e.joiningMethod === "dialed-out"
        ) ?? false;
      while (
        !connected(state, `sip:bob@127.0.0.1`) || !connected(state, `sip:carol@127.0.0.1`)
      ) {
        const { xml } = conferenceInfoOf(await notifyOf(alice, watch.subscription.callId));
        state = applyPartial(state, xml).snapshot;
      }
      const organizer = state.users.find((u) => u.entity === "sip:alice@example.org");
      assert.deepEqual(organizer?.roles, ["organizer", "admin"]);
      assert.equal(state.userCount, 3);

      // The creator (admin) removes both (REFER method=BYE, RFC 4579 §5.5): the focus BYEs
      // the SIPp calls and SIPp completes its two calls; then she hangs up, which ends it.
      for (const aor of ["sip:bob@127.0.0.1", "sip:carol@127.0.0.1"]) {
        const r = await alice.sendRequest("REFER", conference, {
          callId: `${alice.callId}-${aor}`,
          headers: [["Refer-To", `<${aor};method=BYE>`]],
        });
        assert.equal((await alice.response(r, "REFER")).status, 202);
      }
      assert.equal((await rawBye(alice, ok, 21)).status, 200);
      const status = await uas.status;
      assert.equal(status.code, 0, "SIPp uas completed two calls (INVITE, ACK, BYE)");
      const log = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith("_messages.log"));
      assert.ok(log, "SIPp wrote its message trace");
      const trace = Deno.readTextFileSync(`${dir}/${log.name}`);
      const invites = trace.split(/\r?\n/).filter((l) => /^INVITE sip:/.test(l));
      assert.deepEqual(invites.map((l) => l.split(" ")[1]).sort(), [bobUri, carolUri].sort());
      const froms = [...trace.matchAll(/^From: (.*)$/gm)].map((m) => m[1]!);
      assert.ok(
        froms.some((f) => f.includes(`sip:conference-focus@example.org;conf-id=${confId}`)),
        `dial-out From is the conference URI: ${froms.join(" | ")}`,
      );
      assert.match(trace, /^Subject: Weekly/m);
    } finally {
      try {
        uas.kill();
      } catch {
        // already exited
      }
      await uas.output().catch(() => {});
      await alice.close();
      await srv.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("factory: Linphone 5.1's focus INVITE (exact bytes, Request-URI/Via/Route adapted) gets 200 with a valid SDP answer; the in-dialog BYE with a Route to us ends it", async () => {
  const srv = await startTestServer();
  const creator = await SipClient.connect("carol", srv.port);
  const alice = await SipClient.connect("alice", srv.port);
  try {
    const conference = await createConference(creator);
    const bytes = adapt(FOCUS_INVITE, {
      uri: conference,
      viaPort: alice.peer.port,
      routePort: srv.port,
    });
    await alice.peer.write(bytes);
    const ok = await alice.response(20, "INVITE");
    const answer = checkAnswer(ok);
    assert.match(answer, /^a=rtpmap:96 opus\/48000\/2\r$/m, "opus is preferred when offered");
    assert.equal(ok.headers.get("Route"), undefined, "Route is never echoed in a response");
    await alice.ack(ok, conference);

    // The GRUU device is in the conference-info with the dialog's identifiers.
    const watch = await subscribeConference(creator, conference);
    const s = conferenceInfoOf(await notifyOf(creator, watch.subscription.callId)).info.snapshot!;
    const ep = s.users.find((u) => u.entity === "sip:alice@example.org")?.endpoints[0];
    assert.equal(
      ep?.entity,
      "sip:alice@example.org;gr=urn:uuid:11111111-2222-3333-4444-555555555555",
    );
    assert.deepEqual(ep?.callInfo, { callId: "ZmgJ43fhZ0", fromTag: "yHUJx~vpu", toTag: ok.toTag });

    assert.equal((await rawBye(alice, ok, 21)).status, 200);
    const left = conferenceInfoOf(await notifyOf(creator, watch.subscription.callId)).xml;
    assert.match(left, /<user entity="sip:alice@example.org" state="deleted"/);
  } finally {
    await alice.close();
    await creator.close();
    await srv.stop();
  }
});

Deno.test("routing: requests whose top Route names this server (;lr) are accepted and routed by Request-URI; our requests in those dialogs carry no Route", async () => {
  const srv = await startTestServer();
  const alice = await SipClient.connect("alice", srv.port);
  const bob = await SipClient.connect("bob", srv.port);
  const self = `<sip:127.0.0.1:${srv.port};transport=tcp;lr>`;
  const routes = [self];
  try {
    // Factory INVITE with a Route to us: still the factory (302).
    const f = await alice.sendRequest("INVITE", FACTORY, { routes, headers: [["Subject", "R"]] });
    const redirect = await alice.response(f, "INVITE");
    assert.equal(redirect.status, 302);
    await ackFailure(alice, redirect, FACTORY);
    const conference = contactOf(redirect);

    // Join, SUBSCRIBE and OPTIONS with a Route to us; a second Route below ours (as a
    // Record-Route-less proxy chain would leave) changes nothing for a UAS.
    const aliceCall = await joinConference(alice, conference, 41000, { routes });
    assert.equal(aliceCall.response.headers.get("Route"), undefined);
    const bobCall = await joinConference(bob, conference, 42000, {
      routes: [self, "<sip:proxy.invalid;lr>"],
    });
    const sub = await alice.sendRequest("SUBSCRIBE", conference, {
      callId: `${alice.callId}-rs`,
      routes,
      headers: [["Event", "conference"], ["Expires", "600"]],
    });
    assert.equal((await alice.response(sub, "SUBSCRIBE")).status, 200);
    const n = await alice.take((m): m is SipRequest =>
      "method" in m && m.method === "NOTIFY" && m.callId === `${alice.callId}-rs`
    );
    await alice.answer(n);
    assert.equal(n.headers.get("Route"), undefined, "no Route in our NOTIFY (empty route set)");
    assert.match(textOf(n), /sip:bob@example.org/);

    // A Route to us on a request for something we do not host: 404, not forwarded.
    const x = await bob.sendRequest("INVITE", "sip:nobody@127.0.0.1", { routes });
    const notFound = await bob.response(x, "INVITE");
    assert.equal(notFound.status, 404);
    await ackFailure(bob, notFound, "sip:nobody@127.0.0.1");

    // Alice (admin) ejects bob: the focus's BYE has no Route either.
    const r = await alice.sendRequest("REFER", conference, {
      callId: `${alice.callId}-rr`,
      routes,
      headers: [["Refer-To", "<sip:bob@example.org;method=BYE>"]],
    });
    assert.equal((await alice.response(r, "REFER")).status, 202);
    const bye = await byeOf(bob, bobCall);
    assert.equal(bye.headers.get("Route"), undefined);
    assert.match(bye.headers.get("Reason") ?? "", /^SIP;cause=/);

    // In-dialog BYE with a Route to us.
    const sent = await alice.sendRequest("BYE", contactOf(aliceCall.response), {
      callId: aliceCall.callId,
      to: conference,
      toTag: aliceCall.response.toTag!,
      cseq: 50,
      routes,
    });
    assert.equal((await alice.response(sent, "BYE")).status, 200);
    assert.equal((await inCall(alice, aliceCall, "OPTIONS")).status, 481);
  } finally {
    await alice.close();
    await bob.close();
    await srv.stop();
  }
});
