/**
 * ModelCache: one loaded model per process, shared by every session that uses it, ref-counted.
 *
 * ```
 * session A: acquire(demo) ----------------------- release
 * session B:        acquire(demo) --- release
 * model:     load ------------------------------------------ close    (one load, closed by the last release)
 * ```
 *
 * - Models are keyed by file path, provider list and thread count: sessions asking for the same model
 *   the same way share one OnnxModel (one worker thread, one ORT session; its runs are queued there).
 * - Batching: a model that can batch (every input and output has a symbolic first dimension, as the
 *   demo face and a SyncTalk bundle's graphs do) is handed out wrapped in one BatchedModel, so the frames
 *   that sessions ask for while the model is busy go into its next run together, up to `maxBatch` rows
 *   (default 16; 1 turns batching off). A model with a fixed batch size is handed out as it is.
 * - `acquire` resolves with a lease; `release()` (idempotent) drops the lease's reference, and the last
 *   release closes the model. A session that asks while the model is loading waits for that load.
 * - A failed load is not cached: every waiting acquirer gets the ModelError, and the next acquire
 *   tries again.
 * - Logs "model loaded" once per load (info, with the provider it runs on) and "model closed".
 */
import { BatchedModel, type BatchRun, type BatchStats, isBatchable } from './batched-model.ts';
import { DEFAULT_PROVIDERS, type ModelRunner } from './model-runner.ts';
import { OnnxModel, type OnnxModelOptions } from './onnx-model.ts';

export interface ModelCacheOptions {
  /** Rows per run when sessions' runs are merged (default 16; 1: no batching). */
  readonly maxBatch?: number;
  /** Told of each run of a batching model, with the model's path (for metrics). */
  readonly onRun?: (path: string, run: BatchRun) => void;
}

export interface ModelLease {
  /** The shared model: a BatchedModel over it when it can batch. */
  readonly model: ModelRunner;
  /** Gives the reference back; the last one closes the model. Idempotent. */
  release(): Promise<void>;
}

/** Where a session's models come from: this process's ModelCache, or the worker's model server (RemoteModels). */
export interface ModelSource {
  /** A lease on the model at `path`; its `release` gives it back. */
  acquire(path: string, options: OnnxModelOptions): Promise<ModelLease>;
}

interface Loaded {
  readonly model: OnnxModel;
  readonly runner: ModelRunner;
}

interface Entry {
  readonly loading: Promise<Loaded>;
  refs: number;
}

export class ModelCache implements ModelSource {
  private readonly entries = new Map<string, Entry>();
  /** The BatchedModels handed out now. */
  private batched: BatchedModel[] = [];
  readonly maxBatch: number;
  private readonly onRun: ModelCacheOptions['onRun'];

  constructor(options: ModelCacheOptions = {}) {
    this.onRun = options.onRun;
    this.maxBatch = options.maxBatch ?? 16;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer; is ${options.maxBatch}`);
  }

  /** Runs, requests and rows of each batching model loaded now, by path. */
  batchStats(): Array<{ path: string } & BatchStats> {
    return this.batched.map((b) => ({ path: b.path, ...b.stats }));
  }

  /** Models loaded or loading now. */
  get size(): number {
    return this.entries.size;
  }

  /** A lease on the model at `path`, loaded now if no session holds it. */
  async acquire(path: string, options: OnnxModelOptions): Promise<ModelLease> {
    const key = JSON.stringify([path, options.providers ?? DEFAULT_PROVIDERS, options.intraOpThreads ?? 1]);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const started = performance.now();
      const loading = OnnxModel.load(path, options).then((model): Loaded => {
        const batching = this.maxBatch > 1 && isBatchable(model);
        options.log.info(
          { model: path, provider: model.provider, ms: Math.round(performance.now() - started), maxBatch: batching ? this.maxBatch : 1 },
          `model loaded (provider ${model.provider}${batching ? `, sessions' frames batched up to ${this.maxBatch}` : ''})`,
        );
        if (!batching) return { model, runner: model };
        const onRun = this.onRun;
        const runner = new BatchedModel(model, { maxBatch: this.maxBatch, ...(onRun ? { onRun: (run: BatchRun) => onRun(path, run) } : {}) });
        this.batched.push(runner);
        return { model, runner };
      });
      const created: Entry = { loading, refs: 0 };
      entry = created;
      this.entries.set(key, created);
      loading.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
    }
    entry.refs++;
    const held = entry;
    let loaded: Loaded;
    try {
      loaded = await held.loading;
    } catch (e) {
      held.refs--;
      throw e;
    }
    let released = false;
    const { model, runner } = loaded;
    return {
      model: runner,
      release: async () => {
        if (released) return;
        released = true;
        held.refs--;
        if (held.refs > 0 || this.entries.get(key) !== held) return;
        this.entries.delete(key);
        this.batched = this.batched.filter((b) => b !== runner);
        await model.close();
        options.log.info({ model: path }, 'model closed');
      },
    };
  }
}

/** The cache of this process: every session of a worker process shares it. */
export const processModels = new ModelCache();

/** No sharing: every acquire loads a model of its own, closed by its release (a pipeline run outside a live worker). */
export const privateModels: ModelSource = {
  acquire: async (path, options) => {
    const model = await OnnxModel.load(path, options);
    return { model, release: () => model.close() };
  },
};
