import { describe, expect, it } from 'vitest';
import { audio, flush, idleTick, segmentEnd, type PipelineEvent, type IdleTick } from '../src/events.ts';
import { idleFill } from '../src/operators/idle-fill.ts';
import { idleTicks } from '../src/sources/idle-ticks.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import { testScheduler } from './helpers/marbles.ts';

const a0 = audio(new Float32Array(4), 16_000, 1, 0, 0);
const a1 = audio(new Float32Array(4), 16_000, 1, 0.1, 1);
const tick = (i: number): IdleTick => idleTick(i, i);

describe('idleFill', () => {
  it('lets ticks in between segments only; segment end resumes idle', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const ticks = hot<IdleTick>('-t-t-t-t-t-t-t-t-t-|', { t: tick(0) });
      const input = hot<PipelineEvent>('----a-a-a-S--------|', { a: a0, S: segmentEnd(0, 0.2) });
      expectObservable(input.pipe(idleFill({ ticks }))).toBe('-i-ja-a-a-Sk-l-m-n-|', {
        i: idleTick(0, 0),
        j: idleTick(1, 0),
        a: a0,
        S: segmentEnd(0, 0.2),
        k: idleTick(2, 0),
        l: idleTick(3, 0),
        m: idleTick(4, 0),
        n: idleTick(5, 0),
      });
    });
  });

  it('a flush closes the open segment: the next frame is idle', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const ticks = hot<IdleTick>('-t-t-t-t-t-', { t: tick(0) });
      const input = hot<PipelineEvent>('--a--F--b--', { a: a0, F: flush('interrupt'), b: a1 });
      expectObservable(input.pipe(idleFill({ ticks }))).toBe('-ia--F-jb--', {
        i: idleTick(0, 0),
        a: a0,
        F: flush('interrupt'),
        j: idleTick(1, 0),
        b: a1,
      });
    });
  });

  it('only tops up the output queue: ticks pass while at most `lead` s are in flight', () => {
    const budget = new AudioBudget(10);
    testScheduler().run(({ hot, expectObservable, cold }) => {
      const ticks = hot<IdleTick>('-t-t-t-t-t-t-|', { t: tick(0) });
      const input = cold<PipelineEvent>('-------------|');
      // lead of 2 frames and nothing released: two ticks pass, then the queue is full.
      expectObservable(input.pipe(idleFill({ ticks, fps: 25, budget, lead: 0.08 }))).toBe('-i-j---------|', {
        i: idleTick(0, 0),
        j: idleTick(1, 0),
      });
    });
    expect(budget.queued).toBeCloseTo(0.08);
  });

  it('holds the idle clock only while subscribed: let go when the input completes, or when the output is unsubscribed', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const ticks = hot<IdleTick>('-t-t-t-t-t-t-', { t: tick(0) });
      const input = hot<PipelineEvent>('--a--S--|', { a: a0, S: segmentEnd(0, 0.2) });
      expectObservable(input.pipe(idleFill({ ticks }))).toBe('-ia--S-j|', { i: idleTick(0, 0), a: a0, S: segmentEnd(0, 0.2), j: idleTick(1, 0) });
      expectSubscriptions(ticks.subscriptions).toBe('^-------!');
      expectSubscriptions(input.subscriptions).toBe('^-------!');
    });
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const ticks = hot<IdleTick>('-t-t-t-t-t-t-', { t: tick(0) });
      const input = hot<PipelineEvent>('--a----------', { a: a0 });
      expectObservable(input.pipe(idleFill({ ticks })), '^----!').toBe('-ia', { i: idleTick(0, 0), a: a0 });
      expectSubscriptions(ticks.subscriptions).toBe('^----!');
      expectSubscriptions(input.subscriptions).toBe('^----!');
    });
  });

  it('idleTicks ticks at the frame rate on the given scheduler', () => {
    const scheduler = testScheduler();
    scheduler.run(({ expectObservable }) => {
      expectObservable(idleTicks(25, scheduler), '^ 200ms !').toBe('40ms a 39ms b 39ms c 39ms d 39ms e', {
        a: idleTick(0, 0.04),
        b: idleTick(1, 0.08),
        c: idleTick(2, 0.12),
        d: idleTick(3, 0.16),
        e: idleTick(4, 0.2),
      });
    });
  });
});
