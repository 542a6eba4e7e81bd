/**
 * The mixer's soft clipper: sums of several 16-bit voices can exceed 16 bits, and a hard
 * clip adds harsh distortion. Linear up to ±24576 (−2.5 dBFS); above that
 * `knee + (32767 − knee)·tanh(excess / (32767 − knee))`, so the output never exceeds 16 bits
 * and the curve has no corner (RFC 4353 §5 leaves the mixing to the focus; this is ours).
 * @module
 */

/** Samples per frame the clipper processes (20 ms at 48 kHz). */
const FRAME = 960;
const KNEE = 24576;
const HEADROOM = 32767 - KNEE;

/** Clips one 20 ms frame of float sums (`src`, 960 samples) into 16-bit `dst`. */
export function softClip(dst: Int16Array, src: Float32Array): void {
  for (let i = 0; i < FRAME; i++) {
    const v = src[i] as number;
    if (v <= KNEE && v >= -KNEE) {
      dst[i] = v; // Int16Array stores truncate toward zero; sums of integers stay exact
    } else if (v > 0) {
      dst[i] = KNEE + HEADROOM * Math.tanh((v - KNEE) / HEADROOM);
    } else {
      dst[i] = -KNEE - HEADROOM * Math.tanh((-v - KNEE) / HEADROOM);
    }
  }
}

/** Maps a float sum to 16 bits with the same knee (for tests and tools). */
export function softClipSample(v: number): number {
  if (v <= KNEE && v >= -KNEE) return Math.trunc(v);
  const m = KNEE + HEADROOM * Math.tanh((Math.abs(v) - KNEE) / HEADROOM);
  return Math.trunc(v > 0 ? m : -m);
}
