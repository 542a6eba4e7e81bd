import assert from "node:assert/strict";
import { setLogLevel } from "../../lib/config/log.ts";
import { DtmfSender } from "../_helpers/dtmf.ts";
import { pcmuOffer, SipClient, textOf } from "../_helpers/sip_client.ts";
import { startTestServer } from "../_helpers/test_server.ts";

setLogLevel("warn");

Deno.test("DTMF *6 from a participant toggles muted-via-focus in conference-info", async () => {
  const srv = await startTestServer();
  const a = await SipClient.connect("alice", srv.port);
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const f = await a.sendRequest("INVITE", "sip:conference-factory@127.0.0.1", {
      body: pcmuOffer(1),
    });
    const redirect = await a.response(f, "INVITE");
    await a.ack(redirect, "sip:conference-factory@127.0.0.1");
    const conf = /<([^>]+)>/.exec(redirect.headers.get("Contact")!)![1]!;
    const myPort = (udp.addr as Deno.NetAddr).port;
    const j = await a.sendRequest("INVITE", conf, {
      body: pcmuOffer(myPort),
      callId: `${a.callId}-j`,
    });
    const ok = await a.response(j, "INVITE");
    assert.equal(ok.status, 200);
    await a.ack(ok, conf);
    const focusPort = Number(/m=audio (\d+)/.exec(textOf(ok))![1]);
    assert.match(textOf(ok), /telephone-event\/8000/);

    const s = await a.sendRequest("SUBSCRIBE", conf, {
      callId: `${a.callId}-s`,
      headers: [["Event", "conference"], ["Expires", "600"]],
    });
    assert.equal((await a.response(s, "SUBSCRIBE")).status, 200);
    await a.answer(await a.request("NOTIFY"));

    const dtmf = new DtmfSender(udp, focusPort);
    const waitStatus = async (status: string) => {
      for (;;) {
        const n = await a.request("NOTIFY");
        await a.answer(n);
        if (textOf(n).includes(`<status>${status}</status>`)) return;
      }
    };
    await dtmf.press("*6");
    await waitStatus("muted-via-focus");
    await dtmf.press("*6");
    await waitStatus("connected");
  } finally {
    udp.close();
    await a.close();
    await srv.stop();
  }
});
