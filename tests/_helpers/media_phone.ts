/**
 * Simulated phones for media integration tests: each sends a pure tone in real RTP over
 * loopback and decodes what it receives; a Goertzel filter tells which tones it heard.
 * @module
 */

import { type AudioCodecName, createDecoder, createEncoder } from "../../lib/media/codecs/codec.ts";
import { audioLevelExtension } from "../../lib/media/rtp.ts";
import { RtpPeer } from "./rtp_peer.ts";

/** Goertzel power of `freq` in `x` (sample rate `fs`), normalised by length². */
export function goertzel(x: Int16Array, freq: number, fs: number): number {
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / fs);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s = x[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.length * x.length);
}

/** `count` samples of a sine at `freq` Hz starting at sample `start`. */
export function tone(
  freq: number,
  fs: number,
  start: number,
  count: number,
  amp = 8000,
): Int16Array {
  const out = new Int16Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = Math.round(amp * Math.sin((2 * Math.PI * freq * (start + i)) / fs));
  }
  return out;
}

/** A deterministic random source in [0, 1). */
export function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
}

/** Waits (yielding to I/O, no timers involved in the logic) until `cond()` holds. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (cond()) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
  throw new Error(`never happened: ${what}`);
}

/**
 * One simulated phone: an RTP peer plus its encoder, tone and sequence state. It sends to
 * `target` (the conference's port for this call) and keeps what it receives.
 */
export class Phone {
  readonly peer = new RtpPeer();
  /** The conference-side RTP port this phone sends to. */
  target = 0;
  readonly encoder;
  readonly decoder;
  readonly fs: number;
  readonly frame: number;
  seq = 1000;
  ts = 5000;
  sentSamples = 0;

  constructor(
    readonly id: string,
    readonly codec: AudioCodecName,
    readonly freq: number,
    readonly payloadType: number,
  ) {
    this.fs = codec === "opus" ? 48000 : 8000;
    this.frame = this.fs / 50;
    this.encoder = createEncoder(codec, { sampleRate: this.fs });
    this.decoder = createDecoder(codec, { sampleRate: this.fs });
  }

  /**
   * Sends the next 20 ms (or `samples`) of its tone, or silence, to the conference. G.711
   * encoders take any length; other packet sizes are for G.711 only.
   */
  async sendFrame(
    options: { silent?: boolean; levelExtId?: number; samples?: number } = {},
  ): Promise<void> {
    const samples = options.samples ?? this.frame;
    const pcm = options.silent
      ? new Int16Array(samples)
      : tone(this.freq, this.fs, this.sentSamples, samples);
    this.sentSamples += samples;
    await this.peer.sendRtp(this.target, {
      sequenceNumber: this.seq++ & 0xffff,
      timestamp: this.ts,
      payloadType: this.payloadType,
      ssrc: 0x1000 + this.freq,
      payload: this.encoder.encode(pcm),
      extensions: options.levelExtId === undefined
        ? []
        : [audioLevelExtension(options.levelExtId, options.silent ? 127 : 20, !options.silent)],
    });
    this.ts = (this.ts + samples) >>> 0;
  }

  /** Decodes everything received so far into one PCM array. */
  received(): Int16Array {
    const packets = this.peer.rtp.drain();
    const parts = packets.map((p) => this.decoder.decode(p.payload));
    const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const part of parts) {
      out.set(part, o);
      o += part.length;
    }
    return out;
  }

  /** Releases the codecs and the socket. */
  async close(): Promise<void> {
    this.encoder.close();
    this.decoder.close();
    await this.peer.close();
  }
}

/**
 * Runs `ticks` media ticks: every phone sends (or not, per `send`), the test waits until
 * the conference side counted those datagrams (`receivedCount(i)`), then `advance()` moves
 * the fake clock one tick. Waiting here is for I/O only; no logic depends on wall time.
 */
export async function runTicks(
  phones: readonly Phone[],
  ticks: number,
  receivedCount: (index: number) => number,
  advance: () => void,
  send: (phone: Phone, tick: number) => Promise<void> | undefined = (p) => p.sendFrame(),
): Promise<void> {
  for (let t = 0; t < ticks; t++) {
    const before = phones.map((_, i) => receivedCount(i));
    const sent = await Promise.all(phones.map((p) => send(p, t) !== undefined));
    await until(
      () => phones.every((_, i) => receivedCount(i) >= before[i]! + (sent[i] ? 1 : 0)),
      "the conference received this tick's packets",
    );
    advance();
  }
}

/** Tone powers heard by a phone (Goertzel), after skipping the first `skipMs`. */
export function heardPowers(phone: Phone, freqs: readonly number[], skipMs = 300): number[] {
  const pcm = phone.received();
  const tail = pcm.subarray(Math.min(pcm.length, (phone.fs * skipMs) / 1000));
  if (tail.length < phone.fs / 2) {
    throw new Error(`${phone.id} heard only ${pcm.length} samples`);
  }
  return freqs.map((f) => goertzel(tail, f, phone.fs));
}
