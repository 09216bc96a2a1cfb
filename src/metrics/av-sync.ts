/**
 * A/V sync as a viewer sees it, measured with the demo face: the mouth opening read from each received
 * video frame (measureMouthOpening) against the opening the received audio calls for (the demo
 * model's dB mapping of each 40 ms window's mean power), cross-correlated over a range of lags.
 *
 * ```
 * video frames (arrival):   |f0 |f1 |f2 |f3 |f4 |        opening read from the pixels
 * audio (arrival timeline): ~~~~~~~~~~~~~~~~~~~~~~~      opening of [t + lag, t + lag + 40 ms) for each frame
 * offset = the lag with the highest Pearson correlation (positive: the audio arrives late)
 * ```
 *
 * - Audio timeline: received audio is continuous (the avatar publishes silence between segments), so
 *   sample i of the stream plays at t0 + i / rate, with t0 the lower envelope of (arrival - samples
 *   before) over all chunks: event-loop delays only ever make a chunk look later.
 * - A frame arriving at t shows from t to t + 40 ms; the audio it should match is the window starting
 *   at t + offset. Frames that are not the demo face (NaN) are left out.
 * - The power-to-opening mapping is expectedMouthOpening's (DEMO_FACE.level), applied to any sample
 *   rate: mean power does not depend on the sample count.
 * Units: milliseconds (performance.now() clock), openings in [0, 1].
 */
import { DEMO_FACE } from '../models/demo-face.ts';

export interface TimedAudio {
  /** Arrival, ms. */
  readonly at: number;
  /** Mono float32 samples (the first channel is used when `channels` > 1). */
  readonly samples: Float32Array;
  readonly sampleRate: number;
  readonly channels: number;
}

export interface TimedOpening {
  /** Arrival, ms. */
  readonly at: number;
  /** Mouth opening read from the frame, [0, 1] or NaN. */
  readonly opening: number;
}

/** The received audio on one clock: mono samples and the time (ms) its first sample played. */
export interface AudioTimeline {
  readonly t0: number;
  readonly sampleRate: number;
  readonly samples: Float32Array;
}

export function audioTimeline(chunks: readonly TimedAudio[]): AudioTimeline {
  if (chunks.length === 0) return { t0: 0, sampleRate: 48_000, samples: new Float32Array(0) };
  const rate = chunks[0].sampleRate;
  const total = chunks.reduce((n, c) => n + c.samples.length / c.channels, 0);
  const samples = new Float32Array(total);
  let before = 0;
  let t0 = Number.POSITIVE_INFINITY;
  for (const c of chunks) {
    t0 = Math.min(t0, c.at - (before * 1000) / rate);
    for (let i = 0; i < c.samples.length / c.channels; i++) samples[before + i] = c.samples[i * c.channels];
    before += c.samples.length / c.channels;
  }
  return { t0, sampleRate: rate, samples };
}

/** The demo model's opening for the audio in [t, t + ms) of the timeline (0 outside it). */
export function openingAt(tl: AudioTimeline, t: number, ms = 1000 / DEMO_FACE.fps): number {
  const from = Math.max(0, Math.round(((t - tl.t0) * tl.sampleRate) / 1000));
  const to = Math.min(tl.samples.length, Math.round(((t + ms - tl.t0) * tl.sampleRate) / 1000));
  if (to <= from) return 0;
  let power = 0;
  for (let i = from; i < to; i++) power += tl.samples[i] * tl.samples[i];
  power /= to - from;
  const { floorDb, rangeDb, epsilon } = DEMO_FACE.level;
  return Math.min(1, Math.max(0, (10 * Math.log10(power + epsilon) - floorDb) / rangeDb));
}

export interface AvOffset {
  /** ms the audio arrives after the video frame showing it (negative: audio early). */
  readonly offsetMs: number;
  /** Pearson correlation at that lag. */
  readonly correlation: number;
  /** Frames used. */
  readonly frames: number;
}

export interface AvOffsetOptions {
  /** Lags tried, ms (default -200 .. +200 in steps of 5). */
  readonly minLagMs?: number;
  readonly maxLagMs?: number;
  readonly stepMs?: number;
}

export function estimateAvOffset(video: readonly TimedOpening[], audio: readonly TimedAudio[], options: AvOffsetOptions = {}): AvOffset {
  const { minLagMs = -200, maxLagMs = 200, stepMs = 5 } = options;
  const frames = video.filter((f) => Number.isFinite(f.opening));
  const tl = audioTimeline(audio);
  const mouth = frames.map((f) => f.opening);
  let best: AvOffset = { offsetMs: Number.NaN, correlation: Number.NEGATIVE_INFINITY, frames: frames.length };
  for (let lag = minLagMs; lag <= maxLagMs + 1e-9; lag += stepMs) {
    const heard = frames.map((f) => openingAt(tl, f.at + lag));
    const r = pearson(mouth, heard);
    if (r > best.correlation) best = { offsetMs: lag, correlation: r, frames: frames.length };
  }
  return best;
}

/** Pearson correlation of two equally long series (0 when either is constant). */
export function pearson(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  if (n === 0) return 0;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) (ma += a[i]), (mb += b[i]);
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa === 0 || sbb === 0 ? 0 : sab / Math.sqrt(saa * sbb);
}

/** Frames per second of arrivals in [from, to) ms. */
export function frameRate(arrivals: readonly number[], from: number, to: number): number {
  const n = arrivals.filter((t) => t >= from && t < to).length;
  return to > from ? (n * 1000) / (to - from) : 0;
}
