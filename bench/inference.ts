/**
 * Inference benchmarks for the demo-face model, called by bench/index.ts:
 *  - `demoModelMsPerFrame(batch)`: median wall-clock ms per frame of one `OnnxModel.run` (worker
 *    round trip included) for a batch of `batch` frames of speech-level audio;
 *  - `eventLoopLag()`: how late the main thread's event loop runs (perf_hooks
 *    monitorEventLoopDelay, max and p99, ms) while the worker runs inference back to back;
 *  - `sharedModelThroughput(sessions)`: frames per second of one loaded model driven by `sessions`
 *    concurrent sessions the way the live `infer` operator drives it (2 runs in flight per session,
 *    2-frame chunks), once with every run sent to the model on its own (serialized FIFO by
 *    OnnxModel) and once merged by a BatchedModel.
 * All load the model on the providers given (default cpu: the number that is comparable across
 * machines) with one intra-op thread, and close it when done.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { BatchedModel } from '../src/models/batched-model.ts';
import { DEMO_FACE, DEMO_FACE_MODEL_PATH } from '../src/models/demo-face.ts';
import type { ModelRunner, Provider, TensorFeed } from '../src/models/model-runner.ts';
import { OnnxModel } from '../src/models/onnx-model.ts';

export interface InferenceBenchOptions {
  /** Execution providers to try, in order (default ['cpu']). */
  readonly providers?: readonly Provider[];
  /** Threads ORT uses per operator (default 1). */
  readonly intraOpThreads?: number;
}

export interface EventLoopLag {
  /** Worst event-loop delay seen, ms. */
  readonly maxMs: number;
  /** 99th percentile of the event-loop delay, ms. */
  readonly p99Ms: number;
  /** Inference runs completed while measuring. */
  readonly runs: number;
  /** The provider the model ran on. */
  readonly provider: Provider;
}

export interface SharedModelOptions extends InferenceBenchOptions {
  /** Frames each session renders in the measured pass (default 200). */
  readonly framesPerSession?: number;
  /** Frames each session renders, unmeasured, before each measured pass (default 20). */
  readonly warmupFramesPerSession?: number;
  /** Rows per model run at most when batched (default 16). */
  readonly maxBatch?: number;
}

export interface SharedModelThroughput {
  /** Frames per second, all sessions together, every request its own model run. */
  readonly unbatchedFps: number;
  /** Frames per second, all sessions together, requests merged by BatchedModel. */
  readonly batchedFps: number;
  /** batchedFps / unbatchedFps. */
  readonly speedup: number;
  /** Mean rows (frames) per model run in the measured batched pass. */
  readonly meanRowsPerRun: number;
}

/** Feeds for `batch` frames of a -20 dBFS 200 Hz sine (mouth about 80 % open). */
function feeds(batch: number, phase0: number): Record<string, TensorFeed> {
  const n = DEMO_FACE.samplesPerFrame;
  const amplitude = Math.sqrt(2 * 10 ** (-20 / 10));
  return {
    audio: {
      type: 'float32',
      dims: [batch, n],
      data: Float32Array.from({ length: batch * n }, (_, i) => amplitude * Math.sin((2 * Math.PI * 200 * i) / DEMO_FACE.sampleRate)),
    },
    phase: { type: 'float32', dims: [batch], data: Float32Array.from({ length: batch }, (_, k) => phase0 + k) },
  };
}

const load = (options: InferenceBenchOptions) =>
  OnnxModel.load(DEMO_FACE_MODEL_PATH, {
    providers: options.providers ?? ['cpu'],
    intraOpThreads: options.intraOpThreads ?? 1,
    log: pino({ level: 'warn' }),
  });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** Median ms per frame of the demo model at batch size `batch`, over `runs` runs after `warmup`. */
export async function demoModelMsPerFrame(batch: number, runs = 30, warmup = 5, options: InferenceBenchOptions = {}): Promise<number> {
  const model = await load(options);
  try {
    const times: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const input = feeds(batch, i * batch);
      const t0 = performance.now();
      await model.run(input);
      if (i >= warmup) times.push((performance.now() - t0) / batch);
    }
    return median(times);
  } finally {
    await model.close();
  }
}

/**
 * Event-loop delay on the main thread (resolution 1 ms) while the worker runs batches of `batch`
 * frames back to back for `seconds`.
 */
export async function eventLoopLag(seconds = 3, batch = 8, options: InferenceBenchOptions = {}): Promise<EventLoopLag> {
  const model = await load(options);
  try {
    await model.run(feeds(batch, 0));
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const end = performance.now() + seconds * 1000;
    let runs = 0;
    while (performance.now() < end) {
      await model.run(feeds(batch, runs * batch));
      runs++;
    }
    histogram.disable();
    return { maxMs: histogram.max / 1e6, p99Ms: histogram.percentile(99) / 1e6, runs, provider: model.provider };
  } finally {
    await model.close();
  }
}

/** Frames per request: one 1280-sample chunk, as the live `infer` operator sends the demo model. */
const FRAMES_PER_REQUEST = DEMO_FACE.chunkSamples / DEMO_FACE.samplesPerFrame;
/** Requests each session keeps outstanding (the `infer` operator's maxInFlight). */
const IN_FLIGHT_PER_SESSION = 2;

/**
 * Wall-clock ms for `sessions` concurrent sessions to render `frames` frames each through `runner`:
 * each keeps IN_FLIGHT_PER_SESSION requests of FRAMES_PER_REQUEST frames outstanding and issues the
 * next as soon as one completes. Feeds are fresh per request (OnnxModel.run detaches them).
 */
async function driveSessions(runner: ModelRunner, sessions: number, frames: number): Promise<number> {
  const requests = Math.ceil(frames / FRAMES_PER_REQUEST);
  const session = async (): Promise<void> => {
    let issued = 0;
    const lane = async (): Promise<void> => {
      while (issued < requests) {
        const phase0 = issued * FRAMES_PER_REQUEST;
        issued++;
        await runner.run(feeds(FRAMES_PER_REQUEST, phase0));
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT_PER_SESSION }, lane));
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, session));
  return performance.now() - t0;
}

/**
 * Throughput of one demo model shared by `sessions` sessions, unbatched then batched (each pass
 * after its own warm-up), on the same loaded model.
 */
export async function sharedModelThroughput(sessions: number, options: SharedModelOptions = {}): Promise<SharedModelThroughput> {
  const frames = options.framesPerSession ?? 200;
  const warmup = options.warmupFramesPerSession ?? 20;
  const model = await load(options);
  try {
    const total = sessions * Math.ceil(frames / FRAMES_PER_REQUEST) * FRAMES_PER_REQUEST;
    await driveSessions(model, sessions, warmup);
    const unbatchedMs = await driveSessions(model, sessions, frames);
    const batched = new BatchedModel(model, { maxBatch: options.maxBatch ?? 16 });
    await driveSessions(batched, sessions, warmup);
    const before = batched.stats;
    const batchedMs = await driveSessions(batched, sessions, frames);
    const after = batched.stats;
    const unbatchedFps = (total * 1000) / unbatchedMs;
    const batchedFps = (total * 1000) / batchedMs;
    return {
      unbatchedFps,
      batchedFps,
      speedup: batchedFps / unbatchedFps,
      meanRowsPerRun: (after.rows - before.rows) / (after.runs - before.runs),
    };
  } finally {
    await model.close();
  }
}
