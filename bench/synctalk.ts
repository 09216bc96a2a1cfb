/**
 * SyncTalk avatar benchmarks, called by bench/index.ts. Every function builds its own test avatar (random weights,
 * official layout: python/synctalk_live/make_test_workspace.py, portrait mode, 6 track frames) at the size asked,
 * exports it with `python3 -m synctalk_live.export`, measures, and deletes it. The weights are random but the work
 * per frame is the trained model's (same graph, same sample count, same ellipsoid-sized occupancy as a head).
 *
 *  - `syncTalkMsPerFrame(size)`: SyncTalkRenderer streaming 80 ms chunks of speech-like audio (mel, AVE,
 *    attention, render.onnx, RGBA), on the CPU provider with one intra-op thread: median wall-clock ms per frame
 *    of the frames each chunk releases (worker round trips included), plus render.onnx alone.
 *  - `syncTalkReferenceMsPerFrame(size)`: the PyTorch reference (python/synctalk_live/reference.py, CPU, one thread),
 *    median ms per rendered frame: the yardstick.
 *  - `syncTalkRoomsThroughput(size, rooms)`: `rooms` sessions (each its own SyncTalkRenderer and bundle handle,
 *    as the rooms of an avatar worker) share one loaded copy of the graphs through a ModelCache and stream speech at
 *    once: frames per second of them all, once with every run on its own (maxBatch 1: one shared model, runs in
 *    FIFO order) and once batched (maxBatch 16: the frames asked for while a run is busy go into the next run);
 *    and render.onnx alone per frame in runs of 1 and of 4 frames (the graph's own batch gain).
 *
 * render.onnx casts rays only through the bundle's static ray set (docs/synctalk-bundle.md, "Ray set": in portrait
 * mode the pixels under some frame's face mask that may see the head, 25 % of the 128 x 128 test avatar's frame with
 * its soft masks), so cost grows with that set (rays x samples per ray), i.e. with the pixel count for a given
 * framing: figures at 64, 128 and 256 px scale to 512 x 512 by (512 / size)^2. The reference marches every pixel and
 * evaluates the networks on the occupied samples of every ray.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { audio, idleTick, segmentEnd } from '../src/events.ts';
import { ModelCache } from '../src/models/model-cache.ts';
import type { TensorFeed } from '../src/models/model-runner.ts';
import { onnxGraphLoader, SyncTalkBundle } from '../src/synctalk/bundle.ts';
import { SyncTalkRenderer } from '../src/synctalk/renderer.ts';

const PYTHON = process.env.SYNCTALK_PYTHON ?? '/usr/bin/python3';
const PYTHON_DIR = join(import.meta.dirname, '..', 'python');

const python = (args: string[]) =>
  promisify(execFile)(PYTHON, args, { cwd: PYTHON_DIR, encoding: 'utf8', env: { ...process.env, PYTHONPATH: PYTHON_DIR }, maxBuffer: 16 << 20 });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** A portrait test avatar of `size` x `size` in a temporary folder: its workspace root and bundle, and cleanup. */
async function testAvatar(size: number): Promise<{ root: string; bundle: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), `synctalk-bench-${size}-`));
  const root = join(dir, 'ws');
  await python(['-m', 'synctalk_live.make_test_workspace', '--out', root, '--variant', 'portrait', '--size', String(size)]);
  const bundle = join(dir, 'bundle');
  await python(['-m', 'synctalk_live.export', '--data', join(root, 'data'), '--workspace', join(root, 'workspace'), '--ave', join(root, 'audio_visual_encoder.pth'), '--out', bundle, '--portrait']);
  return { root, bundle, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SyncTalkSpeed {
  /** Frame side, pixels. */
  readonly size: number;
  /** Median ms per frame through SyncTalkRenderer (audio chain + render + RGBA). */
  readonly msPerFrame: number;
  /** Median ms of one render.onnx run (worker round trip included). */
  readonly renderMs: number;
  /** Frames measured. */
  readonly frames: number;
}

/** SyncTalkRenderer ms per frame at `size` x `size` on the CPU, over the frames of `seconds` of speech-like audio. */
export async function syncTalkMsPerFrame(size: number, seconds = 0.6): Promise<SyncTalkSpeed> {
  const avatar = await testAvatar(size);
  const bundle = await SyncTalkBundle.open(avatar.bundle, onnxGraphLoader({ providers: ['cpu'], intraOpThreads: 1, log: pino({ level: 'warn' }) }));
  try {
    const renderer = new SyncTalkRenderer(bundle);
    const perFrame: number[] = [];
    const chunks = Math.ceil((seconds * 16_000) / 1280);
    const timed = async (frames: Promise<Uint8Array[]>): Promise<void> => {
      const t0 = performance.now();
      const n = (await frames).length;
      if (n > 0) perFrame.push((performance.now() - t0) / n);
    };
    for (let c = 0; c < chunks; c++) {
      const samples = Float32Array.from({ length: 1280 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 180 * (c * 1280 + i)) / 16_000) * Math.sin((Math.PI * (c * 1280 + i)) / 4000));
      await timed(renderer.render(audio(samples, 16_000, 1, c * 0.08, 0)));
    }
    await timed(renderer.end(segmentEnd(0, chunks * 0.08)));
    const renderRuns: number[] = [];
    for (let k = 0; k < 3; k++) {
      const feeds = {
        enc_a: { type: 'float32' as const, dims: [1, 32], data: new Float32Array(32) },
        eye: { type: 'float32' as const, dims: [1, bundle.manifest.eye_dim], data: new Float32Array(bundle.manifest.eye_dim) },
        pose: { type: 'float32' as const, dims: [1, 4, 4], data: bundle.tracks.poses.slice(0, 16) },
        ...Object.fromEntries(Object.entries(await bundle.images(k)).map(([n, f]) => [n, { ...f, data: f.data.slice() }])),
      };
      const t0 = performance.now();
      await bundle.render.run(feeds);
      renderRuns.push(performance.now() - t0);
    }
    return { size, msPerFrame: median(perFrame), renderMs: median(renderRuns), frames: perFrame.length };
  } finally {
    await bundle.close();
    avatar.remove();
  }
}

/** The PyTorch reference's median ms per frame at `size` x `size` (CPU, one thread), over `frames` frames. */
export async function syncTalkReferenceMsPerFrame(size: number, frames = 3): Promise<number> {
  const avatar = await testAvatar(size);
  try {
    const script = `
import sys, time, statistics, torch
from pathlib import Path
from synctalk_live.checkpoint import load_nerf_checkpoint
from synctalk_live.dataset import SyncTalkData
from synctalk_live.reference import Reference
root = Path(sys.argv[1]); torch.set_num_threads(1)
sd, _ = load_nerf_checkpoint(root / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth', 'portrait')
data = SyncTalkData(root / 'data'); eyes = data.eyes(False)
ref = Reference(sd, 'portrait', data.height, data.width, data.intrinsics)
times = []
for i in range(int(sys.argv[2])):
    t = i % len(data); enc_a = torch.randn(1, 32, generator=torch.Generator().manual_seed(i))
    t0 = time.perf_counter()
    ref.render(data.poses[t], enc_a, eyes[t:t + 1], data.background(t, False), data.ori(t), data.face_mask(t))
    times.append((time.perf_counter() - t0) * 1000)
print(statistics.median(times))
`;
    const { stdout } = await python(['-c', script, avatar.root, String(frames)]);
    return Number(stdout.trim());
  } finally {
    avatar.remove();
  }
}

export interface SyncTalkRoomsThroughput {
  /** Frames per second, all rooms together, every run on its own. */
  readonly unbatchedFps: number;
  /** Frames per second, all rooms together, runs merged by BatchedModel (maxBatch 16). */
  readonly batchedFps: number;
  /** batchedFps / unbatchedFps, measured in the same process one after the other. */
  readonly speedup: number;
  /** Mean frames per render.onnx run in the batched pass. */
  readonly meanRowsPerRun: number;
  /** Median ms per frame of render.onnx alone in one run of 1 frame and of 4 frames (worker round trip included). */
  readonly renderMsPerFrame: { readonly batch1: number; readonly batch4: number };
}

/** Frames per second of `rooms` sessions sharing one portrait bundle of `size` x `size`, unbatched and batched (cpu, 1 thread). */
export async function syncTalkRoomsThroughput(size: number, rooms = 4, seconds = 1): Promise<SyncTalkRoomsThroughput> {
  const avatar = await testAvatar(size);
  const pass = async (maxBatch: number): Promise<{ fps: number; rowsPerRun: number }> => {
    const cache = new ModelCache({ maxBatch });
    const options = { providers: ['cpu' as const], intraOpThreads: 1, log: pino({ level: 'warn' }) };
    const bundles = await Promise.all(Array.from({ length: rooms }, () => SyncTalkBundle.open(avatar.bundle, (path) => cache.acquire(path, options))));
    try {
      const renderers = bundles.map((b) => new SyncTalkRenderer(b));
      await Promise.all(renderers.map((r) => r.render(idleTick(0, 0))));
      const before = cache.batchStats().find((s) => s.path.endsWith('render.onnx'));
      const t0 = performance.now();
      const frames = await Promise.all(renderers.map((r, room) => speak(r, seconds, room)));
      const ms = performance.now() - t0;
      const after = cache.batchStats().find((s) => s.path.endsWith('render.onnx'));
      const rowsPerRun = before && after ? (after.rows - before.rows) / (after.runs - before.runs) : 1;
      return { fps: (frames.reduce((a, b) => a + b, 0) * 1000) / ms, rowsPerRun };
    } finally {
      await Promise.all(bundles.map((b) => b.close()));
    }
  };
  try {
    const unbatched = await pass(1);
    const batched = await pass(16);
    const renderMsPerFrame = { batch1: await renderMs(avatar.bundle, 1), batch4: await renderMs(avatar.bundle, 4) };
    return { unbatchedFps: unbatched.fps, batchedFps: batched.fps, speedup: batched.fps / unbatched.fps, meanRowsPerRun: batched.rowsPerRun, renderMsPerFrame };
  } finally {
    avatar.remove();
  }
}

/** Streams `seconds` of speech-like audio (pitch by `voice`) in 80 ms chunks, then the segment end: frames rendered. */
async function speak(renderer: SyncTalkRenderer, seconds: number, voice: number): Promise<number> {
  const chunks = Math.ceil((seconds * 16_000) / 1280);
  let frames = 0;
  for (let c = 0; c < chunks; c++) {
    const samples = Float32Array.from({ length: 1280 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * (150 + 20 * voice) * (c * 1280 + i)) / 16_000) * Math.sin((Math.PI * (c * 1280 + i)) / 4000));
    frames += (await renderer.render(audio(samples, 16_000, 1, c * 0.08, 0))).length;
  }
  return frames + (await renderer.end(segmentEnd(0, chunks * 0.08))).length;
}

/** Median ms per frame of render.onnx (cpu, 1 thread) run on `batch` track frames at once, over 3 runs after a warm-up. */
async function renderMs(dir: string, batch: number): Promise<number> {
  const bundle = await SyncTalkBundle.open(dir, onnxGraphLoader({ providers: ['cpu'], intraOpThreads: 1, log: pino({ level: 'warn' }) }));
  try {
    const { manifest, tracks } = bundle;
    const frames = Array.from({ length: batch }, (_, k) => k % manifest.frames);
    const images = await Promise.all(frames.map((t) => bundle.images(t)));
    const rows = (per: number, from: (t: number) => ArrayLike<number>): Float32Array => {
      const out = new Float32Array(batch * per);
      frames.forEach((t, k) => out.set(from(t), k * per));
      return out;
    };
    const feeds = (): Record<string, TensorFeed> => {
      const f: Record<string, TensorFeed> = {
        enc_a: { type: 'float32', dims: [batch, 32], data: rows(32, (t) => Array.from({ length: 32 }, (_, i) => Math.sin(i + t))) },
        eye: { type: 'float32', dims: [batch, manifest.eye_dim], data: rows(manifest.eye_dim, (t) => tracks.eyes.subarray(t * manifest.eye_dim, (t + 1) * manifest.eye_dim)) },
        pose: { type: 'float32', dims: [batch, 4, 4], data: rows(16, (t) => tracks.poses.subarray(t * 16, (t + 1) * 16)) },
      };
      for (const name of Object.keys(images[0])) {
        const one = images[0][name];
        const data = new Uint8Array(batch * one.data.length);
        images.forEach((im, k) => data.set(im[name].data as Uint8Array, k * one.data.length));
        f[name] = { type: 'uint8', dims: [batch, ...one.dims.slice(1)], data };
      }
      return f;
    };
    await bundle.render.run(feeds());
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const f = feeds();
      const t0 = performance.now();
      await bundle.render.run(f);
      times.push((performance.now() - t0) / batch);
    }
    return median(times);
  } finally {
    await bundle.close();
  }
}

export interface SyncTalkMarchingCost {
  /** Median ms of one render.onnx run (batch of one, worker round trip included), head mode: SyncTalk's schedule. */
  readonly headExactMs: number;
  /** The same with a fixed 16 samples per ray (`--samples 16`). */
  readonly headFixedMs: number;
  /** Portrait mode, SyncTalk's schedule (also the densities of the rays outside every mask: they count in n_alive). */
  readonly portraitExactMs: number;
  /** Portrait mode, `--samples 16` (ray set cut to the face masks). */
  readonly portraitFixedMs: number;
}

/**
 * What SyncTalk's exact marching schedule costs against the fixed-16 graph at `size` x `size`: one portrait test
 * avatar exported four times (head / portrait x schedule / `--samples 16`), render.onnx alone on the CPU with one
 * intra-op thread, the runs of the four graphs interleaved (`runs` each after one warm-up) so that load on the
 * machine hits them alike; medians.
 */
export async function syncTalkMarchingCost(size: number, runs = 7): Promise<SyncTalkMarchingCost> {
  const dir = mkdtempSync(join(tmpdir(), `synctalk-bench-marching-${size}-`));
  const root = join(dir, 'ws');
  const bundles: SyncTalkBundle[] = [];
  try {
    await python(['-m', 'synctalk_live.make_test_workspace', '--out', root, '--variant', 'portrait', '--size', String(size)]);
    const variants = [['head'], ['head', '--samples', '16'], ['portrait'], ['portrait', '--samples', '16']];
    for (const [k, [mode, ...flags]] of variants.entries()) {
      const out = join(dir, `bundle-${k}`);
      const modeFlags = mode === 'portrait' ? ['--portrait'] : [];
      await python(['-m', 'synctalk_live.export', '--data', join(root, 'data'), '--workspace', join(root, 'workspace'), '--ave', join(root, 'audio_visual_encoder.pth'), '--out', out, ...modeFlags, ...flags]);
      bundles.push(await SyncTalkBundle.open(out, onnxGraphLoader({ providers: ['cpu'], intraOpThreads: 1, log: pino({ level: 'warn' }) })));
    }
    const times: number[][] = bundles.map(() => []);
    for (let k = 0; k <= runs; k++) {
      for (const [b, bundle] of bundles.entries()) {
        const feeds = {
          enc_a: { type: 'float32' as const, dims: [1, 32], data: new Float32Array(32) },
          eye: { type: 'float32' as const, dims: [1, bundle.manifest.eye_dim], data: new Float32Array(bundle.manifest.eye_dim) },
          pose: { type: 'float32' as const, dims: [1, 4, 4], data: bundle.tracks.poses.slice(0, 16) },
          ...Object.fromEntries(Object.entries(await bundle.images(0)).map(([n, f]) => [n, { ...f, data: f.data.slice() }])),
        };
        const t0 = performance.now();
        await bundle.render.run(feeds);
        if (k > 0) times[b]!.push(performance.now() - t0);
      }
    }
    const [headExactMs, headFixedMs, portraitExactMs, portraitFixedMs] = times.map(median) as [number, number, number, number];
    return { headExactMs, headFixedMs, portraitExactMs, portraitFixedMs };
  } finally {
    await Promise.all(bundles.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}
