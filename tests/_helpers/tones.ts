/**
 * Which pure tones does a recording hold? A small Welch power spectrum (radix-2 FFT, Hann
 * window, 50 % overlap) and, for each asked frequency, the share of the total power that
 * lies within a narrow band around it. A clean tone gives ~1.0 for itself; a mix of three
 * equal tones ~0.33 each; a tone that is absent stays near 0 (codec noise only).
 *
 * Used to check conference mixes end to end ("each participant hears the others' tones and
 * not its own"), with no Python or numpy.
 * @module
 */

import { readWav, toMono } from "./wav.ts";

/** In-place iterative radix-2 FFT of `re`/`im` (length a power of two). */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (n !== im.length || (n & (n - 1)) !== 0) throw new RangeError("length must be 2^k");
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const step = -2 * Math.PI / size;
    const half = size >> 1;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = Math.cos(step * k);
        const wi = Math.sin(step * k);
        const a = start + k;
        const b = a + half;
        const tr = re[b]! * wr - im[b]! * wi;
        const ti = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
      }
    }
  }
}

/** Options of {@link analyzeTones}. */
export interface ToneAnalysisOptions {
  /** Half-width of the band summed around each frequency, Hz (widened to 3 bins). Default 20. */
  readonly bandHz?: number;
  /** FFT frame length (power of two). Default 4096. */
  readonly fftSize?: number;
  /** Skip this many seconds at the start (call set-up, jitter-buffer fill). Default 0. */
  readonly startSec?: number;
  /** Stop at this many seconds. Default: the end. */
  readonly endSec?: number;
}

/** Result of {@link analyzeTones}. */
export interface ToneAnalysis {
  readonly sampleRate: number;
  /** Seconds analysed. */
  readonly seconds: number;
  /** RMS level of the analysed part, full scale = 1. */
  readonly rms: number;
  /** Share of total power (0..1) within ±band of each asked frequency, by frequency. */
  readonly energies: ReadonlyMap<number, number>;
  /** Frequency of the strongest bin. */
  readonly dominantHz: number;
}

/** Analyses mono samples in [-1, 1) at `sampleRate` for the given frequencies. */
export function analyzeTones(
  samples: Float32Array,
  sampleRate: number,
  freqs: readonly number[],
  options: ToneAnalysisOptions = {},
): ToneAnalysis {
  const size = options.fftSize ?? 4096;
  const from = Math.min(samples.length, Math.round((options.startSec ?? 0) * sampleRate));
  const to = Math.min(
    samples.length,
    options.endSec === undefined ? samples.length : Math.round(options.endSec * sampleRate),
  );
  const part = samples.subarray(from, Math.max(from, to));
  const window = new Float64Array(size);
  for (let i = 0; i < size; i++) window[i] = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / (size - 1));
  const power = new Float64Array(size / 2 + 1);
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  const hop = size / 2;
  for (let start = 0; start === 0 || start + size <= part.length; start += hop) {
    re.fill(0);
    im.fill(0);
    for (let i = 0; i < size && start + i < part.length; i++) re[i] = part[start + i]! * window[i]!;
    fft(re, im);
    for (let k = 0; k <= size / 2; k++) power[k] = power[k]! + re[k]! * re[k]! + im[k]! * im[k]!;
    if (start + size >= part.length) break;
  }
  let total = 0;
  let peak = 1;
  for (let k = 1; k <= size / 2; k++) {
    total += power[k]!;
    if (power[k]! > power[peak]!) peak = k;
  }
  const binHz = sampleRate / size;
  const band = Math.max(options.bandHz ?? 20, 3 * binHz);
  const energies = new Map<number, number>();
  for (const f of freqs) {
    let sum = 0;
    const lo = Math.max(1, Math.ceil((f - band) / binHz));
    const hi = Math.min(size / 2, Math.floor((f + band) / binHz));
    for (let k = lo; k <= hi; k++) sum += power[k]!;
    energies.set(f, total > 0 ? sum / total : 0);
  }
  let squares = 0;
  for (const x of part) squares += x * x;
  return {
    sampleRate,
    seconds: part.length / sampleRate,
    rms: part.length > 0 ? Math.sqrt(squares / part.length) : 0,
    energies,
    dominantHz: peak * binHz,
  };
}

/** Reads a 16-bit WAV (channels averaged) and analyses it (see {@link analyzeTones}). */
export async function analyzeWavTones(
  path: string,
  freqs: readonly number[],
  options: ToneAnalysisOptions = {},
): Promise<ToneAnalysis> {
  const audio = await readWav(path);
  return analyzeTones(toMono(audio), audio.sampleRate, freqs, options);
}

/** Expectations of {@link toneProblems}. */
export interface ToneExpectation {
  /** Tones that must be there, each with at least `minShare` of the power. */
  readonly present: readonly number[];
  /** Tones that must not be there: at most `maxShare` of the power each. */
  readonly absent?: readonly number[];
  /** Default 0.05. */
  readonly minShare?: number;
  /** Default 0.01. */
  readonly maxShare?: number;
  /** Minimum RMS (full scale 1) so that silence never passes; default 0.01. */
  readonly minRms?: number;
}

/** Lists what is wrong with an analysis against expectations (empty = all good). */
export function toneProblems(analysis: ToneAnalysis, expected: ToneExpectation): string[] {
  const problems: string[] = [];
  const minShare = expected.minShare ?? 0.05;
  const maxShare = expected.maxShare ?? 0.01;
  const minRms = expected.minRms ?? 0.01;
  if (analysis.rms < minRms) {
    problems.push(`level ${analysis.rms.toFixed(4)} below ${minRms} (silence?)`);
  }
  for (const f of expected.present) {
    const share = analysis.energies.get(f);
    if (share === undefined) problems.push(`${f} Hz was not analysed`);
    else if (share < minShare) problems.push(`${f} Hz has ${share.toFixed(4)} < ${minShare}`);
  }
  for (const f of expected.absent ?? []) {
    const share = analysis.energies.get(f);
    if (share === undefined) problems.push(`${f} Hz was not analysed`);
    else if (share > maxShare) problems.push(`${f} Hz has ${share.toFixed(4)} > ${maxShare}`);
  }
  return problems;
}

/** One line summary such as `1000Hz=0.497 1500Hz=0.001 rms=0.21 peak=996Hz`. */
export function describeTones(analysis: ToneAnalysis): string {
  const parts = [...analysis.energies].map(([f, share]) => `${f}Hz=${share.toFixed(3)}`);
  return `${parts.join(" ")} rms=${analysis.rms.toFixed(3)} peak=${
    analysis.dominantHz.toFixed(0)
  }Hz over ${analysis.seconds.toFixed(2)}s`;
}
