/**
 * The conference server's instance id (RFC 5626 §4.1 `+sip.instance`, a `urn:uuid:` URN, RFC
 * 4122): generated once and kept in the state directory as `uuid`, like Flexisip's conference
 * server, so its registrar bindings and GRUUs (RFC 5627) stay the same across restarts.
 * @module
 */

import { join } from "node:path";

/** The file name in the state directory (Flexisip's `uuid`). */
export const INSTANCE_ID_FILE = "uuid";

const URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Reads the instance id from `stateDirectory`, or creates it (a random UUID) when the file is
 * missing or does not hold one.
 */
export async function loadInstanceId(stateDirectory: string): Promise<string> {
  const path = join(stateDirectory, INSTANCE_ID_FILE);
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (URN.test(text)) return text.toLowerCase();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const id = `urn:uuid:${crypto.randomUUID()}`;
  await Deno.writeTextFile(path, id + "\n");
  return id;
}
