/**
 * Sends DTMF digits as RFC 4733 telephone-event RTP packets (PT 101) from a test socket, the
 * way a phone does: each press is four packets of one event, the last two with the end bit.
 * @module
 */

/** An RTP packet carrying an RFC 4733 telephone-event (PT 101). */
export function dtmfPacket(
  seq: number,
  ts: number,
  event: number,
  end: boolean,
  duration: number,
  ssrc = 0x1234abcd,
): Uint8Array {
  const p = new Uint8Array(16);
  const v = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 101 | (seq === 0 ? 0x80 : 0);
  v.setUint16(2, seq);
  v.setUint32(4, ts);
  v.setUint32(8, ssrc);
  p[12] = event;
  p[13] = (end ? 0x80 : 0) | 10;
  v.setUint16(14, duration);
  return p;
}

const EVENT_OF: Readonly<Record<string, number>> = {
  "0": 0,
  "1": 1,
  "2": 2,
  "3": 3,
  "4": 4,
  "5": 5,
  "6": 6,
  "7": 7,
  "8": 8,
  "9": 9,
  "*": 10,
  "#": 11,
};

/** Presses keys on one RTP stream towards a focus port (sequence/timestamps continue). */
export class DtmfSender {
  #seq = 0;
  #ts = 0;
  constructor(
    readonly socket: Deno.DatagramConn,
    readonly focusPort: number,
    readonly ssrc = 0x1234abcd,
  ) {}

  /** Sends every digit of `keys` (e.g. `"*5"`). */
  async press(keys: string): Promise<void> {
    for (const key of keys) {
      const event = EVENT_OF[key];
      if (event === undefined) throw new SyntaxError(`not a DTMF key: ${key}`);
      this.#ts += 1600;
      for (let i = 1; i <= 4; i++) {
        await this.socket.send(
          dtmfPacket(this.#seq++, this.#ts, event, i >= 3, 160 * i, this.ssrc),
          { transport: "udp", hostname: "127.0.0.1", port: this.focusPort },
        );
      }
    }
  }
}
