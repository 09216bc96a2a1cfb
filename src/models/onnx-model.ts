/**
 * OnnxModel: one onnxruntime-node session, run off the main thread in a worker thread (onnx-worker.ts), because
 * `session.run` blocks the thread it runs on for the whole inference.
 *
 * Execution providers are tried in order (default cuda, webgpu, cpu), one session per attempt:
 * onnxruntime-node does not fall back from a provider that fails to load by itself. Each failed
 * attempt is logged once, as a warning with ORT's reason; the provider finally used is logged at
 * info ("using provider cpu") and kept in `provider`.
 *
 * Placement: ORT runs the nodes a provider has no kernel for on the CPU, silently. The first run of a model on a
 * GPU provider reports where its nodes really ran (ORT's profile of that run, see onnx-worker.ts), logged once at
 * info, e.g. "runs on webgpu: 480 nodes on webgpu, 13 nodes on cpu (Add, Greater, Mul, Or), 9 host<->device copies",
 * and kept in `placement`.
 *
 * Threads: a cpu or cuda model has a worker thread of its own. Every WebGPU model of the process shares one
 * worker thread (created with the first, ended with the last): two threads running WebGPU sessions at once crash
 * onnxruntime 1.30 (SIGSEGV or "CommandEncoder is already finished", microsoft/onnxruntime#32561), so all WebGPU
 * loads and runs of a process go through one thread, one at a time.
 *
 * Sharing: one loaded model may serve many pipelines (sessions). Runs are queued per thread, FIFO,
 * and executed one at a time in the worker (ORT serializes runs on one session anyway); the queue
 * holds what callers have started, so it is bounded by them (each `infer` operator keeps at most
 * `maxInFlight` runs outstanding). The batch dimension is the way to run many frames at once.
 *
 * Teardown is explicit: `close()` fails the model's runs still queued and releases its session (and ends its thread).
 * Problems with the model (missing or corrupt file, wrong input names, a failed run) reject with
 * a one-line ModelError naming the file; they never crash the process.
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { InputError, ModelError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { DEFAULT_PROVIDERS, type ModelRunner, type Provider, type TensorFeed, type TensorInfo, type TensorResult } from './model-runner.ts';
import type { WorkerData, WorkerReply, WorkerRequest } from './onnx-worker.ts';
import type { Placement } from './ort-placement.ts';

export type { Placement } from './ort-placement.ts';

export interface OnnxModelOptions {
  /** Execution providers to try, in order (default cuda, webgpu, cpu). */
  readonly providers?: readonly Provider[];
  /** Threads ORT uses inside one operator (default 1: the machine is shared by many sessions). */
  readonly intraOpThreads?: number;
  readonly log: Logger;
}

type Pending = { readonly session: number | null; resolve: (r: WorkerReply) => void; reject: (e: Error) => void };

/**
 * The worker thread's entry: the compiled onnx-worker.js beside this module (the built package, dist/), or,
 * when this module runs from the TypeScript sources (tsx), a boot module that registers tsx in the thread first.
 */
const WORKER_ENTRY = new URL(import.meta.url.endsWith('.ts') ? './onnx-worker-boot.mjs' : './onnx-worker.js', import.meta.url);

/**
 * The nice value of inference threads: SYNCTALK_INFERENCE_NICE, 0 to 19 (default 0: the process's own). A value
 * above the process's favours the main thread, whose event loop paces audio and video, on a CPU-only machine whose
 * cores serve nothing else; beside other busy processes it starves inference (see onnx-worker.ts).
 */
function inferenceNice(): number {
  const raw = process.env.SYNCTALK_INFERENCE_NICE;
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new InputError('SYNCTALK_INFERENCE_NICE', `not a whole number from 0 to 19: ${raw}`);
  return n;
}

/** Request/reply plumbing over one worker thread; replies are matched to requests by id, requests name their session. */
class WorkerChannel {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending & { readonly path: string }>();
  private nextId = 0;
  private failure: string | null = null;
  private readonly exited: Promise<void>;

  constructor() {
    this.worker = new Worker(WORKER_ENTRY, { workerData: { nice: inferenceNice() } satisfies WorkerData });
    // An idle thread does not keep the process alive; a queued request does (see request()).
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (reply: WorkerReply) => this.settle(reply.id, (p) => p.resolve(reply)));
    this.worker.on('error', (e) => this.fail(`inference worker failed: ${e.message}`));
    this.worker.on('exit', (code) => this.fail(`inference worker exited (code ${code})`));
  }

  /** Sends `message` (for `path`'s session): its reply, or a ModelError(path) if the thread fails first. */
  request(path: string, message: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(new ModelError(path, this.failure));
    return new Promise((resolve, reject) => {
      this.pending.set(message.id, { path, session: 'session' in message ? message.session : null, resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage(message, transfer);
    });
  }

  id(): number {
    return this.nextId++;
  }

  /** Fails the requests of `session` still pending with `why` at once (the worker answers them "closed" later). */
  failSession(session: number, why: string): void {
    for (const [id, p] of [...this.pending]) if (p.session === session) this.settle(id, (q) => q.reject(new ModelError(q.path, why)));
  }

  /**
   * Fails what is pending with `why` at once, then lets the worker finish the run it is in, release
   * its sessions and exit by itself (see onnx-worker.ts for why it is not terminated). Idempotent.
   */
  close(why: string): Promise<void> {
    if (!this.failure) {
      this.fail(why);
      this.worker.ref();
      this.worker.postMessage({ id: this.id(), op: 'close' } satisfies WorkerRequest);
    }
    return this.exited;
  }

  private settle(id: number, f: (p: Pending & { readonly path: string }) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    f(p);
  }

  private fail(why: string): void {
    this.failure ??= why;
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(new ModelError(p.path, why)));
  }
}

/** A model's use of a worker thread: `leave()` ends a thread of its own, or drops its share of the WebGPU thread. */
interface ThreadLease {
  readonly channel: WorkerChannel;
  leave(): Promise<void>;
}

const ownThread = (): ThreadLease => {
  const channel = new WorkerChannel();
  return { channel, leave: () => channel.close('closed') };
};

/** The process's WebGPU thread and the models on it; `exiting` while the last one's thread ends. */
let webGpuThread: { readonly channel: WorkerChannel; users: number } | null = null;
let webGpuExiting: Promise<void> | null = null;

/** A share of the WebGPU thread; a new thread is started only after the previous one has exited. */
async function joinWebGpuThread(): Promise<ThreadLease> {
  while (webGpuThread === null && webGpuExiting !== null) await webGpuExiting;
  const thread = (webGpuThread ??= { channel: new WorkerChannel(), users: 0 });
  thread.users++;
  let left = false;
  return {
    channel: thread.channel,
    leave: async () => {
      if (left) return;
      left = true;
      if (--thread.users > 0 || webGpuThread !== thread) return;
      webGpuThread = null;
      const exiting: Promise<void> = thread.channel.close('closed').finally(() => {
        if (webGpuExiting === exiting) webGpuExiting = null;
      });
      webGpuExiting = exiting;
      await exiting;
    },
  };
}

/** Worker sessions are numbered per process. */
let nextSession = 0;

/** The first line of an ORT error, without the path it repeats or the source location of a failed check. */
function reason(error: string, path: string): string {
  // onnxruntime's own source location and C++ signature (`/onnxruntime_src/.../model.cc:187 onnxruntime::Model::Model(...)`) say nothing to a user
  const line = (error.split('\n')[0] ?? '').replaceAll(path, '<model>').replace(/\/\S*\.(?:cc|cpp|h):\d+ (?:[\w:~<>]+\([^)]*\)(?: const)? )?/g, '');
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
  private closed: Promise<void> | null = null;
  private placed: Placement | null = null;

  private constructor(
    /** The model file. */
    readonly path: string,
    /** The execution provider the session runs on. */
    readonly provider: Provider,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
    private readonly thread: ThreadLease,
    private readonly session: number,
    private readonly log: Logger,
  ) {}

  get inputNames(): string[] {
    return this.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.outputs.map((o) => o.name);
  }

  /** Where the nodes ran on the first run (GPU providers; null before it, and on cpu where every node runs on cpu). */
  get placement(): Placement | null {
    return this.placed;
  }

  /** Loads `path` on the first provider of `options.providers` that works; ModelError if none does. */
  static async load(path: string, options: OnnxModelOptions): Promise<OnnxModel> {
    const { providers = DEFAULT_PROVIDERS, intraOpThreads = 1, log } = options;
    const file = await stat(path).catch(() => null);
    if (!file) throw new ModelError(path, 'no such file');
    if (!file.isFile()) throw new ModelError(path, 'not a file');
    if (file.size === 0) throw new ModelError(path, 'empty file (0 bytes), not an ONNX model');
    if (providers.length === 0) throw new ModelError(path, 'no execution provider to try (providers is empty)');
    let own: ThreadLease | null = null;
    let last = '';
    try {
      for (const provider of providers) {
        const known = unavailable.get(provider);
        if (known !== undefined) {
          last = known;
          log.debug({ model: path, provider }, `skipping provider ${provider}: ${known}`);
          continue;
        }
        const missing = provider === 'cuda' ? missingCudaLibraries() : [];
        let reply: WorkerReply;
        let thread: ThreadLease | null = null;
        const session = nextSession++;
        if (missing.length > 0) {
          reply = { id: -1, ok: false, error: `${missing.join(' and ')} not installed in ${relative(process.cwd(), ORT_BIN)} (see README: GPU)` };
        } else {
          thread = provider === 'webgpu' ? await joinWebGpuThread() : (own ??= ownThread());
          const { channel } = thread;
          reply = await channel
            .request(path, { id: channel.id(), op: 'load', session, path, provider, intraOpThreads })
            .catch((e: Error): WorkerReply => ({ id: -1, ok: false, error: e instanceof ModelError ? e.problem : e.message }));
        }
        if (reply.ok && reply.op === 'load' && thread !== null) {
          log.info({ model: path, provider }, `using provider ${provider}`);
          if (thread !== own) await own?.leave();
          own = null;
          return new OnnxModel(path, provider, reply.inputs, reply.outputs, thread, session, log);
        }
        if (thread !== null && thread !== own) await thread.leave();
        last = reply.ok ? 'unexpected reply' : reason(reply.error, path);
        if (ENVIRONMENTAL.test(last)) unavailable.set(provider, last);
        if (provider !== providers[providers.length - 1]) {
          log.warn({ model: path, provider }, `provider ${provider} unavailable, trying the next: ${last}`);
        }
      }
    } finally {
      await own?.leave();
    }
    const tried = providers.length > 1 ? ` (tried ${providers.join(', ')})` : '';
    throw new ModelError(path, `cannot load${tried}: ${last}`);
  }

  /**
   * Runs the model once. `feeds` must name exactly the model's inputs. Feed arrays that span their
   * whole ArrayBuffer are transferred to the worker (they are left empty); others are copied.
   * Resolves with every output, its buffer transferred back.
   */
  async run(feeds: Readonly<Record<string, TensorFeed>>): Promise<Record<string, TensorResult>> {
    if (this.closed) throw new ModelError(this.path, 'closed');
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
    const { channel } = this.thread;
    const reply = await channel.request(this.path, { id: channel.id(), op: 'run', session: this.session, feeds: sent }, transfer);
    if (!reply.ok) throw new ModelError(this.path, `run failed: ${reason(reply.error, this.path)}`);
    if (reply.op !== 'run') throw new ModelError(this.path, 'run failed: unexpected reply');
    if (reply.placement) this.report(reply.placement);
    return reply.outputs;
  }

  /**
   * Fails the runs still queued at once with ModelError "closed", releases the session and its thread's share;
   * resolves when the worker has finished the run it was in and released the session (a thread of its own has
   * exited). Idempotent.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      const { channel } = this.thread;
      channel.failSession(this.session, 'closed');
      await channel.request(this.path, { id: channel.id(), op: 'release', session: this.session }).catch(() => undefined);
      await this.thread.leave();
    })();
    return this.closed;
  }

  /** Logs where the nodes ran, once. */
  private report(placement: Placement): void {
    this.placed = placement;
    const counts = Object.entries(placement.nodes)
      .sort(([a], [b]) => (a === this.provider ? -1 : b === this.provider ? 1 : a.localeCompare(b)))
      .map(([provider, n]) => `${n} nodes on ${provider}${provider === 'cpu' && placement.cpuOps.length > 0 ? ` (${placement.cpuOps.join(', ')})` : ''}`);
    const copies = placement.copies > 0 ? `, ${placement.copies} host<->device copies` : '';
    this.log.info(
      { model: this.path, provider: this.provider, placement: placement.nodes, cpuOps: placement.cpuOps, copies: placement.copies },
      `runs on ${this.provider}: ${counts.join(', ')}${copies}`,
    );
  }
}
