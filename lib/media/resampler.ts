/**
 * Streaming sample-rate conversion between 8, 16 and 48 kHz (any rational ratio in fact)
 * with a polyphase windowed-sinc low-pass FIR (Kaiser window). The mixer runs at 48 kHz;
 * G.711 (RFC 3551 §4.5.14) is 8 kHz, so every PCMU/PCMA stream goes through one of these.
 *
 * Filter: pass band to 0.85 × the lower Nyquist frequency (3.4 kHz for 8 kHz), stop band
 * from 1.2 × (4.8 kHz for 8 kHz), ≥ 60 dB stop-band attenuation (about 126 taps at 48 kHz,
 * group delay ≈ 1.3 ms per direction). State (the last input
 * samples and the fractional phase) is kept across calls, so frames join without clicks.
 * @module
 */

/** Thrown for a ratio or rate this module cannot handle. */
export class ResamplerError extends RangeError {
  override name = "ResamplerError";
}

/** Options for {@link Resampler}. */
export interface ResamplerOptions {
  /** Stop-band attenuation in dB (default 60). */
  readonly attenuationDb?: number;
  /** Pass-band edge as a fraction of the lower Nyquist frequency (default 0.85). */
  readonly passFraction?: number;
  /** Stop-band edge as a fraction of the lower Nyquist frequency (default 1.2). */
  readonly stopFraction?: number;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 64; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

interface FilterBank {
  /** `phases[p][j]` multiplies input `x[i - j]` for output phase `p`. */
  readonly phases: Float32Array[];
  readonly taps: number;
}

const bankCache = new Map<string, FilterBank>();

/**
 * Designs the polyphase bank for up-factor `up` and down-factor `down` (Kaiser method:
 * β and length from the attenuation and the transition width, Kaiser 1974).
 */
function designBank(up: number, down: number, opts: ResamplerOptions): FilterBank {
  const att = opts.attenuationDb ?? 60;
  const pass = opts.passFraction ?? 0.85;
  const stop = opts.stopFraction ?? 1.2;
  const key = `${up}/${down}/${att}/${pass}/${stop}`;
  const cached = bankCache.get(key);
  if (cached) return cached;
  // Frequencies normalised to the intermediate rate (input rate × up); Nyquist there is 0.5.
  const lowNyquist = 0.5 / Math.max(up, down);
  const fPass = pass * lowNyquist;
  const fStop = stop * lowNyquist;
  const cutoff = (fPass + fStop) / 2;
  const dw = 2 * Math.PI * (fStop - fPass);
  const beta = att > 50
    ? 0.1102 * (att - 8.7)
    : att >= 21
    ? 0.5842 * Math.pow(att - 21, 0.4) + 0.07886 * (att - 21)
    : 0;
  let length = Math.ceil((att - 7.95) / (2.285 * dw)) + 1;
  const taps = Math.ceil(length / up);
  length = taps * up;
  const h = new Float64Array(length);
  const centre = (length - 1) / 2;
  const i0beta = besselI0(beta);
  for (let n = 0; n < length; n++) {
    const t = n - centre;
    const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t);
    const r = t / (centre + 0.5);
    const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0beta;
    h[n] = sinc * w;
  }
  // Normalise so each phase sums to 1 (unity DC gain after zero-stuffing by `up`).
  let sum = 0;
  for (const v of h) sum += v;
  const scale = up / sum;
  const phases: Float32Array[] = [];
  for (let p = 0; p < up; p++) {
    const c = new Float32Array(taps);
    for (let j = 0; j < taps; j++) c[j] = (h[p + j * up] as number) * scale;
    phases.push(c);
  }
  const bank = { phases, taps };
  bankCache.set(key, bank);
  return bank;
}

/**
 * One direction of one stream: feed frames at `inputRate`, get frames at `outputRate`.
 * Output length per call is `input.length × outputRate / inputRate` when that is an
 * integer and the stream has been fed whole frames (20 ms frames always are).
 */
export class Resampler {
  /** Input sample rate in Hz. */
  readonly inputRate: number;
  /** Output sample rate in Hz. */
  readonly outputRate: number;
  readonly #up: number;
  readonly #down: number;
  readonly #bank: FilterBank;
  /** History (taps − 1 samples) followed by the current input. */
  #buf: Float32Array;
  /** Position of the next output in the up-sampled domain, relative to the block start. */
  #pos = 0;
  /** True while the history holds only zeros (enables the silent-frame shortcut). */
  #historySilent = true;

  constructor(inputRate: number, outputRate: number, options: ResamplerOptions = {}) {
    if (!Number.isInteger(inputRate) || !Number.isInteger(outputRate)) {
      throw new ResamplerError(`rates must be integers: ${inputRate} → ${outputRate}`);
    }
    if (inputRate <= 0 || outputRate <= 0) {
      throw new ResamplerError(`rates must be positive: ${inputRate} → ${outputRate}`);
    }
    const g = gcd(inputRate, outputRate);
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    this.#up = outputRate / g;
    this.#down = inputRate / g;
    if (this.#up > 64 || this.#down > 64) {
      throw new ResamplerError(`ratio ${this.#up}/${this.#down} too large`);
    }
    this.#bank = designBank(this.#up, this.#down, options);
    this.#buf = new Float32Array(
      this.#bank.taps - 1 + (inputRate / 50 > 0 ? Math.ceil(inputRate / 50) : 160),
    );
  }

  /** Filter length in taps per polyphase branch (the delay is about half of it). */
  get tapsPerPhase(): number {
    return this.#bank.taps;
  }

  /** Group delay in output samples. */
  get delaySamples(): number {
    return ((this.#bank.taps * this.#up - 1) / 2) / this.#down;
  }

  /** Converts one block; see the class comment for the output length. */
  process(input: Int16Array): Int16Array {
    const up = this.#up;
    const down = this.#down;
    const taps = this.#bank.taps;
    const hist = taps - 1;
    const n = input.length;
    const end = n * up;
    const count = Math.max(0, Math.ceil((end - this.#pos) / down));
    const out = new Int16Array(count);
    if (up === 1 && down === 1) {
      out.set(input);
      return out;
    }
    let silent = this.#historySilent;
    if (silent) {
      for (let i = 0; i < n; i++) {
        if (input[i] !== 0) {
          silent = false;
          break;
        }
      }
    }
    if (silent) {
      // Zero in, zero history: the output is exactly zero; only the phase moves on.
      this.#pos = this.#pos + count * down - end;
      return out;
    }
    if (this.#buf.length < hist + n) {
      const bigger = new Float32Array(hist + n);
      bigger.set(this.#buf.subarray(0, hist));
      this.#buf = bigger;
    }
    const buf = this.#buf;
    for (let i = 0; i < n; i++) buf[hist + i] = input[i] as number;
    const phases = this.#bank.phases;
    let pos = this.#pos;
    for (let k = 0; k < count; k++, pos += down) {
      const i = Math.floor(pos / up);
      const c = phases[pos - i * up] as Float32Array;
      let acc = 0;
      let b = hist + i;
      for (let j = 0; j < taps; j++, b--) acc += (c[j] as number) * (buf[b] as number);
      out[k] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc);
    }
    this.#pos = pos - end;
    // Keep the last `hist` samples as history for the next block.
    buf.copyWithin(0, n, n + hist);
    let zero = true;
    for (let i = 0; i < hist; i++) {
      if (buf[i] !== 0) {
        zero = false;
        break;
      }
    }
    this.#historySilent = zero;
    return out;
  }

  /**
   * Consumes a block without computing its output: keeps the history and phase as if
   * {@link process} had run, at the cost of a copy. For streams whose output is not needed
   * this tick (a participant not being mixed), so the next processed block joins cleanly.
   */
  skip(input: Int16Array): void {
    const up = this.#up;
    const down = this.#down;
    const hist = this.#bank.taps - 1;
    const n = input.length;
    const end = n * up;
    const count = Math.max(0, Math.ceil((end - this.#pos) / down));
    this.#pos = this.#pos + count * down - end;
    if (up === 1 && down === 1) return;
    const buf = this.#buf;
    let zero = true;
    if (n >= hist) {
      for (let i = 0; i < hist; i++) {
        const v = input[n - hist + i] as number;
        buf[i] = v;
        if (v !== 0) zero = false;
      }
    } else {
      buf.copyWithin(0, n, hist);
      for (let i = 0; i < n; i++) buf[hist - n + i] = input[i] as number;
      for (let i = 0; i < hist; i++) {
        if (buf[i] !== 0) {
          zero = false;
          break;
        }
      }
    }
    this.#historySilent = zero;
  }

  /** Forgets the history (a new talk-spurt from an unrelated source). */
  reset(): void {
    this.#buf.fill(0);
    this.#pos = 0;
    this.#historySilent = true;
  }
}
