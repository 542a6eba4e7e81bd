/**
 * Voice activity and loudness per incoming stream, for the mixer's top-N speaker choice and
 * the active-speaker event.
 *
 * The level of a frame is taken from the RFC 6464 client-to-mixer audio level header
 * extension when the sender provides it (§3: 0 … 127 meaning 0 … −127 dBov; the V flag is
 * the sender's own voice decision), else computed from the frame: RMS relative to a full
 * scale of 32768, in dBov, clamped to −127 … 0 (the same scale RFC 6464 §4 uses).
 *
 * A frame is speech when its level exceeds an absolute threshold and a tracked noise floor
 * by a margin (or when the V flag says so). Activity starts at the first speech frame and
 * lasts a hangover after the last one. A smoothed level (fast attack, slow release) ranks
 * the speakers.
 * @module
 */

/** Lowest level on the RFC 6464 scale: −127 dBov (digital silence). */
export const SILENCE_DBOV = -127;

/** Tuning for {@link VoiceActivityDetector}. */
export interface VoiceActivityOptions {
  /** Absolute level a frame must exceed to count as speech, dBov (default −50). */
  readonly thresholdDbov?: number;
  /** Margin above the tracked noise floor, dB (default 10). */
  readonly noiseMarginDb?: number;
  /** Frames activity lasts after the last speech frame (default 15 = 300 ms). */
  readonly hangoverFrames?: number;
  /** Smoothing factor toward a louder frame, 0…1 (default 0.5). */
  readonly attack?: number;
  /** Smoothing factor toward a quieter frame, 0…1 (default 0.1). */
  readonly release?: number;
  /** Noise-floor rise per frame in dB (default 0.05 = 2.5 dB/s); it falls at once. */
  readonly floorRiseDb?: number;
}

/** The detector's view after one frame. */
export interface VoiceActivity {
  /** Speech now or within the hangover. */
  readonly active: boolean;
  /** This frame's level, dBov (−127 … 0). */
  readonly level: number;
  /** Smoothed level, dBov, for ranking speakers. */
  readonly smoothedLevel: number;
}

/** Level of a frame in dBov: 20·log10(RMS / 32768), clamped to −127 … 0 (RFC 6464 §4). */
export function frameLevelDbov(pcm: Int16Array): number {
  const n = pcm.length;
  if (n === 0) return SILENCE_DBOV;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = pcm[i] as number;
    sum += v * v;
  }
  if (sum === 0) return SILENCE_DBOV;
  const db = 10 * Math.log10(sum / n / (32768 * 32768));
  return db < SILENCE_DBOV ? SILENCE_DBOV : db > 0 ? 0 : db;
}

/**
 * Converts an RFC 6464 level field (0 … 127, meaning −dBov) to dBov; out-of-range values
 * are clamped.
 */
export function rfc6464ToDbov(level: number): number {
  const l = Math.round(level);
  return l <= 0 ? 0 : l >= 127 ? SILENCE_DBOV : -l;
}

/** Per-stream voice activity detector (see the module comment). */
export class VoiceActivityDetector {
  readonly #threshold: number;
  readonly #margin: number;
  readonly #hangover: number;
  readonly #attack: number;
  readonly #release: number;
  readonly #floorRise: number;
  #floor = SILENCE_DBOV;
  #smoothed = SILENCE_DBOV;
  #level = SILENCE_DBOV;
  #sinceSpeech = Number.POSITIVE_INFINITY;

  constructor(options: VoiceActivityOptions = {}) {
    this.#threshold = options.thresholdDbov ?? -50;
    this.#margin = options.noiseMarginDb ?? 10;
    this.#hangover = options.hangoverFrames ?? 15;
    this.#attack = options.attack ?? 0.5;
    this.#release = options.release ?? 0.1;
    this.#floorRise = options.floorRiseDb ?? 0.05;
  }

  /** Speech now or within the hangover. */
  get active(): boolean {
    return this.#sinceSpeech <= this.#hangover;
  }

  /** Last frame's level, dBov. */
  get level(): number {
    return this.#level;
  }

  /** Smoothed level, dBov. */
  get smoothedLevel(): number {
    return this.#smoothed;
  }

  /** Current noise-floor estimate, dBov. */
  get noiseFloor(): number {
    return this.#floor;
  }

  /**
   * Feeds one 20 ms frame. `frame` undefined means nothing arrived (silence). `audioLevel`
   * is the RFC 6464 field (0 … 127) and, when given, is used instead of the frame energy;
   * `voice` is the RFC 6464 V flag when the sender sets it.
   */
  update(frame: Int16Array | undefined, audioLevel?: number, voice?: boolean): VoiceActivity {
    const level = audioLevel !== undefined
      ? rfc6464ToDbov(audioLevel)
      : frame !== undefined
      ? frameLevelDbov(frame)
      : SILENCE_DBOV;
    this.#level = level;
    // Noise floor: drops to any quieter frame at once, creeps up slowly otherwise.
    if (level < this.#floor) this.#floor = level;
    else this.#floor = Math.min(level, this.#floor + this.#floorRise);
    const speech = voice ?? (level > this.#threshold && level > this.#floor + this.#margin);
    if (speech && level > SILENCE_DBOV) this.#sinceSpeech = 0;
    else if (this.#sinceSpeech !== Number.POSITIVE_INFINITY) this.#sinceSpeech++;
    const k = level > this.#smoothed ? this.#attack : this.#release;
    this.#smoothed += k * (level - this.#smoothed);
    return { active: this.active, level, smoothedLevel: this.#smoothed };
  }

  /** Forgets everything (new source). */
  reset(): void {
    this.#floor = SILENCE_DBOV;
    this.#smoothed = SILENCE_DBOV;
    this.#level = SILENCE_DBOV;
    this.#sinceSpeech = Number.POSITIVE_INFINITY;
  }
}
