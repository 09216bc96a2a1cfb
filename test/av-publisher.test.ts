/**
 * The publisher's core (sinks/av-publisher.ts) on virtual time, against an output that models rtc-node's AudioSource:
 * a queue of `queueMs` playing in real time, a capture counted as queued from the call on and completing once the
 * queue has room for it. The same behaviour on a real livekit-server: test/livekit/*.test.ts.
 */
import { ignoreElements, map, timer, type Observable, type SchedulerLike } from 'rxjs';
import type { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { audio, chunkDuration, flush, segmentEnd, type AudioChunk, type AvFrame, type PipelineEvent, type VideoFrame } from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import type { AudioPiece, AvOutput } from '../src/livekit/av-output.ts';
import { rootLogger } from '../src/log.ts';
import { publishAv, type PublisherEvent } from '../src/sinks/av-publisher.ts';
import { testScheduler } from './helpers/marbles.ts';

const log = rootLogger.child({ test: 'av-publisher' }, { level: 'error' });
const RATE = 16_000;
/** 40 ms of 16 kHz mono. */
const FRAME = 640;

/** An av frame of 40 ms: idle when `segment` is null. */
const av = (segment: number | null, index: number): AvFrame => ({
  type: 'av',
  video: { type: 'video', width: 2, height: 2, data: new Uint8Array(16), pts: index / 25, segment, index },
  audio: audio(new Float32Array(FRAME), RATE, 1, index / 25, segment ?? 0),
});
/** The source's first audio of a segment (what announces it). */
const spoken = (segment: number): AudioChunk => audio(new Float32Array(FRAME), RATE, 1, 0, segment);

/** rtc-node's AudioSource and VideoSource as a model on `scheduler`'s time (milliseconds). */
class VirtualOutput implements AvOutput {
  /** scheduler.now() when the audio handed over has played. */
  private playEnd = 0;
  /** Video handed over: when (ms) and its timestamp (us). */
  readonly videos: Array<{ at: number; timestampUs: number }> = [];
  closed = false;

  constructor(
    private readonly scheduler: SchedulerLike,
    private readonly queueMs = 100,
  ) {}

  get queuedMs(): number {
    return Math.max(0, this.playEnd - this.scheduler.now());
  }

  audio(chunk: AudioChunk): readonly AudioPiece[] {
    const seconds = chunkDuration(chunk);
    return [
      {
        seconds,
        capture: () => {
          this.playEnd = Math.max(this.playEnd, this.scheduler.now()) + seconds * 1000;
          return timer(Math.max(0, this.queuedMs - this.queueMs), this.scheduler).pipe(ignoreElements());
        },
      },
    ];
  }

  clearQueue(): void {
    this.playEnd = this.scheduler.now();
  }

  reset(): void {
    this.clearQueue();
  }

  video(_frame: VideoFrame, timestampUs: number): void {
    this.videos.push({ at: this.scheduler.now(), timestampUs });
  }

  playedOut(): Observable<never> {
    return timer(this.queuedMs, this.scheduler).pipe(ignoreElements());
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** p<frames>[/<preempted>p][/<dropped>d], s<segment>, f<segment>@<ms>[!] (interrupted). */
const label = (e: PublisherEvent): string => {
  if (e.type === 'playback-started') return `s${e.segment}`;
  if (e.type === 'playback-finished') return `f${e.segment}@${Math.round(e.position * 1000)}${e.interrupted ? '!' : ''}`;
  return `p${e.frames}${e.preempted > 0 ? `/${e.preempted}p` : ''}${e.dropped > 0 ? `/${e.dropped}d` : ''}`;
};

interface Setup {
  readonly scheduler: TestScheduler;
  readonly output: VirtualOutput;
  readonly budget: AudioBudget;
  publish(input: Observable<PipelineEvent>, sourceEvents: Observable<PipelineEvent>, options?: { videoDelayMs?: number; maxQueuedFrames?: number }): Observable<string>;
}

/** Runs `body` on virtual time with a publisher writing to a VirtualOutput. */
function virtual(body: (helpers: Parameters<Parameters<TestScheduler['run']>[0]>[0], setup: Setup) => void): Setup {
  const scheduler = testScheduler();
  const output = new VirtualOutput(scheduler);
  const budget = new AudioBudget(10);
  const setup: Setup = {
    scheduler,
    output,
    budget,
    publish: (input, sourceEvents, options = {}) =>
      input.pipe(publishAv({ output: () => [output], budget, log, sourceEvents, scheduler, ...options }), map(label)),
  };
  scheduler.run((helpers) => body(helpers, setup));
  return setup;
}

describe('publishAv on virtual time', () => {
  it('speech: started at its first accepted frame, finished once its audio has played, complete after the playout', () => {
    const { budget } = virtual(({ hot, cold, expectObservable }, { publish, budget }) => {
      void budget.reserve(0.08);
      const source = hot<PipelineEvent>('a', { a: spoken(0) });
      const input = cold<PipelineEvent>('-x 9ms y 9ms S 9ms |', { x: av(0, 0), y: av(0, 1), S: segmentEnd(0, 0.08) });
      // the second frame's audio ends 80 ms after the first was handed over (at 1 ms): finished at 81 ms, when all has played
      expectObservable(publish(input, source)).toBe('-(sp) 6ms q 69ms (f|)', { s: 's0', p: 'p1', q: 'p2', f: 'f0@80' });
    });
    expect(budget.queued).toBeCloseTo(0, 9);
  });

  it('captures wait while the output queue is full: the playout paces the frames', () => {
    virtual(({ cold, expectObservable }, { publish, output }) => {
      const input = cold<PipelineEvent>('(abcd)', { a: av(null, 0), b: av(null, 1), c: av(null, 2), d: av(null, 3) });
      // 100 ms queue, 40 ms frames: two fit at once, the third waits 20 ms, the fourth 40 ms more
      expectObservable(publish(input, cold('-'))).toBe('(ab) 16ms c 39ms d', { a: 'p1', b: 'p2', c: 'p3', d: 'p4' });
      expectObservable(timer(70).pipe(map(() => output.videos.map((v) => [v.at, v.timestampUs])))).toBe('70ms (v|)', {
        v: [
          [0, 0],
          [0, 40_000],
          [20, 80_000],
          [60, 120_000],
        ],
      });
    });
  });

  it('metrics of what was released: the A/V offset when each video is handed over, the frame periods the audio ran dry', () => {
    virtual(({ cold, expectObservable }, { output }) => {
      const input = cold<PipelineEvent>('(abc) 295ms d', { a: av(null, 0), b: av(null, 1), c: av(null, 2), d: av(null, 3) });
      const metrics = input.pipe(
        publishAv({ output: () => [output], budget: new AudioBudget(10), log, sourceEvents: cold('-') }),
        map((e) => (e.type === 'progress' ? `${Math.round(e.avOffsetMs)}/${e.skipped}` : e.type)),
      );
      // video goes out when its audio is accepted: ahead of it by the audio queued before it (0, 40, then 60 ms
      // once the 100 ms queue is full); d comes 180 ms after the audio ran dry at 120 ms: 4 frame periods skipped
      expectObservable(metrics).toBe('(xy) 16ms z 279ms w', { x: '0/0', y: '40/0', z: '60/0', w: '0/4' });
    });
  });

  it('a flush seen on the source interrupts once: positions as played, its copy on the input let go, later frames dropped', () => {
    const { budget } = virtual(({ hot, expectObservable }, { publish, budget }) => {
      void budget.reserve(1);
      const source = hot<PipelineEvent>('a 49ms F', { a: spoken(0), F: flush('lk.clear_buffer', 1) });
      const input = hot<PipelineEvent>('(xy) 59ms F-z-i', { x: av(0, 0), y: av(0, 1), F: flush('lk.clear_buffer', 1), z: av(0, 2), i: av(null, 0) });
      // at 50 ms the first frame and 10 ms of the second have played; the copy of the flush at 63 ms changes
      // nothing; the frame of segment 0 at 65 ms is dropped, the idle frame at 67 ms published
      expectObservable(publish(input, source)).toBe('(spq) 45ms (fr) 13ms t', { s: 's0', p: 'p1', q: 'p2', f: 'f0@50!', r: 'p2', t: 'p3/1d' });
    });
    // the budget was reset by the flush
    expect(budget.queued).toBe(0);
  });

  it('speech preempts the idle frames that have not played: counted as preempted, and speech starts at once', () => {
    virtual(({ hot, expectObservable }, { publish }) => {
      const source = hot<PipelineEvent>('10ms a', { a: spoken(0) });
      const input = hot<PipelineEvent>('(ijkl) 6ms (xS)', { i: av(null, 0), j: av(null, 1), k: av(null, 2), l: av(null, 3), x: av(0, 0), S: segmentEnd(0, 0.04) });
      // at 10 ms: i and j are in the output (70 ms of idle not played), k waits for room, l is queued:
      // l dropped, k preempted in flight, the output's idle audio taken back (1 frame of it not started);
      // the speech frame goes as soon as k's capture returns (20 ms; behind the idle it would wait until 120 ms)
      expectObservable(publish(input, source)).toBe('(ab) 16ms (sc) 36ms f', { a: 'p1', b: 'p2', s: 's0', c: 'p3/3p', f: 'f0@40' });
    });
  });

  it('delayed video: handed over when its audio starts playing plus videoDelayMs; a flush cancels what waits', () => {
    const { output } = virtual(({ hot, expectObservable }, { publish }) => {
      const source = hot<PipelineEvent>('a 89ms F', { a: spoken(0), F: flush('stop', 1) });
      const input = hot<PipelineEvent>('(xyz)', { x: av(0, 0), y: av(0, 1), z: av(0, 2) });
      expectObservable(publish(input, source, { videoDelayMs: 20 }), '^ 150ms !').toBe('(spq) 15ms r 69ms (fm)', {
        s: 's0',
        p: 'p1',
        q: 'p2',
        r: 'p3',
        f: 'f0@90!',
        m: 'p3',
      });
    });
    // frame 0 plays at 0 (video at 20 ms), frame 1 at 40 (60 ms), frame 2 at 80 (100 ms): the flush at 90 ms came first
    expect(output.videos).toEqual([
      { at: 20, timestampUs: 0 },
      { at: 60, timestampUs: 40_000 },
    ]);
  });

  it('a full queue drops its oldest frame, counted and its budget released', () => {
    const { budget } = virtual(({ cold, expectObservable }, { publish, budget }) => {
      void budget.reserve(0.2);
      const input = cold<PipelineEvent>('(abcde)', { a: av(null, 0), b: av(null, 1), c: av(null, 2), d: av(null, 3), e: av(null, 4) });
      // a is being captured; b, c and d each make way for the next in a queue of 1; e follows a
      expectObservable(publish(input, cold('-'), { maxQueuedFrames: 1 }), '^ 100ms !').toBe('(ae)', { a: 'p1/3d', e: 'p2/3d' });
    });
    expect(budget.queued).toBeCloseTo(0, 9);
  });

  it('unsubscribing lets go of the input and the source events, and closes the output', () => {
    const { output } = virtual(({ hot, expectObservable, expectSubscriptions }, { publish }) => {
      const source = hot<PipelineEvent>('a---', { a: spoken(0) });
      const input = hot<PipelineEvent>('-x--', { x: av(0, 0) });
      expectObservable(publish(input, source), '^--!').toBe('-(sp)', { s: 's0', p: 'p1' });
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(input.subscriptions).toBe('^--!');
    });
    expect(output.closed).toBe(true);
  });
});
