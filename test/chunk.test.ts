import { from, toArray, lastValueFrom } from 'rxjs';
import { describe as suite, expect, it } from 'vitest';
import { PipelineSpecError } from '../src/errors.ts';
import { audio, flush, idleTick, segmentEnd, type AudioChunk, type PipelineEvent } from '../src/events.ts';
import { chunk, chunkElement } from '../src/operators/chunk.ts';
import { testScheduler } from './helpers/marbles.ts';

/** Mono test audio at 8 Hz, so that every pts below is exact in binary. */
const RATE = 8;
const mono = (values: number[], pts: number, segment = 0, padding?: number): AudioChunk =>
  audio(Float32Array.from(values), RATE, 1, pts, segment, padding);

const run = (events: PipelineEvent[], size: number): Promise<PipelineEvent[]> =>
  lastValueFrom(from(events).pipe(chunk({ size }), toArray()));

suite('chunk', () => {
  it('carries remainders across input chunk boundaries, pts of each block = pts of its first sample', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const input = cold('-a-b---c-|', {
        a: mono([1, 2, 3], 0),
        b: mono([4, 5, 6, 7, 8, 9], 3 / RATE),
        c: mono([10, 11, 12], 9 / RATE),
      });
      expectObservable(input.pipe(chunk({ size: 4 }))).toBe('---(xy)z-|', {
        x: mono([1, 2, 3, 4], 0),
        y: mono([5, 6, 7, 8], 4 / RATE),
        z: mono([9, 10, 11, 12], 8 / RATE),
      });
    });
  });

  it('pads the remainder at a segment-end, then forwards the segment-end', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const input = cold('-a---b---S---|', {
        a: mono([1, 2, 3, 4, 5], 0),
        b: mono([6], 5 / RATE),
        S: segmentEnd(0, 6 / RATE),
      });
      expectObservable(input.pipe(chunk({ size: 4 }))).toBe('-x-------(pS)|', {
        x: mono([1, 2, 3, 4], 0),
        p: mono([5, 6, 0, 0], 4 / RATE, 0, 2),
        S: segmentEnd(0, 6 / RATE),
      });
    });
  });

  it('emits no padded chunk for a segment that is an exact multiple of size', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const input = cold('-a-b---S-|', {
        a: mono([1, 2, 3], 0),
        b: mono([4, 5, 6, 7, 8], 3 / RATE),
        S: segmentEnd(0, 1),
      });
      expectObservable(input.pipe(chunk({ size: 4 }))).toBe('---(xy)S-|', {
        x: mono([1, 2, 3, 4], 0),
        y: mono([5, 6, 7, 8], 4 / RATE),
        S: segmentEnd(0, 1),
      });
    });
  });

  it('drops the remainder on flush and forwards the flush at once', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const input = cold('-a-F-b-S---|', {
        a: mono([1, 2, 3], 0),
        F: flush('barge-in'),
        b: mono([7, 8], 2, 1),
        S: segmentEnd(1, 2.25),
      });
      expectObservable(input.pipe(chunk({ size: 4 }))).toBe('---F---(pS)|', {
        F: flush('barge-in'),
        p: mono([7, 8, 0, 0], 2, 1, 2),
        S: segmentEnd(1, 2.25),
      });
    });
  });

  it('passes idle ticks and other events through in order', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const input = hot('-i-a-i-b-S---i-|', {
        i: idleTick(0, 0),
        a: mono([1, 2, 3], 1),
        b: mono([4, 5], 1 + 3 / RATE),
        S: segmentEnd(0, 2),
      });
      expectObservable(input.pipe(chunk({ size: 4 }))).toBe('-i---i-x-(pS)i-|', {
        i: idleTick(0, 0),
        x: mono([1, 2, 3, 4], 1),
        p: mono([5, 0, 0, 0], 1.5, 0, 3),
        S: segmentEnd(0, 2),
      });
    });
  });

  it('re-blocks interleaved multi-channel audio by samples per channel', async () => {
    const stereo = (values: number[], pts: number): AudioChunk => audio(Float32Array.from(values), RATE, 2, pts, 0);
    const out = await run([stereo([1, -1, 2, -2, 3, -3], 0), stereo([4, -4, 5, -5], 3 / RATE), segmentEnd(0, 1)], 2);
    expect(out).toEqual([
      stereo([1, -1, 2, -2], 0),
      stereo([3, -3, 4, -4], 2 / RATE),
      audio(Float32Array.from([5, -5, 0, 0]), RATE, 2, 4 / RATE, 0, 1),
      segmentEnd(0, 1),
    ]);
  });

  it('ends the block in progress (padded) when audio of another segment or format arrives, or the input completes', async () => {
    const out = await run([mono([1, 2, 3], 0), mono([4, 5], 1, 1), audio(Float32Array.from([6]), 16, 1, 2, 1)], 4);
    expect(out).toEqual([
      mono([1, 2, 3, 0], 0, 0, 1),
      mono([4, 5, 0, 0], 1, 1, 2),
      audio(Float32Array.from([6, 0, 0, 0]), 16, 1, 2, 1, 3),
    ]);
  });

  it('keeps the place of padding marked upstream', async () => {
    const out = await run([mono([1, 2, 3], 0), mono([4, 5, 0, 0, 0], 3 / RATE, 0, 3), segmentEnd(0, 1)], 2);
    expect(out).toEqual([mono([1, 2], 0), mono([3, 4], 2 / RATE), mono([5, 0], 4 / RATE, 0, 1), mono([0, 0], 6 / RATE, 0, 2), segmentEnd(0, 1)]);
  });

  it('holds at most size - 1 samples: every block comes out as soon as it is full', async () => {
    const size = 1280;
    const events: PipelineEvent[] = [];
    for (let i = 0; i < 10; i++) events.push(audio(new Float32Array(1000), 16000, 1, i / 16, 0));
    const out = (await run(events, size)) as AudioChunk[];
    expect(out.map((a) => a.samples.length)).toEqual([1280, 1280, 1280, 1280, 1280, 1280, 1280, 1280]);
    expect(out[7].pts).toBeCloseTo((7 * 1280) / 16000, 12);
  });

  it('documents its parameter, checks caps and rejects a bad size', () => {
    expect(chunkElement.params.parse({})).toEqual({ size: 1280 });
    expect(chunkElement.params.shape.size.description).toMatch(/1280.*80 ms at 16 kHz/);
    expect(chunkElement.caps({ size: 640 }, { kind: 'audio', sampleRate: 16000, channels: 1, chunk: null }, 25)).toEqual({
      kind: 'audio',
      sampleRate: 16000,
      channels: 1,
      chunk: 640,
    });
    expect(chunkElement.caps({ size: 640 }, { kind: 'video', width: 512, height: 512 }, 25)).toBe('chunk takes audio, got video');
    expect(() => chunk({ size: 0 })).toThrow(PipelineSpecError);
    expect(() => chunk({ size: 2.5 })).toThrow(/^chunk: size: /);
  });
});
