import { EMPTY, from, lastValueFrom, map } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { audio, flush, segmentEnd, type PipelineEvent } from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import { rootLogger } from '../src/log.ts';
import { nullSink } from '../src/sinks/null.ts';
import { testScheduler } from './helpers/marbles.ts';
import { avFrame, syntheticAv } from './synthetic-av.ts';

const spec = { fps: 25, width: 4, height: 4, sampleRate: 16000, channels: 1 };
const picture = [new Uint8Array(4 * 4 * 4)];
const av = (i: number) => avFrame(i, spec, picture);

const context = (budget: AudioBudget) => ({ fps: 25, budget, sourceEvents: EMPTY, log: rootLogger });

describe('null sink', () => {
  it('accepts av only', () => {
    expect(nullSink.accepts({}, { kind: 'av', width: 4, height: 4 })).toBeNull();
    expect(nullSink.accepts({}, { kind: 'video', width: 4, height: 4 })).toMatch(/got video alone/);
    expect(nullSink.params.safeParse({ path: 'x' }).success).toBe(false);
  });

  it('reports progress per av frame, releases each frame\'s audio and resets the budget on flush', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const budget = new AudioBudget(10);
      void budget.reserve(0.2);
      const input = cold<PipelineEvent>('-a-b-s-f-c|', { a: av(0), b: av(1), s: segmentEnd(0, 0.08), f: flush('stop'), c: av(2) });
      const out = nullSink.create({}, context(budget))(input).pipe(map((p) => [p.frames, p.seconds, +budget.queued.toFixed(6)]));
      expectObservable(out).toBe('-x-y-----z|', { x: [1, 0.04, 0.16], y: [2, 0.08, 0.12], z: [3, 0.12, 0] });
    });
  });

  it('releases a padded tail frame\'s real audio only: the source never reserved its padding', () => {
    const budget = new AudioBudget(10);
    void budget.reserve(0.5);
    const full = av(0);
    const tail = { ...full, audio: audio(full.audio.samples, 16000, 1, 0.04, 0, 480) };
    nullSink.create({}, context(budget))(from([full, tail])).subscribe();
    // 0.04 s for the full frame, 160 of 640 samples (0.01 s) for the tail
    expect(budget.queued).toBeCloseTo(0.45, 9);
  });

  it('lets a budget-bound source run to the end', async () => {
    const budget = new AudioBudget(0.2);
    const last = await lastValueFrom(nullSink.create({}, context(budget))(syntheticAv({ seconds: 2, width: 8, height: 8, sampleRate: 44100, channels: 2, budget })));
    expect(last).toEqual({ frames: 50, seconds: 2 });
    expect(budget.queued).toBeCloseTo(0, 9);
  });
});
