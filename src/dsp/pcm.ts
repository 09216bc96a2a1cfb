/** PCM conversions for outputs: channel layouts and float32 to s16. */

/**
 * Interleaved samples of `from` channels as `to` channels. Mono fans out to every channel; from more
 * channels, output channel c averages input channels c, c + to, c + 2·to, ... (stereo to mono: (L + R) / 2);
 * from fewer (but more than one), output channel c is input channel c mod `from`. Same count: the input.
 */
export function mixChannels(samples: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return samples;
  const frames = samples.length / from;
  const out = new Float32Array(frames * to);
  if (from < to) {
    for (let i = 0; i < frames; i++) for (let c = 0; c < to; c++) out[i * to + c] = samples[i * from + (c % from)];
    return out;
  }
  for (let c = 0; c < to; c++) {
    const n = Math.ceil((from - c) / to);
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (let k = c; k < from; k += to) sum += samples[i * from + k];
      out[i * to + c] = sum / n;
    }
  }
  return out;
}

/** float32 in [-1, 1] to s16, clipped. */
export function floatToS16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    out[i] = v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
  }
  return out;
}
