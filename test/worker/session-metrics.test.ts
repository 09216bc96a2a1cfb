/**
 * SessionMetricsRecorder and logSessionMetrics on virtual time: model time per frame, skipped frames
 * reckoned from the frame clock (restarted by an interruption), and the periodic log line.
 */
import { pino } from 'pino';
import { map, take } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { AudioBudget } from '../../src/flow/audio-budget.ts';
import { logSessionMetrics, SessionMetricsRecorder } from '../../src/metrics/session-metrics.ts';
import type { PublisherMetrics } from '../../src/sinks/room-publisher.ts';
import { testScheduler } from '../helpers/marbles.ts';

const progress = (frames: number, extra: Partial<PublisherMetrics> = {}): PublisherMetrics => ({ frames, seconds: frames * 0.04, queued: 1, dropped: 0, preempted: 0, avOffsetMs: -40, ...extra });

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

  it('counts frames the 25 fps clock missed, beyond one frame of slack, and restarts the reckoning at an interruption', () => {
    const ts = testScheduler();
    const budget = new AudioBudget(2);
    const rec = new SessionMetricsRecorder({ budget, fps: 25, scheduler: ts });
    const seen: number[] = [];
    rec.changes.subscribe((m) => seen.push(m.skippedFrames));
    ts.run(() => {
      ts.schedule(() => rec.publisher(progress(1)), 0);
      ts.schedule(() => rec.publisher(progress(11)), 400);
      ts.schedule(() => rec.publisher(progress(13)), 800);
      ts.schedule(() => rec.playback({ type: 'playback-finished', segment: 0, position: 0.5, interrupted: true }), 900);
      ts.schedule(() => rec.publisher(progress(14)), 1000);
      ts.schedule(() => rec.publisher(progress(19)), 1200);
    });
    expect(seen).toEqual([0, 0, 0, 7, 7, 7, 7]);
    const m = rec.snapshot();
    expect(m).toMatchObject({ framesPublished: 19, segmentsInterrupted: 1, publisherQueuedFrames: 1, avOffsetMs: -40, audioSeconds: 19 * 0.04 });
  });

  it('counts preempted idle frames apart, and reckons skipped frames from the audio published (idle audio taken back does not count)', () => {
    const ts = testScheduler();
    const rec = new SessionMetricsRecorder({ budget: new AudioBudget(2), fps: 25, scheduler: ts });
    const seen: Array<[number, number, number]> = [];
    rec.changes.subscribe((m) => seen.push([m.skippedFrames, m.idlePreemptedFrames, m.droppedFrames]));
    ts.run(() => {
      ts.schedule(() => rec.publisher(progress(1)), 0);
      // 14 frames taken in, 3 of them idle frames whose audio was taken back when speech came
      ts.schedule(() => rec.publisher(progress(14, { seconds: 11 * 0.04, preempted: 3 })), 400);
      // 20 frames' time has passed and 19 frames of audio were published: one frame skipped beyond the slack
      ts.schedule(() => rec.publisher(progress(22, { seconds: 19 * 0.04, preempted: 3 })), 800);
    });
    expect(seen).toEqual([
      [0, 0, 0],
      [0, 0, 0],
      [0, 3, 0],
      [1, 3, 0],
    ]);
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
