/**
 * Inference benchmarks for the demo-face model, called by bench/index.ts:
 *  - `demoModelMsPerFrame(batch)`: median wall-clock ms per frame of one `OnnxModel.run` (worker
 *    round trip included) for a batch of `batch` frames of speech-level audio;
 *  - `eventLoopLag()`: how late the main thread's event loop runs (perf_hooks
 *    monitorEventLoopDelay, max and p99, ms) while the worker runs inference back to back.
 * Both load the model on the providers given (default cpu: the number that is comparable across
 * machines) with one intra-op thread, and close it when done.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { DEMO_FACE, DEMO_FACE_MODEL_PATH } from '../src/models/demo-face.ts';
import { OnnxModel, type Provider, type TensorFeed } from '../src/models/onnx-model.ts';

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
