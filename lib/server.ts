/**
 * The composition root: builds every layer from a {@link Config} — storage, SIP transports,
 * the transaction layer (RFC 3261 §17), the user-agent core (§8), the media engine, and the
 * focus (RFC 4353) — and starts and stops them in order. Storage opens before any socket, so
 * a bad connection string fails the start without listening.
 * @module
 */

import { mkdir } from "node:fs/promises";
import { type Clock, systemClock } from "./config/clock.ts";
import { createLogger } from "./config/log.ts";
import type { Config } from "./config/schema.ts";
import { VERSION } from "./config/version.ts";
import { transactionPortOver } from "./dialog/transaction_port.ts";
import { UserAgent } from "./dialog/user_agent.ts";
import { Focus, type LocalAddress } from "./conference/focus.ts";
import { sdpNegotiator } from "./conference/sdp_negotiator.ts";
import { MediaTicker } from "./media/media_ticker.ts";
import { PortPool } from "./media/port_pool.ts";
import { resolveUdpBackend } from "./media/udp_socket.ts";

import { type DeviceDirectory, RoutingDeviceDirectory } from "./registrar/device_directory.ts";
import { loadInstanceId } from "./registrar/instance_id.ts";
import { RedisRegistrar, type ServerBinding } from "./registrar/redis_registrar.ts";
import { RegEventDirectory } from "./registrar/reg_event_subscriber.ts";
import { formatUri, parseUri, type SipUri } from "./sip/uri.ts";
import { openStore } from "./storage/open_store.ts";
import type { Store } from "./storage/store.ts";
import { TransactionLayer } from "./transaction/transaction_layer.ts";
import { TransportLayer } from "./transport/transport.ts";
import { formatHostPort, type TransportName } from "./transport/flow.ts";

const log = createLogger("server");

/** Options for embedding and tests. */
export interface ServerOptions {
  readonly clock?: Clock;
}

/**
 * Protocol and media state held right now: what an ended call must not leave behind once
 * its transaction timers have run (RFC 3261 §17.2.2 Timer J, RFC 6026 §8.7 Timer L).
 */
export interface ServerResources {
  /** Server transactions (RFC 3261 §17.2), including those absorbing retransmissions. */
  readonly serverTransactions: number;
  /** Client transactions (RFC 3261 §17.1). */
  readonly clientTransactions: number;
  /** Dialogs (RFC 3261 §12) of calls, subscriptions and dial-outs. */
  readonly dialogs: number;
  /** Calls (devices connected) over all live conferences. */
  readonly calls: number;
  /** Media port allocations (an RTP socket, plus an RTCP socket when not multiplexed). */
  readonly mediaPorts: number;
  /** Conferences mixing on the shared media tick (RFC 4353 §5 focus mixing). */
  readonly tickingConferences: number;
}

/** A running Conclave instance. */
export class Server {
  readonly config: Config;
  readonly #clock: Clock;
  #store: Store | undefined;
  #transport: TransportLayer | undefined;
  #transactions: TransactionLayer | undefined;
  #ua: UserAgent | undefined;
  #focus: Focus | undefined;
  #ports: PortPool | undefined;
  #ticker: MediaTicker | undefined;
  #addresses: LocalAddress[] = [];
  #directory: DeviceDirectory | undefined;
  #stopped = false;

  constructor(config: Config, options: ServerOptions = {}) {
    this.config = config;
    this.#clock = options.clock ?? systemClock;
  }

  /** Where the server listens (bound ports, after {@link start}). */
  get addresses(): readonly LocalAddress[] {
    return this.#addresses;
  }

  /** The focus (after {@link start}). */
  get focus(): Focus {
    if (!this.#focus) throw new Error("server not started");
    return this.#focus;
  }

  /** Live protocol and media state (zeros before {@link start}); see {@link ServerResources}. */
  get resources(): ServerResources {
    let calls = 0;
    for (const conference of this.#focus?.conferences.values() ?? []) {
      calls += conference.callCount;
    }
    return {
      serverTransactions: this.#transactions?.serverTransactionCount ?? 0,
      clientTransactions: this.#transactions?.clientTransactionCount ?? 0,
      dialogs: this.#ua?.dialogCount ?? 0,
      calls,
      mediaPorts: this.#ports?.allocatedCount ?? 0,
      tickingConferences: this.#ticker?.listenerCount ?? 0,
    };
  }

  /**
   * Devices of participants (after {@link start}): Flexisip's Redis registrar for local
   * domains, RFC 3680 reg subscriptions for the others; undefined when `[redis] enabled` is
   * false.
   */
  get deviceDirectory(): DeviceDirectory | undefined {
    return this.#directory;
  }

  /** The store (after {@link start}). */
  get store(): Store {
    if (!this.#store) throw new Error("server not started");
    return this.#store;
  }

  /** Opens storage, then the listeners, then accepts requests. */
  async start(): Promise<void> {
    const cs = this.config.conferenceServer;
    const sip = this.config.sip;
    log.info(`Conclave ${VERSION} starting`, { stateDirectory: cs.stateDirectory });
    // media-socket=ffi without FFI stops here, before any socket is opened.
    const mediaHostConfigured = cs.transport[0]?.host ?? "127.0.0.1";
    const mediaSocket = resolveUdpBackend(cs.mediaSocket, mediaHostConfigured);
    await mkdir(cs.stateDirectory, { recursive: true });
    this.#store = await openStore({
      backend: cs.databaseBackend,
      connectionString: cs.databaseConnectionString,
      stateDirectory: cs.stateDirectory,
      clock: this.#clock,
    });
    log.info("storage open", {
      backend: cs.databaseBackend,
      where: cs.databaseBackend === "sqlite3" ? cs.stateDirectory : "mysql",
    });

    const transport = new TransportLayer({
      clock: this.#clock,
      limits: {
        maxHeaderBytes: sip.maxHeaderBytes,
        maxHeaders: sip.maxHeaderCount,
        maxBodyBytes: sip.maxBodyBytes,
      },
      tls: {},
    });
    this.#transport = transport;
    const advertised = cs.natAddresses.find((a) => !a.includes(":"));
    for (const t of cs.transport) {
      const name = t.protocol.toUpperCase() as TransportName;
      const bound = await transport.listen({
        transport: name,
        host: t.host,
        port: t.port,
        ...(advertised ? { advertisedHost: advertised } : {}),
        ...(name === "TLS"
          ? { tls: { certFile: sip.tlsCertificate, keyFile: sip.tlsPrivateKey } }
          : {}),
      });
      const adv = transport.localAddress(name);
      this.#addresses.push({ transport: name, host: adv.host, port: bound.port });
      log.info("listening", { transport: name, address: formatHostPort(bound.host, bound.port) });
    }

    const ref: { ua?: UserAgent } = {};
    const transactions = new TransactionLayer({
      transport,
      clock: this.#clock,
      timers: { t1: sip.t1Ms, t2: sip.t2Ms, t4: sip.t4Ms },
      user: {
        onRequest: (tx) => ref.ua?.receiveRequest(tx),
        onAck: (ack) => ref.ua?.receiveAck(ack),
        onCancel: (invite) => ref.ua?.receiveCancel(invite.request),
      },
    });
    this.#transactions = transactions;
    const port = transactionPortOver(transactions, transport);
    const outboundProxy = cs.outboundProxy.trim() === "" ? undefined : parseUri(cs.outboundProxy);
    const ua = new UserAgent({
      port,
      clock: this.#clock,
      logger: createLogger("ua"),
      serverName: sip.userAgent,
      outboundProxy,
      t1Ms: sip.t1Ms,
      t2Ms: sip.t2Ms,
      // A Contact must be reachable as written (RFC 3261 §8.1.1.8): without a transport
      // parameter a peer uses UDP (§18.2.2 / RFC 3263 §4.1), which we may not listen on.
      contactUri: (user, flow) => {
        const local = this.#addresses.find((a) => a.transport === flow?.transport) ??
          this.#addresses[0];
        if (!local) return parseUri(`sip:${user}@127.0.0.1`);
        const transport = local.transport === "UDP"
          ? ""
          : `;transport=${local.transport.toLowerCase()}`;
        return parseUri(`sip:${user}@${formatHostPort(local.host, local.port)}${transport}`);
      },
    });
    this.#ua = ua;
    ref.ua = ua;

    const mediaHost = cs.transport[0]?.host ?? "127.0.0.1";
    const mediaBind = mediaHost === "0.0.0.0" || mediaHost === "::" ? mediaHost : mediaHost;
    const mediaAddress = advertised ??
      (mediaBind === "0.0.0.0" ? (this.#addresses[0]?.host ?? "127.0.0.1") : mediaBind);
    this.#ports = new PortPool(
      cs.audioPort.min === 0 ? "0" : `${cs.audioPort.min}-${cs.audioPort.max}`,
      { hostname: mediaBind, backend: cs.mediaSocket, sharing: cs.mediaPortSharing },
    );
    const videoPorts = new PortPool(
      cs.videoPort.min === 0 ? "0" : `${cs.videoPort.min}-${cs.videoPort.max}`,
      { hostname: mediaBind, sharing: cs.mediaPortSharing },
    );
    const ticker = new MediaTicker({ clock: this.#clock });
    this.#ticker = ticker;
    const focus = new Focus({
      ua,
      store: this.#store,
      clock: this.#clock,
      logger: createLogger("focus"),
      ports: this.#ports,
      ticker,
      negotiator: sdpNegotiator,
      factories: cs.conferenceFactoryUris.map((f, i) => ({
        factory: parseUri(f),
        focus: cs.conferenceFocusUris[i] ?? cs.conferenceFocusUris[0] ?? f,
      })),
      dialInRooms: cs.dialInRooms.map((r) => parseUri(r)),
      outboundProxy,
      localAddresses: this.#addresses,
      mediaAddress,
      audioCodecs: cs.supportedAudioCodecs,
      videoPorts,
      videoCodecs: cs.supportedMediaTypes.includes("video") ? [cs.supportedVideoCodec] : [],
      mediaTypes: cs.supportedMediaTypes.filter((m) => m !== "text"),
      callTimeoutMs: cs.callTimeoutMs,
      noRtpTimeoutMs: cs.noRtpTimeoutMs,
      maxParticipants: cs.maxParticipants,
      maxSpeakers: cs.maxSpeakers,
      announcements: cs.announcements,
      expiryMs: cs.cleanupExpiredConferences ? cs.conferencesExpiryTimeMs : 0,
      chat: {
        enabled: cs.supportedMediaTypes.includes("text"),
        oneToOneEnabled: cs.enableOneToOneChatRoom,
        checkCapabilities: cs.checkCapabilities,
        emptyRoomDeletion: cs.emptyChatRoomDeletion,
        retentionMs: cs.chatMessageRetentionMs,
        directory: () => this.#directory,
      },
    });
    this.#focus = focus;
    await focus.start();
    ua.setHandler(focus);
    this.#directory = await this.#startDirectory(ua, outboundProxy);
    log.info("ready", {
      factories: cs.conferenceFactoryUris.join(" "),
      media: mediaAddress,
      mediaSocket: mediaSocket.backend,
      ...(mediaSocket.reason === undefined ? {} : { mediaSocketReason: mediaSocket.reason }),
    });
  }

  /**
   * Builds the device directory from `[redis]` (none when disabled): binds our factory, focus
   * and dial-in URIs in Flexisip's registrar so a proxy in front routes them to us, and answers
   * device lookups. Redis being down does not delay or fail the start.
   */
  async #startDirectory(
    ua: UserAgent,
    outboundProxy: SipUri | undefined,
  ): Promise<DeviceDirectory | undefined> {
    const cs = this.config.conferenceServer;
    const redis = this.config.redis;
    if (!redis.enabled) return undefined;
    const first = this.#addresses[0];
    if (!first) return undefined;
    const instance = await loadInstanceId(cs.stateDirectory);
    const transport = first.transport.toLowerCase();
    const contact = `sip:${formatHostPort(first.host, first.port)};transport=${transport}`;
    const path: string[] = [];
    if (outboundProxy) {
      const route = { ...outboundProxy, params: new Map(outboundProxy.params) };
      route.params.set("lr", null);
      path.push(formatUri(route));
    }
    const uris = [
      ...cs.conferenceFactoryUris,
      ...cs.conferenceFocusUris,
      ...cs.dialInRooms,
    ].map((u) => {
      const uri = parseUri(u);
      return `sip:${uri.user ?? ""}@${uri.host}`;
    });
    const bindings: ServerBinding[] = [...new Set(uris)].map((aor) => ({
      aor,
      contact,
      instance,
      path,
      userAgent: this.config.sip.userAgent,
    }));
    const local = new RedisRegistrar({
      endpoint: {
        host: redis.host,
        port: redis.port,
        password: redis.password,
        database: redis.database,
      },
      clock: this.#clock,
      logger: createLogger("registrar"),
      bindings,
    });
    const factory = cs.conferenceFactoryUris[0] ?? "sip:conference-factory@127.0.0.1";
    const remote = new RegEventDirectory({
      ua,
      clock: this.#clock,
      logger: createLogger("reg-event"),
      from: factory,
      contact: `<${formatUri(ua.options.contactUri("conference-factory", undefined))}>`,
      expires: Math.max(60, Math.round(cs.subscriptionRefreshDelayMs / 1000)),
    });
    const directory = new RoutingDeviceDirectory({
      localDomains: [
        ...cs.conferenceFactoryUris.map((u) => parseUri(u).host),
        ...cs.localDomains,
      ],
      local,
      remote,
    });
    await directory.start();
    log.info("device directory started", {
      redis: `${redis.host}:${redis.port}/${redis.database}`,
      instance,
    });
    return directory;
  }

  /** Ends calls, closes listeners, finishes storage writes. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#focus?.stop().catch((err) =>
      log.warn("focus stop failed", { error: err as Error })
    );
    await this.#directory?.stop().catch((err) =>
      log.warn("device directory stop failed", { error: err as Error })
    );
    this.#transactions?.close();
    await this.#transport?.close();
    await this.#store?.close().catch(() => {});
    log.info("stopped");
  }
}
