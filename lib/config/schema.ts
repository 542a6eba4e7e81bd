/**
 * The declarative table of every configuration key: INI section and key name, value type
 * (with its validator), default, and a one-line doc. `config.ts` reads files against it and
 * `example.ts` writes `conference.conf.example` from it, so the two cannot drift apart.
 *
 * Key names in `[conference-server]` are Flexisip's where Flexisip has the key (its
 * `conference-server` section, flexisip @b6beebd3); `[sip]`, `[redis]` and `[log]` are ours.
 * Field names are the camelCase key names, with `Ms` appended for durations (milliseconds).
 * @module
 */

import {
  boolType,
  ConfigValueError,
  durationType,
  enumType,
  hostType,
  intType,
  isIpv4,
  isIpv6,
  type ListenTransport,
  listType,
  type PortRange,
  portRangeType,
  sipUriType,
  stringType,
  transportListType,
  type ValueType,
} from "./value_types.ts";

export type { ListenTransport, PortRange } from "./value_types.ts";

/** Media a conference may carry (Flexisip `supported-media-types`). */
export type MediaType = "audio" | "video" | "text";
/** Audio codecs the mixer can decode and encode. */
export type AudioCodec = "opus" | "pcmu" | "pcma";
/** Storage backends (`lib/storage/`). */
export type DatabaseBackend = "sqlite3" | "mysql";
/** Log levels (`lib/config/log.ts`). */
export type LogLevelName = "debug" | "info" | "warn" | "error";

/** `[conference-server]`: the focus (RFC 4353 §3) and its media, storage and timers. */
export interface ConferenceServerConfig {
  readonly transport: readonly ListenTransport[];
  readonly conferenceFactoryUris: readonly string[];
  readonly conferenceFocusUris: readonly string[];
  readonly dialInRooms: readonly string[];
  /** Empty: requests go straight to their target (RFC 3263 resolution of the Request-URI). */
  readonly outboundProxy: string;
  readonly localDomains: readonly string[];
  readonly audioPort: PortRange;
  readonly videoPort: PortRange;
  /** One shared media port, or a socket per stream (`lib/media/shared_udp_port.ts`). */
  readonly mediaPortSharing: "auto" | "on" | "off";
  /** Media socket implementation (`lib/media/udp_socket.ts`). */
  readonly mediaSocket: "auto" | "ffi" | "deno";
  readonly databaseBackend: DatabaseBackend;
  /** As written; parsed by `lib/storage/open_store.ts` (empty is fine for sqlite3). */
  readonly databaseConnectionString: string;
  readonly checkCapabilities: boolean;
  readonly enableOneToOneChatRoom: boolean;
  readonly supportedMediaTypes: readonly MediaType[];
  readonly supportedAudioCodecs: readonly AudioCodec[];
  readonly supportedVideoCodec: "vp8";
  readonly audioEngineMode: "mixer";
  readonly videoEngineMode: "semi-sfu";
  readonly encryption: "none";
  readonly natAddresses: readonly string[];
  readonly emptyChatRoomDeletion: boolean;
  /** Queued chat messages older than this are dropped. */
  readonly chatMessageRetentionMs: number;
  /** Never empty once loaded: an absolute path (see `defaultStateDirectory`). */
  readonly stateDirectory: string;
  readonly subscriptionRefreshDelayMs: number;
  /** 0 = calls are never cut. */
  readonly callTimeoutMs: number;
  /** 0 = never hang up silent calls. */
  readonly noRtpTimeoutMs: number;
  readonly cleanupExpiredConferences: boolean;
  readonly conferencesAvailabilityBeforeStartMs: number;
  readonly conferencesExpiryTimeMs: number;
  readonly maxParticipants: number;
  readonly maxSpeakers: number;
  readonly announcements: boolean;
}

/** `[sip]`: RFC 3261 timers, message limits, TLS files, User-Agent. */
export interface SipConfig {
  readonly t1Ms: number;
  readonly t2Ms: number;
  readonly t4Ms: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly maxBodyBytes: number;
  readonly tlsCertificate: string;
  readonly tlsPrivateKey: string;
  /** Never empty once loaded: defaults to `Conclave/<version>`. */
  readonly userAgent: string;
}

/** `[redis]`: the Flexisip registrar database used to discover participants' devices. */
export interface RedisConfig {
  readonly enabled: boolean;
  readonly host: string;
  readonly port: number;
  readonly password: string;
  readonly database: number;
}

/** `[log]`. */
export interface LogConfig {
  readonly level: LogLevelName;
}

/** The whole effective configuration, deeply frozen. */
export interface Config {
  readonly conferenceServer: ConferenceServerConfig;
  readonly sip: SipConfig;
  readonly redis: RedisConfig;
  readonly log: LogConfig;
}

/** One key of the table. */
export interface KeySpec<T> {
  /** INI key name. */
  readonly name: string;
  /** Parser, validator and writer. */
  readonly type: ValueType<T>;
  /** Default, as INI text (parsed by `type`, so defaults pass their own validator). */
  readonly default: string;
  /** One-line documentation. */
  readonly doc: string;
  /** Further lines for the example file (examples, what an empty value means). */
  readonly details?: readonly string[];
}

/** One INI section of the table. */
export interface SectionSpec<S> {
  /** INI section name, without brackets. */
  readonly name: string;
  /** One-line documentation. */
  readonly doc: string;
  /** The keys, in file order; one per field of the section's config type. */
  readonly keys: { readonly [F in keyof S]-?: KeySpec<S[F]> };
}

/** The table type: a section per field of {@link Config}. */
export type Schema = { readonly [K in keyof Config]: SectionSpec<Config[K]> };

const DAY = 86_400_000;
const YEAR = 365 * DAY;

const noConfId = (uri: string, warn: (message: string) => void) => {
  if (/;conf-id=/i.test(uri)) {
    warn(`"${uri}" already has a conf-id parameter; Conclave appends its own`);
  }
};

const absolutePathOrEmpty = (what: string) =>
  stringType(`absolute path, or empty for ${what}`, (text) => {
    if (text !== "" && !text.startsWith("/")) {
      throw new ConfigValueError(`"${text}" is not an absolute path`);
    }
  });

const natAddress = (): ValueType<string> => {
  const host = hostType();
  return { ...host, description: "IPv4 address, IPv6 address or host name" };
};

/** The key table. */
export const SCHEMA: Schema = {
  conferenceServer: {
    name: "conference-server",
    doc: "The conference focus (RFC 4353): where it listens, its URIs, media, storage, timers.",
    keys: {
      transport: {
        name: "transport",
        type: transportListType(),
        default: "sip:127.0.0.1:6064;transport=tcp",
        doc: "SIP URIs the server listens on (several allowed, separated by spaces).",
        details: [
          "transport=udp, tcp or tls; sips: means tls; no transport parameter means udp and tcp;",
          "default port 5060 (5061 for tls); port 0 takes any free port.",
          "Examples: sip:0.0.0.0:5060;transport=udp sip:0.0.0.0:5060;transport=tcp",
          "          sips:conference.example.org:5061 (needs [sip] tls-certificate and tls-private-key)",
        ],
      },
      conferenceFactoryUris: {
        name: "conference-factory-uris",
        type: listType(sipUriType(), { nonEmpty: true }),
        default: "sip:conference-factory@127.0.0.1",
        doc: "URIs clients send INVITE/SUBSCRIBE to in order to create conferences and chat rooms.",
        details: [
          "Their domains are local domains. Example: sip:conference-factory@sip.example.org",
        ],
      },
      conferenceFocusUris: {
        name: "conference-focus-uris",
        type: listType(sipUriType(noConfId), { nonEmpty: true }),
        default: "sip:conference-focus@127.0.0.1",
        doc:
          "Template focus URIs, paired 1:1 with conference-factory-uris; ;conf-id=<random> is appended.",
      },
      dialInRooms: {
        name: "dial-in-rooms",
        type: listType(sipUriType()),
        default: "",
        doc: "Long-lived conference URIs that anyone may call to join (Conclave extension).",
        details: ["Example: sip:standup@conference.example.org sip:ops@conference.example.org"],
      },
      outboundProxy: {
        name: "outbound-proxy",
        type: stringType("SIP URI, or empty", (text, warn) => {
          if (text !== "") sipUriType().parse(text, warn);
        }),
        default: "",
        doc:
          "Proxy every outgoing request is sent through; empty sends requests straight to their target.",
        details: ["Flexisip deployments use: sip:127.0.0.1:5060;transport=tcp"],
      },
      localDomains: {
        name: "local-domains",
        type: listType(hostType()),
        default: "",
        doc:
          "Extra domains whose devices are looked up in Redis; others get an RFC 3680 reg SUBSCRIBE.",
        details: ["Domains of conference-factory-uris are always local."],
      },
      audioPort: {
        name: "audio-port",
        type: portRangeType(),
        default: "40000-40999",
        doc: "UDP port(s) for audio RTP/RTCP (rtcp-mux, one port per participant stream).",
        details: [
          "A range gives every stream a port of its own; a single port is shared by every",
          "stream when media-port-sharing allows it (the default), else serves one stream.",
        ],
      },
      videoPort: {
        name: "video-port",
        type: portRangeType(),
        default: "41000-41999",
        doc: "UDP port(s) for video RTP/RTCP.",
      },
      mediaPortSharing: {
        name: "media-port-sharing",
        type: enumType(["auto", "on", "off"]),
        default: "auto",
        doc: "Whether audio/video streams share one UDP port (one firewall rule) or get one each.",
        details: [
          "on:   one port for every stream (the single port, or the range's first even one;",
          "      RTCP without rtcp-mux on port+1), told apart by source address (shared_udp_port.ts).",
          "off:  a socket per stream. auto: on for a single port, else off.",
        ],
      },
      mediaSocket: {
        name: "media-socket",
        type: enumType(["auto", "ffi", "deno"]),
        default: "auto",
        doc: "How media (RTP/RTCP) UDP sockets are driven.",
        details: [
          "ffi:  libc sockets through Deno FFI, synchronous sendto and batched recvmmsg at each",
          "      media tick (Linux, needs --allow-ffi; deno task start/compile grant it): no",
          "      async operation per packet.",
          "deno: Deno's own datagram sockets (portable; one async operation per packet).",
          "auto: ffi where available (and the bind address is an IP literal), else deno.",
        ],
      },
      databaseBackend: {
        name: "database-backend",
        type: enumType<DatabaseBackend>(["sqlite3", "mysql"]),
        default: "sqlite3",
        doc: "Where conferences, chat rooms and messages are stored (mysql also means MariaDB).",
      },
      databaseConnectionString: {
        name: "database-connection-string",
        type: stringType("text (see above)"),
        default: "",
        doc: "Database parameters: a file for sqlite3, a Flexisip-style parameter list for mysql.",
        details: [
          "sqlite3: empty = conclave.sqlite3 in state-directory; or a file path (relative paths",
          "         are taken from state-directory); :memory: keeps nothing on disk.",
          "mysql:   db='conclave' user='conclave' password='secret' host='127.0.0.1' port=3306",
          "         or mysql://conclave:secret@127.0.0.1:3306/conclave (required for mysql;",
          "         checked in detail when the server starts, before it opens any socket).",
        ],
      },
      checkCapabilities: {
        name: "check-capabilities",
        type: boolType(),
        default: "true",
        doc: "Check a device's +org.linphone.specs (groupchat, ephemeral...) before inviting it.",
      },
      enableOneToOneChatRoom: {
        name: "enable-one-to-one-chat-room",
        type: boolType(),
        default: "true",
        doc: "Allow one-to-one chat rooms (One-To-One-Chat-Room: true).",
      },
      supportedMediaTypes: {
        name: "supported-media-types",
        type: listType(enumType<MediaType>(["audio", "video", "text"]), {
          nonEmpty: true,
          description: "any of audio, video, text, separated by spaces (at least one)",
        }),
        default: "audio video text",
        doc: "Services offered: audio/video conferences and/or text (group chat).",
      },
      supportedAudioCodecs: {
        name: "supported-audio-codecs",
        type: listType(enumType<AudioCodec>(["opus", "pcmu", "pcma"]), {
          nonEmpty: true,
          description: "any of opus, pcmu, pcma, separated by spaces (at least one); " +
            "speex, g722 and g729 are accepted and ignored",
          ignored: {
            speex: "Conclave has no speex codec",
            g722: "Conclave has no G.722 codec",
            g729: "Conclave has no G.729 codec",
          },
        }),
        default: "opus pcmu pcma",
        doc: "Audio codecs the mixer offers, in order of preference.",
      },
      supportedVideoCodec: {
        name: "supported-video-codec",
        type: enumType(["vp8"], { h264: "the video router only forwards VP8" }),
        default: "vp8",
        doc: "Video codec forwarded between participants.",
      },
      audioEngineMode: {
        name: "audio-engine-mode",
        type: enumType(["mixer"], {
          "semi-sfu": "audio is always mixed",
          sfu: "audio is always mixed (sfu exists for end-to-end encryption)",
        }),
        default: "mixer",
        doc: "How audio is distributed: mixer = decode, mix the loudest speakers, re-encode.",
      },
      videoEngineMode: {
        name: "video-engine-mode",
        type: enumType(["semi-sfu"], {
          sfu: "full-packet forwarding for end-to-end encryption is not available",
        }),
        default: "semi-sfu",
        doc: "How video is distributed: semi-sfu = forward streams, rewriting RTP headers.",
      },
      encryption: {
        name: "encryption",
        type: enumType(["none"], {
          sdes: "media encryption (SRTP) is not available yet",
          zrtp: "media encryption (ZRTP) is not available yet",
          "dtls-srtp": "media encryption (DTLS-SRTP) is not available yet",
        }),
        default: "none",
        doc: "Media encryption offered to participants; only none is available.",
      },
      natAddresses: {
        name: "nat-addresses",
        type: listType(natAddress()),
        default: "",
        doc:
          "Public addresses advertised in SDP when behind NAT: one IPv4 and/or one IPv6, or a host name.",
        details: ["Examples: 203.0.113.10 2001:db8::10   or   conference.example.org"],
      },
      emptyChatRoomDeletion: {
        name: "empty-chat-room-deletion",
        type: boolType(),
        default: "true",
        doc: "Delete chat rooms that have no participant left.",
      },
      chatMessageRetentionMs: {
        name: "chat-message-retention",
        type: durationType(60_000, 200 * YEAR),
        default: "7d",
        doc: "How long a chat message waits for a device that is away; older ones are dropped.",
        details: [
          "liblinphone's server keeps queued messages one week (7d). Messages are stored before",
          "they are accepted, so they survive restarts while they wait.",
        ],
      },
      stateDirectory: {
        name: "state-directory",
        type: absolutePathOrEmpty("the automatic choice"),
        default: "",
        doc: "Directory for state files (instance UUID, SQLite database); created at start.",
        details: [
          "Empty: $STATE_DIRECTORY (systemd), else /var/lib/conclave as root,",
          "else $XDG_STATE_HOME/conclave, else ~/.local/state/conclave.",
        ],
      },
      subscriptionRefreshDelayMs: {
        name: "subscription-refresh-delay",
        type: durationType(1_000, 7 * DAY),
        default: "10min",
        doc: "Refresh period of reg SUBSCRIBEs to external domains (RFC 3680); keep it above 1min.",
      },
      callTimeoutMs: {
        name: "call-timeout",
        type: durationType(0, YEAR, "0 = no limit"),
        default: "0",
        doc: "Hang up calls that last longer than this.",
      },
      noRtpTimeoutMs: {
        name: "no-rtp-timeout",
        type: durationType(0, DAY, "0 = never"),
        default: "30s",
        doc: "Hang up a call when no RTP has arrived from the participant for this long.",
      },
      cleanupExpiredConferences: {
        name: "cleanup-expired-conferences",
        type: boolType(),
        default: "true",
        doc: "Periodically delete expired conferences from the database.",
      },
      conferencesAvailabilityBeforeStartMs: {
        name: "conferences-availability-before-start",
        type: durationType(0, 200 * YEAR),
        default: "100y",
        doc: "How long before its scheduled start a conference can be joined.",
      },
      conferencesExpiryTimeMs: {
        name: "conferences-expiry-time",
        type: durationType(0, 200 * YEAR),
        default: "30d",
        doc:
          "How long after its end (scheduled, or last participant leaving) a conference can be joined.",
      },
      maxParticipants: {
        name: "max-participants",
        type: intType(1, 10_000),
        default: "100",
        doc:
          "Most participants in one conference or chat room; more are refused with 486 Conference full.",
      },
      maxSpeakers: {
        name: "max-speakers",
        type: intType(1, 32),
        default: "4",
        doc: "Loudest participants mixed together at any moment (mixer top-N).",
      },
      announcements: {
        name: "announcements",
        type: boolType(),
        default: "false",
        doc: "Play short tones: join/leave to everyone, alone to a lone participant, lock/unlock.",
      },
    },
  },
  sip: {
    name: "sip",
    doc: "SIP stack settings (RFC 3261): transaction timers, message limits, TLS.",
    keys: {
      t1Ms: {
        name: "t1",
        type: durationType(50, 10_000),
        default: "500ms",
        doc: "RTT estimate T1 (RFC 3261 §17.1.1.1): first retransmission interval over UDP.",
      },
      t2Ms: {
        name: "t2",
        type: durationType(1_000, 60_000),
        default: "4s",
        doc: "Longest retransmission interval T2 for non-INVITE requests and INVITE responses.",
      },
      t4Ms: {
        name: "t4",
        type: durationType(1_000, 60_000),
        default: "5s",
        doc: "Longest time a message stays in the network, T4 (RFC 3261 §17.1.2.2).",
      },
      maxHeaderBytes: {
        name: "max-header-bytes",
        type: intType(1_024, 1_048_576, "bytes"),
        default: "16384",
        doc:
          "Largest accepted header section of a message; larger ones get 413/513 or are dropped.",
      },
      maxHeaderCount: {
        name: "max-header-count",
        type: intType(16, 4_096),
        default: "128",
        doc: "Most header fields accepted in one message.",
      },
      maxBodyBytes: {
        name: "max-body-bytes",
        type: intType(0, 16_777_216, "bytes"),
        default: "262144",
        doc: "Largest accepted message body (Content-Length).",
      },
      tlsCertificate: {
        name: "tls-certificate",
        type: absolutePathOrEmpty("no TLS"),
        default: "",
        doc: "PEM certificate chain for tls/sips transports.",
      },
      tlsPrivateKey: {
        name: "tls-private-key",
        type: absolutePathOrEmpty("no TLS"),
        default: "",
        doc: "PEM private key for tls/sips transports.",
      },
      userAgent: {
        name: "user-agent",
        type: stringType("text, or empty for Conclave/<version>"),
        default: "",
        doc: "User-Agent and Server header value (empty: Conclave/<version>).",
      },
    },
  },
  redis: {
    name: "redis",
    doc: "Flexisip's registrar database (Redis), used to find participants' devices. Optional.",
    keys: {
      enabled: {
        name: "enabled",
        type: boolType(),
        default: "false",
        doc: "Look devices up in Redis (fs:<user>@<domain> records) and follow registrations.",
      },
      host: {
        name: "host",
        type: hostType(),
        default: "127.0.0.1",
        doc: "Redis server host.",
      },
      port: {
        name: "port",
        type: intType(1, 65_535),
        default: "6379",
        doc: "Redis server port.",
      },
      password: {
        name: "password",
        type: stringType("text, or empty for no AUTH"),
        default: "",
        doc: "Redis password (AUTH), empty for none.",
      },
      database: {
        name: "database",
        type: intType(0, 255),
        default: "0",
        doc: "Redis database index (Flexisip uses 0).",
      },
    },
  },
  log: {
    name: "log",
    doc: "Logging to stderr.",
    keys: {
      level: {
        name: "level",
        type: enumType<LogLevelName>(["debug", "info", "warn", "error"]),
        default: "info",
        doc: "Lowest level written (--debug overrides it with debug).",
      },
    },
  },
};

/** An untyped view of one key, for code that walks the whole table. */
export interface AnyKeySpec {
  readonly section: string;
  readonly sectionField: keyof Config;
  readonly field: string;
  readonly spec: KeySpec<unknown>;
}

/** Every key of {@link SCHEMA}, in file order. */
export function schemaKeys(): AnyKeySpec[] {
  const result: AnyKeySpec[] = [];
  for (const sectionField of Object.keys(SCHEMA) as (keyof Config)[]) {
    const section: SectionSpec<unknown> = SCHEMA[sectionField] as SectionSpec<unknown>;
    for (const [field, spec] of Object.entries(section.keys as Record<string, KeySpec<unknown>>)) {
      result.push({ section: section.name, sectionField, field, spec });
    }
  }
  return result;
}

/** IP literal families in `nat-addresses` (at most one of each is allowed). */
export function ipFamily(address: string): "ipv4" | "ipv6" | null {
  if (isIpv4(address)) return "ipv4";
  if (isIpv6(address)) return "ipv6";
  return null;
}
