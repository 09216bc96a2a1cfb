/**
 * Band-limited sample-rate conversion: a Kaiser-windowed sinc low-pass, evaluated as a polyphase
 * filter bank at the exact rational position of every output sample.
 *
 * - Output sample n of a stream lies at input position n * inRate / outRate (input samples), and the
 *   filter is centred on that position, so there is no group delay: output sample n is the signal at
 *   input time n / outRate. Input before the stream's start and after its end counts as silence.
 * - Cutoff at the lower of the two Nyquist frequencies, passband to 87.5 % of it, stopband from 112.5 %
 *   (at 16 kHz out: flat to 7 kHz, >= 80 dB down from 9 kHz; 8-9 kHz folds only into 7-8 kHz).
 * - The ratio is reduced to up/down; with up <= MAX_PHASES every phase has its own row of the table,
 *   otherwise the position is interpolated linearly between MAX_PHASES + 1 rows.
 * - A stream holds at most `taps` input frames of history between pushes (strategy: wait, for the
 *   filter's look-ahead of taps/2 input frames).
 */

import { sampleRateProblem } from './audio-limits.ts';

/** Stopband attenuation the filter is designed for, dB. */
const STOPBAND_DB = 80;
/** Passband edge, as a fraction of the cutoff (the lower of the two Nyquist frequencies). */
const PASS_EDGE = 0.875;
/** Stopband edge, as a fraction of the cutoff. */
const STOP_EDGE = 1.125;
/** Largest number of phases tabled exactly; finer ratios interpolate between this many. */
const MAX_PHASES = 1024;

/** A designed polyphase filter for one pair of rates. Shared by every stream of that pair. */
export interface PolyphaseFilter {
  /** Hz. */
  readonly inRate: number;
  /** Hz. */
  readonly outRate: number;
  /** inRate / outRate = down / up, reduced: each output sample advances the input position by down/up samples. */
  readonly up: number;
  readonly down: number;
  /** Taps per row (a multiple of 4). Row r weighs input frames k0 - taps/2 + 1 ... k0 + taps/2 around position k0 + r/steps. */
  readonly taps: number;
  /** Fractional positions tabled: `up` when exact, MAX_PHASES when interpolated. */
  readonly steps: number;
  /** True when every phase has its own row; false when rows are interpolated. */
  readonly exact: boolean;
  /** Rows of `taps` coefficients, row-major; `steps` rows (exact) or `steps + 1` rows (interpolated). */
  readonly table: Float32Array;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Sum of h[hAt + j] * x[xAt + j] for j < n (n a multiple of 4), in four lanes. */
function dot(h: Float32Array, hAt: number, x: Float32Array, xAt: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let j = 0; j < n; j += 4) {
    s0 += h[hAt + j] * x[xAt + j];
    s1 += h[hAt + j + 1] * x[xAt + j + 1];
    s2 += h[hAt + j + 2] * x[xAt + j + 2];
    s3 += h[hAt + j + 3] * x[xAt + j + 3];
  }
  return s0 + s1 + s2 + s3;
}

/** Modified Bessel function of the first kind, order 0 (power series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; term > sum * 1e-12; k++) {
    term *= q / (k * k);
    sum += term;
  }
  return sum;
}

/** Half the taps of the filter from `inRate` to `outRate`: Kaiser's order estimate for STOPBAND_DB over the transition band. */
function halfTaps(inRate: number, outRate: number): number {
  const transition = (2 * Math.PI * (STOP_EDGE - PASS_EDGE) * (Math.min(inRate, outRate) / 2)) / inRate;
  // rounded up to even so that the taps are a multiple of 4 (see dot)
  return 2 * Math.ceil((STOPBAND_DB - 7.95) / (2.285 * transition) / 4);
}

/**
 * Seconds of input a stream from `inRate` to `outRate` holds before it can give the output at its first input
 * sample: the filter's look-ahead, half its taps (under 25 ms for any pair of rates the framework takes).
 */
export const lookaheadSeconds = (inRate: number, outRate: number): number => (inRate === outRate ? 0 : halfTaps(inRate, outRate) / inRate);

/**
 * The filter converting whole-Hz `inRate` to whole-Hz `outRate`, both within MIN_SAMPLE_RATE..MAX_SAMPLE_RATE
 * (dsp/audio-limits.ts; a RangeError otherwise: the table's size follows the rates).
 */
export function designFilter(inRate: number, outRate: number): PolyphaseFilter {
  const bad = sampleRateProblem(inRate) ?? sampleRateProblem(outRate);
  if (bad !== null) throw new RangeError(`designFilter: ${bad}`);
  const g = gcd(inRate, outRate);
  const up = outRate / g;
  const down = inRate / g;
  const cutoff = Math.min(inRate, outRate) / 2;
  // Kaiser's window shape for STOPBAND_DB; the order from halfTaps.
  const half = halfTaps(inRate, outRate);
  const taps = 2 * half;
  const beta = 0.1102 * (STOPBAND_DB - 8.7);
  const fc = cutoff / inRate;
  const exact = up <= MAX_PHASES;
  const steps = exact ? up : MAX_PHASES;
  const rows = exact ? steps : steps + 1;
  const table = new Float32Array(rows * taps);
  const row = new Float64Array(taps);
  const i0Beta = besselI0(beta);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const t = r / steps + half - 1 - j;
      const x = 2 * fc * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const u = t / half;
      const window = u * u >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - u * u)) / i0Beta;
      row[j] = 2 * fc * sinc * window;
      sum += row[j];
    }
    for (let j = 0; j < taps; j++) table[r * taps + j] = row[j] / sum;
  }
  return { inRate, outRate, up, down, taps, steps, exact, table };
}

/**
 * One stream through a filter: interleaved input in, interleaved output out. `outChannels` is 1
 * (the input channels are averaged) or `inChannels`.
 */
export class StreamResampler {
  private readonly half: number;
  /** Per output channel; hist[c][i] is input frame histStart + i. */
  private hist: Float32Array[];
  private histLen: number;
  private histStart: number;
  private inFrames = 0;
  private outFrames = 0;
  /** Input position of the next output sample: k0 + phase / up. */
  private k0 = 0;
  private phase = 0;

  constructor(
    readonly filter: PolyphaseFilter,
    readonly inChannels: number,
    readonly outChannels: number,
  ) {
    this.half = filter.taps / 2;
    // The window of output 0 reaches half - 1 frames before the start: silence.
    this.histLen = this.half - 1;
    this.histStart = -this.histLen;
    this.hist = Array.from({ length: outChannels }, () => new Float32Array(2 * filter.taps));
  }

  /** Input samples per channel taken so far. */
  get received(): number {
    return this.inFrames;
  }

  /** Output samples per channel produced so far. */
  get produced(): number {
    return this.outFrames;
  }

  /** Takes `samples` (interleaved, inChannels) and returns every output sample its look-ahead now allows. */
  push(samples: Float32Array): Float32Array {
    const frames = samples.length / this.inChannels;
    this.append(samples, frames);
    this.inFrames += frames;
    const last = this.inFrames - 1 - this.half;
    const { up, down } = this.filter;
    // Outputs n with floor(n * down / up) <= last are ready.
    const end = Math.floor(((last + 1) * up + down - 1) / down);
    return this.render(Math.max(0, end - this.outFrames));
  }

  /** The rest of the stream (the input's end padded with silence): round(inFrames * outRate / inRate) in all. */
  finish(): Float32Array {
    this.append(null, this.half);
    const { up, down } = this.filter;
    const total = Math.floor((2 * this.inFrames * up + down) / (2 * down));
    return this.render(Math.max(0, total - this.outFrames));
  }

  /** Appends `frames` input frames (silence when `samples` is null), downmixed or deinterleaved. */
  private append(samples: Float32Array | null, frames: number): void {
    const need = this.histLen + frames;
    if (need > this.hist[0].length) {
      const size = Math.max(need, 2 * this.hist[0].length);
      this.hist = this.hist.map((h) => {
        const grown = new Float32Array(size);
        grown.set(h.subarray(0, this.histLen));
        return grown;
      });
    }
    const at = this.histLen;
    const inCh = this.inChannels;
    if (samples === null) {
      for (const h of this.hist) h.fill(0, at, at + frames);
    } else if (this.outChannels === 1 && inCh > 1) {
      const h = this.hist[0];
      const scale = 1 / inCh;
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < inCh; c++) s += samples[i * inCh + c];
        h[at + i] = s * scale;
      }
    } else if (inCh === 1) {
      this.hist[0].set(samples, at);
    } else {
      for (let c = 0; c < inCh; c++) {
        const h = this.hist[c];
        for (let i = 0; i < frames; i++) h[at + i] = samples[i * inCh + c];
      }
    }
    this.histLen += frames;
  }

  private render(count: number): Float32Array {
    const { up, down, taps, table, exact, steps } = this.filter;
    const outCh = this.outChannels;
    const out = new Float32Array(count * outCh);
    const stepK = Math.floor(down / up);
    const stepPhase = down % up;
    let k0 = this.k0;
    let phase = this.phase;
    for (let i = 0; i < count; i++) {
      const base = k0 - this.half + 1 - this.histStart;
      for (let c = 0; c < outCh; c++) {
        const x = this.hist[c];
        let y: number;
        if (exact) {
          y = dot(table, phase * taps, x, base, taps);
        } else {
          const pos = (phase * steps) / up;
          const r = Math.floor(pos);
          const a = dot(table, r * taps, x, base, taps);
          const b = dot(table, (r + 1) * taps, x, base, taps);
          y = a + (pos - r) * (b - a);
        }
        out[i * outCh + c] = y;
      }
      k0 += stepK;
      phase += stepPhase;
      if (phase >= up) {
        phase -= up;
        k0 += 1;
      }
    }
    this.k0 = k0;
    this.phase = phase;
    this.outFrames += count;
    // Keep only what the next output's window reaches back to.
    const keepFrom = Math.min(k0 - this.half + 1 - this.histStart, this.histLen);
    if (keepFrom > 0) {
      for (const h of this.hist) h.copyWithin(0, keepFrom, this.histLen);
      this.histLen -= keepFrom;
      this.histStart += keepFrom;
    }
    return out;
  }
}
