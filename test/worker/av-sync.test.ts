/**
 * estimateAvOffset on constructed streams with a known offset: syllable-modulated noise as the audio,
 * frames whose opening is the model's for the audio `offset` ms after their arrival.
 */
import { describe, expect, it } from 'vitest';
import { audioTimeline, estimateAvOffset, frameRate, openingAt, pearson, type TimedAudio, type TimedOpening } from '../../src/metrics/av-sync.ts';

const RATE = 48_000;

/** 3 s of noise at 4 syllables per second (deep amplitude modulation), as 10 ms chunks arriving from t = 1000 ms, some late. */
function speechLike(): TimedAudio[] {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const chunks: TimedAudio[] = [];
  for (let k = 0; k < 300; k++) {
    const samples = new Float32Array(480);
    for (let i = 0; i < 480; i++) {
      const t = (k * 480 + i) / RATE;
      const env = Math.max(0, Math.sin(2 * Math.PI * 4 * t + Math.sin(2 * Math.PI * 0.7 * t))) ** 2;
      samples[i] = 0.3 * env * rnd();
    }
    chunks.push({ at: 1000 + k * 10 + (k % 7 === 0 ? 6 : 0), samples, sampleRate: RATE, channels: 1 });
  }
  return chunks;
}

describe('estimateAvOffset', () => {
  const audio = speechLike();
  const tl = audioTimeline(audio);

  it('puts the audio timeline on the lower envelope of the arrivals', () => {
    expect(tl.t0).toBe(1000);
    expect(tl.samples.length).toBe(300 * 480);
  });

  for (const offset of [-120, 0, 35, 80]) {
    it(`finds an offset of ${offset} ms within one step`, () => {
      const video: TimedOpening[] = [];
      for (let j = 0; j < 60; j++) {
        const at = 1200 + j * 40 + (j % 5) * 1.5;
        video.push({ at, opening: openingAt(tl, at + offset) });
      }
      video.push({ at: 1190, opening: Number.NaN });
      const r = estimateAvOffset(video, audio);
      expect(r.frames).toBe(60);
      expect(Math.abs(r.offsetMs - offset)).toBeLessThanOrEqual(5);
      expect(r.correlation).toBeGreaterThan(0.95);
    });
  }

  it('pearson and frameRate', () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(pearson([1, 1, 1], [2, 4, 6])).toBe(0);
    expect(frameRate([0, 40, 80, 120, 160], 0, 200)).toBe(25);
  });
});
