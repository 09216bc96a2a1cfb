/**
 * The worker thread behind OnnxModel: holds at most one onnxruntime-node session and runs it off
 * the main thread (session.run blocks its thread for the whole inference).
 *
 * Protocol (see onnx-model.ts): `load` creates the session for one execution provider (the main
 * thread sends one `load` per provider attempt until one succeeds); `run` runs it; `close` releases
 * it and ends the thread. Requests are handled one at a time, in arrival order (a FIFO chained on
 * `queue`), so replies come back in request order; once `close` has arrived, the runs still queued
 * are answered "closed" without running. Errors become `{ ok: false, error }` replies, never a
 * crashed worker. Output buffers are transferred back, not copied.
 *
 * The thread must end this way, not by `Worker.terminate()`: terminating it while ORT is inside a
 * native call aborts the whole process ("terminate called after throwing an instance of 'Napi::Error'").
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { Provider, TensorData, TensorFeed, TensorInfo, TensorResult } from './onnx-model.ts';

export type WorkerRequest =
  | { readonly id: number; readonly op: 'load'; readonly path: string; readonly provider: Provider; readonly intraOpThreads: number }
  | { readonly id: number; readonly op: 'run'; readonly feeds: Record<string, TensorFeed> }
  | { readonly id: number; readonly op: 'close' };

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly op: 'load'; readonly inputs: TensorInfo[]; readonly outputs: TensorInfo[] }
  | { readonly id: number; readonly ok: true; readonly op: 'run'; readonly outputs: Record<string, TensorResult> }
  | { readonly id: number; readonly ok: true; readonly op: 'close' }
  | { readonly id: number; readonly ok: false; readonly error: string };

const port = parentPort;
if (!port) throw new Error('onnx-worker.ts must run in a worker thread (see OnnxModel.load)');

let session: ort.InferenceSession | undefined;
let queue: Promise<void> = Promise.resolve();
let closing = false;

const info = (m: ort.InferenceSession.ValueMetadata): TensorInfo =>
  m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: null, shape: [] };

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  if (request.op === 'close') {
    await session?.release();
    session = undefined;
    return { id: request.id, ok: true, op: 'close' };
  }
  if (closing) throw new Error('closed');
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
  if (request.op === 'close') closing = true;
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
