/**
 * Session timers (RFC 4028): the pure rules of lib/dialog/session_timer.ts, and InviteSession
 * applying them in both roles over a fake port and a stepped clock.
 */

import assert from "node:assert/strict";
import { bodyText } from "../../lib/sip/message.ts";
import { makeUa, peerResponse, sdp, settle, wireRequest } from "./fake_transaction_port.ts";
import { acceptCall, ackFor, dial, inDialog } from "./invite_fixture.ts";
import {
  answerSessionTimer,
  expiryDelayMs,
  parseSessionExpires,
  refreshDelayMs,
  timerFromResponse,
} from "../../lib/dialog/session_timer.ts";

Deno.test("parseSessionExpires reads delta-seconds and the refresher parameter", () => {
  assert.deepEqual(parseSessionExpires("1800"), { seconds: 1800, refresher: undefined });
  assert.deepEqual(parseSessionExpires(" 90 ; Refresher=UAS"), { seconds: 90, refresher: "uas" });
  assert.deepEqual(parseSessionExpires("600;x=1;refresher=uac"), {
    seconds: 600,
    refresher: "uac",
  });
  assert.deepEqual(parseSessionExpires("600;refresher=both"), {
    seconds: 600,
    refresher: undefined,
  });
  for (const bad of [undefined, "", "0", "-1", "soon", "12abc", "1.5"]) {
    assert.equal(parseSessionExpires(bad), undefined, `${bad}`);
  }
});

Deno.test("answerSessionTimer follows the RFC 4028 §9 table", () => {
  const req = (headers: Array<[string, string]>) => wireRequest({ method: "INVITE", headers });
  const cases: Array<[Array<[string, string]>, string | undefined, boolean]> = [
    // UAC supports?   refresher in request → in response
    [[["Session-Expires", "1800"]], "1800;refresher=uas", false], // N, none → uas
    [[["Session-Expires", "1800;refresher=uac"]], "1800;refresher=uas", false], // N → uas
    [[["Session-Expires", "1800"], ["Supported", "timer"]], "1800;refresher=uac", true],
    [
      [["Session-Expires", "1800;refresher=uac"], ["Supported", "timer"]],
      "1800;refresher=uac",
      true,
    ],
    [
      [["Session-Expires", "1800;refresher=uas"], ["Supported", "timer"]],
      "1800;refresher=uas",
      true,
    ],
    [[["Supported", "timer"]], undefined, false],
  ];
  for (const [headers, se, require] of cases) {
    const a = answerSessionTimer(req(headers));
    assert.equal(
      a?.headers.find(([n]) => n === "Session-Expires")?.[1],
      se,
      JSON.stringify(headers),
    );
    assert.equal(a?.headers.some(([n, v]) => n === "Require" && v === "timer") ?? false, require);
  }
});

Deno.test("timerFromResponse defaults to uac; refresh at half, give up min(32 s, 1/3) early", () => {
  const invite = wireRequest({ method: "INVITE" });
  const with_ = peerResponse(invite, 200, { headers: [["Session-Expires", "120"]] });
  assert.deepEqual(timerFromResponse(with_), { seconds: 120, refresher: "uac" });
  assert.equal(timerFromResponse(peerResponse(invite, 200)), undefined);
  assert.equal(refreshDelayMs(1800), 900_000);
  assert.equal(expiryDelayMs(1800), 1_768_000);
  assert.equal(expiryDelayMs(90), 60_000);
});

Deno.test("session timer, UAC supports and refreshes: refresher=uac, Require: timer", () => {
  const a = acceptCall({ headers: [["Session-Expires", "1800"], ["Supported", "timer, 100rel"]] });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.headers.get("Session-Expires"), "1800;refresher=uac");
  assert.equal(ok.headers.get("Require"), "timer");
  ackFor(a);
  // The peer refreshes at 900 s with an UPDATE; its 2xx repeats the interval.
  a.fx.clock.advance(900_000);
  const refresh = inDialog(a, "UPDATE", 2, {
    headers: [["Session-Expires", "1800;refresher=uac"], ["Supported", "timer"]],
  }).finalOrThrow;
  assert.equal(refresh.headers.get("Session-Expires"), "1800;refresher=uac");
  assert.equal(refresh.headers.get("Require"), "timer");
  // §10: without a further refresh, BYE at expiry minus min(32 s, interval/3).
  a.fx.clock.advance(1_768_000 - 1);
  assert.equal(a.fx.port.requests("BYE").length, 0);
  assert.equal(a.fx.port.requests("UPDATE").length, 0, "we are not the refresher");
  a.fx.clock.advance(1);
  assert.equal(a.fx.port.requests("BYE").length, 1);
  assert.deepEqual(a.events.ended, ["session-expired"]);
});

Deno.test("session timer, UAC asks the UAS to refresh: refresher=uas, we send UPDATE at half time", async () => {
  const a = acceptCall({
    headers: [
      ["Session-Expires", "600;refresher=uas"],
      ["Supported", "timer"],
      ["Allow", "INVITE, ACK, BYE, UPDATE"],
    ],
  });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.headers.get("Session-Expires"), "600;refresher=uas");
  assert.equal(ok.headers.get("Require"), "timer");
  ackFor(a);
  a.fx.clock.advance(300_000 - 1);
  assert.equal(a.fx.port.sent.length, 0);
  a.fx.clock.advance(1);
  const update = a.fx.port.last("UPDATE");
  assert.equal(update.request.headers.get("Session-Expires"), "600;refresher=uac");
  assert.ok(update.request.headers.get("Supported")?.includes("timer"));
  assert.equal(update.request.body.length, 0);
  a.fx.port.answer(update, 200, {
    toTag: "a1",
    headers: [["Session-Expires", "600;refresher=uac"], ["Require", "timer"]],
  });
  await settle();
  a.fx.clock.advance(300_000);
  assert.equal(a.fx.port.requests("UPDATE").length, 2);
  assert.deepEqual(a.events.ended, []);
});

Deno.test("session timer, UAC without timer support: refresher=uas, no Require, re-INVITE refresh", async () => {
  const a = acceptCall({
    headers: [["Session-Expires", "90"], ["Allow", "INVITE, ACK, BYE, CANCEL"]],
  });
  const ok = a.tx.finalOrThrow;
  assert.equal(ok.headers.get("Session-Expires"), "90;refresher=uas");
  assert.equal(ok.headers.has("Require"), false);
  ackFor(a);
  a.fx.clock.advance(45_000);
  const reinvite = a.fx.port.last("INVITE");
  assert.equal(bodyText(reinvite.request), sdp("conf"), "same session description");
  assert.equal(reinvite.request.headers.get("Session-Expires"), "90;refresher=uac");
  a.fx.port.answer(reinvite, 200, { toTag: "a1", body: sdp("alice") });
  await settle();
  assert.equal(a.fx.port.acks.length, 1);
  assert.deepEqual(a.fx.port.acks[0]?.ack.cseq, { seq: reinvite.request.cseq.seq, method: "ACK" });
});

Deno.test("no or malformed Session-Expires: no session-timer headers and no timers", () => {
  for (const se of [undefined, "soon", "-5", "0"]) {
    const a = acceptCall({
      headers: se === undefined ? [["Supported", "timer"]] : [["Session-Expires", se]],
    });
    const ok = a.tx.finalOrThrow;
    assert.equal(ok.headers.has("Session-Expires"), false, `${se}`);
    assert.equal(ok.headers.has("Require"), false, `${se}`);
    ackFor(a);
    assert.equal(a.fx.clock.pendingTimers, 0, `${se}`);
  }
});

Deno.test("dialled session: a 2xx naming us (uac) as refresher makes us refresh", async () => {
  const fx = makeUa();
  const d = await dial(fx);
  fx.port.answer(d.invite, 200, {
    toTag: "bob1",
    body: sdp("bob"),
    headers: [
      ["Session-Expires", "120;refresher=uac"],
      ["Require", "timer"],
      ["Allow", "INVITE, ACK, BYE, UPDATE"],
    ],
  });
  const { session } = await d.result;
  assert.ok(session);
  fx.clock.advance(60_000);
  const update = fx.port.last("UPDATE");
  assert.equal(update.request.headers.get("Session-Expires"), "120;refresher=uac");
  void session.bye();
  assert.equal(fx.clock.pendingTimers, 0);
});
