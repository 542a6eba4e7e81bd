/**
 * The connection to Flexisip's registrar Redis: a command client and a pub/sub client
 * (Redis §Pub/Sub: a subscribed connection accepts no other commands), connected in the
 * background with exponential backoff. Redis being down at start or later never stops the
 * server: the outage is logged once, retried, and `onReady` runs again on each reconnection
 * (the owner re-binds and re-reads what it follows). Channel subscriptions are restored by the
 * client on reconnection.
 * @module
 */

import { createClient } from "redis";
import type { Logger } from "../config/log.ts";

/** Where Redis is (`[redis]` of the configuration). */
export interface RedisEndpoint {
  readonly host: string;
  readonly port: number;
  /** Empty: no AUTH. */
  readonly password: string;
  readonly database: number;
}

/** Reconnection delays: `initialMs`, doubled per failed attempt, capped at `maxMs`. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** The default backoff: 500 ms, doubling up to 30 s. */
export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };

type Client = ReturnType<typeof createClient>;

/** The delay before reconnection attempt `retries` (0-based). */
export function backoffDelay(backoff: Backoff, retries: number): number {
  const delay = backoff.initialMs * 2 ** Math.min(retries, 30);
  return Math.min(backoff.maxMs, delay);
}

/** A message on a subscribed channel. */
export type ChannelListener = (message: string, channel: string) => void;

/** The two Redis connections and their health. */
export class RedisLink {
  readonly endpoint: RedisEndpoint;
  readonly #logger: Logger;
  readonly #backoff: Backoff;
  readonly #onReady: () => void;
  #commands: Client | undefined;
  #pubsub: Client | undefined;
  #commandsReady = false;
  #pubsubReady = false;
  /** True while an outage is being reported (one warning per outage). */
  #down = false;
  #stopped = false;
  readonly #channels = new Map<string, ChannelListener>();

  constructor(options: {
    endpoint: RedisEndpoint;
    logger: Logger;
    backoff?: Backoff;
    /** Runs each time both connections are (again) ready. */
    onReady: () => void;
  }) {
    this.endpoint = options.endpoint;
    this.#logger = options.logger;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#onReady = options.onReady;
  }

  /** True while commands can be sent. */
  get ready(): boolean {
    return this.#commandsReady && this.#pubsubReady && !this.#stopped;
  }

  /** Starts connecting (returns at once; connection happens in the background). */
  start(): void {
    if (this.#commands) return;
    const e = this.endpoint;
    const options = {
      socket: {
        host: e.host,
        port: e.port,
        connectTimeout: 5_000,
        reconnectStrategy: (retries: number) => backoffDelay(this.#backoff, retries),
      },
      database: e.database,
      ...(e.password === "" ? {} : { password: e.password }),
      // RESP2 works with every Redis a Flexisip deployment may run (HELLO needs Redis 6).
      RESP: 2 as const,
      // Commands fail at once while disconnected instead of piling up.
      disableOfflineQueue: true,
    };
    this.#commands = createClient(options);
    this.#pubsub = createClient(options);
    this.#wire(this.#commands, (ready) => (this.#commandsReady = ready));
    this.#wire(this.#pubsub, (ready) => (this.#pubsubReady = ready), () => this.#resubscribe());
    for (const client of [this.#commands, this.#pubsub]) {
      client.connect().catch(() => {
        // Only when stopped: the reconnect strategy never gives up.
      });
    }
  }

  #wire(client: Client, setReady: (ready: boolean) => void, onConnected?: () => void): void {
    client.on("error", (error: unknown) => {
      if (this.#stopped) return;
      setReady(false);
      this.#reportDown(error);
    });
    client.on("end", () => setReady(false));
    client.on("reconnecting", () => setReady(false));
    client.on("ready", () => {
      setReady(true);
      onConnected?.();
      if (!this.ready) return;
      if (this.#down) {
        this.#logger.info("Redis connection restored", this.#where());
      } else {
        this.#logger.info("Redis connected", this.#where());
      }
      this.#down = false;
      try {
        this.#onReady();
      } catch (error) {
        this.#logger.warn("Redis ready handler failed", { error: error as Error });
      }
    });
  }

  #where(): Record<string, unknown> {
    return { address: `${this.endpoint.host}:${this.endpoint.port}`, db: this.endpoint.database };
  }

  #reportDown(error: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#logger.warn("Redis unreachable; registrar functions paused, retrying in background", {
      ...this.#where(),
      error: error instanceof Error ? error.message : String(error),
    });
  }

  /** The command connection (throws when not connected). */
  commands(): Client {
    if (!this.#commands || !this.#commandsReady || this.#stopped) {
      throw new Error("Redis not connected");
    }
    return this.#commands;
  }

  readonly #dispatch = (message: string, channel: string): void => {
    const listener = this.#channels.get(channel);
    if (!listener) return;
    try {
      listener(message, channel);
    } catch (error) {
      this.#logger.warn("Redis channel handler failed", { channel, error: error as Error });
    }
  };

  /** (Re)subscribes every followed channel on a fresh pub/sub connection. */
  #resubscribe(): void {
    const client = this.#pubsub;
    if (!client || this.#channels.size === 0) return;
    client.subscribe([...this.#channels.keys()], this.#dispatch).catch(() => {
      // Lost again: the next ready retries.
    });
  }

  /**
   * Follows a channel, across reconnections; replaces a previous listener. Resolves once
   * subscribed, or at once while disconnected (the subscription is made on reconnection).
   */
  async subscribe(channel: string, listener: ChannelListener): Promise<void> {
    const had = this.#channels.has(channel);
    this.#channels.set(channel, listener);
    if (had || !this.#pubsub || !this.#pubsubReady) return;
    try {
      await this.#pubsub.subscribe(channel, this.#dispatch);
    } catch {
      // Lost meanwhile: the next ready subscribes.
    }
  }

  /** Leaves a channel. */
  async unsubscribe(channel: string): Promise<void> {
    if (!this.#channels.delete(channel) || !this.#pubsub || !this.#pubsubReady) return;
    try {
      await this.#pubsub.unsubscribe(channel, this.#dispatch);
    } catch {
      // Disconnected: the channel is not restored on reconnection.
    }
  }

  /** Channels followed now. */
  get channels(): readonly string[] {
    return [...this.#channels.keys()];
  }

  /** Closes both connections. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const client of [this.#commands, this.#pubsub]) {
      if (!client) continue;
      try {
        client.destroy();
      } catch {
        // already closed
      }
    }
    await Promise.resolve();
  }
}
