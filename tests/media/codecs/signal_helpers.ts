/**
 * Signal helpers for the media DSP tests: pure tones and the Goertzel algorithm (a single
 * DFT bin), so tests can tell which frequencies a decoded stream holds.
 * @module
 */

/** A sine of `hz` at `amplitude` (0…32767), `length` samples, starting at sample `start`. */
export function sine(
  hz: number,
  amplitude: number,
  length: number,
  rate = 48000,
  start = 0,
): Int16Array {
  const out = new Int16Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * (start + i)) / rate));
  }
  return out;
}

/**
 * Amplitude of the `hz` component of `x` (Goertzel with a Hann window; for a pure sine of
 * amplitude A at exactly `hz`, returns ≈ A).
 */
export function toneAmplitude(x: ArrayLike<number>, hz: number, rate = 48000): number {
  const n = x.length;
  const w = (2 * Math.PI * hz) / rate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  let wsum = 0;
  for (let i = 0; i < n; i++) {
    const win = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    wsum += win;
    const s0 = (x[i] as number) * win + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const re = s1 - s2 * Math.cos(w);
  const im = s2 * Math.sin(w);
  return (2 * Math.sqrt(re * re + im * im)) / wsum;
}

/** RMS of `x`. */
export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] as number) ** 2;
  return Math.sqrt(s / Math.max(1, x.length));
}

/** 20·log10(a / b). */
export function db(a: number, b: number): number {
  return 20 * Math.log10(Math.max(a, 1e-9) / Math.max(b, 1e-9));
}

/** Concatenates frames. */
export function concat(frames: readonly Int16Array[]): Int16Array {
  let n = 0;
  for (const f of frames) n += f.length;
  const out = new Int16Array(n);
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}
