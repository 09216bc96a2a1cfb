/**
 * publishAv: the avatar's output, av frames handed to an AvOutput (a LiveKit room's tracks: livekit/rtc-av-output.ts)
 * with the playback events of LiveKit's avatar protocol. The audio is the clock: the output's audio queue plays in
 * real time and its captures wait while it is full.
 *
 * ```
 * source:  -a0--a0-----F--a1--a1----S1--       (a: source audio of segments 0, 1; F: flush; S: segment-end)
 * input:   ---p0--p0------F--p1--p1----S1      (p: av frames of each segment)
 * output:  ---s0-.-.--f0!----s1--.--.----f1    (s: playback-started, f0!: finished interrupted; .: progress)
 * ```
 *
 * - Frames are published one at a time: each frame's audio goes to the output, and its video is handed over the
 *   moment its audio is accepted, so the pair is released together (or, with `videoDelayMs` set, when that audio
 *   starts playing plus `videoDelayMs`). Video timestamps (us) are the seconds of audio accepted before the frame.
 *   The output is opened at the first frame.
 * - Frames wait in a queue of at most `maxQueuedFrames` av frames (default: twice the budget's frames, 100 for 2 s
 *   at 25 fps; strategy: drop the oldest, counted as dropped, with a warning). Upstream, the AudioBudget (strategy:
 *   wait) keeps it at most the budget's frames plus one padded tail frame per segment, so the bound is a safety net
 *   that normal operation never reaches. Each frame's audio (padding excluded: what the source reserved) is released
 *   from the budget when the output accepts it.
 * - Segments and positions: PlaybackTracker (livekit/playback-tracker.ts). A segment becomes active when its first
 *   audio appears on `sourceEvents` (the source's own events, in the source's order); `playback-started` when its
 *   first audio is accepted; `playback-finished` (interrupted false) when its segment-end comes out of the queue and
 *   the audio before it has played (now + the output's queued audio).
 * - Idle is preemptible: when a speech frame arrives after idle frames, the idle frames not played yet are dropped
 *   (counted as `preempted`, not as `dropped`): those queued here (their budget released), the one waiting for the
 *   output, and, when only idle audio is in the output's queue, that audio (`clearQueue()`; the audio clock goes back
 *   by what was cleared) and the video captures still waiting for it. Speech then starts at once instead of behind
 *   idle. Speech frames are never preempted: while the tail of a segment is still queued, the queue is left alone.
 *
 * ```
 * input:     -i-i-i-i-i-i(s0)-s1-s2-     (i: idle frames arriving faster than they play, s: speech)
 * playing:   -i--i--i--i-X s0-s1-s2-     (X: the idle frames still queued are dropped at s0)
 * ```
 * - Flush: a flush reaches the sink twice, first on `sourceEvents`, then through the elements on the input; its `id`
 *   tells the copy from a new interruption. The first drops the queue and the output's audio (`reset()`), resets the
 *   budget and emits `playback-finished` (interrupted true, position = audio actually played) for every active
 *   segment, even one none of whose frames arrived yet: an agent waits for it. Frames of those segments that arrive
 *   later are dropped.
 * - `progress` events carry the metrics: frames published, seconds of audio, queue depth, dropped, preempted and
 *   skipped frames, and the A/V offset, measured from what was released (where the audio playout stood when the
 *   frame's video was actually handed over) and frames skipped from the gaps in the audio actually fed.
 * - Timers (delayed video, due finishes) and time come from `scheduler` (default RxJS's asyncScheduler).
 * - Completes when the input has completed and the audio has played out. Unsubscribing closes the output.
 */
import { asyncScheduler, from, Observable, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { audioDuration, chunkDuration, type AvFrame, type Flush, type PipelineEvent, type SegmentEnd } from '../events.ts';
import type { AudioBudget } from '../flow/audio-budget.ts';
import type { AudioPiece, AvOutput, AvOutputOpener } from '../livekit/av-output.ts';
import { PlaybackTracker, type PlaybackEvent } from '../livekit/playback-tracker.ts';
import type { Logger } from '../log.ts';

export interface PublisherMetrics {
  /** Frames published. */
  readonly frames: number;
  /** Seconds of audio accepted by the output, less idle audio taken back from it by a preemption. */
  readonly seconds: number;
  /** Frames waiting in the sink's queue. */
  readonly queued: number;
  /** Frames dropped (queue full, or of an interrupted segment). */
  readonly dropped: number;
  /** Idle frames dropped before they played, because speech arrived (not a loss). */
  readonly preempted: number;
  /**
   * Milliseconds from the moment the last video frame was actually handed to the video track to the
   * moment its audio starts playing on the audio track (by the output's playout then): negative
   * when the video went out after its audio started. It moves when the two drift (late captures, stalls).
   */
  readonly avOffsetMs: number;
  /**
   * Frames not published in time: frame periods in which the audio track ran dry (all audio handed to
   * it had played) because the next frame was late (rendering or the event loop did not keep up). Not
   * counted after a flush, nor at the start (nothing was due).
   */
  readonly skipped: number;
}

export type PublisherEvent = ({ readonly type: 'progress' } & PublisherMetrics) | PlaybackEvent;

export interface AvPublisherOptions {
  /** Where the frames go, opened at the first frame. */
  readonly output: AvOutputOpener;
  readonly budget: AudioBudget;
  readonly log: Logger;
  /** The source's own events: segments start at their first audio here, and flushes are seen first here. */
  readonly sourceEvents: Observable<PipelineEvent>;
  /** Av frames the sink queues at most (default: twice `budget.capacity` in frames). */
  readonly maxQueuedFrames?: number;
  /** Video frames per second (default 25). */
  readonly fps?: number;
  /**
   * Null (default): a frame's video is handed over as soon as its audio is accepted (up to the output's queue
   * before that audio plays). A number: when its audio starts playing, plus this many ms (to make up for the
   * audio jitter buffer of the viewers); a flush cancels captures still waiting.
   */
  readonly videoDelayMs?: number | null;
  /** Timers and time (default RxJS's asyncScheduler); a TestScheduler in marble tests. */
  readonly scheduler?: SchedulerLike;
}

/** Float tolerance on the audio clock, seconds. */
const EPSILON = 1e-6;

export function publishAv(options: AvPublisherOptions): (input: Observable<PipelineEvent>) => Observable<PublisherEvent> {
  return (input) =>
    new Observable<PublisherEvent>((subscriber) => {
      const run = new PublisherRun(options, subscriber);
      run.start(input);
      return () => run.stop();
    });
}

/** How publishing a frame's audio ended. */
type Fed = 'accepted' | 'cancelled' | 'preempted';

/** One subscription of the publisher: its queue, clock, output and metrics. */
class PublisherRun {
  private readonly queue: Array<AvFrame | SegmentEnd> = [];
  private readonly tracker = new PlaybackTracker();
  private readonly scheduler: SchedulerLike;
  private readonly maxQueued: number;
  private readonly fps: number;
  private readonly videoDelayMs: number | null;
  private readonly subs: Subscription[] = [];
  private out: AvOutput | null = null;
  /** The capture in flight. */
  private capturing: Subscription | null = null;
  /** The wait for the playout at the end. */
  private playout: Subscription | null = null;
  /** Audio clock: seconds of audio accepted. */
  private clock = 0;
  /** Seconds of the piece being captured, not in `clock` yet: the output counts it as queued from the call on. */
  private accepting = 0;
  private frames = 0;
  private dropped = 0;
  private preempted = 0;
  private avOffsetMs = 0;
  private skipped = 0;
  /** scheduler.now() (ms) when the audio handed over so far has played out; null before any, and after a flush. */
  private dryAt: number | null = null;
  /** Audio clock where the last speech audio accepted ends: the output holds only idle audio once it has played. */
  private speechUntil = 0;
  /** The last av frame taken in was idle: the next speech frame preempts the idle ones. */
  private idleBehind = false;
  /** An idle frame is waiting for the output to accept its audio. */
  private idleInFlight = false;
  /** Bumped by every preemption, so the idle frame in flight knows it was preempted. */
  private preemptions = 0;
  /** Bumped by every flush, so a capture in flight across a flush knows it. */
  private generation = 0;
  /** Ids of the flushes handled whose copy is still to come (from the other of sourceEvents and the input). */
  private readonly flushes = new Set<number>();
  private busy = false;
  private inputDone = false;
  private stopped = false;
  /** Video captures waiting for their audio to play (videoDelayMs set), with where that audio starts on the audio clock. */
  private readonly delayed = new Map<Subscription, number>();
  /** The finishes due, by segment. */
  private readonly finishing = new Map<number, Subscription>();

  constructor(
    private readonly options: AvPublisherOptions,
    private readonly subscriber: Subscriber<PublisherEvent>,
  ) {
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.fps = options.fps ?? 25;
    this.videoDelayMs = options.videoDelayMs ?? null;
    this.maxQueued = options.maxQueuedFrames ?? 2 * Math.ceil(options.budget.capacity * this.fps);
  }

  start(input: Observable<PipelineEvent>): void {
    const fail = (err: unknown): void => this.subscriber.error(err);
    this.subs.push(
      this.options.sourceEvents.subscribe({
        next: (e) => {
          if (e.type === 'flush') this.onFlush(e);
          else if (e.type === 'audio') this.tracker.announce(e.segment);
        },
        error: fail,
      }),
    );
    this.subs.push(
      input.subscribe({
        next: (e) => this.onInput(e),
        error: fail,
        complete: () => {
          this.inputDone = true;
          this.maybeComplete();
        },
      }),
    );
  }

  stop(): void {
    this.stopped = true;
    this.dropDelayed();
    this.subs.forEach((s) => s.unsubscribe());
    this.capturing?.unsubscribe();
    this.playout?.unsubscribe();
    this.finishing.forEach((t) => t.unsubscribe());
    // an output still opening is closed once open (see withOutput)
    void this.out?.close();
  }

  private metrics(): PublisherEvent {
    const { frames, clock: seconds, dropped, preempted, avOffsetMs, skipped } = this;
    return { type: 'progress', frames, seconds, queued: this.queue.length, dropped, preempted, avOffsetMs, skipped };
  }

  /** The audio playout's position on the audio clock, seconds. */
  private played(): number {
    return this.clock + this.accepting - (this.out?.queuedMs ?? 0) / 1000;
  }

  private onlyIdleQueued(): boolean {
    return this.played() >= this.speechUntil - EPSILON;
  }

  private onInput(e: PipelineEvent): void {
    if (e.type === 'flush') return this.onFlush(e);
    if (e.type === 'segment-end') {
      if (!this.tracker.flushed(e.segment)) this.queue.push(e);
    } else if (e.type === 'av') {
      const segment = e.video.segment;
      if (segment !== null && this.tracker.flushed(segment)) {
        this.dropped++;
        return;
      }
      if (segment !== null && this.idleBehind) this.preemptIdle();
      this.idleBehind = segment === null;
      if (this.queue.reduce((n, q) => n + (q.type === 'av' ? 1 : 0), 0) >= this.maxQueued) this.dropOldest();
      this.queue.push(e);
    } else {
      this.options.log.warn({ type: e.type }, 'livekit-room: takes av frames, segment-ends and flushes; event ignored');
      return;
    }
    this.pump();
  }

  private dropOldest(): void {
    const [gone] = this.queue.splice(
      this.queue.findIndex((q) => q.type === 'av'),
      1,
    );
    if (gone.type === 'av') {
      this.options.budget.release(audioDuration(gone.audio));
      const { segment, index } = gone.video;
      this.options.log.warn({ segment, index, maxQueuedFrames: this.maxQueued }, 'livekit-room: frame queue full; oldest frame dropped');
    }
    this.dropped++;
  }

  /** A flush, from the source's events or the input: the first of its two copies interrupts, the second is let go. */
  private onFlush(f: Flush): void {
    if (this.flushes.has(f.id)) {
      // its copy: this flush, and any older one whose copy was lost on the way, is done
      for (const id of this.flushes) if (id <= f.id) this.flushes.delete(id);
      return;
    }
    this.flushes.add(f.id);
    this.generation++;
    this.finishing.forEach((t) => t.unsubscribe());
    this.finishing.clear();
    for (const e of this.tracker.flush(this.played())) this.subscriber.next(e);
    this.queue.length = 0;
    this.idleBehind = false;
    this.dropDelayed();
    this.out?.reset();
    this.options.budget.reset();
    this.dryAt = null;
    this.subscriber.next(this.metrics());
  }

  private dropDelayed(): void {
    this.delayed.forEach((_, t) => t.unsubscribe());
    this.delayed.clear();
  }

  /** Speech has arrived: drops the idle frames that have not played (see the module doc). */
  private preemptIdle(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const q = this.queue[i];
      if (q.type !== 'av' || q.video.segment !== null) continue;
      this.queue.splice(i, 1);
      this.options.budget.release(audioDuration(q.audio));
      this.preempted++;
    }
    if (this.idleInFlight) this.preemptions++;
    else if (this.out !== null && this.onlyIdleQueued()) this.preempted += this.takeBackIdle(this.out);
  }

  /**
   * Takes the idle audio in the output back (only idle audio may be in it), with the video captures waiting for
   * it; returns the idle frames none of whose audio had played.
   */
  private takeBackIdle(o: AvOutput): number {
    const queuedSeconds = o.queuedMs / 1000;
    if (queuedSeconds <= 0) return 0;
    const now = this.clock - queuedSeconds;
    o.clearQueue();
    this.dryAt = this.scheduler.now();
    this.clock = now;
    for (const [t, start] of this.delayed) {
      if (start < now - EPSILON) continue;
      t.unsubscribe();
      this.delayed.delete(t);
    }
    return Math.floor(queuedSeconds * this.fps + EPSILON);
  }

  /** Publishes the queued frames one at a time; segment-ends schedule their finish as they come out. */
  private pump(): void {
    while (!this.busy && !this.stopped) {
      const e = this.queue.shift();
      if (e === undefined) break;
      if (e.type === 'segment-end') {
        this.endSegment(e);
        continue;
      }
      this.busy = true;
      // a frame published at once (a synchronous output) lets this loop go on; a later one calls pump again
      let looping = true;
      this.publish(e, () => {
        this.busy = false;
        if (!looping) this.pump();
      });
      looping = false;
    }
    this.maybeComplete();
  }

  /** Publishes one frame, then calls `done` (not on an error: the subscriber has it). */
  private publish(f: AvFrame, done: () => void): void {
    this.withOutput(f, (o) => {
      const gen = this.generation;
      const preemptionsBefore = this.preemptions;
      this.idleInFlight = f.video.segment === null;
      let pieces: readonly AudioPiece[];
      try {
        pieces = o.audio(f.audio);
      } catch (err) {
        this.subscriber.error(err);
        return;
      }
      this.feed(o, pieces, { gen, preemptionsBefore, reserved: audioDuration(f.audio), captured: 0 }, (fed) => {
        this.idleInFlight = false;
        this.accepting = 0;
        if (fed === 'accepted') this.accepted(o, f);
        done();
      });
    });
  }

  /** The output, opened at the first frame (once), then `k`; stopped in between: nothing. */
  private withOutput(f: AvFrame, k: (o: AvOutput) => void): void {
    if (this.out !== null) return k(this.out);
    let opened: AvOutput | null = null;
    from(this.options.output(f.video)).subscribe({
      next: (o) => {
        opened = o;
      },
      error: (err: unknown) => this.subscriber.error(err),
      complete: () => {
        if (opened === null) return this.subscriber.error(new Error('livekit-room: the output opened nothing'));
        if (this.stopped) return void opened.close();
        this.out = opened;
        k(opened);
      },
    });
  }

  /**
   * Hands the pieces of a frame's audio over one after the other. Ends 'cancelled' when a flush or the end came
   * while one was captured (what was queued is dropped), 'preempted' when speech preempted this idle frame meanwhile
   * (its audio goes with the idle audio before it).
   */
  private feed(o: AvOutput, pieces: readonly AudioPiece[], f: { gen: number; preemptionsBefore: number; reserved: number; captured: number }, end: (fed: Fed) => void): void {
    const piece = pieces[0];
    if (piece === undefined) return end('accepted');
    this.accepting += piece.seconds;
    this.fed(piece.seconds * 1000);
    this.capturing = from(piece.capture()).subscribe({
      error: (err: unknown) => this.subscriber.error(err),
      complete: () => {
        if (f.gen !== this.generation || this.stopped) {
          o.clearQueue();
          return end('cancelled');
        }
        f.captured += piece.seconds;
        if (this.preemptions !== f.preemptionsBefore && this.onlyIdleQueued()) {
          this.clock += f.captured;
          this.accepting = 0;
          this.options.budget.release(f.reserved);
          this.preempted += Math.max(1, this.takeBackIdle(o));
          return end('preempted');
        }
        this.feed(o, pieces.slice(1), f, end);
      },
    });
  }

  /**
   * Audio of `ms` is handed over now: it plays once what was handed before has played (back to back, in real time).
   * Whole frame periods the track was dry before it count as skipped.
   */
  private fed(ms: number): void {
    const now = this.scheduler.now();
    const frameMs = 1000 / this.fps;
    if (this.dryAt !== null && now - this.dryAt >= frameMs) this.skipped += Math.floor((now - this.dryAt) / frameMs);
    this.dryAt = Math.max(this.dryAt ?? now, now) + ms;
  }

  /** A frame's audio was accepted: the clock moves on, its video goes (now or delayed), playback events follow. */
  private accepted(o: AvOutput, f: AvFrame): void {
    const seconds = chunkDuration(f.audio);
    const start = this.clock;
    this.clock += seconds;
    const segment = f.video.segment;
    if (segment !== null) this.speechUntil = this.clock;
    const reserved = audioDuration(f.audio);
    this.options.budget.release(reserved);
    const delay = this.videoDelayMs === null ? 0 : Math.max(0, o.queuedMs - seconds * 1000) + this.videoDelayMs;
    if (delay <= 0) this.releaseVideo(o, f, start);
    else {
      const gen = this.generation;
      const timer = this.scheduler.schedule(() => {
        this.delayed.delete(timer);
        if (gen === this.generation && !this.stopped) this.releaseVideo(o, f, start);
      }, delay);
      this.delayed.set(timer, start);
    }
    this.frames++;
    const started = segment === null ? null : this.tracker.accepted(segment, start, reserved);
    if (started !== null) this.subscriber.next(started);
    this.subscriber.next(this.metrics());
  }

  /** Hands a frame's video over, stamped `start` (where its audio starts), and takes the A/V offset from that moment. */
  private releaseVideo(o: AvOutput, f: AvFrame, start: number): void {
    o.video(f.video, Math.round(start * 1e6));
    this.avOffsetMs = (start - this.played()) * 1000;
  }

  /** A segment-end came out of the queue: its playback-finished once the audio before it has played. */
  private endSegment(e: SegmentEnd): void {
    if (!this.tracker.end(e.segment)) return;
    const timer = this.scheduler.schedule(() => {
      this.finishing.delete(e.segment);
      const finished = this.tracker.finish(e.segment);
      if (finished !== null) this.subscriber.next(finished);
      this.maybeComplete();
    }, this.out?.queuedMs ?? 0);
    this.finishing.set(e.segment, timer);
  }

  private maybeComplete(): void {
    if (!this.inputDone || this.busy || this.queue.length > 0 || this.tracker.ending) return;
    if (this.out === null) return this.subscriber.complete();
    this.playout ??= from(this.out.playedOut()).subscribe({ error: (err: unknown) => this.subscriber.error(err), complete: () => this.subscriber.complete() });
  }
}
