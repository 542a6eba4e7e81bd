import assert from "node:assert/strict";
import { createResponse } from "../../lib/sip/message.ts";
import type { Flow } from "../../lib/transport/flow.ts";
import { responseDestination, stampVia } from "../../lib/transport/via_rules.ts";
import { makeRequest } from "../_helpers/sip_messages.ts";

function responseVia(via: string) {
  const req = makeRequest();
  req.headers.set("Via", via);
  return responseDestination(createResponse(req, 200));
}

Deno.test("§18.2.2: UDP response destinations (maddr, rport, received, sent-by, 5060)", () => {
  assert.deepEqual(
    responseVia("SIP/2.0/UDP h.example.com:5070;branch=z9hG4bK1;maddr=239.1.1.1"),
    { transport: "UDP", host: "239.1.1.1", port: 5070 },
  );
  assert.deepEqual(
    responseVia("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;received=192.0.2.4;rport=40001"),
    { transport: "UDP", host: "192.0.2.4", port: 40001 },
  );
  assert.deepEqual(
    responseVia("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;received=192.0.2.4"),
    { transport: "UDP", host: "192.0.2.4", port: 5070 },
  );
  assert.deepEqual(
    responseVia("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport"),
    { transport: "UDP", host: "10.0.0.1", port: 5060 },
    "an rport without value (never stamped) falls back to sent-by",
  );
  assert.deepEqual(
    responseVia("SIP/2.0/UDP [2001:db8::1]:5080;branch=z9hG4bK1"),
    { transport: "UDP", host: "2001:db8::1", port: 5080 },
  );
});

Deno.test("§18.2.2: reliable response destinations use received + sent-by port or the default", () => {
  assert.deepEqual(
    responseVia("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.4;rport=40001"),
    { transport: "TCP", host: "192.0.2.4", port: 5060 },
  );
  assert.deepEqual(
    responseVia("SIP/2.0/TLS client.example.com;branch=z9hG4bK1"),
    { transport: "TLS", host: "client.example.com", port: 5061 },
  );
  assert.equal(responseVia("SIP/2.0/SCTP 10.0.0.1;branch=z9hG4bK1"), undefined);
});

Deno.test("§18.2.1 / RFC 3581: stampVia keeps other Vias and their order", () => {
  const req = makeRequest({ viaHost: "10.0.0.1", viaPort: 5060, viaParams: ";rport" });
  req.headers.append("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp");
  const flow: Flow = {
    transport: "UDP",
    local: { host: "127.0.0.1", port: 5060 },
    remote: { host: "192.0.2.7", port: 33333 },
  };
  stampVia(req, flow);
  const vias = req.headers.getAll("Via");
  assert.equal(vias.length, 2);
  assert.match(
    vias[0]!,
    /^SIP\/2\.0\/UDP 10\.0\.0\.1:5060;branch=[^;]+;rport=33333;received=192\.0\.2\.7$/,
  );
  assert.equal(vias[1], "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp");
  // rport already valued (a proxy stamped it): left alone, received still added.
  const again = makeRequest({ viaHost: "10.0.0.1", viaParams: ";rport=1234" });
  stampVia(again, flow);
  assert.equal(again.topVia.params.get("rport"), "1234");
  assert.equal(again.topVia.params.get("received"), "192.0.2.7");
});
