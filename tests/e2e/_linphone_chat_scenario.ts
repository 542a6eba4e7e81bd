/**
 * Linphone group chat scenario, run inside a loopback namespace by `linphone_chat_test.ts`
 * (`deno run _linphone_chat_scenario.ts`): Kamailio as proxy/registrar of `conclave.test` with
 * GRUUs, the real Conclave daemon behind it (outbound-proxy = Kamailio), and two liblinphone
 * 5.1 cores (Debian's `liblinphone.so.10`, driven through Deno FFI: linphonec has no group chat
 * commands) registered as alice and bob with the conference factory URI set. alice creates a
 * group chat room with bob (the chat room API, FlexisipChat backend), the focus invites bob
 * through Kamailio, then each sends a message that the other must receive through the room.
 * Writes `result.json` into `$HARNESS_DIR` with raw facts; the test makes the assertions.
 *
 * Not a test file.
 * @module
 */

import { Daemon, writeConfig } from "./_daemon.ts";
import { Kamailio } from "./_kamailio.ts";
import { createLinphoneConfig } from "../_helpers/linphone.ts";
import { freePort } from "../_helpers/netns.ts";

/** The local domain of the proxy. */
export const DOMAIN = "conclave.test";

const LINPHONE_SYMBOLS = {
  linphone_factory_get: { parameters: [], result: "pointer" },
  linphone_factory_create_core_3: {
    parameters: ["pointer", "buffer", "pointer", "pointer"],
    result: "pointer",
  },
  linphone_core_start: { parameters: ["pointer"], result: "i32" },
  linphone_core_iterate: { parameters: ["pointer"], result: "void" },
  linphone_core_stop: { parameters: ["pointer"], result: "void" },
  linphone_core_get_default_proxy_config: { parameters: ["pointer"], result: "pointer" },
  linphone_proxy_config_get_state: { parameters: ["pointer"], result: "i32" },
  linphone_core_create_default_chat_room_params: { parameters: ["pointer"], result: "pointer" },
  linphone_chat_room_params_set_backend: { parameters: ["pointer", "i32"], result: "void" },
  linphone_chat_room_params_enable_group: { parameters: ["pointer", "u8"], result: "void" },
  linphone_chat_room_params_enable_encryption: { parameters: ["pointer", "u8"], result: "void" },
  linphone_chat_room_params_set_subject: { parameters: ["pointer", "buffer"], result: "void" },
  linphone_core_create_chat_room_6: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  linphone_address_new: { parameters: ["buffer"], result: "pointer" },
  linphone_address_as_string: { parameters: ["pointer"], result: "pointer" },
  linphone_chat_room_get_state: { parameters: ["pointer"], result: "i32" },
  linphone_chat_room_get_conference_address: { parameters: ["pointer"], result: "pointer" },
  linphone_chat_room_create_message_from_utf8: {
    parameters: ["pointer", "buffer"],
    result: "pointer",
  },
  linphone_chat_message_send: { parameters: ["pointer"], result: "void" },
  linphone_chat_message_get_state: { parameters: ["pointer"], result: "i32" },
  linphone_core_get_chat_rooms: { parameters: ["pointer"], result: "pointer" },
  linphone_chat_room_get_last_message_in_history: { parameters: ["pointer"], result: "pointer" },
  linphone_chat_message_get_utf8_text: { parameters: ["pointer"], result: "pointer" },
  linphone_chat_message_is_outgoing: { parameters: ["pointer"], result: "u8" },
  linphone_chat_room_get_nb_participants: { parameters: ["pointer"], result: "i32" },
} as const;

const BCTBX_SYMBOLS = {
  bctbx_list_append: { parameters: ["pointer", "pointer"], result: "pointer" },
  bctbx_list_get_data: { parameters: ["pointer"], result: "pointer" },
  bctbx_list_next: { parameters: ["pointer"], result: "pointer" },
} as const;

/** LinphoneChatRoomBackendFlexisipChat. */
const BACKEND_FLEXISIP = 2;
/** LinphoneRegistrationOk. */
const REGISTRATION_OK = 2;
/** LinphoneChatRoomState: Created, CreationFailed. */
const ROOM_CREATED = 3;
const ROOM_FAILED = 4;

function cstr(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

function readString(p: Deno.PointerValue): string | undefined {
  return p === null ? undefined : new Deno.UnsafePointerView(p).getCString();
}

/** Runs the scenario and returns what happened. */
export async function linphoneChat(dir: string): Promise<Record<string, unknown>> {
  await Deno.mkdir(dir, { recursive: true });
  const conclavePort = freePort();
  const kamailio = await Kamailio.start({
    dir: `${dir}/kamailio`,
    domain: DOMAIN,
    services: ["conference-factory", "conference-focus"],
    serviceTarget: `127.0.0.1:${conclavePort}`,
  });
  let daemon: Daemon | undefined;
  const lib = Deno.dlopen("liblinphone.so.10", LINPHONE_SYMBOLS);
  const bct = Deno.dlopen("libbctoolbox.so.1", BCTBX_SYMBOLS);
  const L = lib.symbols;
  const cores: Deno.PointerValue[] = [];
  const facts: Record<string, unknown> = { kamailioPort: kamailio.port, conclavePort };
  try {
    const configPath = `${dir}/conclave.conf`;
    await writeConfig(configPath, conclavePort, `${dir}/state`, [
      `conference-factory-uris=sip:conference-factory@${DOMAIN}`,
      `conference-focus-uris=sip:conference-focus@${DOMAIN}`,
      `outbound-proxy=${kamailio.uri()}`,
    ]);
    daemon = await Daemon.start(configPath);

    const makeCore = async (user: string) => {
      const config = await createLinphoneConfig({
        dir: `${dir}/${user}`,
        account: {
          identity: `sip:${user}@${DOMAIN}`,
          registrar: kamailio.uri(),
          route: kamailio.uri(),
        },
        extraRc: [
          "[storage]",
          `uri=${dir}/${user}/linphone.db`,
          "[misc]",
          "hide_chat_rooms_from_removed_proxies=0",
          "[proxy_0]",
          `conference_factory_uri=sip:conference-factory@${DOMAIN}`,
        ].join("\n"),
      });
      // The rc already has a [proxy_0]: a second one would be ignored, so merge the key in.
      const rc = (await Deno.readTextFile(config.rcPath)).replace(
        /\n\[proxy_0\]\nconference_factory_uri=([^\n]*)\n?$/,
        "",
      ).replace(
        "reg_sendregister=1",
        `reg_sendregister=1\nconference_factory_uri=sip:conference-factory@${DOMAIN}`,
      );
      await Deno.writeTextFile(config.rcPath, rc);
      const core = L.linphone_factory_create_core_3(
        L.linphone_factory_get(),
        cstr(config.rcPath),
        null,
        null,
      );
      if (core === null) throw new Error(`no core for ${user}`);
      L.linphone_core_start(core);
      cores.push(core);
      return core;
    };
    const alice = await makeCore("alice");
    const bob = await makeCore("bob");
    const iterate = async (until: () => boolean, ms: number, what: string) => {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        for (const c of cores) L.linphone_core_iterate(c);
        if (until()) return true;
        await new Promise((r) => setTimeout(r, 20));
      }
      facts[`timeout:${what}`] = true;
      return false;
    };
    const registered = (core: Deno.PointerValue) => {
      const cfg = L.linphone_core_get_default_proxy_config(core);
      return cfg !== null && L.linphone_proxy_config_get_state(cfg) === REGISTRATION_OK;
    };
    facts.registered = await iterate(
      () => registered(alice) && registered(bob),
      20_000,
      "registration",
    );
    if (!facts.registered) return facts;

    const params = L.linphone_core_create_default_chat_room_params(alice);
    L.linphone_chat_room_params_set_backend(params, BACKEND_FLEXISIP);
    L.linphone_chat_room_params_enable_group(params, 1);
    L.linphone_chat_room_params_enable_encryption(params, 0);
    L.linphone_chat_room_params_set_subject(params, cstr("Linphone chat"));
    const participants = bct.symbols.bctbx_list_append(
      null,
      L.linphone_address_new(cstr(`sip:bob@${DOMAIN}`)),
    );
    const aliceRoom = L.linphone_core_create_chat_room_6(
      alice,
      params,
      L.linphone_address_new(cstr(`sip:alice@${DOMAIN}`)),
      participants,
    );
    if (aliceRoom === null) {
      facts.createReturnedNull = true;
      return facts;
    }
    await iterate(
      () => {
        const s = L.linphone_chat_room_get_state(aliceRoom);
        return s === ROOM_CREATED || s === ROOM_FAILED;
      },
      20_000,
      "alice room",
    );
    facts.aliceRoomState = L.linphone_chat_room_get_state(aliceRoom);
    const confAddress = L.linphone_chat_room_get_conference_address(aliceRoom);
    facts.roomAddress = confAddress === null
      ? undefined
      : readString(L.linphone_address_as_string(confAddress));
    if (facts.aliceRoomState !== ROOM_CREATED) return facts;

    // bob is invited by the focus (INVITE through Kamailio) and gets the room.
    let bobRoom: Deno.PointerValue = null;
    facts.bobRoomCreated = await iterate(
      () => {
        for (
          let item = L.linphone_core_get_chat_rooms(bob);
          item !== null;
          item = bct.symbols.bctbx_list_next(item)
        ) {
          const room = bct.symbols.bctbx_list_get_data(item);
          if (room !== null && L.linphone_chat_room_get_state(room) === ROOM_CREATED) {
            bobRoom = room;
            return true;
          }
        }
        return false;
      },
      20_000,
      "bob room",
    );
    if (bobRoom === null) return facts;
    facts.bobParticipants = L.linphone_chat_room_get_nb_participants(bobRoom);

    const lastIncoming = (room: Deno.PointerValue) => {
      const m = L.linphone_chat_room_get_last_message_in_history(room);
      if (m === null || L.linphone_chat_message_is_outgoing(m) !== 0) return undefined;
      return readString(L.linphone_chat_message_get_utf8_text(m));
    };
    const send = (room: Deno.PointerValue, text: string) => {
      const m = L.linphone_chat_room_create_message_from_utf8(room, cstr(text));
      L.linphone_chat_message_send(m);
      return m;
    };
    const sent = send(aliceRoom, "hello bob, from alice");
    await iterate(() => lastIncoming(bobRoom) !== undefined, 20_000, "bob receives");
    facts.bobReceived = lastIncoming(bobRoom);
    facts.aliceMessageState = L.linphone_chat_message_get_state(sent);
    send(bobRoom, "hi alice, bob here");
    await iterate(() => lastIncoming(aliceRoom) !== undefined, 20_000, "alice receives");
    facts.aliceReceived = lastIncoming(aliceRoom);
    return facts;
  } finally {
    for (const c of cores) L.linphone_core_stop(c);
    if (daemon) {
      await daemon.stop("SIGTERM");
      await Deno.writeTextFile(`${dir}/conclave.log`, daemon.log.join("\n") + "\n");
      facts.conclaveLog = `${dir}/conclave.log`;
    }
    await kamailio.stop();
    lib.close();
    bct.close();
  }
}

if (import.meta.main) {
  const dir = Deno.env.get("HARNESS_DIR") ?? Deno.cwd();
  let result: unknown;
  try {
    result = { value: await linphoneChat(`${dir}/linphone-chat`) };
  } catch (error) {
    result = { error: error instanceof Error ? `${error.stack ?? error.message}` : String(error) };
  }
  await Deno.writeTextFile(`${dir}/result.json`, JSON.stringify(result, null, 2));
}
