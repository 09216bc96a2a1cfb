import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audio, segmentEnd } from '../src/events.ts';
import { ModelCache } from '../src/models/model-cache.ts';
import { serveModels } from '../src/models/model-server.ts';
import type { ModelRunner, TensorData, TensorFeed } from '../src/models/model-runner.ts';
import { RemoteModels } from '../src/models/remote-models.ts';
import { onnxGraphLoader, SyncTalkBundle } from '../src/synctalk/bundle.ts';
import { SyncTalkRenderer } from '../src/synctalk/renderer.ts';

/**
 * SyncTalk bundles batched (docs/synctalk-bundle.md, format 2): small exported avatars (24x24, 6 track frames, random
 * weights; portrait and torso mode) whose graphs give, for a batch of 4 frames, exactly the bytes of four runs of one
 * on the CPU provider; and sessions sharing a bundle through the model server (ModelCache -> BatchedModel, reached
 * over a Unix socket by RemoteModels, as the avatar worker's job processes do) get the very frames a private bundle
 * renders one at a time, in fewer render.onnx runs than frames.
 */

const PYTHON = '/usr/bin/python3';
const PYTHON_DIR = join(import.meta.dirname, '..', 'python');
const SIZE = 24;
const log = pino({ level: 'silent' });
const cpu = { providers: ['cpu' as const], log };

const python = (args: string[]) => promisify(execFile)(PYTHON, args, { cwd: PYTHON_DIR, encoding: 'utf8', env: { ...process.env, PYTHONPATH: PYTHON_DIR } });

let dir: string;
const bundles: Record<'portrait' | 'torso', string> = { portrait: '', torso: '' };

/** A voiced test signal, different per `voice` (16 kHz float32). */
const speech = (n: number, voice: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => {
    const t = i / 16_000;
    const phase = 2 * Math.PI * (110 + 25 * voice) * t;
    return 0.3 * (Math.sin(phase) + 0.5 * Math.sin(2 * phase)) * Math.sin(2 * Math.PI * (2 + voice) * t) ** 2;
  });

/** Every frame a fresh renderer of `bundle` gives for `samples` in 1280-sample chunks, then the segment end. */
async function renderAll(bundle: SyncTalkBundle, samples: Float32Array): Promise<Uint8Array[]> {
  const r = new SyncTalkRenderer(bundle);
  const frames: Uint8Array[] = [];
  for (let at = 0; at < samples.length; at += 1280) frames.push(...(await r.render(audio(samples.slice(at, at + 1280), 16_000, 1, at / 16_000, 0))));
  frames.push(...(await r.end(segmentEnd(0, samples.length / 16_000))));
  return frames;
}

/** The inputs of `model` for frame k of the bundle: a batch of one (tracks, images, and a pattern for audio inputs). */
async function frameFeeds(bundle: SyncTalkBundle, model: ModelRunner, k: number): Promise<Record<string, TensorFeed>> {
  const { tracks } = bundle;
  const images = await bundle.images(k);
  const feeds: Record<string, TensorFeed> = {};
  for (const input of model.inputs) {
    const dims = [1, ...input.shape.slice(1).map(Number)];
    const n = dims.reduce((a, b) => a * b, 1);
    const track = { pose: tracks.poses, eye: tracks.eyes, anchor: tracks.anchors }[input.name];
    const data =
      images[input.name]?.data.slice() ??
      (track ? track.slice(k * n, (k + 1) * n) : Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + k) * (input.name === 'mel' ? 4 : 1)));
    expect(data.length, input.name).toBe(n);
    feeds[input.name] = { type: input.type === 'uint8' ? 'uint8' : 'float32', dims, data };
  }
  return feeds;
}

/** The feeds of several batches of one, as one batch. */
function concat(frames: Array<Record<string, TensorFeed>>): Record<string, TensorFeed> {
  return Object.fromEntries(
    Object.keys(frames[0]).map((name) => {
      const parts = frames.map((f) => f[name].data);
      const data = parts[0] instanceof Uint8Array ? new Uint8Array(parts.length * parts[0].length) : new Float32Array(parts.length * parts[0].length);
      parts.forEach((p, i) => data.set(p as Uint8Array & Float32Array, i * p.length));
      return [name, { type: frames[0][name].type, dims: [frames.length, ...frames[0][name].dims.slice(1)], data }];
    }),
  );
}

const differing = (a: TensorData, b: TensorData): number => {
  let n = a.length === b.length ? 0 : Math.max(a.length, b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) n++;
  return n;
};

describe('synctalk bundles batched', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synctalk-batch-'));
    await Promise.all(
      (['portrait', 'torso'] as const).map(async (mode) => {
        const ws = join(dir, `ws-${mode}`);
        await python(['-m', 'synctalk_live.make_test_workspace', '--out', ws, '--variant', mode, '--size', String(SIZE)]);
        bundles[mode] = join(dir, `bundle-${mode}`);
        const args = ['--data', join(ws, 'data'), '--workspace', join(ws, 'workspace'), '--ave', join(ws, 'audio_visual_encoder.pth')];
        await python(['-m', 'synctalk_live.export', ...args, '--out', bundles[mode], `--${mode}`]);
      }),
    );
  }, 300_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['portrait', 'torso'] as const)('%s: a batch of 4 frames equals four runs of one, bit for bit, for every graph (cpu)', async (mode) => {
    const bundle = await SyncTalkBundle.open(bundles[mode], onnxGraphLoader(cpu));
    try {
      for (const model of [bundle.audio, bundle.audioAttention, bundle.render]) {
        const single = [];
        for (let k = 0; k < 4; k++) single.push(await model.run(await frameFeeds(bundle, model, k)));
        const frames = await Promise.all([0, 1, 2, 3].map((k) => frameFeeds(bundle, model, k)));
        const batch = await model.run(concat(frames));
        for (const name of model.outputNames) {
          const out = batch[name];
          expect(out.dims[0]).toBe(4);
          const per = out.data.length / 4;
          single.forEach((s, k) => expect(differing(s[name].data, out.data.subarray(k * per, (k + 1) * per)), `${model.path} ${name} frame ${k}`).toBe(0));
          // the frames differ from each other: the batch is not one frame four times
          expect(differing(single[0][name].data, single[1][name].data), `${model.path} ${name}`).toBeGreaterThan(0);
        }
      }
      expect(bundle.render.outputs).toEqual([{ name: 'rgba', type: 'uint8', shape: ['batch', SIZE, SIZE, 4] }]);
    } finally {
      await bundle.close();
    }
  }, 120_000);

  it('sessions sharing a bundle through the model server: their frames batched into shared runs, identical to rendering alone', async () => {
    const voices = [0, 1, 2, 3];
    const samples = voices.map((v) => speech(8000 + 640 * v, v));
    const alone = await SyncTalkBundle.open(bundles.portrait, onnxGraphLoader(cpu));
    const expected: Uint8Array[][] = [];
    try {
      for (const s of samples) expected.push(await renderAll(alone, s));
    } finally {
      await alone.close();
    }

    const cache = new ModelCache({ maxBatch: 16 });
    const server = await serveModels({ path: join(dir, 'models.sock'), models: cache, log });
    const clients = voices.map(() => new RemoteModels(server.path));
    try {
      const shared = await Promise.all(clients.map((c) => SyncTalkBundle.open(bundles.portrait, (path) => c.acquire(path, cpu))));
      expect(cache.size).toBe(3);
      const got = await Promise.all(shared.map((b, i) => renderAll(b, samples[i])));
      got.forEach((frames, i) => {
        expect(frames.length).toBe(expected[i].length);
        frames.forEach((f, k) => expect(differing(f, expected[i][k]), `session ${i} frame ${k}`).toBe(0));
      });
      const render = cache.batchStats().find((s) => s.path.endsWith('render.onnx'));
      const frames = got.reduce((n, f) => n + f.length, 0);
      expect(render?.rows).toBe(frames);
      // continuous batching: the frames the sessions asked for while a run was busy went into the next run together
      expect(render!.runs).toBeLessThan(frames);
      console.log(`model server: ${frames} frames of 4 sessions in ${render!.runs} render.onnx runs (${(frames / render!.runs).toFixed(2)} frames per run)`);
      await Promise.all(shared.map((b) => b.close()));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  }, 180_000);
});
