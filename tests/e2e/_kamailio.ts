/**
 * Kamailio (Debian `kamailio` 5.x) as the SIP proxy/registrar in front of Conclave for
 * end-to-end tests, the way Flexisip's proxy sits in front of its conference server.
 *
 * The generated `kamailio.cfg` is the smallest one that does the job, with only these modules:
 * `tm`, `sl`, `rr`, `pv`, `maxfwd`, `textops`, `siputils`, `usrloc`, `registrar`, `xlog`
 * (TCP support is in the core). It:
 * - listens on `127.0.0.1:<port>` for UDP and TCP;
 * - is the registrar of one local domain (`usrloc` in memory, `db_mode` 0), with GRUU
 *   (RFC 5627) on: a REGISTER carrying `+sip.instance` gets `pub-gruu`/`temp-gruu` back, and a
 *   request to a GRUU is resolved by `lookup("location")`;
 * - record-routes dialog-creating requests (INVITE, SUBSCRIBE, REFER) so that in-dialog
 *   requests (NOTIFY, BYE, re-INVITE, ACK) from both sides come back through it;
 * - sends requests for "service" users of the local domain (e.g. `conference-factory`,
 *   `conference-focus`, a dial-in room) to one target over TCP (Conclave), keeping the
 *   Request-URI (a service addressed to the proxy's own IP:port, as SIPp scenarios do, gets
 *   the local domain as its host), and every other user of the local domain to its
 *   registered contact;
 * - relays anything else to its Request-URI (Conclave's direct contacts, SIPp peers);
 * - optionally ({@link KamailioOptions.regEvent}) is also the notifier of the registration
 *   event package (RFC 3680) for its domain's AORs: `pua_reginfo` turns every `usrloc`
 *   change into a `PUBLISH` of `application/reginfo+xml` sent to itself, `presence` (with
 *   `presence_reginfo` for `Event: reg`) stores it and NOTIFYs the watchers. `presence` and
 *   `pua` need a database: `db_text` files in `<dir>/db`, copied from the package's empty
 *   tables. Modules of Debian's `kamailio-presence-modules`.
 *
 * One trap worth knowing: Kamailio's `loose_route()` treats an in-dialog request whose
 * Request-URI is the proxy itself (same host *and* port) as coming from a strict router and
 * replaces the Request-URI with its own Record-Route entry, so the request never reaches the
 * focus. Conference URIs must therefore not be `sip:user@<proxy ip>:<proxy port>`: use a
 * domain name for the local domain (e.g. `conclave.test`), as real deployments do.
 *
 * Run as root in a loopback namespace; `kamailio -DD -E` keeps the main process in the
 * foreground (children forked) and logs to stderr, which goes to `kamailio.log` in `dir`.
 * @module
 */

import { freePort, shellCommand, waitForPort } from "../_helpers/netns.ts";

/** What {@link kamailioConfig} writes. */
export interface KamailioConfigOptions {
  /** SIP port on 127.0.0.1, UDP and TCP. */
  readonly port: number;
  /** The local domain: registrar AORs and service URIs live here (e.g. `conclave.test`). */
  readonly domain: string;
  /** User parts of the local domain routed to {@link serviceTarget} (e.g. `conference-focus`). */
  readonly services: readonly string[];
  /** Where service requests go, `host:port`, over TCP (Conclave's SIP/TCP address). */
  readonly serviceTarget: string;
  /** RFC 5627 GRUUs in REGISTER answers; default true (liblinphone needs them for conferences). */
  readonly gruu?: boolean;
  /** Kamailio's `debug` level (2 = info: one `REQ` line per request is logged); default 2. */
  readonly debug?: number;
  /**
   * A `db_text` directory holding the `presence` and `pua` tables: when set, Kamailio is also
   * the RFC 3680 `reg` notifier of {@link domain} (see the module comment).
   */
  readonly regEventDb?: string;
}

/** Settings of {@link Kamailio.start}. */
export interface KamailioOptions extends Omit<KamailioConfigOptions, "port" | "regEventDb"> {
  /** Scratch directory (created): `kamailio.cfg`, `kamailio.log`, runtime files. */
  readonly dir: string;
  /** SIP port; a free one by default. */
  readonly port?: number;
  /** Safety net for start-up (port listening); default 15 s. */
  readonly startTimeoutMs?: number;
  /** Also be the RFC 3680 `reg` notifier of the domain (tables made in `<dir>/db`). */
  readonly regEvent?: boolean;
}

/** Where Debian's `kamailio` package keeps the empty `db_text` tables. */
export const DBTEXT_TABLES = "/usr/share/kamailio/dbtext/kamailio";

/** The `db_text` tables `presence` and `pua` use (plus `version`, which every module checks). */
const REG_EVENT_TABLES = ["version", "presentity", "active_watchers", "watchers", "pua"];

/** Copies the empty tables {@link KamailioConfigOptions.regEventDb} needs into `dir`. */
export async function writeRegEventTables(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const table of REG_EVENT_TABLES) {
    await Deno.copyFile(`${DBTEXT_TABLES}/${table}`, `${dir}/${table}`);
  }
}

const decoder = new TextDecoder();

function quoteCfg(value: string): string {
  if (/["\\\n]/.test(value)) throw new RangeError(`unsupported character in ${value}`);
  return `"${value}"`;
}

/** A regular-expression literal for a service user (only `.` is special among allowed ones). */
function regexLiteral(value: string): string {
  return value.replaceAll(".", "[.]");
}

/**
 * The text of a minimal `kamailio.cfg` (Kamailio 5.x syntax) acting as registrar of
 * `domain` and proxy in front of `serviceTarget` (RFC 3261 §16 proxy, §10 registrar,
 * §16.6 step 4 Record-Route, RFC 5627 GRUU).
 */
export function kamailioConfig(options: KamailioConfigOptions): string {
  if (!/^[A-Za-z0-9.-]+$/.test(options.domain)) {
    throw new RangeError(`domain must be a host name: ${options.domain}`);
  }
  if (options.services.length === 0) throw new RangeError("at least one service user");
  for (const user of options.services) {
    if (!/^[A-Za-z0-9._~-]+$/.test(user)) throw new RangeError(`bad service user ${user}`);
  }
  if (!/^[A-Za-z0-9.:[\]-]+:\d+$/.test(options.serviceTarget)) {
    throw new RangeError(`serviceTarget must be host:port: ${options.serviceTarget}`);
  }
  const services = `^(${options.services.map(regexLiteral).join("|")})$`;
  const target = `sip:${options.serviceTarget};transport=tcp`;
  const db = options.regEventDb;
  if (db !== undefined && !/^\/[\w./-]+$/.test(db)) {
    throw new RangeError(`regEventDb must be an absolute path: ${db}`);
  }
  const self = `127.0.0.1:${options.port}`;
  const domain = quoteCfg(options.domain);
  // RFC 3680 notifier: pua_reginfo PUBLISHes usrloc changes to ourselves (outbound_proxy),
  // presence + presence_reginfo keep them and NOTIFY the watchers of Event: reg.
  const regEventModules = db === undefined ? "" : `
loadmodule "db_text.so"
loadmodule "presence.so"
loadmodule "presence_reginfo.so"
loadmodule "pua.so"
loadmodule "pua_reginfo.so"

modparam("presence", "db_url", "text://${db}")
modparam("presence", "subs_db_mode", 0)
modparam("presence", "server_address", "sip:reginfo@${self};transport=tcp")
modparam("pua", "db_url", "text://${db}")
modparam("pua", "db_mode", 0)
modparam("pua_reginfo", "default_domain", ${domain})
modparam("pua_reginfo", "server_address", "sip:reginfo@${self}")
modparam("pua_reginfo", "outbound_proxy", "sip:${self}")
`;
  // Refreshes and un-SUBSCRIBEs of a reg subscription are addressed to our presence Contact;
  // loose_route() must not see them (Request-URI = us: the strict-router trap above).
  const regEventInDialog = db === undefined ? "" : `
		if (is_method("SUBSCRIBE") && uri == myself) {
			route(REG_EVENT);
		}`;
  const regEventInitial = db === undefined ? "" : `
	# RFC 3680: our own usrloc PUBLISHes, and watchers of a local AOR's registrations.
	if (is_method("PUBLISH")) {
		if (src_ip == myself && $rd == ${domain}) route(REG_EVENT);
		sl_send_reply("403", "Forbidden");
		exit;
	}
	if (is_method("SUBSCRIBE") && $hdr(Event) == "reg" && $rd == ${domain}) route(REG_EVENT);`;
  const regEventRoute = db === undefined ? "" : `
route[REG_EVENT] {
	if (!t_newtran()) {
		sl_reply_error();
		exit;
	}
	if (is_method("PUBLISH")) handle_publish();
	else handle_subscribe();
	xlog("L_INFO", "reg-event $rm $ru expires=$hdr(Expires) handled: $rc\n");
	t_release();
	exit;
}
`;
  return `#!KAMAILIO
# Generated by tests/e2e/_kamailio.ts: registrar of ${options.domain} and proxy in front of
# ${options.serviceTarget} (Conclave). Not for production.
debug=${options.debug ?? 2}
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
listen=udp:127.0.0.1:${options.port}
listen=tcp:127.0.0.1:${options.port}
tcp_connection_lifetime=3605

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "xlog.so"

modparam("usrloc", "db_mode", 0)
modparam("registrar", "gruu_enabled", ${options.gruu === false ? 0 : 1})
modparam("rr", "append_fromtag", 1)
${regEventModules}
request_route {
	xlog("L_INFO", "REQ $rm $ru from $proto:$si:$sp\\n");
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (has_totag()) {${regEventInDialog}
		# In-dialog (RFC 3261 §16.4, §16.12): follow the Route set we recorded.
		if (loose_route()) {
			route(LOCAL);
			route(RELAY);
		}
		if (is_method("ACK")) {
			if (t_check_trans()) t_relay();
			exit;
		}
		xlog("L_WARN", "in-dialog $rm without our Route: $ru\\n");
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) route(RELAY);
		exit;
	}
	t_check_trans();
	if (is_method("REGISTER")) {
		if (!save("location")) sl_reply_error();
		exit;
	}${regEventInitial}
	# A pre-loaded Route naming us (Conclave's outbound-proxy) is consumed here.
	loose_route();
	if (is_method("INVITE|SUBSCRIBE|REFER")) record_route();
	route(LOCAL);
	route(RELAY);
}

# Requests for the local domain (or addressed to this proxy): services go to Conclave, users
# (AOR or GRUU) to their registered contact.
route[LOCAL] {
	if ($rd != ${quoteCfg(options.domain)} && !(uri == myself)) return;
	if ($rU =~ ${quoteCfg(services)}) {
		# Addressed to this proxy's own IP and port: the same service in its domain.
		if (uri == myself) $rd = ${quoteCfg(options.domain)};
		$du = ${quoteCfg(target)};
		return;
	}
	if (!lookup("location")) {
		xlog("L_INFO", "no registration for $ru\\n");
		sl_send_reply("404", "Not Found");
		exit;
	}
}

route[RELAY] {
	if (!t_relay()) sl_reply_error();
	exit;
}
${regEventRoute}`;
}

/**
 * Runs `kamailio -c` on a config file: resolves to undefined when Kamailio accepts it, else
 * to its error output.
 */
export async function checkKamailioConfig(path: string): Promise<string | undefined> {
  const out = await new Deno.Command("kamailio", {
    args: ["-c", "-f", path],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.success) return undefined;
  return (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim();
}

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** A running Kamailio. */
export class Kamailio {
  readonly #child: Deno.ChildProcess;
  readonly #status: Promise<Deno.CommandStatus>;
  /** SIP port on 127.0.0.1 (UDP and TCP). */
  readonly port: number;
  /** The config file written. */
  readonly configPath: string;
  /** Where its stderr goes. */
  readonly logPath: string;
  #exited = false;

  private constructor(child: Deno.ChildProcess, port: number, configPath: string, logPath: string) {
    this.#child = child;
    this.port = port;
    this.configPath = configPath;
    this.logPath = logPath;
    this.#status = child.status.finally(() => {
      this.#exited = true;
    });
  }

  /**
   * Writes the config into `options.dir` and starts `kamailio -f cfg -DD -E` there; resolves
   * once its TCP and UDP sockets are bound in this network namespace. Rejects (with the log)
   * if it exits first or does not bind within `startTimeoutMs`.
   */
  static async start(options: KamailioOptions): Promise<Kamailio> {
    const dir = options.dir;
    await Deno.mkdir(`${dir}/run`, { recursive: true });
    const port = options.port ?? freePort();
    const configPath = `${dir}/kamailio.cfg`;
    const logPath = `${dir}/kamailio.log`;
    const { dir: _dir, port: _port, startTimeoutMs: _timeout, regEvent, ...rest } = options;
    const regEventDb = regEvent ? `${dir}/db` : undefined;
    if (regEventDb !== undefined) await writeRegEventTables(regEventDb);
    await Deno.writeTextFile(
      configPath,
      kamailioConfig({ ...rest, port, ...(regEventDb === undefined ? {} : { regEventDb }) }),
    );
    const argv = [
      "kamailio",
      "-f",
      configPath,
      "-DD",
      "-E",
      "-Y",
      `${dir}/run`,
      "-w",
      dir,
      "-P",
      `${dir}/run/kamailio.pid`,
      "-m",
      "64",
      "-M",
      "8",
    ];
    // exec: the child *is* Kamailio's main process, so signals reach it directly.
    const child = new Deno.Command("bash", {
      args: ["-c", `exec ${shellCommand(argv)} >${shellCommand([logPath])} 2>&1`],
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const kamailio = new Kamailio(child, port, configPath, logPath);
    const timeoutMs = options.startTimeoutMs ?? 15_000;
    try {
      const ready = Promise.all([
        waitForPort(port, "tcp", timeoutMs),
        waitForPort(port, "udp", timeoutMs),
      ]);
      const exited = kamailio.#status.then((s) => {
        throw new Error(`kamailio exited with code ${s.code} before listening`);
      });
      await Promise.race([ready, exited]);
    } catch (error) {
      await kamailio.stop();
      const log = await readOrEmpty(logPath);
      throw new Error(
        `${error instanceof Error ? error.message : String(error)}\n${log.slice(-3000)}`,
      );
    }
    return kamailio;
  }

  /** `127.0.0.1:<port>`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** A SIP URI reaching this proxy over TCP, with `lr` when `loose` (a Route value). */
  uri(loose = false): string {
    return `sip:127.0.0.1:${this.port};transport=tcp${loose ? ";lr" : ""}`;
  }

  /** Process id of the main process. */
  get pid(): number {
    return this.#child.pid;
  }

  /** True until the main process has exited. */
  get running(): boolean {
    return !this.#exited;
  }

  /** Everything Kamailio logged so far. */
  log(): Promise<string> {
    return readOrEmpty(this.logPath);
  }

  /** SIGTERM (the main process stops its children), SIGKILL after `graceMs`; waits. */
  async stop(graceMs = 3000): Promise<Deno.CommandStatus> {
    const send = (signal: Deno.Signal) => {
      try {
        this.#child.kill(signal);
      } catch {
        // already exited
      }
    };
    if (!this.#exited) send("SIGTERM");
    const timer = setTimeout(() => send("SIGKILL"), graceMs);
    try {
      return await this.#status;
    } finally {
      clearTimeout(timer);
    }
  }
}
