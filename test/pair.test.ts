import { describe, expect, it } from 'vitest';
import { audio, segmentEnd, flush, type PipelineEvent, type VideoFrame, type AvFrame } from '../src/events.ts';
import { pairWithAudio } from '../src/operators/pair.ts';
import { testScheduler } from './helpers/marbles.ts';

// Source audio at 100 Hz stereo so that one 25 fps frame is 4 samples per channel.
const SR = 100;
const ramp = (from: number, frames: number): Float32Array => {
  const out = new Float32Array(frames * 2);
  for (let i = 0; i < frames; i++) {
    out[2 * i] = from + i;
    out[2 * i + 1] = -(from + i);
  }
  return out;
};
const video = (segment: number | null, index: number): VideoFrame => ({
  type: 'video',
  width: 1,
  height: 1,
  data: new Uint8Array(4),
  pts: index / 25,
  segment,
  index,
});
const av = (v: VideoFrame, samples: Float32Array, pts: number, sampleRate = SR, channels = 2, segment = v.segment ?? -1, padding?: number): AvFrame => ({
  type: 'av',
  video: v,
  audio: audio(samples, sampleRate, channels, pts, segment, padding),
});

describe('pairWithAudio', () => {
  it('zips each frame with exactly its 1/fps s of source audio, across chunk boundaries, padding the tail', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const src = hot<PipelineEvent>('-a-b-S---|', { a: audio(ramp(0, 6), SR, 2, 0, 0), b: audio(ramp(6, 5), SR, 2, 0.06, 0), S: segmentEnd(0, 0.11) });
      const vid = hot<PipelineEvent>('--x---yzE|', { x: video(0, 0), y: video(0, 1), z: video(0, 2), E: segmentEnd(0, 0.12) });
      // frame 2 covers samples 8..12 of which 8..11 exist: the last sample is silence.
      const tail = ramp(8, 4);
      tail[6] = 0;
      tail[7] = 0;
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25 }))).toBe('--x---yzE|', {
        x: av(video(0, 0), ramp(0, 4), 0),
        y: av(video(0, 1), ramp(4, 4), 0.04),
        z: av(video(0, 2), tail, 0.08, SR, 2, 0, 1),
        E: segmentEnd(0, 0.12),
      });
    });
  });

  it('holds a frame until its audio has arrived', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const src = hot<PipelineEvent>('----a--b', { a: audio(ramp(0, 3), SR, 2, 0, 0), b: audio(ramp(3, 2), SR, 2, 0.03, 0) });
      const vid = hot<PipelineEvent>('-x------', { x: video(0, 0) });
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25 }))).toBe('-------x', { x: av(video(0, 0), ramp(0, 4), 0) });
    });
  });

  it('pairs idle frames with silence in the last source format, and 48 kHz mono before any', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const src = hot<PipelineEvent>('---a-S-', { a: audio(ramp(0, 4), SR, 2, 0, 0), S: segmentEnd(0, 0.04) });
      const vid = hot<PipelineEvent>('-i--x-j', { i: video(null, 0), x: video(0, 0), j: video(null, 1) });
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25 }))).toBe('-i--x-j', {
        i: av(video(null, 0), new Float32Array(1920), 0, 48_000, 1),
        x: av(video(0, 0), ramp(0, 4), 0),
        j: av(video(null, 1), new Float32Array(8), 1 / 25),
      });
    });
  });

  it('a flush drops held audio and waiting frames, and is forwarded at once', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const src = hot<PipelineEvent>('-a--F-c---', { a: audio(ramp(0, 2), SR, 2, 0, 0), F: flush('interrupt'), c: audio(ramp(0, 4), SR, 2, 0.2, 1) });
      const vid = hot<PipelineEvent>('--x-F--y--', { x: video(0, 0), F: flush('interrupt'), y: video(1, 0) });
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25 }))).toBe('----F--y--', {
        F: flush('interrupt'),
        y: av(video(1, 0), ramp(0, 4), 0.2, SR, 2, 1),
      });
    });
  });

  it('holds the source audio only while subscribed: let go when the frames complete, or when the output is unsubscribed', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const src = hot<PipelineEvent>('-a--------', { a: audio(ramp(0, 4), SR, 2, 0, 0) });
      const vid = hot<PipelineEvent>('--x--|', { x: video(0, 0) });
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25 }))).toBe('--x--|', { x: av(video(0, 0), ramp(0, 4), 0) });
      expectSubscriptions(src.subscriptions).toBe('^----!');
      expectSubscriptions(vid.subscriptions).toBe('^----!');
    });
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const src = hot<PipelineEvent>('-a--------', { a: audio(ramp(0, 4), SR, 2, 0, 0) });
      const vid = hot<PipelineEvent>('--x-------', { x: video(0, 0) });
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25 })), '^---!').toBe('--x', { x: av(video(0, 0), ramp(0, 4), 0) });
      expectSubscriptions(src.subscriptions).toBe('^---!');
      expectSubscriptions(vid.subscriptions).toBe('^---!');
    });
  });

  it('reports audio that no frame took', () => {
    const unpaired: Array<[number, number]> = [];
    testScheduler().run(({ hot, expectObservable }) => {
      const src = hot<PipelineEvent>('-a-S-', { a: audio(ramp(0, 10), SR, 2, 0, 0), S: segmentEnd(0, 0.1) });
      const vid = hot<PipelineEvent>('--x-E', { x: video(0, 0), E: segmentEnd(0, 0.1) });
      expectObservable(vid.pipe(pairWithAudio(src, { fps: 25, onUnpaired: (s, n) => unpaired.push([s, n]) }))).toBe('--x-E', {
        x: av(video(0, 0), ramp(0, 4), 0),
        E: segmentEnd(0, 0.1),
      });
    });
    expect(unpaired).toEqual([[0, 6]]);
  });

  it('takes round(i*sr/fps) boundaries when sr/fps is not an integer', () => {
    const sr = 110; // 4.4 samples per frame: boundaries 0, 4, 9, 13, 18, 22
    const mono = (n: number, from: number): Float32Array => Float32Array.from({ length: n }, (_, i) => from + i);
    const out: number[] = [];
    testScheduler().run(({ hot, expectObservable }) => {
      const src = hot<PipelineEvent>('a-S', { a: audio(mono(22, 0), sr, 1, 0, 0), S: segmentEnd(0, 0.2) });
      const vid = hot<PipelineEvent>('-(vwxyz)', { v: video(0, 0), w: video(0, 1), x: video(0, 2), y: video(0, 3), z: video(0, 4) });
      const paired = vid.pipe(pairWithAudio(src, { fps: 25 }));
      paired.subscribe((e) => e.type === 'av' && out.push(e.audio.samples.length));
      expectObservable(paired).toBe('-(vwxyz)', {
        v: av(video(0, 0), mono(4, 0), 0, sr, 1),
        w: av(video(0, 1), mono(5, 4), 4 / sr, sr, 1),
        x: av(video(0, 2), mono(4, 9), 9 / sr, sr, 1),
        y: av(video(0, 3), mono(5, 13), 13 / sr, sr, 1),
        z: av(video(0, 4), mono(4, 18), 18 / sr, sr, 1),
      });
    });
    expect(out.reduce((a, b) => a + b, 0)).toBe(22);
  });
});
