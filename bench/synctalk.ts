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
 *
 * render.onnx casts rays only through the bundle's static ray set (docs/synctalk-bundle.md, "Ray set": in portrait
 * mode the pixels under some frame's face mask that may see the head, ~19 % of the test avatar's frame), so cost
 * grows with that set (rays x samples per ray), i.e. with the pixel count for a given framing: figures at 64, 128 and
 * 256 px scale to 512 x 512 by (512 / size)^2. The reference marches every pixel and evaluates the networks on the
 * occupied samples of every ray.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { audio, segmentEnd } from '../src/events.ts';
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
ref = Reference(sd, 'portrait', data.height, data.width, data.intrinsics, 16)
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
