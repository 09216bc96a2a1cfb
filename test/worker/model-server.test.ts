/**
 * The model server over a real Unix socket, with the real demo model: clients (job processes) share one
 * load, their runs are batched together, errors come back as one-line ModelErrors, and a client that
 * goes away gives its leases back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputError } from '../../src/errors.ts';
import { rootLogger } from '../../src/log.ts';
import { DEMO_FACE_MODEL_PATH } from '../../src/models/demo-face.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { serveModels, type ModelServer } from '../../src/models/model-server.ts';
import { OnnxModel, type TensorFeed } from '../../src/models/onnx-model.ts';
import { RemoteModels } from '../../src/models/remote-models.ts';

const log = rootLogger.child({ test: 'model-server' }, { level: 'warn' });
const cpu = { providers: ['cpu' as const], log };

const feeds = (rows: number, level: number): Record<string, TensorFeed> => ({
  audio: { type: 'float32', dims: [rows, 640], data: Float32Array.from({ length: rows * 640 }, (_, i) => level * Math.sin(i / 5)) },
  phase: { type: 'float32', dims: [rows], data: Float32Array.from({ length: rows }, (_, k) => k) },
});

const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
};

describe('model server', () => {
  let dir: string;
  let cache: ModelCache;
  let server: ModelServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synctalk-model-server-'));
    cache = new ModelCache();
    server = await serveModels({ path: join(dir, 'models.sock'), models: cache, log });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves one load to every client, batches their runs, and gives the same frames as a local model', async () => {
    const local = await OnnxModel.load(DEMO_FACE_MODEL_PATH, cpu);
    const expected = [(await local.run(feeds(2, 0.5))).frame.data as Uint8Array, (await local.run(feeds(1, 0.1))).frame.data as Uint8Array];
    await local.close();

    const [a, b] = [new RemoteModels(server.path), new RemoteModels(server.path)];
    const [la, lb] = await Promise.all([a.acquire(DEMO_FACE_MODEL_PATH, cpu), b.acquire(DEMO_FACE_MODEL_PATH, cpu)]);
    expect(cache.size).toBe(1);
    expect(la.model.provider).toBe('cpu');
    expect(la.model.inputNames).toEqual(['audio', 'phase']);

    const outs = await Promise.all([la.model.run(feeds(2, 0.5)), lb.model.run(feeds(1, 0.1)), la.model.run(feeds(2, 0.5)), lb.model.run(feeds(1, 0.1))]);
    outs.forEach((o, i) => {
      const want = expected[i % 2];
      const got = o.frame.data as Uint8Array;
      expect(o.frame.dims).toEqual([i % 2 === 0 ? 2 : 1, 256, 256, 4]);
      expect(got.length).toBe(want.length);
      expect(got.reduce((n, v, k) => n + (v === want[k] ? 0 : 1), 0)).toBe(0);
    });
    const [stats] = cache.batchStats();
    expect(stats.requests).toBe(4);
    expect(stats.runs).toBeLessThan(4);

    await la.release();
    expect(cache.size).toBe(1);
    await lb.release();
    expect(cache.size).toBe(0);
    await Promise.all([a.close(), b.close()]);
  });

  it('answers a bad request with a one-line ModelError and goes on', async () => {
    const client = new RemoteModels(server.path);
    const missing = await client.acquire('/nonexistent/model.onnx', cpu).catch((e: unknown) => e);
    expect(isInputError(missing)).toBe(true);
    expect((missing as Error).message).toBe('/nonexistent/model.onnx: no such file');

    const lease = await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    const wrong = await lease.model.run({ audio: feeds(1, 0).audio }).catch((e: unknown) => e);
    expect((wrong as Error).message).toMatch(/demo-face\.onnx: .*missing input phase/);
    expect((await lease.model.run(feeds(1, 0.3))).frame.data.length).toBe(256 * 256 * 4);
    await lease.release();
    await client.close();
  });

  it('releases the leases of a client that disconnects without releasing', async () => {
    const client = new RemoteModels(server.path);
    await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    expect(cache.size).toBe(1);
    await client.close();
    await until('the model closed', () => cache.size === 0);
    await expect(client.acquire(DEMO_FACE_MODEL_PATH, cpu)).rejects.toThrow(`${server.path}: closed`);
  });

  it('fails the runs of a client whose server went away with a ModelError naming the socket', async () => {
    const own = await serveModels({ path: join(dir, 'short-lived.sock'), models: new ModelCache(), log });
    const client = new RemoteModels(own.path);
    const lease = await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    await own.close();
    const err = await lease.model.run(feeds(1, 0)).catch((e: unknown) => e);
    expect(isInputError(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${own.path}: model server connection (closed|failed: write EPIPE)$`));
    const unreachable = await new RemoteModels(join(dir, 'nobody.sock')).acquire(DEMO_FACE_MODEL_PATH, cpu).catch((e: unknown) => e);
    expect((unreachable as Error).message).toMatch(/nobody\.sock: model server unreachable: connect ENOENT/);
  });
});
