import { describe, expect, it } from 'vitest';
import { segmentEnd, flush, type PipelineEvent, type VideoFrame } from '../src/events.ts';
import { scale } from '../src/operators/scale.ts';
import { testScheduler } from './helpers/marbles.ts';

const frame = (width: number, height: number, fill: (x: number, y: number) => number): VideoFrame => {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      data.set([fill(x, y), fill(x, y), fill(x, y), 255], o);
    }
  return { type: 'video', width, height, data, pts: 0, segment: 0, index: 0 };
};

describe('scale', () => {
  it('resizes video frames and passes other events through', () => {
    const small = frame(2, 2, () => 100);
    testScheduler().run(({ cold, expectObservable }) => {
      const input = cold<PipelineEvent>('-v-S-F|', { v: small, S: segmentEnd(0, 0.1), F: flush('x') });
      expectObservable(input.pipe(scale({ width: 4, height: 4 }))).toBe('-v-S-F|', {
        v: { ...small, width: 4, height: 4, data: frame(4, 4, () => 100).data },
        S: segmentEnd(0, 0.1),
        F: flush('x'),
      });
    });
  });

  it('keeps the aspect ratio and letterboxes', () => {
    let out: VideoFrame | undefined;
    const src = frame(4, 4, () => 200);
    testScheduler().run(({ cold }) => {
      cold<PipelineEvent>('v|', { v: src })
        .pipe(scale({ width: 8, height: 4, background: [1, 2, 3, 4] }))
        .subscribe((e) => (out = e as VideoFrame));
    });
    expect(out!.width).toBe(8);
    const px = (x: number, y: number): number[] => [...out!.data.subarray((y * 8 + x) * 4, (y * 8 + x) * 4 + 4)];
    expect(px(0, 0)).toEqual([1, 2, 3, 4]);
    expect(px(1, 3)).toEqual([1, 2, 3, 4]);
    expect(px(2, 0)).toEqual([200, 200, 200, 255]);
    expect(px(5, 3)).toEqual([200, 200, 200, 255]);
    expect(px(6, 1)).toEqual([1, 2, 3, 4]);
  });

  it('interpolates bilinearly (a horizontal ramp stays a ramp)', () => {
    let out: VideoFrame | undefined;
    testScheduler().run(({ cold }) => {
      cold<PipelineEvent>('v|', { v: frame(4, 1, (x) => x * 80) })
        .pipe(scale({ width: 8, height: 2 }))
        .subscribe((e) => (out = e as VideoFrame));
    });
    const row = Array.from({ length: 8 }, (_, x) => out!.data[x * 4]);
    expect(row).toEqual([0, 20, 60, 100, 140, 180, 220, 240]);
  });
});
