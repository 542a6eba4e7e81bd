import assert from "node:assert/strict";
import {
  ConfigError,
  type ConfigProblem,
  defaultConfig,
  formatConfigProblem,
  formatEffectiveConfig,
  loadConfig,
  parseConfigText,
} from "../../lib/config/config.ts";
import { type Config, schemaKeys } from "../../lib/config/schema.ts";
import { fixedEnvironment } from "../../lib/config/environment.ts";
import { VERSION } from "../../lib/config/version.ts";

const env = fixedEnvironment({ HOME: "/home/tester" }, 1000);
const options = { environment: env };

/** Every key's exact default, written out by hand (not derived from the schema). */
const EXPECTED_DEFAULTS: Record<string, unknown> = {
  "conference-server.transport": [
    { uri: "sip:127.0.0.1:6064;transport=tcp", protocol: "tcp", host: "127.0.0.1", port: 6064 },
  ],
  "conference-server.conference-factory-uris": ["sip:conference-factory@127.0.0.1"],
  "conference-server.conference-focus-uris": ["sip:conference-focus@127.0.0.1"],
  "conference-server.dial-in-rooms": [],
  "conference-server.outbound-proxy": "",
  "conference-server.local-domains": [],
  "conference-server.audio-port": { min: 40000, max: 40999 },
  "conference-server.video-port": { min: 41000, max: 41999 },
  "conference-server.media-socket": "auto",
  "conference-server.media-port-sharing": "auto",
  "conference-server.database-backend": "sqlite3",
  "conference-server.database-connection-string": "",
  "conference-server.check-capabilities": true,
  "conference-server.enable-one-to-one-chat-room": true,
  "conference-server.supported-media-types": ["audio", "video", "text"],
  "conference-server.supported-audio-codecs": ["opus", "pcmu", "pcma"],
  "conference-server.supported-video-codec": "vp8",
  "conference-server.audio-engine-mode": "mixer",
  "conference-server.video-engine-mode": "semi-sfu",
  "conference-server.encryption": "none",
  "conference-server.nat-addresses": [],
  "conference-server.empty-chat-room-deletion": true,
  "conference-server.chat-message-retention": 7 * 86_400_000,
  "conference-server.state-directory": "/home/tester/.local/state/conclave",
  "conference-server.subscription-refresh-delay": 600_000,
  "conference-server.call-timeout": 0,
  "conference-server.no-rtp-timeout": 30_000,
  "conference-server.cleanup-expired-conferences": true,
  "conference-server.conferences-availability-before-start": 100 * 365 * 86_400_000,
  "conference-server.conferences-expiry-time": 30 * 86_400_000,
  "conference-server.max-participants": 100,
  "conference-server.max-speakers": 4,
  "conference-server.announcements": false,
  "sip.t1": 500,
  "sip.t2": 4_000,
  "sip.t4": 5_000,
  "sip.max-header-bytes": 16_384,
  "sip.max-header-count": 128,
  "sip.max-body-bytes": 262_144,
  "sip.tls-certificate": "",
  "sip.tls-private-key": "",
  "sip.user-agent": `Conclave/${VERSION}`,
  "redis.enabled": false,
  "redis.host": "127.0.0.1",
  "redis.port": 6379,
  "redis.password": "",
  "redis.database": 0,
  "log.level": "info",
};

function valueOf(config: Config, sectionField: keyof Config, field: string): unknown {
  return (config[sectionField] as unknown as Record<string, unknown>)[field];
}

function problemsOf(text: string, file = "test.conf"): readonly ConfigProblem[] {
  try {
    parseConfigText(text, file, options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("every key has exactly the documented default", () => {
  const config = defaultConfig(options);
  const seen = new Set<string>();
  for (const { section, sectionField, field, spec } of schemaKeys()) {
    const id = `${section}.${spec.name}`;
    seen.add(id);
    assert.ok(id in EXPECTED_DEFAULTS, `no expected default written for ${id}`);
    assert.deepEqual(valueOf(config, sectionField, field), EXPECTED_DEFAULTS[id], id);
  }
  assert.deepEqual([...seen].sort(), Object.keys(EXPECTED_DEFAULTS).sort());
});

Deno.test("field names are camelCase key names, with Ms for durations", () => {
  for (const { field, spec } of schemaKeys()) {
    const camel = spec.name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    const isDuration = spec.type.description.startsWith("duration");
    assert.equal(field, isDuration ? `${camel}Ms` : camel, spec.name);
  }
});

Deno.test("an empty file gives the defaults without warnings", () => {
  const result = parseConfigText("", "empty.conf", options);
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(result.config, defaultConfig(options));
  assert.equal(result.source, "empty.conf");
});

Deno.test("loaded configuration is deeply frozen", () => {
  const config = defaultConfig(options);
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.conferenceServer));
  assert.ok(Object.isFrozen(config.conferenceServer.transport));
  assert.ok(Object.isFrozen(config.conferenceServer.transport[0]));
  assert.ok(Object.isFrozen(config.conferenceServer.audioPort));
  assert.throws(() => {
    (config.sip as { t1Ms: number }).t1Ms = 1;
  }, TypeError);
});

Deno.test("values are read and typed", () => {
  const text = [
    "# comment",
    "[conference-server]",
    "transport = sip:0.0.0.0:5070;transport=udp sips:[::1]:5071",
    "conference-factory-uris=sip:factory@a.example sip:factory@b.example",
    "conference-focus-uris=sip:focus@a.example sip:focus@b.example",
    "no-rtp-timeout=10min",
    "call-timeout=2h",
    "conferences-expiry-time=7d",
    "subscription-refresh-delay=90",
    "audio-port=0",
    "video-port=50000",
    "database-backend=mysql",
    "database-connection-string=db='conf' user='u' password='p w' host='127.0.0.1'",
    "announcements=on",
    "check-capabilities=no",
    "supported-audio-codecs=PCMA opus",
    "nat-addresses=203.0.113.7 2001:db8::7",
    "; other comment",
    "[sip]",
    "t1=250ms",
    "tls-certificate=/etc/conclave/cert.pem",
    "tls-private-key=/etc/conclave/key.pem",
    "user-agent=My Conference Server",
    "[redis]",
    "enabled=1",
    "[log]",
    "level=debug",
  ].join("\r\n");
  const { config, warnings } = parseConfigText(text, "x.conf", options);
  assert.deepEqual(warnings, []);
  const cs = config.conferenceServer;
  assert.deepEqual(cs.transport, [
    { uri: "sip:0.0.0.0:5070;transport=udp", protocol: "udp", host: "0.0.0.0", port: 5070 },
    { uri: "sips:[::1]:5071", protocol: "tls", host: "::1", port: 5071 },
  ]);
  assert.deepEqual(cs.conferenceFactoryUris, ["sip:factory@a.example", "sip:factory@b.example"]);
  assert.equal(cs.noRtpTimeoutMs, 600_000);
  assert.equal(cs.callTimeoutMs, 7_200_000);
  assert.equal(cs.conferencesExpiryTimeMs, 604_800_000);
  assert.equal(cs.subscriptionRefreshDelayMs, 90_000);
  assert.deepEqual(cs.audioPort, { min: 0, max: 0 });
  assert.deepEqual(cs.videoPort, { min: 50000, max: 50000 });
  assert.equal(cs.databaseBackend, "mysql");
  assert.equal(cs.databaseConnectionString, "db='conf' user='u' password='p w' host='127.0.0.1'");
  assert.equal(cs.announcements, true);
  assert.equal(cs.checkCapabilities, false);
  assert.deepEqual(cs.supportedAudioCodecs, ["pcma", "opus"]);
  assert.deepEqual(cs.natAddresses, ["203.0.113.7", "2001:db8::7"]);
  assert.equal(config.sip.t1Ms, 250);
  assert.equal(config.sip.userAgent, "My Conference Server");
  assert.equal(config.redis.enabled, true);
  assert.equal(config.log.level, "debug");
});

Deno.test("bad values are errors naming file, line, section and key", () => {
  const text = [
    "[conference-server]", // 1
    "no-rtp-timeout=30 seconds please", // 2: bad duration
    "max-speakers=four", // 3: bad int
    "database-backend=postgres", // 4: bad enum
    "audio-port=41000-40000", // 5: bad port range
    "empty-chat-room-deletion=maybe", // 6: bad bool
    "max-participants=0", // 7: out of range
    "encryption=zrtp", // 8: not implemented
    "transport=<sip:127.0.0.1:5060>", // 9: angle brackets
  ].join("\n");
  const problems = problemsOf(text, "bad.conf");
  const lines = problems.map((p) => formatConfigProblem(p));
  const expect = (line: number, key: string, pattern: RegExp) => {
    const hit = lines.find((l) => l.startsWith(`bad.conf:${line}: [conference-server] ${key}: `));
    assert.ok(hit, `no error for line ${line} key ${key} in:\n${lines.join("\n")}`);
    assert.match(hit, pattern);
  };
  expect(2, "no-rtp-timeout", /invalid duration "30 seconds please"/);
  expect(3, "max-speakers", /invalid integer "four"/);
  expect(4, "database-backend", /expected one of: sqlite3, mysql/);
  expect(5, "audio-port", /invalid port range "41000-40000"/);
  expect(6, "empty-chat-room-deletion", /invalid boolean "maybe"/);
  expect(7, "max-participants", /out of range \(1 to 10000\)/);
  expect(8, "encryption", /not implemented.*supported: none/);
  expect(9, "transport", /without angle brackets/);
  assert.equal(problems.length, 8);
});

Deno.test("ConfigError message lists every problem as file:line: [section] key: message", () => {
  try {
    parseConfigText("[sip]\nt1=fast\n[redis]\nport=70000\n", "/etc/x.conf", options);
    assert.fail("no error");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.ok(error instanceof Error);
    assert.equal(
      error.message,
      '/etc/x.conf:2: [sip] t1: invalid duration "fast" (unexpected "fast")\n' +
        "/etc/x.conf:4: [redis] port: 70000 is out of range (1 to 65535)",
    );
  }
});

Deno.test("unknown keys warn with the closest known key", () => {
  const text = "[conference-server]\nno-rtp-timout=30s\nconference-factory-uri=sip:f@x\n" +
    "[sip]\nmax-speakers=3\nzzzzzz=1\n";
  const { warnings, config } = parseConfigText(text, "w.conf", options);
  const lines = warnings.map(formatConfigProblem);
  assert.deepEqual(lines, [
    "w.conf:2: [conference-server] no-rtp-timout: unknown key, ignored (did you mean no-rtp-timeout?)",
    "w.conf:3: [conference-server] conference-factory-uri: unknown key, ignored " +
    "(did you mean conference-factory-uris?)",
    "w.conf:5: [sip] max-speakers: unknown key, ignored (it belongs in [conference-server])",
    "w.conf:6: [sip] zzzzzz: unknown key, ignored",
  ]);
  assert.deepEqual(config, defaultConfig(options));
});

Deno.test("unknown sections warn once and their keys are ignored", () => {
  const text = "[conference-servr]\ntransport=garbage\n[module::Registrar]\nenabled=true\n";
  const { warnings, config } = parseConfigText(text, "s.conf", options);
  assert.deepEqual(warnings.map(formatConfigProblem), [
    "s.conf:1: [conference-servr] unknown section, its keys are ignored " +
    "(did you mean [conference-server]?)",
    "s.conf:3: [module::Registrar] unknown section, its keys are ignored",
  ]);
  assert.deepEqual(config, defaultConfig(options));
});

Deno.test("a key set twice is an error naming both lines", () => {
  const problems = problemsOf("[sip]\nt1=1s\n\nt1=2s\n", "d.conf");
  assert.deepEqual(problems.map(formatConfigProblem), [
    "d.conf:4: [sip] t1: set twice (first at line 2)",
  ]);
});

Deno.test("a repeated section header merges, duplicates across it are still caught", () => {
  const { config } = parseConfigText("[sip]\nt1=1s\n[redis]\n[sip]\nt2=8s\n", "m.conf", options);
  assert.equal(config.sip.t1Ms, 1000);
  assert.equal(config.sip.t2Ms, 8000);
  const problems = problemsOf("[sip]\nt1=1s\n[redis]\n[sip]\nt1=2s\n", "m.conf");
  assert.equal(
    formatConfigProblem(problems[0]!),
    "m.conf:5: [sip] t1: set twice (first at line 2)",
  );
});

Deno.test("malformed lines and keys outside sections are errors", () => {
  const problems = problemsOf("t1=1s\n[sip\n[sip]\njust words\n=5\n[log] trailing\n", "f.conf");
  assert.deepEqual(problems.map(formatConfigProblem), [
    "f.conf:1: t1: key outside any section (add e.g. [conference-server])",
    'f.conf:2: unterminated section header "[sip"',
    'f.conf:4: expected "key=value", "[section]" or a comment, found "just words"',
    'f.conf:5: missing key name before "="',
    'f.conf:6: unexpected text after section header: "trailing"',
  ]);
});

Deno.test("cross-key rules", () => {
  const check = (text: string, pattern: RegExp) => {
    const lines = problemsOf(text).map(formatConfigProblem);
    assert.ok(lines.some((l) => pattern.test(l)), `${pattern} not in:\n${lines.join("\n")}`);
  };
  check(
    "[conference-server]\nconference-factory-uris=sip:a@x sip:b@y\n",
    /conference-focus-uris: 1 focus URI\(s\) for 2 factory URI\(s\)/,
  );
  check(
    "[conference-server]\ndatabase-backend=mysql\n",
    /test\.conf:2: \[conference-server\] database-backend: mysql needs database-connection-string/,
  );
  check(
    "[conference-server]\ntransport=sips:127.0.0.1:5061\n",
    /test\.conf:2: \[conference-server\] transport: a tls transport needs \[sip\] tls-certificate/,
  );
  check("[sip]\nt1=5s\nt2=2s\n", /test\.conf:3: \[sip\] t2: must not be shorter than t1/);
  check(
    "[conference-server]\nnat-addresses=1.2.3.4 5.6.7.8\n",
    /nat-addresses: at most one ipv4 address/,
  );
  check(
    "[conference-server]\ndial-in-rooms=sip:conference-factory@127.0.0.1\n",
    /dial-in-rooms: "sip:conference-factory@127.0.0.1" is also a factory or focus URI/,
  );
  check("[conference-server]\nstate-directory=relative/dir\n", /is not an absolute path/);
});

Deno.test("value warnings: ignored codec, duplicate list item, overlapping ports", () => {
  const text = "[conference-server]\nsupported-audio-codecs=opus speex opus\n" +
    "audio-port=40000-40999\nvideo-port=40500-41500\n";
  const { warnings, config } = parseConfigText(text, "v.conf", options);
  assert.deepEqual(config.conferenceServer.supportedAudioCodecs, ["opus"]);
  assert.deepEqual(warnings.map(formatConfigProblem), [
    'v.conf:2: [conference-server] supported-audio-codecs: "speex" is ignored: ' +
    "Conclave has no speex codec",
    'v.conf:2: [conference-server] supported-audio-codecs: "opus" is listed twice; ' +
    "the duplicate is ignored",
    "v.conf:4: [conference-server] video-port: overlaps audio-port; audio and video streams " +
    "will compete for the same ports",
  ]);
});

Deno.test("automatic values: state directory, user agent", () => {
  const { config } = parseConfigText("[conference-server]\nstate-directory=/srv/it's\n", "a", {
    environment: env,
  });
  assert.equal(config.conferenceServer.stateDirectory, "/srv/it's");
  assert.equal(config.conferenceServer.databaseConnectionString, "");
  const root = defaultConfig({ environment: fixedEnvironment({ HOME: "/root" }, 0) });
  assert.equal(root.conferenceServer.stateDirectory, "/var/lib/conclave");
  assert.equal(root.sip.userAgent, `Conclave/${VERSION}`);
});

Deno.test("effective config round-trips to an equal configuration", () => {
  const text = "[conference-server]\ntransport=sip:0.0.0.0:5060 sips:example.org\n" +
    "no-rtp-timeout=90s\ncall-timeout=1h30min\naudio-port=0\n[sip]\nt1=750ms\n" +
    "tls-certificate=/c.pem\ntls-private-key=/k.pem\n";
  const first = parseConfigText(text, "r.conf", options).config;
  const printed = formatEffectiveConfig(first);
  assert.match(printed, /^no-rtp-timeout=1min30s$/m);
  assert.match(printed, /^call-timeout=1h30min$/m);
  assert.match(printed, /^transport=sip:0\.0\.0\.0:5060 sips:example\.org$/m);
  assert.match(printed, /^state-directory=\/home\/tester\/\.local\/state\/conclave$/m);
  const second = parseConfigText(printed, "printed", options).config;
  assert.deepEqual(second, first);
  assert.deepEqual(
    parseConfigText(formatEffectiveConfig(defaultConfig(options)), "d", options)
      .config,
    defaultConfig(options),
  );
});

Deno.test("loadConfig reads a file, and reports a missing one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conclave-config-" });
  try {
    const path = `${dir}/c.conf`;
    await Deno.writeTextFile(path, "[log]\nlevel=warn\n");
    const result = await loadConfig(path, options);
    assert.equal(result.source, path);
    assert.equal(result.config.log.level, "warn");
    await assert.rejects(
      () => loadConfig(`${dir}/missing.conf`, options),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === `${dir}/missing.conf: cannot read: no such file`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
