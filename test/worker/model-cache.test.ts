/**
 * ModelCache with the real demo model: sessions share one load, the last release closes it, a failed
 * load is not cached.
 */
import { describe, expect, it } from 'vitest';
import { isInputError } from '../../src/errors.ts';
import { rootLogger } from '../../src/log.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { DEMO_FACE_MODEL_PATH } from '../../src/models/demo-face.ts';

const log = rootLogger.child({ test: 'model-cache' }, { level: 'warn' });
const feeds = () => ({ audio: { type: 'float32' as const, dims: [1, 640], data: new Float32Array(640) }, phase: { type: 'float32' as const, dims: [1], data: new Float32Array(1) } });

describe('ModelCache', () => {
  it('shares one model between leases and closes it with the last release', async () => {
    const cache = new ModelCache();
    const [a, b] = await Promise.all([cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log }), cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log })]);
    expect(a.model).toBe(b.model);
    expect(cache.size).toBe(1);

    await a.release();
    await a.release();
    expect(cache.size).toBe(1);
    const out = await b.model.run(feeds());
    expect(out.frame.data.length).toBe(256 * 256 * 4);

    await b.release();
    expect(cache.size).toBe(0);
    await expect(b.model.run(feeds())).rejects.toThrow(/closed/);

    const c = await cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log });
    expect(c.model).not.toBe(a.model);
    await c.release();
  });

  it('keeps different provider lists apart', async () => {
    const cache = new ModelCache();
    const a = await cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log });
    const b = await cache.acquire(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], intraOpThreads: 2, log });
    expect(a.model).not.toBe(b.model);
    expect(cache.size).toBe(2);
    await Promise.all([a.release(), b.release()]);
    expect(cache.size).toBe(0);
  });

  it('does not cache a failed load', async () => {
    const cache = new ModelCache();
    const err = await cache.acquire('/nonexistent/model.onnx', { providers: ['cpu'], log }).catch((e: unknown) => e);
    expect(isInputError(err)).toBe(true);
    expect((err as Error).message).toBe('/nonexistent/model.onnx: no such file');
    expect(cache.size).toBe(0);
  });
});
