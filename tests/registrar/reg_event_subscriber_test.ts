/**
 * The RFC 3680 subscriber over real TCP sockets, against a scripted notifier playing the
 * foreign domain's proxy (the outbound proxy of our user agent): SUBSCRIBE shape, full and
 * partial NOTIFYs with versions, a gap asking for full state, the refresh before expiry, and
 * re-subscription after termination honouring retry-after. Time is a FakeClock.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { createLogger } from "../../lib/config/log.ts";
import { transactionPortOver } from "../../lib/dialog/transaction_port.ts";
import { UserAgent } from "../../lib/dialog/user_agent.ts";
import { buildRegInfo, type RegContact } from "../../lib/events/reg_event.ts";
import type { DeviceEvent } from "../../lib/registrar/device_directory.ts";
import {
  emptyNotifyMeansNone,
  RegEventDirectory,
} from "../../lib/registrar/reg_event_subscriber.ts";
import { SipRequest, SipResponse } from "../../lib/sip/message.ts";
import { serializeMessage } from "../../lib/sip/parser.ts";
import { createResponse } from "../../lib/sip/message.ts";
import { parseUri } from "../../lib/sip/uri.ts";
import { TransactionLayer } from "../../lib/transaction/transaction_layer.ts";
import { TransportLayer } from "../../lib/transport/transport.ts";
import { RawStreamPeer } from "../_helpers/sip_transport.ts";
import { LogCapture } from "../storage/_support.ts";

const AOR = "sip:alice@remote.example";

function device(id: string, state: "active" | "terminated" = "active"): RegContact {
  return {
    id,
    state,
    event: state === "active" ? "registered" : "unregistered",
    uri: `sip:alice@198.51.100.${id.length};transport=tcp`,
    unknownParams: [
      { name: "+sip.instance", value: `"<urn:uuid:${id}>"` },
      { name: "+org.linphone.specs", value: "groupchat/1.1" },
    ],
    pubGruu: `${AOR};gr=urn:uuid:${id}`,
  };
}

function reginfo(version: number, state: "full" | "partial", contacts: RegContact[]): string {
  return buildRegInfo({
    version,
    state,
    registrations: [{ aor: AOR, id: "r1", state: "active", contacts }],
  });
}

/** The notifier end of one TCP connection our user agent opened. */
class Notifier {
  readonly peer: RawStreamPeer;
  readonly port: number;
  #cseq = 1;
  #inbox: Array<SipRequest | SipResponse> = [];

  constructor(peer: RawStreamPeer, port: number) {
    this.peer = peer;
    this.port = port;
  }

  async next<T extends SipRequest | SipResponse>(
    pred: (m: SipRequest | SipResponse) => m is T,
  ): Promise<T> {
    for (;;) {
      const i = this.#inbox.findIndex(pred);
      if (i >= 0) return this.#inbox.splice(i, 1)[0] as T;
      this.#inbox.push(await this.peer.nextMessage() as SipRequest | SipResponse);
    }
  }

  subscribe(): Promise<SipRequest> {
    return this.next((m): m is SipRequest => m instanceof SipRequest && m.method === "SUBSCRIBE");
  }

  async answer(request: SipRequest, status: number, headers: Array<[string, string]> = []) {
    const response = createResponse(request, status, undefined, {
      toTag: "n1",
      headers: [["Contact", `<sip:notifier@127.0.0.1:${this.port};transport=tcp>`], ...headers],
    });
    await this.peer.write(serializeMessage(response));
  }

  /** Sends a NOTIFY in the dialog of `subscribe` and returns our user agent's answer. */
  async notify(subscribe: SipRequest, state: string, body?: string): Promise<SipResponse> {
    const cseq = ++this.#cseq;
    const contact = /<([^>]*)>/.exec(subscribe.headers.get("Contact") ?? "")?.[1] ?? "";
    const lines = [
      `NOTIFY ${contact} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${this.port};branch=z9hG4bK${crypto.randomUUID()}`,
      `From: <${AOR}>;tag=n1`,
      `To: ${subscribe.headers.get("From")}`,
      `Call-ID: ${subscribe.callId}`,
      `CSeq: ${cseq} NOTIFY`,
      "Max-Forwards: 70",
      `Contact: <sip:notifier@127.0.0.1:${this.port};transport=tcp>`,
      "Event: reg",
      `Subscription-State: ${state}`,
    ];
    const bytes = new TextEncoder().encode(body ?? "");
    if (body !== undefined) lines.push("Content-Type: application/reginfo+xml");
    lines.push(`Content-Length: ${bytes.length}`, "", body ?? "");
    await this.peer.write(lines.join("\r\n"));
    return this.next((m): m is SipResponse =>
      m instanceof SipResponse && m.cseq.method === "NOTIFY" && m.cseq.seq === cseq
    );
  }
}

async function stack(clock: FakeClock, proxyPort: number) {
  const transport = new TransportLayer({ clock, tls: {} });
  const bound = await transport.listen({ transport: "TCP", host: "127.0.0.1", port: 0 });
  const ref: { ua?: UserAgent } = {};
  const transactions = new TransactionLayer({
    transport,
    clock,
    user: {
      onRequest: (tx) => ref.ua?.receiveRequest(tx),
      onAck: (ack) => ref.ua?.receiveAck(ack),
      onCancel: (invite) => ref.ua?.receiveCancel(invite.request),
    },
  });
  const ua = new UserAgent({
    port: transactionPortOver(transactions, transport),
    clock,
    logger: createLogger("ua"),
    serverName: "Conclave/test",
    outboundProxy: parseUri(`sip:127.0.0.1:${proxyPort};transport=tcp`),
    t1Ms: 500,
    t2Ms: 4000,
    contactUri: (user) => parseUri(`sip:${user}@127.0.0.1:${bound.port};transport=tcp`),
  });
  ref.ua = ua;
  ua.setHandler({ onRequest: (sr) => sr.respond(405) });
  return {
    ua,
    port: bound.port,
    async close() {
      transactions.close();
      await transport.close();
    },
  };
}

/** Waits until `check` holds, letting socket I/O run (no clock involved). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), "condition never held");
}

Deno.test("reg-event: subscribe via the proxy, full/partial NOTIFYs, gap refetch, refresh, resubscribe", async () => {
  const clock = new FakeClock();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const proxyPort = (listener.addr as Deno.NetAddr).port;
  const s = await stack(clock, proxyPort);
  const capture = new LogCapture();
  const directory = new RegEventDirectory({
    ua: s.ua,
    clock,
    logger: createLogger("reg-event"),
    from: "sip:conference-factory@conf.example",
    contact: `<sip:conference-factory@127.0.0.1:${s.port};transport=tcp>`,
    expires: 600,
  });
  const events: DeviceEvent[] = [];
  try {
    await directory.start();
    const watch = directory.watch(`<${AOR};transport=tcp>`, (e) => events.push(e));
    const n = new Notifier(await RawStreamPeer.accept(listener), proxyPort);

    // RFC 3680 §4: SUBSCRIBE for the AOR, Event: reg, Accept reginfo, through the proxy.
    const sub = await n.subscribe();
    assert.equal(sub.uri.user, "alice");
    assert.equal(sub.uri.host, "remote.example");
    assert.equal(sub.headers.get("Event"), "reg");
    assert.equal(sub.headers.get("Accept"), "application/reginfo+xml");
    assert.equal(sub.headers.get("Expires"), "600");
    assert.equal(sub.headers.get("Route"), `<sip:127.0.0.1:${proxyPort};transport=tcp;lr>`);
    assert.equal(sub.toTag, undefined);

    // The NOTIFY overtakes the 200 (RFC 6665 §4.1.2.4): it creates the dialog.
    const first = await n.notify(sub, "active;expires=600", reginfo(0, "full", [device("aaaa")]));
    assert.equal(first.status, 200);
    await n.answer(sub, 200, [["Expires", "600"]]);
    await until(() => events.length === 1);
    assert.deepEqual(events[0]?.changes.map((c) => [c.kind, c.device.instance]), [
      ["added", "urn:uuid:aaaa"],
    ]);
    assert.equal(events[0]?.devices[0]?.uri, `${AOR};gr=urn:uuid:aaaa`);
    assert.equal(events[0]?.devices[0]?.specs, "groupchat/1.1");

    // Partial version 1 adds a device.
    assert.equal(
      (await n.notify(sub, "active", reginfo(1, "partial", [device("bbbbb")]))).status,
      200,
    );
    await until(() => events.length === 2);
    assert.deepEqual(events[1]?.changes.map((c) => [c.kind, c.device.id]), [
      ["added", "urn:uuid:bbbbb"],
    ]);
    // A stale partial (version 1 again) changes nothing; a bad body is answered and ignored.
    assert.equal(
      (await n.notify(sub, "active", reginfo(1, "partial", [device("aaaa", "terminated")])))
        .status,
      200,
    );
    assert.equal((await n.notify(sub, "active", "<reginfo")).status, 200);
    assert.equal(events.length, 2);
    assert.deepEqual((await directory.devicesOf(AOR)).map((d) => d.id), [
      "urn:uuid:aaaa",
      "urn:uuid:bbbbb",
    ]);

    // Version 3 after 1: a gap. Applied, and a refresh asks for full state (RFC 3680 §5.3).
    await n.notify(sub, "active", reginfo(3, "partial", [device("aaaa", "terminated")]));
    const refetch = await n.subscribe();
    assert.equal(refetch.toTag, "n1");
    assert.equal(refetch.callId, sub.callId);
    await n.answer(refetch, 200, [["Expires", "600"]]);
    await until(() => events.length === 3);
    assert.deepEqual(events[2]?.changes.map((c) => c.kind), ["removed"]);
    await n.notify(sub, "active", reginfo(4, "full", [device("bbbbb"), device("cccccc")]));
    await until(() => events.length === 4);
    assert.deepEqual(events[3]?.changes.map((c) => [c.kind, c.device.id]), [
      ["added", "urn:uuid:cccccc"],
    ]);

    // Refresh a minute before expiry (600 s granted → 540 s).
    clock.advance(539_000);
    clock.advance(1_000);
    const refresh = await n.subscribe();
    assert.equal(refresh.toTag, "n1");
    assert.equal(refresh.headers.get("Expires"), "600");
    await n.answer(refresh, 200, [["Expires", "600"]]);

    // Terminated (deactivated): a new subscription at once (RFC 6665 §4.1.3).
    await n.notify(sub, "terminated;reason=deactivated");
    await until(() => capture.matching("reg subscription ended").length === 1);
    clock.advance(0);
    const again = await n.subscribe();
    assert.equal(again.toTag, undefined);
    assert.notEqual(again.callId, sub.callId);
    // Refused with Retry-After: the next try waits for it (30 s > the 4 s backoff).
    await n.answer(again, 503, [["Retry-After", "30"]]);
    await until(() => capture.matching("inMs=30000").length === 1);
    clock.advance(30_000);
    const third = await n.subscribe();
    await n.answer(third, 200, [["Expires", "600"]]);
    await n.notify(third, "active;expires=600", reginfo(0, "full", [device("cccccc")]));
    // The new subscription's full state (version 0 again) replaces the view.
    await until(() => events.length === 5);
    assert.deepEqual(events[4]?.changes.map((c) => [c.kind, c.device.id]), [
      ["removed", "urn:uuid:bbbbb"],
    ]);

    // Closing the last watch unsubscribes (Expires: 0, RFC 6665 §4.1.2.3).
    watch.close();
    const bye = await n.subscribe();
    assert.equal(bye.headers.get("Expires"), "0");
    assert.equal(bye.callId, third.callId);
    await n.answer(bye, 200, [["Expires", "0"]]);
    await until(() => directory.subscriptionCount === 0);
    n.peer.close();
  } finally {
    capture.restore();
    await directory.stop();
    await s.close();
    listener.close();
  }
});

Deno.test("reg-event: an empty NOTIFY means no registrations when active or ending a fetch", () => {
  assert.equal(emptyNotifyMeansNone({ state: "active", expires: 600 }, false), true);
  assert.equal(emptyNotifyMeansNone({ state: "pending" }, false), false);
  assert.equal(emptyNotifyMeansNone({ state: "terminated", reason: "timeout" }, false), false);
  assert.equal(emptyNotifyMeansNone({ state: "terminated", reason: "timeout" }, true), true);
  assert.equal(emptyNotifyMeansNone({ state: "terminated" }, true), true);
  assert.equal(emptyNotifyMeansNone({ state: "terminated", reason: "rejected" }, true), false);
});

// Kamailio 5.6 (presence_reginfo) answers a reg SUBSCRIBE for an AOR without registrations
// with a NOTIFY that has no body at all (seen in tests/e2e/kamailio_reg_event_test.ts).
Deno.test("reg-event: Kamailio's body-less NOTIFY reads as no devices (watch and fetch)", async () => {
  const clock = new FakeClock();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const proxyPort = (listener.addr as Deno.NetAddr).port;
  const s = await stack(clock, proxyPort);
  const directory = new RegEventDirectory({
    ua: s.ua,
    clock,
    logger: createLogger("reg-event"),
    from: "sip:conference-factory@conf.example",
    contact: `<sip:conference-factory@127.0.0.1:${s.port};transport=tcp>`,
    expires: 600,
  });
  const events: DeviceEvent[] = [];
  try {
    // A one-time fetch (Expires: 0) ended by an empty terminated;reason=timeout NOTIFY: [].
    const fetched = directory.devicesOf(AOR);
    const n = new Notifier(await RawStreamPeer.accept(listener), proxyPort);
    const fetch = await n.subscribe();
    assert.equal(fetch.headers.get("Expires"), "0");
    await n.answer(fetch, 200, [["Expires", "0"]]);
    assert.equal((await n.notify(fetch, "terminated;reason=timeout")).status, 200);
    let answer: readonly unknown[] | Error | undefined;
    fetched.then((d) => answer = d, (e: Error) => answer = e);
    await until(() => answer !== undefined);
    assert.deepEqual(answer, []);

    // A watch: pending and empty says nothing yet; active and empty is the empty set, so
    // devicesOf answers from the view without another fetch.
    const watch = directory.watch(AOR, (e) => events.push(e));
    const sub = await n.subscribe();
    assert.equal(sub.headers.get("Expires"), "600");
    await n.answer(sub, 200, [["Expires", "600"]]);
    await n.notify(sub, "pending;expires=600");
    await n.notify(sub, "active;expires=600");
    assert.deepEqual(await directory.devicesOf(AOR), []);
    assert.equal(directory.subscriptionCount, 1, "no fetch: the view is known");
    // Then a device registers: Kamailio's full document, always version 0.
    await n.notify(sub, "active;expires=590", reginfo(0, "full", [device("aaaa")]));
    await until(() => events.length === 1);
    assert.deepEqual(events[0]?.changes.map((c) => [c.kind, c.device.id]), [
      ["added", "urn:uuid:aaaa"],
    ]);
    // It leaves, and the publication is gone: an empty NOTIFY removes it.
    await n.notify(sub, "active;expires=580");
    await until(() => events.length === 2);
    assert.deepEqual(events[1]?.changes.map((c) => [c.kind, c.device.id]), [
      ["removed", "urn:uuid:aaaa"],
    ]);
    // An empty NOTIFY ending the subscription keeps the view until the new one reports.
    const before = events.length;
    await n.notify(sub, "active;expires=570", reginfo(0, "full", [device("bbbbb")]));
    await until(() => events.length === before + 1);
    await n.notify(sub, "terminated;reason=deactivated");
    assert.deepEqual((await directory.devicesOf(AOR)).map((d) => d.id), ["urn:uuid:bbbbb"]);
    clock.advance(0);
    const again = await n.subscribe();
    await n.answer(again, 200, [["Expires", "600"]]);
    watch.close();
    const bye = await n.subscribe();
    await n.answer(bye, 200, [["Expires", "0"]]);
    n.peer.close();
  } finally {
    await directory.stop();
    await s.close();
    listener.close();
  }
});
