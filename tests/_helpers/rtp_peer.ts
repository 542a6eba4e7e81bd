/**
 * A scripted RTP peer for media tests: a raw UDP socket on 127.0.0.1 (ephemeral port) that
 * sends RTP/RTCP values and queues what it receives, split into RTP and RTCP by the
 * RFC 5761 §4 rule. Receiving is event-driven (no sleeps): `nextRtp()` resolves when the
 * next RTP datagram arrives.
 * @module
 */

import { isRtcpPacket, parseRtcp, type RtcpPacket, serializeRtcp } from "../../lib/media/rtcp.ts";
import { parseRtp, type RtpPacket, serializeRtp } from "../../lib/media/rtp.ts";

/** A datagram with where it came from. */
export interface Received {
  readonly data: Uint8Array;
  readonly fromPort: number;
}

/** An async FIFO: `next()` resolves with the next pushed item. */
export class Queue<T> {
  readonly #items: T[] = [];
  readonly #waiters: ((item: T) => void)[] = [];

  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }

  next(): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get size(): number {
    return this.#items.length;
  }

  drain(): T[] {
    return this.#items.splice(0);
  }
}

/** A UDP peer speaking RTP to one target port. */
export class RtpPeer {
  readonly #conn: Deno.DatagramConn;
  readonly port: number;
  readonly rtp = new Queue<RtpPacket & { fromPort: number }>();
  readonly rtcp = new Queue<{ packets: RtcpPacket[]; fromPort: number }>();
  readonly #loop: Promise<void>;
  #closed = false;

  constructor() {
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.port = (this.#conn.addr as Deno.NetAddr).port;
    this.#loop = this.#receive();
  }

  async #receive(): Promise<void> {
    for (;;) {
      let data: Uint8Array;
      let addr: Deno.Addr;
      try {
        [data, addr] = await this.#conn.receive(new Uint8Array(2048));
      } catch {
        return;
      }
      const fromPort = (addr as Deno.NetAddr).port;
      if (isRtcpPacket(data)) {
        const packets = parseRtcp(data);
        if (packets) this.rtcp.push({ packets, fromPort });
      } else {
        const packet = parseRtp(data);
        if (packet) this.rtp.push({ ...packet, fromPort });
      }
    }
  }

  /** Sends raw bytes to `port` on 127.0.0.1 (resolves once handed to the kernel). */
  async send(data: Uint8Array, port: number): Promise<void> {
    await this.#conn.send(data, { transport: "udp", hostname: "127.0.0.1", port });
  }

  /** Sends one RTP packet built from the given fields. */
  async sendRtp(
    port: number,
    fields: Partial<RtpPacket> & { sequenceNumber: number; timestamp: number },
  ): Promise<void> {
    await this.send(
      serializeRtp({
        marker: false,
        payloadType: 0,
        ssrc: 0x5eed,
        csrcs: [],
        extensions: [],
        payload: new Uint8Array(160).fill(0xff),
        ...fields,
      }),
      port,
    );
  }

  /** Sends a compound RTCP packet. */
  async sendRtcp(port: number, packets: readonly RtcpPacket[]): Promise<void> {
    await this.send(serializeRtcp(packets), port);
  }

  /** Next received RTP packet. */
  nextRtp(): Promise<RtpPacket & { fromPort: number }> {
    return this.rtp.next();
  }

  /** Next received RTCP compound packet. */
  nextRtcp(): Promise<{ packets: RtcpPacket[]; fromPort: number }> {
    return this.rtcp.next();
  }

  /** Closes the socket and waits for the receive loop to end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
    await this.#loop;
  }
}
