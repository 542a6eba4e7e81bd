/**
 * Child process of the SIGKILL test: writes conferences into the state directory given as
 * the first argument and prints `ok <id>` after each write resolved, until killed.
 */

import { openStore } from "../../lib/storage/open_store.ts";

const store = await openStore({
  backend: "sqlite3",
  connectionString: "",
  stateDirectory: Deno.args[0]!,
});
const out = Deno.stdout;
const encoder = new TextEncoder();
for (let i = 0; i < 1_000_000; i++) {
  const id = `k${i}`;
  await store.createConference({ id, uri: `sip:${id}@x`, kind: "audio-video", createdAt: i });
  await store.upsertParticipant({
    conferenceId: id,
    aor: "sip:a@x",
    displayName: null,
    isAdmin: true,
    role: "participant",
    state: "present",
    joinedAt: i,
    leftAt: null,
  });
  out.writeSync(encoder.encode(`ok ${id}\n`));
}
