/**
 * INI text → frozen, typed {@link Config}. Every key of `schema.ts` gets a value (its default
 * when absent); every problem is collected and reported at once as a {@link ConfigError} that
 * names file, line, section and key; unknown keys and sections are warnings with the closest
 * known name.
 * @module
 */

import { closestMatch } from "./suggest.ts";
import { readIni } from "./ini_reader.ts";
import { type Config, ipFamily, type KeySpec, SCHEMA, schemaKeys } from "./schema.ts";
import { ConfigValueError } from "./value_types.ts";
import { type ConfigEnvironment, defaultStateDirectory, systemEnvironment } from "./environment.ts";
import { PRODUCT, VERSION } from "./version.ts";

export type {
  ConferenceServerConfig,
  Config,
  ListenTransport,
  LogConfig,
  PortRange,
  RedisConfig,
  SipConfig,
} from "./schema.ts";

/** Where the CLI looks for a configuration file when `--config` is not given. */
export const DEFAULT_CONFIG_PATH = "/etc/conclave/conference.conf";

/** One error or warning, located as precisely as known. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based line, or `null` for a problem with a default value or the file as a whole. */
  readonly line: number | null;
  readonly section: string | null;
  readonly key: string | null;
  readonly message: string;
}

/** A non-fatal remark (unknown key, ignored value); same shape as an error. */
export type ConfigWarning = ConfigProblem;

/** `file:line: [section] key: message` (parts that are unknown are left out). */
export function formatConfigProblem(problem: ConfigProblem): string {
  let text = problem.file;
  if (problem.line !== null) text += `:${problem.line}`;
  text += ": ";
  if (problem.section !== null) text += `[${problem.section}] `;
  if (problem.key !== null) text += `${problem.key}: `;
  return text + problem.message;
}

/** Invalid configuration: `message` lists every problem, one per line. */
export class ConfigError extends Error {
  /** The errors, in line order. */
  readonly problems: readonly ConfigProblem[];
  /** Warnings found in the same file (worth printing alongside the errors). */
  readonly warnings: readonly ConfigWarning[];

  constructor(problems: readonly ConfigProblem[], warnings: readonly ConfigWarning[] = []) {
    super(problems.map(formatConfigProblem).join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
    this.warnings = warnings;
  }
}

/** A loaded configuration. */
export interface LoadResult {
  readonly config: Config;
  readonly warnings: readonly ConfigWarning[];
  /** The file read, or `null` when the embedded defaults were used. */
  readonly source: string | null;
}

/** Options of {@link parseConfigText} and {@link loadConfig}. */
export interface LoadOptions {
  /** Environment for automatic defaults (state directory); the real one by default. */
  readonly environment?: ConfigEnvironment;
}

type MutableConfig = Record<keyof Config, Record<string, unknown>>;

interface RawValue {
  readonly value: string;
  readonly line: number;
}

const sectionByName = new Map(
  (Object.keys(SCHEMA) as (keyof Config)[]).map((field) => [SCHEMA[field].name, field] as const),
);
const keysBySection = new Map<string, Map<string, string>>();
for (const { section, field, spec } of schemaKeys()) {
  let keys = keysBySection.get(section);
  if (!keys) keysBySection.set(section, keys = new Map());
  keys.set(spec.name, field);
}

const byLine = (a: ConfigProblem, b: ConfigProblem) => (a.line ?? Infinity) - (b.line ?? Infinity);

/**
 * Reads configuration text. Throws {@link ConfigError} listing every problem; otherwise
 * returns the frozen configuration and its warnings. `fileName` only labels messages.
 * Rules involving several keys are checked once every single value is valid.
 */
export function parseConfigText(
  text: string,
  fileName: string,
  options: LoadOptions = {},
): LoadResult {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigWarning[] = [];
  const reporter =
    (list: ConfigProblem[]) =>
    (line: number | null, section: string | null, key: string | null) =>
    (message: string): void => {
      list.push({ file: fileName, line, section, key, message });
    };
  const problem = reporter(problems);
  const warning = reporter(warnings);

  const document = readIni(text);
  for (const { line, message } of document.problems) problem(line, null, null)(message);

  const raw = new Map<string, RawValue>();
  let current: string | null = null;
  let unknownSection = false;
  for (const item of document.items) {
    if (item.kind === "section") {
      unknownSection = !sectionByName.has(item.name);
      current = item.name;
      if (unknownSection) {
        const hint = closestMatch(item.name, sectionByName.keys());
        warning(item.line, item.name, null)(
          `unknown section, its keys are ignored${hint ? ` (did you mean [${hint}]?)` : ""}`,
        );
      }
      continue;
    }
    if (current === null) {
      problem(item.line, null, item.key)(`key outside any section (add e.g. [conference-server])`);
      continue;
    }
    if (unknownSection) continue;
    const keys = keysBySection.get(current);
    if (!keys?.has(item.key)) {
      warning(item.line, current, item.key)(`unknown key, ignored${suggestKey(item.key, current)}`);
      continue;
    }
    const id = `${current}\0${item.key}`;
    const first = raw.get(id);
    if (first) {
      problem(item.line, current, item.key)(`set twice (first at line ${first.line})`);
      continue;
    }
    raw.set(id, { value: item.value, line: item.line });
  }

  const values = {} as MutableConfig;
  const lines = new Map<string, number>();
  for (const { section, sectionField, field, spec } of schemaKeys()) {
    const given = raw.get(`${section}\0${spec.name}`);
    const line = given?.line ?? null;
    if (line !== null) lines.set(`${sectionField}.${field}`, line);
    const text = given?.value ?? spec.default;
    const target = values[sectionField] ??= {};
    try {
      target[field] = spec.type.parse(text, warning(line, section, spec.name));
    } catch (error) {
      if (!(error instanceof ConfigValueError)) throw error;
      problem(line, section, spec.name)(error.message);
      target[field] = undefined;
    }
  }

  if (problems.length === 0) {
    const locate = <S extends keyof Config>(sectionField: S, field: keyof Config[S] & string) => {
      const spec = (SCHEMA[sectionField].keys as Record<string, KeySpec<unknown>>)[field];
      return [
        lines.get(`${sectionField}.${field}`) ?? null,
        SCHEMA[sectionField].name,
        spec?.name ?? field,
      ] as const;
    };
    resolveAndCheck(
      values,
      options.environment ?? systemEnvironment(),
      (where, message) => problem(...where)(message),
      (where, message) => warning(...where)(message),
      locate,
    );
  }

  problems.sort(byLine);
  warnings.sort(byLine);
  if (problems.length > 0) throw new ConfigError(problems, warnings);
  return { config: deepFreeze(values) as unknown as Config, warnings, source: fileName };
}

function suggestKey(key: string, section: string): string {
  const own = closestMatch(key, keysBySection.get(section)?.keys() ?? []);
  if (own) return ` (did you mean ${own}?)`;
  for (const [otherSection, keys] of keysBySection) {
    if (otherSection !== section && keys.has(key)) return ` (it belongs in [${otherSection}])`;
  }
  for (const [otherSection, keys] of keysBySection) {
    const other = closestMatch(key, keys.keys());
    if (other) return ` (did you mean ${other} in [${otherSection}]?)`;
  }
  return "";
}

type Where = readonly [number | null, string, string];
type Report = (where: Where, message: string) => void;
type Locate = <S extends keyof Config>(sectionField: S, field: keyof Config[S] & string) => Where;

/** Automatic defaults (empty values) and rules that involve several keys. */
function resolveAndCheck(
  values: MutableConfig,
  environment: ConfigEnvironment,
  error: Report,
  warn: Report,
  locate: Locate,
): void {
  const cs = values.conferenceServer as
    & Record<string, unknown>
    & {
      -readonly [K in keyof Config["conferenceServer"]]: Config["conferenceServer"][K];
    };
  const sip = values.sip as { -readonly [K in keyof Config["sip"]]: Config["sip"][K] };

  if (cs.stateDirectory === "") cs.stateDirectory = defaultStateDirectory(environment);
  if (sip.userAgent === "") sip.userAgent = PRODUCT;

  if (cs.conferenceFocusUris.length !== cs.conferenceFactoryUris.length) {
    error(
      locate("conferenceServer", "conferenceFocusUris"),
      `${cs.conferenceFocusUris.length} focus URI(s) for ${cs.conferenceFactoryUris.length} ` +
        `factory URI(s): conference-focus-uris must pair 1:1 with conference-factory-uris`,
    );
  }
  const factories = new Set(cs.conferenceFactoryUris);
  for (const room of cs.dialInRooms) {
    if (factories.has(room) || cs.conferenceFocusUris.includes(room)) {
      error(locate("conferenceServer", "dialInRooms"), `"${room}" is also a factory or focus URI`);
    }
  }

  if (cs.databaseBackend === "mysql" && cs.databaseConnectionString.trim() === "") {
    error(
      locate("conferenceServer", "databaseBackend"),
      "mysql needs database-connection-string, e.g. db='conclave' user='conclave' " +
        "password='secret' host='127.0.0.1' port=3306",
    );
  }

  if (cs.transport.some((transport) => transport.protocol === "tls")) {
    for (const key of ["tls-certificate", "tls-private-key"] as const) {
      if (sip[key === "tls-certificate" ? "tlsCertificate" : "tlsPrivateKey"] === "") {
        error(locate("conferenceServer", "transport"), `a tls transport needs [sip] ${key}`);
      }
    }
  }

  if (sip.t2Ms < sip.t1Ms) {
    error(locate("sip", "t2Ms"), "must not be shorter than t1 (RFC 3261 §17.1.2.2)");
  }

  const families = cs.natAddresses.map(ipFamily);
  for (const family of ["ipv4", "ipv6"] as const) {
    if (families.filter((f) => f === family).length > 1) {
      error(locate("conferenceServer", "natAddresses"), `at most one ${family} address`);
    }
  }
  if (families.includes(null) && cs.natAddresses.length > 1) {
    warn(
      locate("conferenceServer", "natAddresses"),
      "a host name and other addresses are both listed; Flexisip expects either one host name " +
        "or IP addresses",
    );
  }

  const audio = cs.audioPort;
  const video = cs.videoPort;
  if (audio.min !== 0 && video.min !== 0 && audio.min <= video.max && video.min <= audio.max) {
    warn(
      locate("conferenceServer", "videoPort"),
      "overlaps audio-port; audio and video streams will compete for the same ports",
    );
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Loads a configuration file. With no `path`, reads {@link DEFAULT_CONFIG_PATH} if it exists
 * and otherwise returns the embedded defaults (`source: null`). Throws {@link ConfigError}
 * (also when the file cannot be read).
 */
export async function loadConfig(path?: string, options: LoadOptions = {}): Promise<LoadResult> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (path === undefined && error instanceof Deno.errors.NotFound) {
      return { ...parseConfigText("", "<embedded defaults>", options), source: null };
    }
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : (error as Error).message;
    throw new ConfigError([
      { file, line: null, section: null, key: null, message: `cannot read: ${reason}` },
    ]);
  }
  return parseConfigText(text, file, options);
}

/** The configuration with every key at its default (automatic values resolved). */
export function defaultConfig(options: LoadOptions = {}): Config {
  return parseConfigText("", "<defaults>", options).config;
}

/**
 * The effective configuration as INI text (`--check-config`): every key with its value,
 * automatic defaults shown resolved. Parsing the result yields an equal configuration.
 */
export function formatEffectiveConfig(config: Config): string {
  let text = `# Effective configuration of Conclave ${VERSION}\n`;
  let section = "";
  for (const { section: name, sectionField, field, spec } of schemaKeys()) {
    if (name !== section) {
      text += `\n[${name}]\n`;
      section = name;
    }
    const value = (config[sectionField] as unknown as Record<string, unknown>)[field];
    text += `${spec.name}=${spec.type.format(value)}\n`;
  }
  return text;
}
