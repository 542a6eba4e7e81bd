import assert from "node:assert/strict";
import {
  defaultStateDirectory,
  fixedEnvironment,
  systemEnvironment,
} from "../../lib/config/environment.ts";

Deno.test("state directory: systemd, root, XDG, HOME, cwd, in that order", () => {
  const all = {
    STATE_DIRECTORY: "/var/lib/conclave-unit:/other",
    XDG_STATE_HOME: "/x/state",
    HOME: "/home/u",
  };
  assert.equal(defaultStateDirectory(fixedEnvironment(all, 0)), "/var/lib/conclave-unit");
  const { STATE_DIRECTORY: _, ...noSystemd } = all;
  assert.equal(defaultStateDirectory(fixedEnvironment(noSystemd, 0)), "/var/lib/conclave");
  assert.equal(defaultStateDirectory(fixedEnvironment(noSystemd, 1000)), "/x/state/conclave");
  assert.equal(
    defaultStateDirectory(fixedEnvironment({ HOME: "/home/u/", XDG_STATE_HOME: "rel" }, 1000)),
    "/home/u/.local/state/conclave",
  );
  assert.equal(defaultStateDirectory(fixedEnvironment({}, null, "/work/dir/")), "/work/dir/.state");
  assert.equal(defaultStateDirectory(fixedEnvironment({}, null, null)), "/tmp/conclave");
});

Deno.test("system environment reads the real process", () => {
  const environment = systemEnvironment();
  assert.equal(environment.get("PATH"), Deno.env.get("PATH"));
  assert.equal(environment.uid, Deno.uid());
  assert.equal(environment.cwd, Deno.cwd());
});
