/**
 * SessionMetricsRecorder and logSessionMetrics: model time per frame, the publisher's figures (skipped
 * frames, A/V offset) passed on, segment counts, and the periodic log line on virtual time.
 */
import { pino } from 'pino';
import { map, take } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { AudioBudget } from '../../src/flow/audio-budget.ts';
import { logSessionMetrics, SessionMetricsRecorder } from '../../src/metrics/session-metrics.ts';
import type { PublisherMetrics } from '../../src/sinks/av-publisher.ts';
import { testScheduler } from '../helpers/marbles.ts';

const progress = (frames: number, extra: Partial<PublisherMetrics> = {}): PublisherMetrics => ({ frames, seconds: frames * 0.04, queued: 1, dropped: 0, preempted: 0, avOffsetMs: -40, skipped: 0, ...extra });

describe('SessionMetricsRecorder', () => {
  it('averages the model time per frame over renders that gave frames', () => {
    const rec = new SessionMetricsRecorder({ budget: new AudioBudget(2) });
    rec.render(10, 2);
    rec.render(30, 1);
    rec.render(50, 0);
    expect(rec.snapshot().modelMsPerFrame).toBeCloseTo(40 / 3, 9);
    expect(rec.snapshot().modelMsPerFrameMax).toBe(30);
    rec.resetWindow();
    rec.render(4, 2);
    expect(rec.snapshot().modelMsPerFrame).toBe(2);
  });

  it('takes skipped frames, preempted and dropped frames and the A/V offset from the publisher; counts segments', () => {
    const rec = new SessionMetricsRecorder({ budget: new AudioBudget(2) });
    const seen: Array<[number, number, number, number]> = [];
    rec.changes.subscribe((m) => seen.push([m.skippedFrames, m.idlePreemptedFrames, m.droppedFrames, m.avOffsetMs]));
    rec.publisher(progress(1));
    rec.publisher(progress(14, { preempted: 3, avOffsetMs: -22 }));
    rec.publisher(progress(22, { preempted: 3, skipped: 2, dropped: 1, avOffsetMs: -95 }));
    rec.playback({ type: 'playback-started', segment: 0 });
    rec.playback({ type: 'playback-finished', segment: 0, position: 0.5, interrupted: true });
    rec.playback({ type: 'playback-started', segment: 1 });
    rec.playback({ type: 'playback-finished', segment: 1, position: 1, interrupted: false });
    expect(seen.slice(0, 4)).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, -40],
      [0, 3, 0, -22],
      [2, 3, 1, -95],
    ]);
    expect(rec.snapshot()).toMatchObject({ framesPublished: 22, segmentsStarted: 2, segmentsFinished: 1, segmentsInterrupted: 1, publisherQueuedFrames: 1, audioSeconds: 22 * 0.04 });
  });
});

describe('logSessionMetrics', () => {
  it('logs a line per interval and emits the metrics logged', () => {
    const lines: Array<{ msg: string }> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as { msg: string }) });
    testScheduler().run(({ expectObservable, cold }) => {
      const rec = new SessionMetricsRecorder({ budget: new AudioBudget(2) });
      cold('500ms a 999ms b').subscribe((k) => rec.publisher(k === 'a' ? progress(5) : progress(30, { dropped: 2 })));
      const logged = logSessionMetrics(rec, log, 1000).pipe(
        take(2),
        map((m) => `${m.framesPublished}/${m.droppedFrames}`),
      );
      expectObservable(logged).toBe('1000ms a 999ms (b|)', { a: '5/0', b: '30/2' });
    });
    expect(lines.map((l) => l.msg.split(':')[0])).toEqual(['session metrics', 'session metrics', 'frames dropped (interrupted segment or full queue)']);
    expect(lines[1].msg).toBe('session metrics: budget 0.00 s queued, publisher queue 1 frames, model - ms/frame, A/V offset -40 ms, 30 frames published');
  });
});
