/**
 * BatchedModel on the real demo-face model (cpu): sessions' runs merged along the batch dimension give
 * the same frames as separate runs, in fewer model runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootLogger } from '../src/log.ts';
import { BatchedModel, isBatchable } from '../src/models/batched-model.ts';
import { DEMO_FACE_MODEL_PATH } from '../src/models/demo-face.ts';
import { ModelCache } from '../src/models/model-cache.ts';
import type { TensorFeed } from '../src/models/model-runner.ts';
import { OnnxModel } from '../src/models/onnx-model.ts';

const log = rootLogger.child({ test: 'batched-model' }, { level: 'warn' });
const FRAME = 256 * 256 * 4;

/** `rows` frames of a 440 Hz tone at `level`, phases from `phase`. */
const feeds = (rows: number, level: number, phase: number): Record<string, TensorFeed> => {
  const audio = new Float32Array(rows * 640);
  for (let i = 0; i < audio.length; i++) audio[i] = level * Math.sin((2 * Math.PI * 440 * i) / 16000);
  return {
    audio: { type: 'float32', dims: [rows, 640], data: audio },
    phase: { type: 'float32', dims: [rows], data: Float32Array.from({ length: rows }, (_, k) => phase + k) },
  };
};

describe('BatchedModel', () => {
  let model: OnnxModel;
  beforeAll(async () => {
    model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log });
  });
  afterAll(() => model.close());

  it('merges what queues while the model is busy into one run, and each caller gets its own rows', async () => {
    expect(isBatchable(model)).toBe(true);
    const batched = new BatchedModel(model, { maxBatch: 16 });
    const asks = () => [feeds(1, 0.0, 0), feeds(2, 0.5, 10), feeds(1, 0.1, 20), feeds(2, 0.9, 30)];
    const alone: Uint8Array[] = [];
    // (a run alone hands its feed buffers over to the inference worker: fresh feeds each time)
    for (const f of asks()) alone.push((await model.run(f)).frame.data as Uint8Array);

    const together = await Promise.all(asks().map((f) => batched.run(f)));
    // the first starts at once; the three asked meanwhile go into the second run
    expect(batched.stats).toEqual({ runs: 2, requests: 4, rows: 6 });
    together.forEach((out, i) => {
      expect(out.frame.dims).toEqual([[1, 2, 1, 2][i], 256, 256, 4]);
      const data = out.frame.data as Uint8Array;
      expect(data.length).toBe(alone[i].length);
      expect(data.reduce((n, v, k) => n + (v === alone[i][k] ? 0 : 1), 0)).toBe(0);
    });
    expect(together[1].frame.data.length).toBe(2 * FRAME);
  });

  it('keeps a run within maxBatch rows and takes requests in order', async () => {
    const batched = new BatchedModel(model, { maxBatch: 3 });
    const order: number[] = [];
    await Promise.all([feeds(1, 0, 0), feeds(2, 0, 0), feeds(2, 0, 0), feeds(1, 0, 0), feeds(1, 0, 0)].map((f, i) => batched.run(f).then(() => order.push(i))));
    // runs: [0] alone, then [1] (2 rows; + [2] would be 4 > 3), then [2, 3] (3 rows), then [4]
    expect(batched.stats).toEqual({ runs: 4, requests: 5, rows: 7 });
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it('rejects a request whose inputs disagree on their rows, alone', async () => {
    const batched = new BatchedModel(model);
    const bad = { ...feeds(2, 0, 0), phase: { type: 'float32' as const, dims: [1], data: new Float32Array(1) } };
    const results = await Promise.allSettled([batched.run(feeds(1, 0, 0)), batched.run(bad), batched.run(feeds(1, 0, 0))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/demo-face\.onnx: input phase: every input needs the same batch size/);
  });

  it('fails every request of a run that fails, and the next run goes on', async () => {
    const batched = new BatchedModel(model);
    const wrongWidth = { ...feeds(1, 0, 0), audio: { type: 'float32' as const, dims: [1, 320], data: new Float32Array(320) } };
    const first = batched.run(feeds(1, 0, 0));
    const [a, b] = await Promise.allSettled([batched.run(wrongWidth), batched.run(wrongWidth)]);
    await first;
    expect([a.status, b.status]).toEqual(['rejected', 'rejected']);
    expect(String((a as PromiseRejectedResult).reason)).toMatch(/demo-face\.onnx: run failed/);
    expect((await batched.run(feeds(1, 0.5, 0))).frame.data.length).toBe(FRAME);
  });

  it('refuses a model with a fixed batch size', () => {
    const fixed = { ...model, path: 'fixed.onnx', inputs: [{ name: 'x', type: 'float32', shape: [1, 4] }], outputs: model.outputs, inputNames: ['x'], outputNames: model.outputNames, provider: model.provider, run: model.run.bind(model) };
    expect(isBatchable(fixed)).toBe(false);
    expect(() => new BatchedModel(fixed)).toThrow('fixed.onnx: cannot batch: every input and output needs a symbolic first dimension');
  });
});

describe('ModelCache batching', () => {
  it('hands every session the same BatchedModel for a batchable model, and the plain model with maxBatch 1', async () => {
    const cache = new ModelCache();
    const [a, b] = await Promise.all([cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log }), cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log })]);
    expect(a.model).toBeInstanceOf(BatchedModel);
    expect(a.model).toBe(b.model);
    await Promise.all([a.model.run(feeds(1, 0, 0)), b.model.run(feeds(2, 0, 0)), a.model.run(feeds(1, 0, 0))]);
    expect(cache.batchStats()).toEqual([{ path: DEMO_FACE_MODEL_PATH, runs: 2, requests: 3, rows: 4 }]);
    await Promise.all([a.release(), b.release()]);
    expect(cache.batchStats()).toEqual([]);
    await expect(a.model.run(feeds(1, 0, 0))).rejects.toThrow(/closed/);

    const plain = new ModelCache({ maxBatch: 1 });
    const c = await plain.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log });
    expect(c.model).toBeInstanceOf(OnnxModel);
    await c.release();
    expect(() => new ModelCache({ maxBatch: 0 })).toThrow(/maxBatch must be a positive integer/);
  });
});
