/**
 * Short generated announcement tones, mixed into the conference audio by the mixer:
 * `join` (rising two notes), `leave` (falling two notes), `alone` (three soft low beeps,
 * played to a participant who is the only one left), `locked` (two low beeps) and `unlocked`
 * (two high beeps) when an admin locks or unlocks the conference. 48 kHz mono PCM; every note has
 * raised-cosine edges so it starts and stops without a click. RFC 4353 §5 leaves the
 * announcements to the focus; these are ours.
 * @module
 */

/** Names of the built-in tones. */
export type ToneName = "join" | "leave" | "alone" | "locked" | "unlocked";

/** All built-in tone names. */
export const TONE_NAMES: readonly ToneName[] = ["join", "leave", "alone", "locked", "unlocked"];

/** One note: frequency (0 = pause), duration in ms. */
interface Note {
  readonly hz: number;
  readonly ms: number;
}

const TONE_NOTES: Readonly<Record<ToneName, readonly Note[]>> = {
  join: [{ hz: 660, ms: 110 }, { hz: 0, ms: 20 }, { hz: 880, ms: 150 }],
  leave: [{ hz: 880, ms: 110 }, { hz: 0, ms: 20 }, { hz: 660, ms: 150 }],
  alone: [
    { hz: 440, ms: 90 },
    { hz: 0, ms: 110 },
    { hz: 440, ms: 90 },
    { hz: 0, ms: 110 },
    { hz: 440, ms: 90 },
  ],
  locked: [{ hz: 392, ms: 120 }, { hz: 0, ms: 60 }, { hz: 392, ms: 120 }],
  unlocked: [{ hz: 988, ms: 120 }, { hz: 0, ms: 60 }, { hz: 988, ms: 120 }],
};

/** Notes of a tone (for tests and documentation). */
export function toneNotes(name: ToneName): readonly { hz: number; ms: number }[] {
  return TONE_NOTES[name];
}

/** Options for {@link generateTone}. */
export interface ToneOptions {
  /** Sample rate in Hz (default 48000). */
  readonly sampleRate?: number;
  /** Peak amplitude, 0…1 of full scale (default 0.25 ≈ −12 dBFS). */
  readonly amplitude?: number;
  /** Edge ramp length in ms (default 8). */
  readonly rampMs?: number;
}

const cache = new Map<string, Int16Array>();

/** Generates (and caches) a built-in tone as 16-bit PCM. Do not modify the result. */
export function generateTone(name: ToneName, options: ToneOptions = {}): Int16Array {
  const rate = options.sampleRate ?? 48000;
  const amp = Math.max(0, Math.min(1, options.amplitude ?? 0.25)) * 32767;
  const rampMs = options.rampMs ?? 8;
  const key = `${name}/${rate}/${amp}/${rampMs}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const notes = TONE_NOTES[name];
  let total = 0;
  for (const n of notes) total += Math.round((n.ms * rate) / 1000);
  const out = new Int16Array(total);
  let at = 0;
  for (const note of notes) {
    const len = Math.round((note.ms * rate) / 1000);
    if (note.hz > 0) {
      const ramp = Math.min(Math.round((rampMs * rate) / 1000), len >> 1);
      for (let i = 0; i < len; i++) {
        let env = 1;
        if (i < ramp) env = 0.5 - 0.5 * Math.cos((Math.PI * i) / ramp);
        else if (i >= len - ramp) env = 0.5 - 0.5 * Math.cos((Math.PI * (len - 1 - i)) / ramp);
        out[at + i] = Math.round(amp * env * Math.sin((2 * Math.PI * note.hz * i) / rate));
      }
    }
    at += len;
  }
  cache.set(key, out);
  return out;
}

/**
 * Plays tones into 20 ms frames: any number at once, each mixed in from where it left off
 * until it ends.
 */
export class TonePlayer {
  readonly #playing: { readonly pcm: Int16Array; offset: number }[] = [];

  /** True while a tone is still playing. */
  get active(): boolean {
    return this.#playing.length > 0;
  }

  /** Starts a tone (PCM at the frame rate of the caller). */
  play(pcm: Int16Array): void {
    if (pcm.length > 0) this.#playing.push({ pcm, offset: 0 });
  }

  /** Adds the next `dst.length` samples of every playing tone × `gain` to `dst`, and advances. */
  mixInto(dst: Float32Array, gain = 1): void {
    const n = dst.length;
    let w = 0;
    for (const t of this.#playing) {
      const len = Math.min(n, t.pcm.length - t.offset);
      for (let i = 0; i < len; i++) {
        dst[i] = (dst[i] as number) + (t.pcm[t.offset + i] as number) * gain;
      }
      t.offset += n;
      if (t.offset < t.pcm.length) this.#playing[w++] = t;
    }
    this.#playing.length = w;
  }

  /** Stops everything. */
  clear(): void {
    this.#playing.length = 0;
  }
}
