/**
 * Notifier-side subscriptions (RFC 6665 §4.2) over a fake transaction port and a fake clock:
 * accept, refresh, unsubscribe, fetch, expiry, NOTIFY failures and NOTIFY ordering, and the
 * implicit subscription of REFER (RFC 3515 §2.4.4).
 */

import assert from "node:assert/strict";
import { Dialog } from "../../lib/dialog/dialog.ts";
import type { ServerRequest } from "../../lib/dialog/server_request.ts";
import {
  requestedExpires,
  Subscription,
  type SubscriptionOptions,
  type TerminationReason,
} from "../../lib/dialog/subscription.ts";
import { bodyText } from "../../lib/sip/message.ts";
import { formatUri } from "../../lib/sip/uri.ts";
import {
  defined,
  deliver,
  makeUa,
  settle,
  tcpFlow,
  type UaFixture,
  wireRequest,
} from "./fake_transaction_port.ts";

const CONTACT = "<sip:conf@192.0.2.1:5060;transport=tcp>";
const XML = "application/conference-info+xml";

interface Subscribed {
  readonly fx: UaFixture;
  readonly sub: Subscription;
  readonly tx: ReturnType<typeof deliver>;
  readonly refreshes: string[];
  readonly ended: Array<TerminationReason | "notify-failed">;
}

function options(
  refreshes: string[],
  ended: Array<TerminationReason | "notify-failed">,
  overrides: Partial<SubscriptionOptions> = {},
): SubscriptionOptions {
  return {
    event: "conference",
    minExpires: 60,
    maxExpires: 3600,
    defaultExpires: 600,
    contact: CONTACT,
    events: {
      onRefresh: (_s, req) => refreshes.push(req.headers.get("Expires") ?? "(none)"),
      onTerminated: (_s, reason) => ended.push(reason),
    },
    ...overrides,
  };
}

/** Bob subscribes with `expires` (undefined: no Expires header); the handler accepts. */
function subscribe(
  expires: string | undefined,
  overrides: Partial<SubscriptionOptions> = {},
  extra: Array<[string, string]> = [],
): Subscribed {
  const fx = makeUa();
  const refreshes: string[] = [];
  const ended: Array<TerminationReason | "notify-failed"> = [];
  let sub: Subscription | undefined;
  fx.ua.setHandler({
    onRequest: (sr: ServerRequest) => {
      sub = Subscription.accept(fx.ua, sr, options(refreshes, ended, overrides));
    },
  });
  const tx = deliver(
    fx.ua,
    wireRequest({
      method: "SUBSCRIBE",
      cseq: 10,
      fromTag: "bob",
      contact: "<sip:bob@198.51.100.20:5070;transport=tcp>",
      headers: [
        ["Event", "conference"],
        ...(expires !== undefined ? [["Expires", expires] as [string, string]] : []),
        ...extra,
      ],
    }),
  );
  return { fx, sub: defined(sub, "subscription"), tx, refreshes, ended };
}

function inDialog(s: Subscribed, method: string, cseq: number, headers: Array<[string, string]>) {
  return deliver(
    s.fx.ua,
    wireRequest({
      method,
      cseq,
      fromTag: "bob",
      toTag: s.sub.dialog.id.localTag,
      headers,
      contact: "<sip:bob@198.51.100.21:5070;transport=tcp>",
    }),
  );
}

const body = (text: string) => ({ contentType: XML, body: new TextEncoder().encode(text) });

Deno.test("accept: 200 with the granted Expires and Contact; the dialog serves the subscriber", () => {
  const s = subscribe("7200", {}, [["Record-Route", "<sip:p1.example.net;lr>"]]);
  const ok = s.tx.finalOrThrow;
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("Expires"), "3600", "shortened to maxExpires");
  assert.equal(ok.headers.get("Contact"), CONTACT);
  assert.equal(ok.toTag, s.sub.dialog.id.localTag);
  assert.deepEqual(ok.headers.getAll("Record-Route"), ["<sip:p1.example.net;lr>"]);
  assert.equal(s.sub.state, "active");
  assert.equal(s.sub.remainingSeconds, 3600);
  assert.equal(s.sub.event, "conference");
  assert.equal(s.sub.subscriber, '"Alice" <sip:alice@example.org>;tag=bob');
  assert.equal(s.fx.ua.dialogCount, 1);
  assert.equal(formatUri(s.sub.dialog.remoteTarget), "sip:bob@198.51.100.20:5070;transport=tcp");
  assert.equal(s.sub.flow, s.tx.flow);
});

Deno.test("accept without Expires grants the package default", () => {
  const s = subscribe(undefined);
  assert.equal(s.tx.finalOrThrow.headers.get("Expires"), "600");
  assert.equal(requestedExpires(wireRequest({ method: "SUBSCRIBE" }), 42), 42);
  const junk = wireRequest({ method: "SUBSCRIBE", headers: [["Expires", "soon"]] });
  assert.equal(requestedExpires(junk, 42), 42);
});

Deno.test("an Expires below the minimum gets 423 with Min-Expires, not a lengthened grant", () => {
  // RFC 6665 §4.2.1.1: the notifier "MAY shorten the duration, but MUST NOT lengthen it";
  // a too-short one may get 423 (Interval Too Brief).
  const s = subscribe("10");
  const r = s.tx.finalOrThrow;
  assert.equal(r.status, 423);
  assert.equal(r.headers.get("Min-Expires"), "60");
  assert.equal(s.sub.state, "terminated");
  assert.equal(s.fx.ua.dialogCount, 0);
  assert.deepEqual(s.ended, []);
  assert.equal(s.fx.clock.pendingTimers, 0);
});

Deno.test("NOTIFY: in the dialog, Event and Subscription-State active;expires, body, CSeq rising", async () => {
  const s = subscribe("600", { eventId: "7" });
  s.fx.clock.advance(100_000);
  const first = s.sub.notify(body("<a/>"));
  await settle();
  const n1 = s.fx.port.last("NOTIFY");
  const req = n1.request;
  assert.equal(req.headers.get("Event"), "conference;id=7");
  assert.equal(req.headers.get("Subscription-State"), "active;expires=500");
  assert.equal(req.headers.get("Content-Type"), XML);
  assert.equal(bodyText(req), "<a/>");
  assert.equal(req.fromTag, s.sub.dialog.id.localTag);
  assert.equal(req.toTag, "bob");
  assert.equal(formatUri(req.uri), "sip:bob@198.51.100.20:5070;transport=tcp");
  assert.equal(n1.target, s.tx.flow, "back on the subscriber's open connection");
  s.fx.port.answer(n1, 200, { toTag: "bob" });
  assert.equal(await first, true);
  void s.sub.notify(undefined);
  await settle();
  const n2 = s.fx.port.last("NOTIFY").request;
  assert.equal(n2.cseq.seq, req.cseq.seq + 1);
  assert.equal(n2.body.length, 0);
  assert.equal(n2.headers.has("Content-Type"), false);
});

Deno.test("NOTIFYs go one at a time, in order (RFC 6665 §4.2.2)", async () => {
  const s = subscribe("600");
  const results = [s.sub.notify(body("1")), s.sub.notify(body("2")), s.sub.notify(body("3"))];
  await settle();
  assert.equal(s.fx.port.requests("NOTIFY").length, 1);
  s.fx.port.answer(s.fx.port.last("NOTIFY"), 200, { toTag: "bob" });
  await settle();
  assert.equal(s.fx.port.requests("NOTIFY").length, 2);
  assert.equal(bodyText(s.fx.port.last("NOTIFY").request), "2");
  s.fx.port.answer(s.fx.port.last("NOTIFY"), 202, { toTag: "bob" });
  await settle();
  s.fx.port.answer(s.fx.port.last("NOTIFY"), 200, { toTag: "bob" });
  const notifies = s.fx.port.requests("NOTIFY").map((n) => n.request);
  assert.deepEqual(notifies.map((n) => bodyText(n)), ["1", "2", "3"]);
  const seqs = notifies.map((n) => n.cseq.seq);
  assert.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!);
  assert.deepEqual(await Promise.all(results), [true, true, true]);
});

Deno.test("refresh: new Expires granted, owner told, target refreshed; expiry moves", async () => {
  const s = subscribe("600");
  s.fx.clock.advance(500_000);
  const tx = inDialog(s, "SUBSCRIBE", 11, [["Event", "conference"], ["Expires", "900"]]);
  assert.equal(tx.finalOrThrow.status, 200);
  assert.equal(tx.finalOrThrow.headers.get("Expires"), "900");
  assert.deepEqual(s.refreshes, ["900"]);
  assert.equal(s.sub.remainingSeconds, 900);
  assert.equal(formatUri(s.sub.dialog.remoteTarget), "sip:bob@198.51.100.21:5070;transport=tcp");
  s.fx.clock.advance(200_000);
  await settle();
  assert.equal(s.fx.port.requests("NOTIFY").length, 0, "old expiry no longer applies");
  assert.equal(s.sub.state, "active");
  // A refresh asking too little gets 423 and leaves the subscription as it was.
  const brief = inDialog(s, "SUBSCRIBE", 12, [["Event", "conference"], ["Expires", "5"]]);
  assert.equal(brief.finalOrThrow.status, 423);
  assert.equal(brief.finalOrThrow.headers.get("Min-Expires"), "60");
  assert.equal(s.sub.remainingSeconds, 700);
  assert.deepEqual(s.refreshes, ["900"]);
});

Deno.test("expiry: NOTIFY terminated;reason=timeout, subscription removed", async () => {
  const s = subscribe("120");
  s.fx.clock.advance(120_000 - 1);
  await settle();
  assert.equal(s.fx.port.requests("NOTIFY").length, 0);
  s.fx.clock.advance(1);
  await settle();
  const n = s.fx.port.last("NOTIFY");
  assert.equal(n.request.headers.get("Subscription-State"), "terminated;reason=timeout");
  assert.deepEqual(s.ended, ["timeout"]);
  assert.equal(s.sub.state, "terminated");
  assert.equal(s.fx.ua.dialogCount, 0);
  s.fx.port.answer(n, 200, { toTag: "bob" });
  await settle();
  assert.equal(await s.sub.notify(body("late")), false);
  assert.equal(s.fx.port.requests("NOTIFY").length, 1);
  assert.equal(inDialog(s, "SUBSCRIBE", 11, [["Expires", "600"]]).finalOrThrow.status, 481);
});

Deno.test("unsubscribe (Expires: 0): 200 Expires 0, the owner's NOTIFY terminates it", async () => {
  const s = subscribe("600");
  const tx = inDialog(s, "SUBSCRIBE", 11, [["Event", "conference"], ["Expires", "0"]]);
  assert.equal(tx.finalOrThrow.status, 200);
  assert.equal(tx.finalOrThrow.headers.get("Expires"), "0");
  assert.deepEqual(s.refreshes, ["0"]);
  assert.equal(s.sub.remainingSeconds, 0);
  void s.sub.notify(body("<final/>"));
  await settle();
  const n = s.fx.port.last("NOTIFY").request;
  assert.equal(n.headers.get("Subscription-State"), "terminated;reason=timeout");
  assert.equal(bodyText(n), "<final/>");
  assert.deepEqual(s.ended, ["timeout"]);
  assert.equal(s.fx.ua.dialogCount, 0);
  assert.equal(s.fx.clock.pendingTimers, 0);
});

Deno.test("fetch (Expires: 0): 200 Expires 0, one NOTIFY with terminated state", async () => {
  const s = subscribe("0");
  assert.equal(s.tx.finalOrThrow.status, 200);
  assert.equal(s.tx.finalOrThrow.headers.get("Expires"), "0");
  assert.equal(s.sub.remainingSeconds, 0);
  void s.sub.notify(body("<full/>"));
  await settle();
  const n = s.fx.port.last("NOTIFY").request;
  assert.equal(n.headers.get("Subscription-State"), "terminated;reason=timeout");
  assert.equal(bodyText(n), "<full/>");
  assert.deepEqual(s.ended, ["timeout"]);
  assert.equal(s.fx.ua.dialogCount, 0);
});

Deno.test("a NOTIFY answered 481 ends the subscription; queued NOTIFYs are not sent", async () => {
  const s = subscribe("600");
  const a = s.sub.notify(body("1"));
  const b = s.sub.notify(body("2"));
  await settle();
  s.fx.port.answer(s.fx.port.last("NOTIFY"), 481, { toTag: "bob" });
  assert.equal(await a, false);
  assert.equal(await b, false);
  assert.deepEqual(s.ended, ["notify-failed"]);
  assert.equal(s.sub.state, "terminated");
  assert.equal(s.fx.ua.dialogCount, 0);
  assert.equal(s.fx.port.requests("NOTIFY").length, 1);
  assert.equal(s.fx.clock.pendingTimers, 0);
});

Deno.test("a NOTIFY timing out (408) or failing in transport ends the subscription", async () => {
  const timedOut = subscribe("600");
  const p = timedOut.sub.notify(body("1"));
  await settle();
  timedOut.fx.port.answer(timedOut.fx.port.last("NOTIFY"), 408, { toTag: "bob" });
  assert.equal(await p, false);
  assert.deepEqual(timedOut.ended, ["notify-failed"]);

  const s = subscribe("600");
  s.fx.port.sendRequest = () => ({ final: Promise.reject(new Error("connection reset")) });
  assert.equal(await s.sub.notify(body("1")), false);
  assert.deepEqual(s.ended, ["notify-failed"]);
});

Deno.test("terminate(reason): final NOTIFY with the reason and body", async () => {
  const s = subscribe("600");
  const done = s.sub.terminate("noresource", body("<gone/>"));
  await settle();
  const n = s.fx.port.last("NOTIFY");
  assert.equal(n.request.headers.get("Subscription-State"), "terminated;reason=noresource");
  assert.equal(bodyText(n.request), "<gone/>");
  assert.deepEqual(s.ended, ["noresource"]);
  s.fx.port.answer(n, 200, { toTag: "bob" });
  assert.equal(await done, true);
  assert.deepEqual(s.ended, ["noresource"]);
});

Deno.test("other requests in a subscription dialog get 200, or 481 once it ended", async () => {
  const s = subscribe("600");
  assert.equal(inDialog(s, "INFO", 11, []).finalOrThrow.status, 200);
  void s.sub.terminate("deactivated");
  await settle();
  assert.equal(inDialog(s, "INFO", 12, []).finalOrThrow.status, 481);
});

Deno.test("implicit REFER subscription: NOTIFYs in the existing dialog, not registered", async () => {
  const fx = makeUa();
  const invite = wireRequest({
    method: "INVITE",
    fromTag: "a1",
    contact: "<sip:alice@198.51.100.7>",
  });
  const dialog = Dialog.fromIncomingRequest(invite, "ours", CONTACT);
  dialog.localSeq = 4;
  const ended: Array<TerminationReason | "notify-failed"> = [];
  const sub = Subscription.implicit(
    fx.ua,
    dialog,
    tcpFlow(),
    options([], ended, { event: "refer", defaultExpires: 60 }),
  );
  assert.equal(fx.ua.dialogCount, 0);
  void sub.notify({
    contentType: "message/sipfrag;version=2.0",
    body: new TextEncoder().encode("SIP/2.0 100 Trying\r\n"),
  });
  await settle();
  const n = fx.port.last("NOTIFY").request;
  assert.equal(n.headers.get("Event"), "refer");
  assert.equal(n.headers.get("Subscription-State"), "active;expires=60");
  assert.deepEqual(n.cseq, { seq: 5, method: "NOTIFY" });
  assert.equal(n.toTag, "a1");
  fx.port.answer(fx.port.last("NOTIFY"), 200, { toTag: "a1" });
  void sub.terminate("noresource");
  await settle();
  assert.deepEqual(ended, ["noresource"]);
  assert.equal(fx.port.requests("NOTIFY").length, 2);
  assert.equal(
    fx.port.last("NOTIFY").request.headers.get("Subscription-State"),
    "terminated;reason=noresource",
  );
});

Deno.test("out-of-dialog REFER: the subscription's dialog uses the 202's To tag", async () => {
  const fx = makeUa();
  let sub: Subscription | undefined;
  fx.ua.setHandler({
    onRequest: (sr) => {
      sub = Subscription.forRefer(fx.ua, sr, options([], [], { event: "refer" }));
      sr.respond(202, undefined, { headers: [["Contact", CONTACT]] });
    },
  });
  const tx = deliver(
    fx.ua,
    wireRequest({
      method: "REFER",
      fromTag: "r1",
      contact: "<sip:admin@198.51.100.30>",
      headers: [["Refer-To", "<sip:carol@example.org>"]],
    }),
  );
  const s = defined(sub, "sub");
  assert.equal(tx.finalOrThrow.status, 202);
  assert.equal(tx.finalOrThrow.toTag, s.dialog.id.localTag);
  assert.equal(fx.ua.dialogCount, 1);
  void s.notify(undefined);
  await settle();
  assert.equal(formatUri(fx.port.last("NOTIFY").request.uri), "sip:admin@198.51.100.30");
});
