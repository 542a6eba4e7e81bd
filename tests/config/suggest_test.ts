import assert from "node:assert/strict";
import { closestMatch, editDistance } from "../../lib/config/suggest.ts";

Deno.test("edit distance", () => {
  assert.equal(editDistance("", ""), 0);
  assert.equal(editDistance("abc", ""), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("timeout", "timeuot"), 1);
  assert.equal(editDistance("t1", "t2"), 1);
});

Deno.test("closest key", () => {
  const keys = ["no-rtp-timeout", "call-timeout", "t1", "t2", "conference-factory-uris"];
  assert.equal(closestMatch("no-rtp-timout", keys), "no-rtp-timeout");
  assert.equal(closestMatch("Call-Timeout", keys), "call-timeout");
  assert.equal(closestMatch("factory-uris", keys), "conference-factory-uris");
  assert.equal(closestMatch("t3", keys), "t1");
  assert.equal(closestMatch("completely-different", keys), undefined);
  assert.equal(closestMatch("foo", ["log", "sip"]), undefined);
});
