/**
 * The worker thread behind OnnxModel: holds onnxruntime-node sessions and runs them off the main thread
 * (session.run blocks its thread for the whole inference). A cpu or cuda model has a thread of its own with one
 * session; every WebGPU session of the process lives in one shared thread (onnx-model.ts, "threads").
 *
 * Protocol (see onnx-model.ts): `load` creates session `session` for one execution provider (the main thread sends
 * one `load` per provider attempt until one succeeds); `run` runs it; `release` releases it; `close` releases every
 * session and ends the thread. Requests are handled one at a time, in arrival order (a FIFO chained on `queue`), so
 * replies come back in request order; runs still queued for a session whose `release` (or the thread's `close`) has
 * arrived are answered "closed" without running. Errors become `{ ok: false, error }` replies, never a crashed worker.
 * Output buffers are transferred back, not copied.
 *
 * Placement: a session on a GPU provider is created with ORT's profiler on, and its first run reports where its
 * nodes really ran (`placement`, from the profile's per-node provider; the profile file is then deleted). ORT places
 * nodes that the provider has no kernel for on the CPU by itself, copying tensors between host and device.
 *
 * Priority: the thread raises its own nice value to `workerData.nice` (SYNCTALK_INFERENCE_NICE, default 0: none)
 * before it creates any session, so it and the intra-op threads ORT starts from it yield the CPU to the main
 * thread (Linux keeps a nice value per thread). Not by default: on a CPU shared with other processes a niced
 * inference thread loses to all of them (nice 10 beside two CPU hogs: the demo face at 365 ms per frame instead of
 * 24 ms), and the main thread's worst event-loop delays come from its own garbage collections, not from inference.
 *
 * The thread must end this way, not by `Worker.terminate()`: terminating it while ORT is inside a native call
 * aborts the whole process ("terminate called after throwing an instance of 'Napi::Error'").
 */
import { getPriority, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { Provider, TensorData, TensorFeed, TensorInfo, TensorResult } from './model-runner.ts';
import { dropProfiles, type Placement, placementFrom } from './ort-placement.ts';

export type WorkerRequest =
  | { readonly id: number; readonly op: 'load'; readonly session: number; readonly path: string; readonly provider: Provider; readonly intraOpThreads: number }
  | { readonly id: number; readonly op: 'run'; readonly session: number; readonly feeds: Record<string, TensorFeed> }
  | { readonly id: number; readonly op: 'release'; readonly session: number }
  | { readonly id: number; readonly op: 'close' };

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly op: 'load'; readonly inputs: TensorInfo[]; readonly outputs: TensorInfo[] }
  | { readonly id: number; readonly ok: true; readonly op: 'run'; readonly outputs: Record<string, TensorResult>; readonly placement?: Placement }
  | { readonly id: number; readonly ok: true; readonly op: 'release' | 'close' }
  | { readonly id: number; readonly ok: false; readonly error: string };

const port = parentPort;
if (!port) throw new Error('onnx-worker.ts must run in a worker thread (see OnnxModel.load)');

/** What the main thread passes (see OnnxModel): the nice value for inference, already checked (0 to 19). */
export interface WorkerData {
  readonly nice: number;
}

// Raising one's own nice value needs no privilege (lowering it would); pid 0 is this thread alone on Linux.
const { nice } = workerData as WorkerData;
if (nice > getPriority()) setPriority(nice);

interface Held {
  readonly session: ort.InferenceSession;
  /** The profile file prefix while the first run is still to be profiled (GPU providers only). */
  profile: string | null;
}

const sessions = new Map<number, Held>();
/** Sessions whose release has arrived (their queued runs are answered "closed"). */
const releasing = new Set<number>();
let queue: Promise<void> = Promise.resolve();
let closing = false;

const info = (m: ort.InferenceSession.ValueMetadata): TensorInfo =>
  m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: null, shape: [] };

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  if (request.op === 'close') {
    for (const held of sessions.values()) {
      await held.session.release();
      dropProfiles(held.profile);
    }
    sessions.clear();
    return { id: request.id, ok: true, op: 'close' };
  }
  if (request.op === 'release') {
    const held = sessions.get(request.session);
    await held?.session.release();
    dropProfiles(held?.profile ?? null);
    sessions.delete(request.session);
    releasing.delete(request.session);
    return { id: request.id, ok: true, op: 'release' };
  }
  if (closing || releasing.has(request.session)) throw new Error('closed');
  if (request.op === 'load') {
    const profile = request.provider === 'cpu' ? null : `synctalk-ort-${process.pid}-${threadId}-${request.session}`;
    const session = await ort.InferenceSession.create(request.path, {
      executionProviders: [request.provider],
      intraOpNumThreads: request.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      ...(profile ? { enableProfiling: true, profileFilePrefix: join(tmpdir(), profile) } : {}),
    }).catch((e: unknown) => {
      dropProfiles(profile);
      throw e;
    });
    sessions.set(request.session, { session, profile });
    return { id: request.id, ok: true, op: 'load', inputs: session.inputMetadata.map(info), outputs: session.outputMetadata.map(info) };
  }
  const held = sessions.get(request.session);
  if (!held) throw new Error('no model loaded');
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, f] of Object.entries(request.feeds)) feeds[name] = new ort.Tensor(f.type, f.data, f.dims);
  const results = await held.session.run(feeds);
  const outputs: Record<string, TensorResult> = {};
  for (const [name, t] of Object.entries(results)) {
    outputs[name] = { type: t.type as TensorResult['type'], dims: [...t.dims], data: t.data as TensorData };
  }
  if (held.profile === null) return { id: request.id, ok: true, op: 'run', outputs };
  held.session.endProfiling();
  const placement = placementFrom(held.profile);
  held.profile = null;
  return { id: request.id, ok: true, op: 'run', outputs, placement };
}

const transferables = (reply: WorkerReply): ArrayBuffer[] =>
  reply.ok && reply.op === 'run'
    ? [...new Set(Object.values(reply.outputs).flatMap((o) => (o.data.buffer instanceof ArrayBuffer ? [o.data.buffer] : [])))]
    : [];

port.on('message', (request: WorkerRequest) => {
  if (request.op === 'close') closing = true;
  if (request.op === 'release') releasing.add(request.session);
  queue = queue.then(async () => {
    let reply: WorkerReply;
    try {
      reply = await handle(request);
    } catch (e) {
      reply = { id: request.id, ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply, transferables(reply));
    // With the port closed the thread has nothing left to do, and exits.
    if (request.op === 'close') port.close();
  });
});
