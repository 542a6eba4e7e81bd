/** Loss and recovery are logged once each, with the outage length from the injected clock. */

import assert from "node:assert/strict";
import { FakeClock } from "../../lib/config/clock.ts";
import { createLogger } from "../../lib/config/log.ts";
import { ConnectionHealth } from "../../lib/storage/connection_health.ts";
import { LogCapture } from "./_support.ts";

Deno.test("connection health: one line when lost, one when restored, none in between", () => {
  const capture = new LogCapture();
  try {
    const clock = new FakeClock(5000);
    const health = new ConnectionHealth(createLogger("test.db"), "MySQL at h:1", clock);
    health.ok();
    assert.equal(health.down, false);
    health.lost("ECONNREFUSED");
    clock.advance(700);
    health.lost("ECONNRESET");
    health.lost("ECONNREFUSED");
    assert.equal(health.down, true);
    clock.advance(550);
    health.ok();
    health.ok();
    assert.equal(health.down, false);
    assert.equal(capture.lines.length, 2, capture.lines.join("\n"));
    assert.match(
      capture.lines[0]!,
      /WARN .*\[test\.db\] lost connection to MySQL at h:1; retrying error=ECONNREFUSED$/,
    );
    assert.match(
      capture.lines[1]!,
      /INFO .*\[test\.db\] connection to MySQL at h:1 restored downMs=1250$/,
    );
  } finally {
    capture.restore();
  }
});
