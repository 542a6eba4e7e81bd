/**
 * The shipped SIPp scenarios (`tests/e2e/scenarios/`) against a running Conclave: SIPp is a
 * real SIP peer nobody here wrote, and every check the scenarios make (`<ereg check_it>`,
 * versions) must pass for SIPp to exit 0. The tests then assert on the values the scenarios
 * captured and on the server's own state.
 *
 * - factory_invite.xml: RFC 4579 §5.1 creation, 302 whose Contact is the new conference URI
 *   (`conf-id`, `isfocus`, reachable at this server's host/port/transport).
 * - focus_invite.xml: RFC 4579 §5.2 join by INVITE (200 `;isfocus` with an SDP answer), BYE;
 *   the ad-hoc conference then ends (410), an unknown conf-id is 404.
 * - subscribe_conference.xml: RFC 4575 over RFC 6665, full NOTIFY, a participant joins →
 *   partial NOTIFY with version+1, unsubscribe → NOTIFY with Subscription-State terminated.
 *
 * SIPp (Debian `sip-tester`) missing: the tests are ignored with a loud warning, unless
 * `CONCLAVE_REQUIRE_SERVICES=1`, in which case they run and fail.
 */

import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { hasBinary, waitForFileMatch } from "../_helpers/netns.ts";
import {
  type LoggedMessage,
  loggedMessages,
  logValues,
  runSipp,
  scenarioPath,
  type SippOptions,
  type SippProcess,
  type SippResult,
  startSipp,
} from "../_helpers/sipp.ts";
import { startTestServer, type TestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

const REQUIRE = Deno.env.get("CONCLAVE_REQUIRE_SERVICES") === "1";
const noSipp = !(await hasBinary("sipp")) && !REQUIRE;
if (noSipp) {
  console.warn(
    "\n!!! sipp_conference_test: SIPp not installed — tests IGNORED " +
      "(apt-get install sip-tester; CONCLAVE_REQUIRE_SERVICES=1 makes this fail).\n",
  );
}

/** Deadline for a condition polled on a real server (a safety net, not a speed check). */
const WAIT_MS = 20_000;

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + WAIT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function explain(result: SippResult): string {
  return `sipp code ${result.code} (dir ${result.dir})\nerrors:\n${result.errors.slice(-3000)}\n` +
    `stdout tail:\n${result.stdout.slice(-1500)}\nstderr: ${result.stderr.slice(-1000)}`;
}

/** Start lines of the messages in a SIPp message log, 100 Trying left out. */
function startLines(result: SippResult, direction?: LoggedMessage["direction"]): string[] {
  return loggedMessages(result.messages)
    .filter((m) => direction === undefined || m.direction === direction)
    .map((m) => m.text.match(/^(SIP\/2\.0 \d{3}|[A-Z]+)/)?.[1] ?? "?")
    .filter((line) => line !== "SIP/2.0 100");
}

function header(message: LoggedMessage, name: string): string | undefined {
  return message.text.match(new RegExp(`^${name}:[ \\t]*(.*?)\\r?$`, "mi"))?.[1];
}

function body(message: LoggedMessage): string {
  const at = message.text.search(/\r?\n\r?\n/);
  return at < 0 ? "" : message.text.slice(at).trim();
}

/** Removes the scenario directories of SIPp runs that passed their checks. */
async function cleanUp(...results: SippResult[]): Promise<void> {
  for (const r of results) await Deno.remove(r.dir, { recursive: true }).catch(() => {});
}

/**
 * Runs `body` against a fresh in-process server; afterwards (also on failure) stops every SIPp
 * instance `body` started through the given `spawn`, the server, and removes its state.
 */
async function withServer(
  body: (srv: TestServer, spawn: typeof startSipp) => Promise<void>,
): Promise<void> {
  const srv = await startTestServer();
  const started: SippProcess[] = [];
  const spawn = async (options: SippOptions) => {
    const process = await startSipp(options);
    started.push(process);
    return process;
  };
  try {
    await body(srv, spawn);
  } finally {
    await Promise.all(started.map((p) => p.stop()));
    await srv.stop();
    await Deno.remove(srv.stateDirectory, { recursive: true }).catch(() => {});
  }
}

/** factory_invite.xml, `calls` times: each 302 must name a new conference URI. */
async function createConferences(srv: TestServer, calls = 1) {
  const result = await runSipp({
    scenario: scenarioPath("factory_invite"),
    service: "conference-factory",
    remote: `127.0.0.1:${srv.port}`,
    calls,
    rate: 10,
    limit: 1, // one call at a time: the message log then reads call by call
  });
  assert.equal(result.code, 0, explain(result));
  const uris = logValues(result.logs, "CONF_URI");
  assert.equal(uris.length, calls, result.logs);
  const ids = uris.map((uri) => {
    const match = uri.match(
      new RegExp(
        `^sip:conference-focus@127\\.0\\.0\\.1:${srv.port};transport=tcp;conf-id=([A-Za-z0-9_-]{22,})$`,
      ),
    );
    assert.ok(match, `conference URI ${uri} is not this server's focus URI with a conf-id`);
    return match[1]!;
  });
  return { result, uris, ids };
}

Deno.test({
  name: "SIPp factory_invite.xml: 302 with a fresh conf-id and isfocus; the conference exists",
  ignore: noSipp,
  async fn() {
    await withServer(async (srv) => {
      const { result, uris, ids } = await createConferences(srv, 3);
      assert.equal(new Set(ids).size, 3, `conf-ids reused: ${ids}`);
      // Exactly INVITE → 302 → ACK per call.
      assert.deepEqual(startLines(result), [
        ...["INVITE", "SIP/2.0 302", "ACK"],
        ...["INVITE", "SIP/2.0 302", "ACK"],
        ...["INVITE", "SIP/2.0 302", "ACK"],
      ]);
      const redirects = loggedMessages(result.messages).filter((m) =>
        m.text.startsWith("SIP/2.0 302")
      );
      redirects.forEach((m, i) => {
        // RFC 3840 feature tag on the Contact header field (outside the angle brackets).
        assert.equal(header(m, "Contact"), `<${uris[i]}>;isfocus`);
      });
      for (const id of ids) {
        const live = srv.server.focus.conferences.get(id);
        assert.ok(live, `conference ${id} is not live in the focus`);
        assert.equal(live.callCount, 0);
        assert.equal(live.ended, false);
        const record = await srv.server.store.getConference(id);
        assert.ok(record, `conference ${id} was not stored`);
        assert.equal(record.subject, "SIPp factory conference", "Subject becomes the subject");
        assert.equal(record.factoryUri, "sip:conference-factory@127.0.0.1");
        assert.equal(record.endedAt, null);
      }
      await cleanUp(result);
    });
  },
});

Deno.test({
  name: "SIPp focus_invite.xml: joins the factory's URI (200 ;isfocus, SDP), BYE ends it (410)",
  ignore: noSipp,
  async fn() {
    await withServer(async (srv, spawn) => {
      const created = await createConferences(srv);
      const confUri = created.uris[0]!;
      const id = created.ids[0]!;
      const conference = srv.server.focus.conferences.get(id);
      assert.ok(conference);

      const caller = await spawn({
        scenario: scenarioPath("focus_invite"),
        keys: { conf_uri: confUri },
        remote: `127.0.0.1:${srv.port}`,
        pauseMs: 1500, // in the call, so that the test can look at the server meanwhile
      });
      await waitUntil("the SIPp call in the conference", () => conference.callCount === 1);
      const result = await caller.result;
      assert.equal(result.code, 0, explain(result));
      assert.deepEqual(startLines(result), ["INVITE", "SIP/2.0 200", "ACK", "BYE", "SIP/2.0 200"]);

      const joined = result.logs.match(/JOINED m=audio (\d+) RTP\/AVP ([0-9 ]+?) isfocus/);
      assert.ok(joined, `no JOINED line in\n${result.logs}`);
      const ok = loggedMessages(result.messages).find((m) => m.text.startsWith("SIP/2.0 200"))!;
      assert.match(header(ok, "Contact") ?? "", new RegExp(`;conf-id=${id}[;>].*;isfocus$`));
      assert.match(header(ok, "Content-Type") ?? "", /^application\/sdp/);
      const sdp = body(ok);
      assert.match(sdp, /^c=IN IP4 127\.0\.0\.1\r?$/m, sdp);
      assert.match(sdp, /^a=rtpmap:0 PCMU\/8000\r?$/m, sdp);
      assert.match(sdp, new RegExp(`^m=audio ${joined[1]} RTP/AVP 0( 101)?\\r?$`, "m"), sdp);
      assert.doesNotMatch(sdp, /opus/i, "answered with a codec that was not offered");

      // The only participant left: an ad-hoc conference ends (RFC 4353 §5.3 policy).
      await waitUntil("the conference to end", () => conference.ended);
      assert.equal(conference.callCount, 0);
      const again = await runSipp({
        scenario: scenarioPath("focus_invite"),
        keys: { conf_uri: confUri },
        remote: `127.0.0.1:${srv.port}`,
        pauseMs: 100,
      });
      assert.notEqual(again.code, 0, "joining an ended conference succeeded");
      assert.deepEqual(startLines(again, "received"), ["SIP/2.0 410"], explain(again));

      const unknown = await runSipp({
        scenario: scenarioPath("focus_invite"),
        keys: { conf_uri: confUri.replace(`conf-id=${id}`, "conf-id=AAAAAAAAAAAAAAAAAAAAAA") },
        remote: `127.0.0.1:${srv.port}`,
        pauseMs: 100,
      });
      assert.notEqual(unknown.code, 0, "joining an unknown conference succeeded");
      assert.deepEqual(startLines(unknown, "received"), ["SIP/2.0 404"], explain(unknown));
      await cleanUp(created.result, result, again, unknown);
    });
  },
});

Deno.test({
  name: "SIPp subscribe_conference.xml: full NOTIFY, a join → partial version+1, unsubscribe",
  ignore: noSipp,
  async fn() {
    await withServer(async (srv, spawn) => {
      const created = await createConferences(srv);
      const confUri = created.uris[0]!;
      const watcher = await spawn({
        scenario: scenarioPath("subscribe_conference"),
        keys: { conf_uri: confUri },
        remote: `127.0.0.1:${srv.port}`,
        name: "watcher",
      });
      // The first NOTIFY has been answered before anybody joins (a 200 whose CSeq, in the
      // same logged message, names NOTIFY; SIPp's log separates messages with dashes).
      await waitForFileMatch(
        watcher.files.messages,
        /^SIP\/2\.0 200 OK\r?\n(?:(?!-{10}).*\r?\n)*?CSeq: \d+ NOTIFY/m,
        WAIT_MS,
      );
      const participant = await runSipp({
        scenario: scenarioPath("focus_invite"),
        keys: { conf_uri: confUri },
        remote: `127.0.0.1:${srv.port}`,
        pauseMs: 500,
        name: "participant",
      });
      assert.equal(participant.code, 0, explain(participant));
      const result = await watcher.result;
      assert.equal(result.code, 0, explain(result));

      const full = Number(logValues(result.logs, "NOTIFY_FULL version")[0]);
      const partial = Number(logValues(result.logs, "NOTIFY_PARTIAL version")[0]);
      assert.ok(Number.isInteger(full) && full >= 1, result.logs);
      assert.equal(partial, full + 1, result.logs);

      const received = loggedMessages(result.messages).filter((m) => m.direction === "received");
      const notifies = received.filter((m) => m.text.startsWith("NOTIFY "));
      assert.ok(notifies.length >= 3, `only ${notifies.length} NOTIFYs`);
      const [first, second] = notifies;
      const last = notifies.at(-1)!;
      // The full state of a conference nobody has joined yet; its entity is the conference
      // URI as stored (focus URI + conf-id, RFC 4575 §5.1), without our port and transport.
      const entity = `sip:conference-focus@127.0.0.1;conf-id=${created.ids[0]}`;
      assert.match(body(first!), new RegExp(`<conference-info[^>]*\\sentity="${escape(entity)}"`));
      assert.match(body(first!), /<user-count>0<\/user-count>/);
      assert.doesNotMatch(body(first!), /<user\s/);
      // The partial names the SIPp participant who joined: its address of record (From
      // without port) as the user and its Contact as the endpoint (RFC 4575 §5.6, §5.7).
      const invite = loggedMessages(participant.messages)[0]!;
      const from = header(invite, "From")?.match(/<sip:([^@>]+)@([^:;>]+)/);
      const contact = header(invite, "Contact")?.match(/<([^>]+)>/)?.[1];
      assert.ok(from && contact, invite.text);
      const partialXml = body(second!);
      assert.match(partialXml, /<conference-info[^>]*\sstate="partial"/);
      assert.match(
        partialXml,
        new RegExp(`<user[^>]*\\sentity="sip:${escape(from[1]!)}@${escape(from[2]!)}"`),
        partialXml,
      );
      assert.match(partialXml, new RegExp(`<endpoint[^>]*\\sentity="${escape(contact)}"`));
      assert.match(partialXml, /<user-count>1<\/user-count>/);
      assert.match(header(last, "Subscription-State") ?? "", /^terminated/);
      // Every NOTIFY was answered 200, and the un-SUBSCRIBE carried Expires: 0.
      const sent = loggedMessages(result.messages).filter((m) => m.direction === "sent");
      assert.equal(
        sent.filter((m) => /^SIP\/2\.0 200/.test(m.text) && /^CSeq: \d+ NOTIFY/m.test(m.text))
          .length,
        notifies.length,
      );
      const subscribes = sent.filter((m) => m.text.startsWith("SUBSCRIBE "));
      assert.equal(subscribes.length, 2);
      assert.equal(header(subscribes[1]!, "Expires"), "0");
      await cleanUp(created.result, participant, result);
    });
  },
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
