/**
 * The workers' Prometheus metrics (prom-client): their names, and how a worker's figures become them.
 * The names and what they mean are listed in docs/metrics.md; this file is their single definition.
 *
 * ```
 * worker main process   WorkerMetrics: sessions, jobs, model runs of the model server     --\
 * job process (room A)  JobMetrics: session snapshots + renders --relay (1 s)--> main ------+--> /metrics
 * job process (room B)  JobMetrics ... ----------------------------------------------------/   (summed)
 * ```
 *
 * - Units are in the names: `_ms` milliseconds, `_seconds` seconds, `_frames` frames; counters end in `_total`.
 * - Job processes count their session's totals (counters and histograms, no room label: summed over the worker's
 *   sessions) and set its levels (gauges, label `room`, gone when the session ends). SessionMetrics snapshots are
 *   cumulative per session; each counter is advanced by the difference to the previous snapshot.
 * - Every process defines every metric (`defineMetrics`), so a scrape lists all the names before any session ran.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { map, Observable, pairwise, startWith } from 'rxjs';
import type { BatchRun } from '../models/batched-model.ts';
import type { SessionMetrics } from './session-metrics.ts';

/** Frames per model run, for the batch-size histogram. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];
/** Milliseconds, for model times: from a GPU frame (about 1 ms) to a CPU SyncTalk frame (over a second). */
const MS_BUCKETS = [1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560];

/** All the metrics of a worker, registered in one registry. */
export type WorkerMetricSet = ReturnType<typeof defineMetrics>;

/** Defines every synctalk metric in `registry`; `liveSessions` (the main process's count) is read at each scrape. */
export function defineMetrics(registry: Registry, liveSessions?: () => number) {
  const registers = [registry];
  return {
    registry,
    sessions: new Gauge({
      name: 'synctalk_sessions',
      help: 'Sessions (jobs) this worker is serving now: accepted and not ended',
      registers,
      collect() {
        if (liveSessions) this.set(liveSessions());
      },
    }),
    sessionsMax: new Gauge({ name: 'synctalk_sessions_max', help: 'Sessions this worker serves at once at most (SYNCTALK_AVATAR_MAX_JOBS / SYNCTALK_AGENT_MAX_JOBS)', registers }),
    jobs: new Counter({
      name: 'synctalk_jobs_total',
      help: 'Job requests from LiveKit by outcome: accepted, rejected_full (the worker was full), rejected_metadata (bad dispatch metadata)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    sessionEnds: new Counter({ name: 'synctalk_session_ends_total', help: 'Avatar sessions ended, by reason (agent left, room disconnected, closed, pipeline ended, pipeline failed)', labelNames: ['reason'] as const, registers }),
    framesPublished: new Counter({ name: 'synctalk_frames_published_total', help: 'Video frames published to rooms (idle and speech)', registers }),
    framesDropped: new Counter({ name: 'synctalk_frames_dropped_total', help: 'Frames the publisher dropped: its queue was full, or their segment was interrupted', registers }),
    framesPreempted: new Counter({ name: 'synctalk_frames_preempted_total', help: 'Idle frames dropped before they played because speech arrived (not a loss)', registers }),
    framesSkipped: new Counter({ name: 'synctalk_frames_skipped_total', help: 'Frame periods the output clock missed because rendering did not keep up with real time', registers }),
    audioSeconds: new Counter({ name: 'synctalk_audio_published_seconds_total', help: 'Seconds of audio published to rooms', registers }),
    playback: new Counter({ name: 'synctalk_playback_events_total', help: 'Speech segments by playback event: started, finished (played out), interrupted (lk.clear_buffer)', labelNames: ['event'] as const, registers }),
    modelMsPerFrame: new Histogram({
      name: 'synctalk_model_ms_per_frame',
      help: "Model time per rendered frame as a session sees it: each render's round trip (queueing and batching included) divided by its frames",
      buckets: MS_BUCKETS,
      registers,
    }),
    budgetQueued: new Gauge({ name: 'synctalk_budget_queued_seconds', help: "Audio in flight between a session's source and its sink (bounded by the pipeline's budgetSeconds)", labelNames: ['room'] as const, registers }),
    publisherQueued: new Gauge({ name: 'synctalk_publisher_queued_frames', help: "Frames waiting in a session's room publisher", labelNames: ['room'] as const, registers }),
    avOffset: new Gauge({ name: 'synctalk_av_offset_ms', help: "A session's A/V offset at the publisher: ms the last frame's audio starts after its video (negative: video after audio)", labelNames: ['room'] as const, registers }),
    batchFrames: new Histogram({ name: 'synctalk_model_batch_frames', help: "Frames per model run of the worker's model server (sessions' frames batched together)", labelNames: ['model'] as const, buckets: BATCH_BUCKETS, registers }),
    runMs: new Histogram({ name: 'synctalk_model_run_ms', help: "Milliseconds per model run of the worker's model server (a whole batch)", labelNames: ['model'] as const, buckets: MS_BUCKETS, registers }),
    modelQueued: new Gauge({ name: 'synctalk_model_queued_requests', help: "Render requests left waiting for the model server's next run when its last run started", labelNames: ['model'] as const, registers }),
  };
}

/**
 * A worker main process's metrics: everything defined, plus Node's process metrics (nodejs_*, process_*);
 * `liveSessions` is the count the worker reports to LiveKit as its load.
 */
export function workerMetrics(options: { readonly maxJobs: number; readonly liveSessions: () => number }): WorkerMetricSet {
  const registry = new Registry();
  const m = defineMetrics(registry, options.liveSessions);
  collectDefaultMetrics({ register: registry });
  m.sessionsMax.set(options.maxJobs);
  return m;
}

/** Records one run of the batching model at `path` (the model server's ModelCache `onRun`). */
export function recordModelRun(m: WorkerMetricSet, path: string, run: BatchRun): void {
  const labels = { model: path };
  m.batchFrames.observe(labels, run.rows);
  m.runMs.observe(labels, run.ms);
  m.modelQueued.set(labels, run.queued);
}

/** Records one render of a session: `ms` for `frames` frames (each frame observed at ms / frames). */
export function recordRender(m: WorkerMetricSet, ms: number, frames: number): void {
  for (let i = 0; i < frames; i++) m.modelMsPerFrame.observe(ms / frames);
}

const ZERO: Pick<
  SessionMetrics,
  'framesPublished' | 'droppedFrames' | 'idlePreemptedFrames' | 'skippedFrames' | 'audioSeconds' | 'segmentsStarted' | 'segmentsFinished' | 'segmentsInterrupted'
> = {
  framesPublished: 0,
  droppedFrames: 0,
  idlePreemptedFrames: 0,
  skippedFrames: 0,
  audioSeconds: 0,
  segmentsStarted: 0,
  segmentsFinished: 0,
  segmentsInterrupted: 0,
};

/**
 * A session's metrics into the registry of its job process: the counters advance by what each snapshot adds
 * to the one before, the room's gauges take its levels; on completion (the session ended) the room's gauges
 * are removed.
 *
 * ```
 * snapshots: -s1------s2------s3---|
 * counters:  -+s1-----+(s2-s1)+(s3-s2)
 * gauges:    -g1------g2------g3---x   (x: the room's series removed)
 * ```
 */
export function recordSession(m: WorkerMetricSet, room: string) {
  const labels = { room };
  const grow = (counter: Counter, by: number): void => {
    if (by > 0) counter.inc(by);
  };
  return (snapshots: Observable<SessionMetrics>): Observable<SessionMetrics> =>
    new Observable<SessionMetrics>((subscriber) => {
      const sub = snapshots
        .pipe(
          startWith(ZERO as SessionMetrics),
          pairwise(),
          map(([before, now]) => {
            grow(m.framesPublished, now.framesPublished - before.framesPublished);
            grow(m.framesDropped, now.droppedFrames - before.droppedFrames);
            grow(m.framesPreempted, now.idlePreemptedFrames - before.idlePreemptedFrames);
            grow(m.framesSkipped, now.skippedFrames - before.skippedFrames);
            grow(m.audioSeconds, now.audioSeconds - before.audioSeconds);
            m.playback.inc({ event: 'started' }, Math.max(0, now.segmentsStarted - before.segmentsStarted));
            m.playback.inc({ event: 'finished' }, Math.max(0, now.segmentsFinished - before.segmentsFinished));
            m.playback.inc({ event: 'interrupted' }, Math.max(0, now.segmentsInterrupted - before.segmentsInterrupted));
            m.budgetQueued.set(labels, now.budgetQueuedSeconds);
            m.publisherQueued.set(labels, now.publisherQueuedFrames);
            m.avOffset.set(labels, now.avOffsetMs);
            return now;
          }),
        )
        .subscribe(subscriber);
      sub.add(() => {
        m.budgetQueued.remove(labels);
        m.publisherQueued.remove(labels);
        m.avOffset.remove(labels);
      });
      return sub;
    });
}
