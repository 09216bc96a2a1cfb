/**
 * The worker thread behind OnnxModel: holds at most one onnxruntime-node session and runs it off
 * the main thread (session.run blocks its thread for the whole inference).
 *
 * Protocol (see onnx-model.ts): `load` creates the session for one execution provider (replacing
 * none: the main thread sends one `load` per provider attempt until one succeeds); `run` runs it.
 * Requests are handled one at a time, in arrival order (a FIFO chained on `queue`), so replies come
 * back in request order. Errors become `{ ok: false, error }` replies, never a crashed worker.
 * Output buffers are transferred back, not copied.
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { Provider, TensorData, TensorFeed, TensorInfo, TensorResult } from './onnx-model.ts';

export type WorkerRequest =
  | { readonly id: number; readonly op: 'load'; readonly path: string; readonly provider: Provider; readonly intraOpThreads: number }
  | { readonly id: number; readonly op: 'run'; readonly feeds: Record<string, TensorFeed> };

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly op: 'load'; readonly inputs: TensorInfo[]; readonly outputs: TensorInfo[] }
  | { readonly id: number; readonly ok: true; readonly op: 'run'; readonly outputs: Record<string, TensorResult> }
  | { readonly id: number; readonly ok: false; readonly error: string };

const port = parentPort;
if (!port) throw new Error('onnx-worker.ts must run in a worker thread (see OnnxModel.load)');

let session: ort.InferenceSession | undefined;
let queue: Promise<void> = Promise.resolve();

const info = (m: ort.InferenceSession.ValueMetadata): TensorInfo =>
  m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: null, shape: [] };

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  if (request.op === 'load') {
    session = await ort.InferenceSession.create(request.path, {
      executionProviders: [request.provider],
      intraOpNumThreads: request.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return { id: request.id, ok: true, op: 'load', inputs: session.inputMetadata.map(info), outputs: session.outputMetadata.map(info) };
  }
  if (!session) throw new Error('no model loaded');
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, f] of Object.entries(request.feeds)) feeds[name] = new ort.Tensor(f.type, f.data, f.dims);
  const results = await session.run(feeds);
  const outputs: Record<string, TensorResult> = {};
  for (const [name, t] of Object.entries(results)) {
    outputs[name] = { type: t.type as TensorResult['type'], dims: [...t.dims], data: t.data as TensorData };
  }
  return { id: request.id, ok: true, op: 'run', outputs };
}

const transferables = (reply: WorkerReply): ArrayBuffer[] =>
  reply.ok && reply.op === 'run'
    ? [...new Set(Object.values(reply.outputs).flatMap((o) => (o.data.buffer instanceof ArrayBuffer ? [o.data.buffer] : [])))]
    : [];

port.on('message', (request: WorkerRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerReply;
    try {
      reply = await handle(request);
    } catch (e) {
      reply = { id: request.id, ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply, transferables(reply));
  });
});
