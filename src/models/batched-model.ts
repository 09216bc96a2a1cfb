/**
 * BatchedModel: the runs of many callers (the sessions of a worker process) merged along the batch
 * dimension into one run of a shared model: continuous batching.
 *
 * ```
 * session 1: -r1--------r3---------          (r: a run asked for, with its rows)
 * session 2: ---r2--r4---------r5--
 * model:     -[r1]-[r2,r4]-[r3]-[r5]-        (a run starts when the model is free; what queued meanwhile goes next, together)
 * ```
 *
 * - A run starts as soon as the model is idle, so a lone caller waits for nothing; under load, every
 *   request that queued while the model was busy goes into the next run, up to `maxBatch` rows
 *   (default 16). Requests are taken from the front in order (FIFO) while they fit and have the
 *   same shapes beyond the batch dimension; the first that does not waits for the run after.
 * - Only models whose every input and output has a symbolic first dimension can batch
 *   (`isBatchable`); a request's feeds must agree on their first dimension (its rows).
 * - Outputs are split back by rows: each caller gets views of the merged output (its rows only).
 *   A request run alone has its feed buffers transferred to the inference worker, as OnnxModel.run
 *   does; merged requests are copied into the batch.
 * - Queue: the requests callers have started, so bounded by them (each `infer` keeps at most
 *   `maxInFlight` runs outstanding; strategy wait). A failed run rejects every request in it; a
 *   request that does not fit the model's signature is rejected alone, before it can spoil a batch.
 * - `stats`: runs, requests and rows so far, for the metrics; `onRun` is told of each run.
 * - The wrapped model is not owned: whoever loaded it closes it; requests still queued then fail
 *   with its "closed" error.
 */
import { ModelError } from '../errors.ts';
import type { ModelRunner, TensorData, TensorFeed, TensorResult } from './model-runner.ts';

export interface BatchedModelOptions {
  /** Rows (frames) per model run at most (default 16). */
  readonly maxBatch?: number;
  /** Called when each run has settled (for metrics). */
  readonly onRun?: (run: BatchRun) => void;
}

/** One model run: its rows and requests, its wall time (ms), and the requests still queued when it started. */
export interface BatchRun {
  readonly rows: number;
  readonly requests: number;
  readonly ms: number;
  readonly queued: number;
}

export interface BatchStats {
  readonly runs: number;
  readonly requests: number;
  readonly rows: number;
}

interface Request {
  readonly feeds: Readonly<Record<string, TensorFeed>>;
  readonly rows: number;
  /** Types and dims beyond the batch dimension, per input: requests with the same key can merge. */
  readonly key: string;
  readonly resolve: (r: Record<string, TensorResult>) => void;
  readonly reject: (e: unknown) => void;
}

/** True when every input and output of `model` has a symbolic (any-size) first dimension. */
export const isBatchable = (model: Pick<ModelRunner, 'inputs' | 'outputs'>): boolean =>
  [...model.inputs, ...model.outputs].every((t) => t.shape.length > 0 && (typeof t.shape[0] === 'string' || t.shape[0] === -1));

export class BatchedModel implements ModelRunner {
  private readonly queue: Request[] = [];
  private running = false;
  private counts = { runs: 0, requests: 0, rows: 0 };
  readonly maxBatch: number;

  constructor(
    private readonly model: ModelRunner,
    private readonly options: BatchedModelOptions = {},
  ) {
    if (!isBatchable(model)) throw new ModelError(model.path, 'cannot batch: every input and output needs a symbolic first dimension');
    this.maxBatch = options.maxBatch ?? 16;
  }

  get path(): string {
    return this.model.path;
  }

  get provider(): ModelRunner['provider'] {
    return this.model.provider;
  }

  get inputs(): ModelRunner['inputs'] {
    return this.model.inputs;
  }

  get outputs(): ModelRunner['outputs'] {
    return this.model.outputs;
  }

  get inputNames(): string[] {
    return this.model.inputNames;
  }

  get outputNames(): string[] {
    return this.model.outputNames;
  }

  get stats(): BatchStats {
    return { ...this.counts };
  }

  run(feeds: Readonly<Record<string, TensorFeed>>): Promise<Record<string, TensorResult>> {
    const names = this.model.inputNames;
    const given = Object.keys(feeds);
    if (given.length !== names.length || names.some((n) => !given.includes(n))) return this.model.run(feeds);
    const rows = feeds[names[0]].dims[0];
    const uneven = names.find((n) => feeds[n].dims[0] !== rows || feeds[n].dims.length === 0);
    if (uneven !== undefined || rows === undefined || rows < 1) {
      return Promise.reject(new ModelError(this.path, `input ${uneven ?? names[0]}: every input needs the same batch size (first dimension) of at least 1`));
    }
    const key = JSON.stringify(names.map((n) => [feeds[n].type, feeds[n].dims.slice(1)]));
    return new Promise((resolve, reject) => {
      this.queue.push({ feeds, rows, key, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    const batch = [this.queue.shift()!];
    let rows = batch[0].rows;
    while (this.queue.length > 0 && this.queue[0].key === batch[0].key && rows + this.queue[0].rows <= this.maxBatch) {
      const next = this.queue.shift()!;
      batch.push(next);
      rows += next.rows;
    }
    this.running = true;
    this.counts = { runs: this.counts.runs + 1, requests: this.counts.requests + batch.length, rows: this.counts.rows + rows };
    const started = performance.now();
    const queued = this.queue.length;
    const run = batch.length === 1 ? this.model.run(batch[0].feeds) : Promise.resolve().then(() => this.model.run(merge(this.model.inputNames, batch, rows)));
    run
      .then(
        (outputs) => {
          if (batch.length === 1) return batch[0].resolve(outputs);
          const parts = split(this.path, outputs, batch, rows);
          batch.forEach((r, i) => r.resolve(parts[i]));
        },
        (err: unknown) => batch.forEach((r) => r.reject(err)),
      )
      .catch((err: unknown) => batch.forEach((r) => r.reject(err)))
      .finally(() => {
        this.running = false;
        this.options.onRun?.({ rows, requests: batch.length, ms: performance.now() - started, queued });
        this.pump();
      });
  }
}

/** One feed per input: the requests' feeds concatenated along the first dimension. */
function merge(names: readonly string[], batch: readonly Request[], rows: number): Record<string, TensorFeed> {
  const merged: Record<string, TensorFeed> = {};
  for (const name of names) {
    const first = batch[0].feeds[name];
    const data = allocate(first.data, batch.reduce((n, r) => n + r.feeds[name].data.length, 0));
    let offset = 0;
    for (const r of batch) {
      setFrom(data, r.feeds[name].data, offset);
      offset += r.feeds[name].data.length;
    }
    merged[name] = { type: first.type, dims: [rows, ...first.dims.slice(1)], data };
  }
  return merged;
}

/** Each request's rows of every output (views of the merged output). */
function split(path: string, outputs: Record<string, TensorResult>, batch: readonly Request[], rows: number): Array<Record<string, TensorResult>> {
  const parts: Array<Record<string, TensorResult>> = batch.map(() => ({}));
  for (const [name, out] of Object.entries(outputs)) {
    if (out.dims[0] !== rows || out.data.length % rows !== 0) {
      throw new ModelError(path, `output ${name} has ${out.dims[0]} rows for a batch of ${rows}`);
    }
    const perRow = out.data.length / rows;
    let row = 0;
    batch.forEach((r, i) => {
      parts[i][name] = { type: out.type, dims: [r.rows, ...out.dims.slice(1)], data: out.data.subarray(row * perRow, (row + r.rows) * perRow) };
      row += r.rows;
    });
  }
  return parts;
}

/** A new array of the same kind as `like`, `length` elements. */
function allocate(like: TensorData, length: number): TensorData {
  if (like instanceof Float32Array) return new Float32Array(length);
  if (like instanceof Float64Array) return new Float64Array(length);
  if (like instanceof Uint8Array) return new Uint8Array(length);
  if (like instanceof Int8Array) return new Int8Array(length);
  if (like instanceof Int32Array) return new Int32Array(length);
  return new BigInt64Array(length);
}

function setFrom(into: TensorData, from: TensorData, offset: number): void {
  if (into instanceof BigInt64Array) {
    if (!(from instanceof BigInt64Array)) throw new TypeError('int64 feeds must be BigInt64Array');
    into.set(from, offset);
  } else if (from instanceof BigInt64Array) {
    throw new TypeError('a BigInt64Array feed cannot join a numeric one');
  } else {
    into.set(from, offset);
  }
}
