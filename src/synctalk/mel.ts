/**
 * IncrementalMel: SyncTalk's (Wav2Lip's) log-mel spectrogram, computed as the 16 kHz audio streams in.
 *
 * What it computes, per speech segment, equals SyncTalk's offline `melspectrogram(wav)` over the whole segment
 * (nerf_triplane/utils.py; numpy reference: python/synctalk_live/mel.py):
 * - pre-emphasis `y[n] = x[n] - 0.97 x[n-1]` (lfilter, zero state at the segment start; the state is carried across chunks);
 * - STFT, n_fft 800, hop 200 samples (12.5 ms), periodic Hann window of 800, `center=True` with zero padding
 *   (librosa >= 0.10 'constant'); magnitude |D|;
 * - 80 mel bands, 55-7600 Hz, Slaney scale and 'slaney' area norm (librosa.filters.mel, float32 weights);
 * - `S = 20 log10(max(1e-5, mel)) - 20`, output `clip(8 (S + 100) / 100 - 4, -4, 4)`.
 *
 * Timing: mel frame k is centred on sample 200k and covers samples [200k - 400, 200k + 400) (zeros before 0), so it is
 * emitted by the `push` that brings the sample count to 200k + 400: 25 ms after its centre. `end` emits the rest
 * (`1 + floor(n / 200)` frames in all for n samples), computed over the zero-padded tail exactly as offline.
 *
 * Units: input float32 samples in [-1, 1], 16 kHz mono, any chunk size; output one `Float32Array(80)` per mel frame
 * (band 0 = lowest), values in [-4, 4].
 *
 * Buffer: the pre-emphasised samples from the start of the next frame's support onward, strategy **slide**
 * (at most 800 samples plus one input chunk).
 *
 * Cost: per frame one 800-point real FFT (a 400-point mixed-radix 5·5·4·4 complex FFT of the sample pairs) and a
 * sparse 80-band mel product: about 0.28 ms per 80 ms chunk of 4 frames, 70 µs per frame, on one core of the
 * development machine (measured by test/synctalk-mel.test.ts). Values agree with the float64 numpy reference to
 * about 1e-7 (float32 output).
 */
import { InputError } from '../errors.ts';

/** Hz. */
export const MEL_SAMPLE_RATE = 16000;
/** Samples. */
export const MEL_N_FFT = 800;
/** Samples between mel frames (12.5 ms). */
export const MEL_HOP = 200;
export const MEL_BANDS = 80;
/** Hz. */
export const MEL_FMIN = 55;
/** Hz. */
export const MEL_FMAX = 7600;
export const MEL_PREEMPHASIS = 0.97;

const BINS = MEL_N_FFT / 2 + 1;
const HALF = MEL_N_FFT / 2;

const hzToMel = (f: number): number => {
  const fSp = 200 / 3;
  const minLogHz = 1000;
  const logstep = Math.log(6.4) / 27;
  return f >= minLogHz ? minLogHz / fSp + Math.log(f / minLogHz) / logstep : f / fSp;
};

const melToHz = (m: number): number => {
  const fSp = 200 / 3;
  const minLogHz = 1000;
  const minLogMel = minLogHz / fSp;
  const logstep = Math.log(6.4) / 27;
  return m >= minLogMel ? minLogHz * Math.exp(logstep * (m - minLogMel)) : fSp * m;
};

/**
 * `librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)` (Slaney scale, norm 'slaney'),
 * row-major [80, 401], float32 like librosa's.
 */
export const melFilterBank = (): Float32Array => {
  const weights = new Float32Array(MEL_BANDS * BINS);
  const lo = hzToMel(MEL_FMIN);
  const hi = hzToMel(MEL_FMAX);
  const melF = Array.from({ length: MEL_BANDS + 2 }, (_, i) => melToHz(lo + i * ((hi - lo) / (MEL_BANDS + 1))));
  for (let b = 0; b < MEL_BANDS; b++) {
    const enorm = 2 / (melF[b + 2] - melF[b]);
    for (let k = 0; k < BINS; k++) {
      const freq = (k * (MEL_SAMPLE_RATE / 2)) / (BINS - 1);
      const lower = -(melF[b] - freq) / (melF[b + 1] - melF[b]);
      const upper = (melF[b + 2] - freq) / (melF[b + 2] - melF[b + 1]);
      weights[b * BINS + k] = Math.max(0, Math.min(lower, upper));
      weights[b * BINS + k] *= enorm;
    }
  }
  return weights;
};

/** A complex FFT of fixed size, Stockham autosort, mixed radix; input and output in natural order. */
class Fft {
  private readonly stages: Array<{ radix: number; n: number; stride: number; twRe: Float64Array; twIm: Float64Array }>;
  private readonly rootRe: Float64Array[];
  private readonly rootIm: Float64Array[];
  private readonly workRe: Float64Array;
  private readonly workIm: Float64Array;
  /** One butterfly's inputs. */
  private readonly aRe: Float64Array;
  private readonly aIm: Float64Array;

  /** `radices` multiply to the size; each stage's twiddles are precomputed. */
  constructor(readonly size: number, radices: readonly number[]) {
    this.stages = [];
    let n = size;
    let stride = 1;
    for (const radix of radices) {
      const m = n / radix;
      const twRe = new Float64Array(m * radix);
      const twIm = new Float64Array(m * radix);
      for (let p = 0; p < m; p++) {
        for (let j = 0; j < radix; j++) {
          twRe[p * radix + j] = Math.cos((-2 * Math.PI * p * j) / n);
          twIm[p * radix + j] = Math.sin((-2 * Math.PI * p * j) / n);
        }
      }
      this.stages.push({ radix, n, stride, twRe, twIm });
      n = m;
      stride *= radix;
    }
    const maxRadix = Math.max(...radices);
    this.rootRe = [];
    this.rootIm = [];
    for (let r = 0; r <= maxRadix; r++) {
      this.rootRe.push(Float64Array.from({ length: r }, (_, k) => Math.cos((-2 * Math.PI * k) / r)));
      this.rootIm.push(Float64Array.from({ length: r }, (_, k) => Math.sin((-2 * Math.PI * k) / r)));
    }
    this.workRe = new Float64Array(size);
    this.workIm = new Float64Array(size);
    this.aRe = new Float64Array(maxRadix);
    this.aIm = new Float64Array(maxRadix);
  }

  /** In place: `re`/`im` (length `size`) become the DFT `X[f] = sum x[n] e^{-2 pi i f n / size}`. */
  transform(re: Float64Array, im: Float64Array): void {
    let xRe = re;
    let xIm = im;
    let yRe = this.workRe;
    let yIm = this.workIm;
    const { aRe, aIm } = this;
    for (const { radix, n, stride: s, twRe, twIm } of this.stages) {
      const m = n / radix;
      const wRe = this.rootRe[radix];
      const wIm = this.rootIm[radix];
      for (let p = 0; p < m; p++) {
        for (let q = 0; q < s; q++) {
          for (let k = 0; k < radix; k++) {
            aRe[k] = xRe[q + s * (p + k * m)];
            aIm[k] = xIm[q + s * (p + k * m)];
          }
          for (let j = 0; j < radix; j++) {
            let sRe = aRe[0];
            let sIm = aIm[0];
            for (let k = 1, e = j; k < radix; k++, e = e + j >= radix ? e + j - radix : e + j) {
              sRe += aRe[k] * wRe[e] - aIm[k] * wIm[e];
              sIm += aRe[k] * wIm[e] + aIm[k] * wRe[e];
            }
            const t = p * radix + j;
            const out = q + s * (radix * p + j);
            yRe[out] = sRe * twRe[t] - sIm * twIm[t];
            yIm[out] = sRe * twIm[t] + sIm * twRe[t];
          }
        }
      }
      [xRe, yRe] = [yRe, xRe];
      [xIm, yIm] = [yIm, xIm];
    }
    if (xRe !== re) {
      re.set(xRe);
      im.set(xIm);
    }
  }
}

/** A mel filter as the contiguous range of FFT bins where it is non-zero. */
interface SparseFilter {
  readonly first: number;
  readonly weights: Float64Array;
}

const sparseFilters = (bank: Float32Array): SparseFilter[] =>
  Array.from({ length: MEL_BANDS }, (_, b) => {
    const row = bank.subarray(b * BINS, (b + 1) * BINS);
    let first = 0;
    while (first < BINS && row[first] === 0) first++;
    let last = BINS - 1;
    while (last > first && row[last] === 0) last--;
    return { first, weights: Float64Array.from(row.subarray(first, last + 1)) };
  });

export class IncrementalMel {
  /** The 800-point real FFT runs as a 400-point complex one on (even, odd) sample pairs. */
  private readonly fft = new Fft(HALF, [5, 5, 4, 4]);
  private readonly splitRe = Float64Array.from({ length: BINS }, (_, k) => Math.cos((-2 * Math.PI * k) / MEL_N_FFT));
  private readonly splitIm = Float64Array.from({ length: BINS }, (_, k) => Math.sin((-2 * Math.PI * k) / MEL_N_FFT));
  private readonly window = Float64Array.from({ length: MEL_N_FFT }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / MEL_N_FFT));
  private readonly filters = sparseFilters(melFilterBank());
  private readonly re = new Float64Array(HALF);
  private readonly im = new Float64Array(HALF);
  private readonly magnitude = new Float64Array(BINS);
  /** Pre-emphasised samples; `buffer[0]` is segment sample `bufferStart`. */
  private buffer = new Float64Array(2 * MEL_N_FFT);
  private bufferStart = 0;
  private bufferLength = 0;
  private lastInput = 0;
  private received = 0;
  private nextFrame = 0;

  /** Samples received in the current segment. */
  get samples(): number {
    return this.received;
  }

  /** Mel frames emitted in the current segment. */
  get frames(): number {
    return this.nextFrame;
  }

  /** Adds samples of the current segment; returns the mel frames that became final, in order. */
  push(samples: Float32Array): Float32Array[] {
    this.append(samples);
    const out: Float32Array[] = [];
    while (MEL_HOP * this.nextFrame + HALF <= this.received) out.push(this.frame(this.nextFrame++));
    this.slide();
    return out;
  }

  /**
   * Ends the segment: returns the remaining frames of the offline computation (`1 + floor(n / 200)` in all for
   * n samples). A segment that would have fewer than `minFrames` frames (default 0) is first extended with
   * silence (zero samples) to `200 (minFrames - 1)` samples, as if its audio were that long: the AVE front-end
   * passes 16, one AVE window, the least SyncTalk can process (187.5 ms). A segment without samples has no frames.
   * Then starts a new segment.
   */
  end(minFrames = 0): Float32Array[] {
    const out: Float32Array[] = [];
    if (this.received > 0) {
      const short = MEL_HOP * (minFrames - 1) - this.received;
      if (short > 0) out.push(...this.push(new Float32Array(short)));
      const total = 1 + Math.floor(this.received / MEL_HOP);
      while (this.nextFrame < total) out.push(this.frame(this.nextFrame++));
    }
    this.reset();
    return out;
  }

  /** Drops the current segment (after a flush); the next sample starts a new one. */
  reset(): void {
    this.bufferStart = 0;
    this.bufferLength = 0;
    this.lastInput = 0;
    this.received = 0;
    this.nextFrame = 0;
  }

  private append(samples: Float32Array): void {
    if (this.bufferLength + samples.length > this.buffer.length) {
      const grown = new Float64Array(Math.max(2 * this.buffer.length, this.bufferLength + samples.length));
      grown.set(this.buffer.subarray(0, this.bufferLength));
      this.buffer = grown;
    }
    let prev = this.lastInput;
    for (let i = 0; i < samples.length; i++) {
      const x = samples[i];
      if (!Number.isFinite(x)) throw new InputError('mel spectrogram', `sample ${this.received + i} of the segment is ${x}`);
      this.buffer[this.bufferLength + i] = x - MEL_PREEMPHASIS * prev;
      prev = x;
    }
    this.lastInput = prev;
    this.bufferLength += samples.length;
    this.received += samples.length;
  }

  /** Forgets the samples before the next frame's support. */
  private slide(): void {
    const keepFrom = Math.max(0, MEL_HOP * this.nextFrame - HALF);
    const drop = Math.min(keepFrom - this.bufferStart, this.bufferLength);
    if (drop <= 0) return;
    this.buffer.copyWithin(0, drop, this.bufferLength);
    this.bufferStart += drop;
    this.bufferLength -= drop;
  }

  private frame(k: number): Float32Array {
    const from = MEL_HOP * k - HALF - this.bufferStart;
    const sample = (n: number): number => {
      const i = from + n;
      return i >= 0 && i < this.bufferLength ? this.buffer[i] * this.window[n] : 0;
    };
    for (let n = 0; n < HALF; n++) {
      this.re[n] = sample(2 * n);
      this.im[n] = sample(2 * n + 1);
    }
    this.fft.transform(this.re, this.im);
    for (let f = 0; f < BINS; f++) {
      const a = f % HALF;
      const b = (HALF - f) % HALF;
      const evenRe = 0.5 * (this.re[a] + this.re[b]);
      const evenIm = 0.5 * (this.im[a] - this.im[b]);
      const oddRe = 0.5 * (this.im[a] + this.im[b]);
      const oddIm = -0.5 * (this.re[a] - this.re[b]);
      const re = evenRe + this.splitRe[f] * oddRe - this.splitIm[f] * oddIm;
      const im = evenIm + this.splitRe[f] * oddIm + this.splitIm[f] * oddRe;
      this.magnitude[f] = Math.sqrt(re * re + im * im);
    }
    const out = new Float32Array(MEL_BANDS);
    for (let b = 0; b < MEL_BANDS; b++) {
      const { first, weights } = this.filters[b];
      let mel = 0;
      for (let j = 0; j < weights.length; j++) mel += weights[j] * this.magnitude[first + j];
      const db = 20 * Math.log10(Math.max(1e-5, mel)) - 20;
      out[b] = Math.min(4, Math.max(-4, (8 * (db + 100)) / 100 - 4));
    }
    return out;
  }
}
