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
 * - `acquire` resolves with a lease; `release()` (idempotent) drops the lease's reference, and the last
 *   release closes the model. A session that asks while the model is loading waits for that load.
 * - A failed load is not cached: every waiting acquirer gets the ModelError, and the next acquire
 *   tries again.
 * - Logs "model loaded" once per load (info, with the provider it runs on) and "model closed".
 */
import { DEFAULT_PROVIDERS, OnnxModel, type OnnxModelOptions } from './onnx-model.ts';

export interface ModelLease {
  readonly model: OnnxModel;
  /** Gives the reference back; the last one closes the model. Idempotent. */
  release(): Promise<void>;
}

interface Entry {
  readonly loading: Promise<OnnxModel>;
  refs: number;
}

export class ModelCache {
  private readonly entries = new Map<string, Entry>();

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
      const loading = OnnxModel.load(path, options).then((model) => {
        options.log.info({ model: path, provider: model.provider, ms: Math.round(performance.now() - started) }, `model loaded (provider ${model.provider})`);
        return model;
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
    let model: OnnxModel;
    try {
      model = await held.loading;
    } catch (e) {
      held.refs--;
      throw e;
    }
    let released = false;
    return {
      model,
      release: async () => {
        if (released) return;
        released = true;
        held.refs--;
        if (held.refs > 0 || this.entries.get(key) !== held) return;
        this.entries.delete(key);
        await model.close();
        options.log.info({ model: path }, 'model closed');
      },
    };
  }
}

/** The cache of this process: every session of a worker process shares it. */
export const processModels = new ModelCache();
