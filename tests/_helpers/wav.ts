/**
 * 16-bit PCM WAV files (RIFF/WAVE, format 1 or WAVE_FORMAT_EXTENSIBLE with PCM) for the
 * end-to-end tests: tone sources for baresip/linphonec, and their recordings.
 *
 * Reading is forgiving the way recordings need: unknown chunks are skipped, and a data chunk
 * whose size is 0 or runs past the end of the file (a recorder killed before it finalised the
 * header) is taken to be the rest of the file.
 *
 * Also a G.711 mu-law expander (ITU-T G.711 §3, written from the standard's formula) used to
 * listen to RTP in tests; it is deliberately independent of `lib/media/`.
 * @module
 */

/** Decoded audio: interleaved 16-bit samples. */
export interface WavAudio {
  readonly sampleRate: number;
  readonly channels: number;
  /** Interleaved samples, `frames * channels` long. */
  readonly samples: Int16Array;
}

/** A file that is not a WAV this module reads. */
export class WavFormatError extends SyntaxError {
  override name = "WavFormatError";
}

function fourcc(view: DataView, offset: number): string {
  return String.fromCharCode(
    view.getUint8(offset),
    view.getUint8(offset + 1),
    view.getUint8(offset + 2),
    view.getUint8(offset + 3),
  );
}

/** Parses a 16-bit PCM WAV file. */
export function parseWav(bytes: Uint8Array): WavAudio {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 12 || fourcc(view, 0) !== "RIFF" || fourcc(view, 8) !== "WAVE") {
    throw new WavFormatError("not a RIFF/WAVE file");
  }
  let offset = 12;
  let format: { channels: number; sampleRate: number; bits: number; tag: number } | undefined;
  while (offset + 8 <= bytes.byteLength) {
    const id = fourcc(view, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === "fmt ") {
      if (size < 16) throw new WavFormatError("fmt chunk too short");
      let tag = view.getUint16(body, true);
      if (tag === 0xfffe && size >= 26) tag = view.getUint16(body + 24, true); // sub-format GUID
      format = {
        tag,
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === "data") {
      if (!format) throw new WavFormatError("data chunk before fmt chunk");
      if (format.tag !== 1 || format.bits !== 16) {
        throw new WavFormatError(`unsupported format tag ${format.tag}, ${format.bits} bits`);
      }
      if (format.channels < 1) throw new WavFormatError("no channels");
      const available = bytes.byteLength - body;
      const length = size === 0 || size > available ? available : size;
      const frameBytes = 2 * format.channels;
      const count = Math.floor(length / frameBytes) * format.channels;
      const samples = new Int16Array(count);
      for (let i = 0; i < count; i++) samples[i] = view.getInt16(body + 2 * i, true);
      return { sampleRate: format.sampleRate, channels: format.channels, samples };
    }
    offset = body + size + (size & 1);
  }
  throw new WavFormatError("no data chunk");
}

/** Serialises audio as a canonical 44-byte-header 16-bit PCM WAV file. */
export function encodeWav(audio: WavAudio): Uint8Array {
  const dataBytes = audio.samples.length * 2;
  const bytes = new Uint8Array(44 + dataBytes);
  const view = new DataView(bytes.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < 4; i++) view.setUint8(offset + i, text.charCodeAt(i));
  };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, audio.channels, true);
  view.setUint32(24, audio.sampleRate, true);
  view.setUint32(28, audio.sampleRate * audio.channels * 2, true);
  view.setUint16(32, audio.channels * 2, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  for (let i = 0; i < audio.samples.length; i++) view.setInt16(44 + 2 * i, audio.samples[i]!, true);
  return bytes;
}

/** Reads and parses a WAV file. */
export async function readWav(path: string): Promise<WavAudio> {
  return parseWav(await Deno.readFile(path));
}

/** Writes audio as a WAV file. */
export async function writeWav(path: string, audio: WavAudio): Promise<void> {
  await Deno.writeFile(path, encodeWav(audio));
}

/** Length of the audio in seconds. */
export function durationSeconds(audio: WavAudio): number {
  return audio.samples.length / audio.channels / audio.sampleRate;
}

/** Average of the channels, scaled to [-1, 1). */
export function toMono(audio: WavAudio): Float32Array {
  const frames = Math.floor(audio.samples.length / audio.channels);
  const mono = new Float32Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < audio.channels; c++) sum += audio.samples[f * audio.channels + c]!;
    mono[f] = sum / audio.channels / 32768;
  }
  return mono;
}

/** Parameters of {@link sineWave}. */
export interface ToneSpec {
  /** Frequencies in Hz, summed with equal amplitude. */
  readonly freqs: readonly number[];
  readonly seconds: number;
  /** Default 48000. */
  readonly sampleRate?: number;
  /** Peak of the sum as a fraction of full scale; default 0.5. */
  readonly amplitude?: number;
}

/** Mono 16-bit samples of a sum of sines. */
export function sineWave(spec: ToneSpec): WavAudio {
  const sampleRate = spec.sampleRate ?? 48000;
  const amplitude = (spec.amplitude ?? 0.5) * 32767 / Math.max(1, spec.freqs.length);
  const count = Math.round(spec.seconds * sampleRate);
  const samples = new Int16Array(count);
  for (let i = 0; i < count; i++) {
    let value = 0;
    for (const f of spec.freqs) value += Math.sin(2 * Math.PI * f * i / sampleRate);
    samples[i] = Math.round(value * amplitude);
  }
  return { sampleRate, channels: 1, samples };
}

/** Writes a mono 16-bit tone WAV (baresip's `aufile` source, linphonec's `play`). */
export async function writeToneWav(path: string, spec: ToneSpec): Promise<void> {
  await writeWav(path, sineWave(spec));
}

/** Expands one G.711 mu-law byte to a 16-bit linear sample (ITU-T G.711 §3.2). */
export function ulawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = ((mantissa << 3) + 0x84) << exponent;
  return (u & 0x80) ? 0x84 - magnitude : magnitude - 0x84;
}

/** Expands a buffer of mu-law bytes. */
export function decodeUlaw(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = ulawToLinear(bytes[i]!);
  return out;
}
