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
    this.feed(frame, audioLevel, voice);
    return { active: this.active, level: this.#level, smoothedLevel: this.#smoothed };
  }

  /**
   * {@link update} without the snapshot object: read {@link active} and
   * {@link smoothedLevel} afterwards (the mixer feeds every participant every 20 ms).
   */
  feed(frame: Int16Array | undefined, audioLevel?: number, voice?: boolean): void {
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
  }

  /** Forgets everything (new source). */
  reset(): void {
    this.#floor = SILENCE_DBOV;
    this.#smoothed = SILENCE_DBOV;
    this.#level = SILENCE_DBOV;
    this.#sinceSpeech = Number.POSITIVE_INFINITY;
  }
}

/** The state of a speaker as {@link DominantSpeaker.update} needs it. */
export interface SpeakerLevel {
  /** Participant id. */
  readonly id: string;
  /** Smoothed level, dBov. */
  readonly level: number;
  /** Still speaking (voice activity within its hangover, not muted). */
  readonly active: boolean;
}

/** Tuning for {@link DominantSpeaker}. */
export interface DominantSpeakerOptions {
  /** A challenger must be louder than the current speaker by this many dB (default 3)… */
  readonly marginDb?: number;
  /** …for this many consecutive updates (default 10 = 200 ms at 20 ms ticks). */
  readonly holdTicks?: number;
}

/**
 * The dominant ("active") speaker with hysteresis, for conference-info and video
 * switching: the loudest speaker takes over at once when the current one has stopped (or
 * left), otherwise only after leading it by a margin for a number of consecutive ticks.
 * When nobody speaks, the last dominant speaker stays.
 */
export class DominantSpeaker {
  readonly #margin: number;
  readonly #hold: number;
  #current: string | null = null;
  #challenger: string | null = null;
  #ticks = 0;

  constructor(options: DominantSpeakerOptions = {}) {
    this.#margin = options.marginDb ?? 3;
    this.#hold = Math.max(1, options.holdTicks ?? 10);
  }

  /** Current dominant speaker, or null. */
  get current(): string | null {
    return this.#current;
  }

  /**
   * One tick: `loudest` is the loudest speaker now (undefined if nobody speaks), `current`
   * the present state of the dominant speaker (undefined if it left). Returns true when the
   * dominant speaker changed.
   */
  update(loudest: SpeakerLevel | undefined, current: SpeakerLevel | undefined): boolean {
    if (loudest === undefined) return false;
    if (current === undefined || !current.active) return this.#switchTo(loudest.id);
    if (loudest.id === current.id || loudest.level - current.level < this.#margin) {
      this.#challenger = null;
      this.#ticks = 0;
      return false;
    }
    if (this.#challenger !== loudest.id) {
      this.#challenger = loudest.id;
      this.#ticks = 0;
    }
    return ++this.#ticks >= this.#hold ? this.#switchTo(loudest.id) : false;
  }

  /** Forgets `id` (it left); the dominant speaker becomes `successor`. True if it changed. */
  remove(id: string, successor: string | null): boolean {
    if (this.#challenger === id) {
      this.#challenger = null;
      this.#ticks = 0;
    }
    return this.#current === id ? this.#switchTo(successor) : false;
  }

  #switchTo(id: string | null): boolean {
    this.#challenger = null;
    this.#ticks = 0;
    if (id === this.#current) return false;
    this.#current = id;
    return true;
  }
}
