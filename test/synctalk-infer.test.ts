import { type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { audio, flush, segmentEnd, type AudioChunk, type IdleTick, type SegmentEnd } from '../src/events.ts';
import type { FrameRenderer } from '../src/models/frame-renderer.ts';
import { infer } from '../src/operators/infer.ts';
import { testScheduler } from './helpers/marbles.ts';

/**
 * infer with a renderer that holds audio back (SyncTalk's lookahead): `end` at segment-end, `reset` on a flush,
 * frames numbered and timed per segment whichever input released them. The renderer here releases each chunk's
 * two frames one chunk late (a one-chunk lookahead), each render taking one frame of virtual time.
 */

type Helpers = Parameters<Parameters<ReturnType<typeof testScheduler>['run']>[0]>[0];

class OneChunkLate implements FrameRenderer {
  readonly width = 1;
  readonly height = 1;
  private held: Uint8Array[] = [];
  resets = 0;

  constructor(private readonly cold: Helpers['cold']) {}

  render(input: AudioChunk | IdleTick): Observable<Uint8Array[]> {
    if (input.type === 'idle') return this.cold('-(f|)', { f: [Uint8Array.of(200)] });
    const out = this.held;
    const base = Math.round(input.pts * 25);
    this.held = [Uint8Array.of(base), Uint8Array.of(base + 1)];
    return this.cold('-(f|)', { f: out });
  }

  end(_segment: SegmentEnd): Observable<Uint8Array[]> {
    const out = this.held;
    this.held = [];
    return this.cold('-(f|)', { f: out });
  }

  reset(): void {
    this.held = [];
    this.resets++;
  }
}

const chunk = (pts: number, segment: number) => audio(new Float32Array(1280), 16_000, 1, pts, segment);

describe('infer with a lookahead renderer (end, reset)', () => {
  it('frames leave with the chunk that completes them, the tail before the segment-end; pts = segment start + index / fps', () => {
    testScheduler().run(({ hot, cold, expectObservable }) => {
      const r = new OneChunkLate(cold);
      const input = hot('-a---b-----e-----|', { a: chunk(0, 0), b: chunk(0.08, 0), e: segmentEnd(0, 0.16) });
      expectObservable(input.pipe(infer(r, { maxInFlight: 1 }))).toBe('------(xy)--(zvw)|', {
        x: { type: 'video', width: 1, height: 1, data: Uint8Array.of(0), pts: 0, segment: 0, index: 0 },
        y: { type: 'video', width: 1, height: 1, data: Uint8Array.of(1), pts: 0.04, segment: 0, index: 1 },
        z: { type: 'video', width: 1, height: 1, data: Uint8Array.of(2), pts: 0.08, segment: 0, index: 2 },
        v: { type: 'video', width: 1, height: 1, data: Uint8Array.of(3), pts: 0.12, segment: 0, index: 3 },
        w: segmentEnd(0, 0.16),
      });
    });
  });

  it('a flush resets the renderer: the held frames never come out, the next segment starts from index 0', () => {
    testScheduler().run(({ hot, cold, expectObservable, flush: run }) => {
      const r = new OneChunkLate(cold);
      const input = hot('-a---b-----F---c---e-----|', { a: chunk(0, 0), b: chunk(0.08, 0), F: flush('barge-in'), c: chunk(2, 1), e: segmentEnd(1, 2.08) });
      expectObservable(input.pipe(infer(r, { maxInFlight: 1 }))).toBe('------(xy)-F--------(zvw)|', {
        x: { type: 'video', width: 1, height: 1, data: Uint8Array.of(0), pts: 0, segment: 0, index: 0 },
        y: { type: 'video', width: 1, height: 1, data: Uint8Array.of(1), pts: 0.04, segment: 0, index: 1 },
        F: flush('barge-in'),
        z: { type: 'video', width: 1, height: 1, data: Uint8Array.of(50), pts: 2, segment: 1, index: 0 },
        v: { type: 'video', width: 1, height: 1, data: Uint8Array.of(51), pts: 2.04, segment: 1, index: 1 },
        w: segmentEnd(1, 2.08),
      });
      run();
      expect(r.resets).toBe(1);
    });
  });
});
