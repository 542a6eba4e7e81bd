/**
 * Encoders of the mixer: the key that decides which listeners may share one encode (codec,
 * clock rate, ptime and encoder settings), and a listener's own encoder for the
 * participant-specific (minus-self) mix. Opus is stateful (RFC 6716 §4: the decoder follows
 * the encoder's prediction state), so an own encoder taking over from the shared stream is
 * reset, primed with the frame the listener heard last, and codes its first packet without
 * inter-frame prediction; one left unused for a while is closed (see audio_mixer.ts).
 * @module
 */

import { createLogger } from "../config/log.ts";
import {
  type AudioCodecName,
  type AudioEncoder,
  codecClockRate,
  createEncoder,
  type EncoderOptions,
} from "./codecs/codec.ts";

const log = createLogger("media.mixer");

/** The mixer's frame duration (ms): part of every sharing key. */
const PTIME = 20;

/** Listeners whose keys are equal may receive the very same encoded payload. */
export function encoderKey(codec: AudioCodecName, opts: EncoderOptions): string {
  const entries = Object.entries(opts)
    .filter(([k, v]) => v !== undefined && k !== "sampleRate")
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return `${codec}/${codecClockRate(codec)}/${PTIME}/${JSON.stringify(entries)}`;
}

/** Encodes one frame; a failure is logged (naming `what`) and gives null, never a throw. */
export function encodeSafely(
  encoder: AudioEncoder,
  pcm: Int16Array,
  what: string,
  independent = false,
): Uint8Array | null {
  try {
    return independent && encoder.encodeIndependent
      ? encoder.encodeIndependent(pcm)
      : encoder.encode(pcm);
  } catch (e) {
    log.warn("encode failed", { stream: what, error: String(e) });
    return null;
  }
}

/** One listener's own encoder, created on first use and closed when idle. */
export class OwnEncoder {
  readonly #codec: AudioCodecName;
  readonly #options: EncoderOptions;
  readonly #sampleRate: number;
  readonly #id: string;
  #encoder: AudioEncoder | null = null;
  /** Tick of the last encode (-1: never). */
  lastTick = -1;

  constructor(id: string, codec: AudioCodecName, options: EncoderOptions, sampleRate: number) {
    this.#id = id;
    this.#codec = codec;
    this.#options = options;
    this.#sampleRate = sampleRate;
  }

  /** Whether an encoder is open. */
  get open(): boolean {
    return this.#encoder !== null;
  }

  /**
   * Encodes the listener's mix for `tick`. An encoder not used in the previous tick (new, or
   * idle) is reset, primed with `heardLast` when given (so its analysis history matches what
   * the listener heard), and its packet is coded independently.
   */
  encode(pcm: Int16Array, tick: number, heardLast: Int16Array | undefined): Uint8Array | null {
    let fresh = false;
    if (this.#encoder === null) {
      try {
        this.#encoder = createEncoder(this.#codec, {
          ...this.#options,
          sampleRate: this.#sampleRate,
        });
      } catch (e) {
        log.warn("cannot create encoder", { participant: this.#id, error: String(e) });
        return null;
      }
      fresh = true;
    } else if (this.lastTick !== tick - 1) {
      this.#encoder.reset?.();
      fresh = true;
    }
    this.lastTick = tick;
    if (fresh && heardLast !== undefined) encodeSafely(this.#encoder, heardLast, this.#id);
    return encodeSafely(this.#encoder, pcm, this.#id, fresh);
  }

  /** Closes the encoder when it has not been used for more than `idleTicks` ticks. */
  expire(tick: number, idleTicks: number): void {
    if (this.#encoder !== null && tick - this.lastTick > idleTicks) this.close();
  }

  /** Closes the encoder (a later encode opens a new one). */
  close(): void {
    this.#encoder?.close();
    this.#encoder = null;
  }
}
