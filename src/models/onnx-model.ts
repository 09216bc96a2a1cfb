/**
 * OnnxModel: one onnxruntime-node session, run off the main thread in its own worker thread
 * (onnx-worker.ts), because `session.run` blocks the thread it runs on for the whole inference.
 *
 * Execution providers are tried in order (default cuda, webgpu, cpu), one session per attempt:
 * onnxruntime-node does not fall back from a provider that fails to load by itself. Each failed
 * attempt is logged once, as a warning with ORT's reason; the provider finally used is logged at
 * info ("using provider cpu") and kept in `provider`.
 *
 * Sharing: one loaded model may serve many pipelines (sessions). Runs are queued per model, FIFO,
 * and executed one at a time in the worker (ORT serializes runs on one session anyway); the queue
 * holds what callers have started, so it is bounded by them (each `infer` operator keeps at most
 * `maxInFlight` runs outstanding). The batch dimension is the way to run many frames at once.
 *
 * Teardown is explicit: `close()` fails the runs still queued and ends the worker.
 * Problems with the model (missing or corrupt file, wrong input names, a failed run) reject with
 * a one-line ModelError naming the file; they never crash the process.
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ModelError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { WorkerReply, WorkerRequest } from './onnx-worker.ts';

export type Provider = 'cuda' | 'webgpu' | 'cpu';

/** The default provider order: the first that loads is used. */
export const DEFAULT_PROVIDERS: readonly Provider[] = ['cuda', 'webgpu', 'cpu'];

export type TensorType = 'float32' | 'float64' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool';
export type TensorData = Float32Array | Float64Array | Uint8Array | Int8Array | Int32Array | BigInt64Array;

/** An input tensor. `dims` are row-major; `data` holds their product of elements. */
export interface TensorFeed {
  readonly type: TensorType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

export interface TensorResult {
  readonly type: TensorType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** A model input or output as declared in the file: symbolic dimensions are strings ('N'). */
export interface TensorInfo {
  readonly name: string;
  /** null for a non-tensor value. */
  readonly type: string | null;
  readonly shape: ReadonlyArray<number | string>;
}

/**
 * What a renderer needs of a model: its signature and runs. An OnnxModel is one; so is a BatchedModel,
 * which merges the runs of many sessions into one.
 */
export interface ModelRunner {
  /** The model file. */
  readonly path: string;
  /** The execution provider the session runs on. */
  readonly provider: Provider;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly inputNames: string[];
  readonly outputNames: string[];
  run(feeds: Readonly<Record<string, TensorFeed>>): Promise<Record<string, TensorResult>>;
}

export interface OnnxModelOptions {
  /** Execution providers to try, in order (default cuda, webgpu, cpu). */
  readonly providers?: readonly Provider[];
  /** Threads ORT uses inside one operator (default 1: the machine is shared by many sessions). */
  readonly intraOpThreads?: number;
  readonly log: Logger;
}

type Pending = { resolve: (r: WorkerReply) => void; reject: (e: Error) => void };

/** Request/reply plumbing over one worker; replies are matched to requests by id. */
class WorkerChannel {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: string | null = null;
  private readonly exited: Promise<void>;

  constructor(private readonly path: string) {
    this.worker = new Worker(new URL('./onnx-worker-boot.mjs', import.meta.url));
    // An idle model does not keep the process alive; a queued run does (see request()).
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (reply: WorkerReply) => this.settle(reply.id, (p) => p.resolve(reply)));
    this.worker.on('error', (e) => this.fail(`inference worker failed: ${e.message}`));
    this.worker.on('exit', (code) => this.fail(`inference worker exited (code ${code})`));
  }

  request(message: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(new ModelError(this.path, this.failure));
    return new Promise((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage(message, transfer);
    });
  }

  id(): number {
    return this.nextId++;
  }

  /**
   * Fails what is pending with `why` at once, then lets the worker finish the run it is in, release
   * the session and exit by itself (see onnx-worker.ts for why it is not terminated). Idempotent.
   */
  close(why: string): Promise<void> {
    if (!this.failure) {
      this.fail(why);
      this.worker.ref();
      this.worker.postMessage({ id: this.id(), op: 'close' } satisfies WorkerRequest);
    }
    return this.exited;
  }

  private settle(id: number, f: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    f(p);
  }

  private fail(why: string): void {
    this.failure ??= why;
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(new ModelError(this.path, why)));
  }
}

/** The first line of an ORT error, without the path it repeats or the source location of a failed check. */
function reason(error: string, path: string): string {
  const line = (error.split('\n')[0] ?? '').replaceAll(path, '<model>');
  const check = line.indexOf(' was false. ');
  return (check >= 0 ? line.slice(check + ' was false. '.length) : line).trim();
}

/** Where onnxruntime-node loads provider libraries from (its binding's folder). */
const ORT_BIN = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);

/** Provider libraries the cuda provider needs beside onnxruntime-node's binding; missing ones are named. */
function missingCudaLibraries(): string[] {
  if (process.platform !== 'linux') return [];
  return ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'].filter((f) => !existsSync(join(ORT_BIN, f)));
}

/**
 * Providers this process cannot use at all (libraries not installed, no GPU adapter), with the
 * reason: found once, warned once, then skipped quietly by every later load (every session).
 */
const unavailable = new Map<Provider, string>();
const ENVIRONMENTAL = /Failed to load shared library|No supported adapters|libvulkan|not installed/;

export class OnnxModel implements ModelRunner {
  private constructor(
    /** The model file. */
    readonly path: string,
    /** The execution provider the session runs on. */
    readonly provider: Provider,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
    private readonly channel: WorkerChannel,
  ) {}

  get inputNames(): string[] {
    return this.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.outputs.map((o) => o.name);
  }

  /** Loads `path` on the first provider of `options.providers` that works; ModelError if none does. */
  static async load(path: string, options: OnnxModelOptions): Promise<OnnxModel> {
    const { providers = DEFAULT_PROVIDERS, intraOpThreads = 1, log } = options;
    const file = await stat(path).catch(() => null);
    if (!file) throw new ModelError(path, 'no such file');
    if (!file.isFile()) throw new ModelError(path, 'not a file');
    if (providers.length === 0) throw new ModelError(path, 'no execution provider to try (providers is empty)');
    const channel = new WorkerChannel(path);
    let last = '';
    for (const provider of providers) {
      const known = unavailable.get(provider);
      if (known !== undefined) {
        last = known;
        log.debug({ model: path, provider }, `skipping provider ${provider}: ${known}`);
        continue;
      }
      const missing = provider === 'cuda' ? missingCudaLibraries() : [];
      const reply: WorkerReply =
        missing.length > 0
          ? { id: -1, ok: false, error: `${missing.join(' and ')} not installed in ${relative(process.cwd(), ORT_BIN)} (see README: GPU)` }
          : await channel.request({ id: channel.id(), op: 'load', path, provider, intraOpThreads }).catch(
              (e: Error): WorkerReply => ({ id: -1, ok: false, error: e instanceof ModelError ? e.problem : e.message }),
            );
      if (reply.ok && reply.op === 'load') {
        log.info({ model: path, provider }, `using provider ${provider}`);
        return new OnnxModel(path, provider, reply.inputs, reply.outputs, channel);
      }
      last = reply.ok ? 'unexpected reply' : reason(reply.error, path);
      if (ENVIRONMENTAL.test(last)) unavailable.set(provider, last);
      if (provider !== providers[providers.length - 1]) {
        log.warn({ model: path, provider }, `provider ${provider} unavailable, trying the next: ${last}`);
      }
    }
    await channel.close('closed');
    const tried = providers.length > 1 ? ` (tried ${providers.join(', ')})` : '';
    throw new ModelError(path, `cannot load${tried}: ${last}`);
  }

  /**
   * Runs the model once. `feeds` must name exactly the model's inputs. Feed arrays that span their
   * whole ArrayBuffer are transferred to the worker (they are left empty); others are copied.
   * Resolves with every output, its buffer transferred back.
   */
  async run(feeds: Readonly<Record<string, TensorFeed>>): Promise<Record<string, TensorResult>> {
    const given = Object.keys(feeds);
    const missing = this.inputNames.filter((n) => !given.includes(n));
    const unknown = given.filter((n) => !this.inputNames.includes(n));
    if (missing.length > 0 || unknown.length > 0) {
      const parts = [missing.length > 0 ? `missing input ${missing.join(', ')}` : '', unknown.length > 0 ? `unknown input ${unknown.join(', ')}` : ''];
      throw new ModelError(this.path, `${parts.filter(Boolean).join('; ')} (expects ${this.inputNames.join(', ')})`);
    }
    const sent: Record<string, TensorFeed> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, f] of Object.entries(feeds)) {
      const whole = f.data.buffer instanceof ArrayBuffer && f.data.byteOffset === 0 && f.data.byteLength === f.data.buffer.byteLength;
      const data = whole ? f.data : f.data.slice();
      sent[name] = { type: f.type, dims: [...f.dims], data };
      if (data.buffer instanceof ArrayBuffer && !transfer.includes(data.buffer)) transfer.push(data.buffer);
    }
    const reply = await this.channel.request({ id: this.channel.id(), op: 'run', feeds: sent }, transfer);
    if (!reply.ok) throw new ModelError(this.path, `run failed: ${reason(reply.error, this.path)}`);
    if (reply.op !== 'run') throw new ModelError(this.path, 'run failed: unexpected reply');
    return reply.outputs;
  }

  /**
   * Ends the worker: runs still queued reject at once with ModelError "closed"; resolves when the
   * worker has finished the run it was in, released the session and exited. Idempotent.
   */
  close(): Promise<void> {
    return this.channel.close('closed');
  }
}
