/**
 * SessionMetrics: the health figures of one avatar session, as an object, an observable, and a
 * periodic structured log line.
 *
 * ```
 * publisher progress: -p-p-p-p-p-p-p-p-p-p-p-p-      (one per frame published, 25 per second)
 * renders:            -r--r--r--r--r--r--r--r--      (model round trips)
 * changes:            -m-m-m-m-m-m-m-m-m-m-m-m-      (a snapshot after every update)
 * logged:             ---------M-----------M---      (every `intervalMs`, "session metrics")
 * ```
 *
 * Units: seconds for audio, milliseconds for times, counts for frames.
 * - `budgetQueuedSeconds`: audio in flight between the source and the sink (the AudioBudget).
 * - `publisherQueuedFrames`: frames waiting in the room publisher's queue.
 * - `modelMsPerFrame`: mean model time per rendered frame since the last log line (the worker
 *   round trip, queueing in the worker included); `modelMsPerFrameMax` the worst render.
 * - `avOffsetMs`: the publisher's A/V offset, from what it released to the tracks: ms from the moment
 *   the last frame's video was handed to the video track to the start of its audio's playout
 *   (negative: the video went out after its audio started; the live preset aims at -videoDelayMs).
 * - `droppedFrames`: frames the publisher dropped (queue full, or of an interrupted segment).
 * - `idlePreemptedFrames`: idle frames the publisher dropped before they played because speech
 *   arrived (so that speech does not wait behind them); not a loss, and not counted in `droppedFrames`.
 * - `skippedFrames`: frames not published in time: the frame periods in which the publisher's audio
 *   track ran dry waiting for the next frame (renders or the event loop did not keep up). Idle audio
 *   taken back by a preemption and the gap after an interruption (a flush) are not skips.
 * - `framesPublished`, `audioSeconds`: totals; `segmentsStarted/Finished/Interrupted`: playback events.
 */
import { BehaviorSubject, defer, interval, map, type Observable, type SchedulerLike } from 'rxjs';
import type { AudioBudget } from '../flow/audio-budget.ts';
import type { Logger } from '../log.ts';
import type { PublisherEvent, PublisherMetrics } from '../sinks/av-publisher.ts';

export interface SessionMetrics {
  readonly budgetQueuedSeconds: number;
  readonly publisherQueuedFrames: number;
  readonly modelMsPerFrame: number | null;
  readonly modelMsPerFrameMax: number | null;
  readonly avOffsetMs: number;
  readonly droppedFrames: number;
  readonly idlePreemptedFrames: number;
  readonly skippedFrames: number;
  readonly framesPublished: number;
  readonly audioSeconds: number;
  readonly segmentsStarted: number;
  readonly segmentsFinished: number;
  readonly segmentsInterrupted: number;
}

export interface SessionMetricsOptions {
  readonly budget: AudioBudget;
}

const EMPTY_METRICS: SessionMetrics = {
  budgetQueuedSeconds: 0,
  publisherQueuedFrames: 0,
  modelMsPerFrame: null,
  modelMsPerFrameMax: null,
  avOffsetMs: 0,
  droppedFrames: 0,
  idlePreemptedFrames: 0,
  skippedFrames: 0,
  framesPublished: 0,
  audioSeconds: 0,
  segmentsStarted: 0,
  segmentsFinished: 0,
  segmentsInterrupted: 0,
};

export class SessionMetricsRecorder {
  private readonly subject = new BehaviorSubject<SessionMetrics>(EMPTY_METRICS);
  private renderMs = 0;
  private renderFrames = 0;
  private renderMax = 0;

  constructor(private readonly options: SessionMetricsOptions) {}

  /** A snapshot after every update; the current one at once on subscription. Completes at `complete()`. */
  get changes(): Observable<SessionMetrics> {
    return this.subject.asObservable();
  }

  snapshot(): SessionMetrics {
    return { ...this.subject.value, budgetQueuedSeconds: this.options.budget.queued };
  }

  /** One render of `frames` frames took `ms` (frames 0: nothing to time). */
  render(ms: number, frames: number): void {
    if (frames <= 0) return;
    this.renderMs += ms;
    this.renderFrames += frames;
    this.renderMax = Math.max(this.renderMax, ms / frames);
    this.update({ modelMsPerFrame: this.renderMs / this.renderFrames, modelMsPerFrameMax: this.renderMax });
  }

  /** The room publisher's progress. */
  publisher(m: PublisherMetrics): void {
    this.update({
      publisherQueuedFrames: m.queued,
      avOffsetMs: m.avOffsetMs,
      droppedFrames: m.dropped,
      idlePreemptedFrames: m.preempted,
      framesPublished: m.frames,
      audioSeconds: m.seconds,
      skippedFrames: m.skipped,
    });
  }

  /** A playback event of the publisher. */
  playback(e: Exclude<PublisherEvent, { type: 'progress' }>): void {
    const m = this.subject.value;
    if (e.type === 'playback-started') return this.update({ segmentsStarted: m.segmentsStarted + 1 });
    if (!e.interrupted) return this.update({ segmentsFinished: m.segmentsFinished + 1 });
    this.update({ segmentsInterrupted: m.segmentsInterrupted + 1 });
  }

  /** Starts a new averaging window for the model time (called after each log line). */
  resetWindow(): void {
    this.renderMs = 0;
    this.renderFrames = 0;
    this.renderMax = 0;
  }

  complete(): void {
    this.subject.complete();
  }

  private update(patch: Partial<SessionMetrics>): void {
    if (this.subject.closed || this.subject.isStopped) return;
    this.subject.next({ ...this.subject.value, ...patch, budgetQueuedSeconds: this.options.budget.queued });
  }
}

/**
 * Logs a "session metrics" line (info) every `intervalMs` (default 5000) while subscribed, and a warning
 * when frames were skipped or dropped since the last line. Each line starts a new model-time window.
 */
export function logSessionMetrics(recorder: SessionMetricsRecorder, log: Logger, intervalMs = 5000, scheduler?: SchedulerLike): Observable<SessionMetrics> {
  return defer(() => {
    let last: SessionMetrics | null = null;
    return interval(intervalMs, scheduler).pipe(
      map(() => {
        const m = recorder.snapshot();
        const model = m.modelMsPerFrame === null ? '-' : m.modelMsPerFrame.toFixed(1);
        log.info(
          { metrics: m },
          `session metrics: budget ${m.budgetQueuedSeconds.toFixed(2)} s queued, publisher queue ${m.publisherQueuedFrames} frames, model ${model} ms/frame, A/V offset ${m.avOffsetMs.toFixed(0)} ms, ${m.framesPublished} frames published`,
        );
        if (last !== null && m.skippedFrames > last.skippedFrames) log.warn({ skipped: m.skippedFrames - last.skippedFrames }, 'frames skipped: rendering did not keep up with real time');
        if (last !== null && m.droppedFrames > last.droppedFrames) log.info({ dropped: m.droppedFrames - last.droppedFrames }, 'frames dropped (interrupted segment or full queue)');
        last = m;
        recorder.resetWindow();
        return m;
      }),
    );
  });
}
