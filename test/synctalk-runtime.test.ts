import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.ts';
import { audio, idleTick, segmentEnd } from '../src/events.ts';
import { probe } from '../src/media/ffprobe.ts';
import { aveWindowCount } from '../src/synctalk/ave-windows.ts';
import { onnxGraphLoader, readSyncTalkManifest, SyncTalkBundle } from '../src/synctalk/bundle.ts';
import { pingPong } from '../src/synctalk/ping-pong.ts';
import { SyncTalkRenderer } from '../src/synctalk/renderer.ts';
import { encodeWav } from './helpers/wav-writer.ts';

/**
 * The SyncTalk runtime end to end on a small avatar (32x32, 6 training frames, random weights) built by the test:
 * python/synctalk_live.make_test_workspace -> `synctalk-live export` -> SyncTalkRenderer / `synctalk-live render`.
 * The frames are checked against SyncTalk's computation in PyTorch (python/synctalk_live/reference.py) for the same
 * audio: within 2/255 per channel.
 */

const PYTHON = '/usr/bin/python3';
const ROOT = join(import.meta.dirname, '..');
const PYTHON_DIR = join(ROOT, 'python');
const CLI = join(ROOT, 'bin', 'synctalk-live.js');
const SIZE = 32;
/** Samples of the test utterance (0.625 s; not a whole number of frames). */
const N = 10_000;
const log = pino({ level: 'silent' });

const run = (file: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  promisify(execFile)(file, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });

/** Exit status and output of a command that may fail. */
const attempt = (file: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(file, args, env).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

/** A voiced, amplitude-modulated test signal (float32, 16 kHz). */
const speechlike = (n: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => {
    const t = i / 16_000;
    const phase = 2 * Math.PI * (140 * t + 8 * Math.sin(2 * Math.PI * 1.7 * t));
    let v = 0;
    for (let k = 1; k < 8; k++) v += Math.sin(k * phase) / k;
    return 0.25 * v * (0.4 + 0.6 * Math.sin(2 * Math.PI * 3 * t) ** 2);
  });

/** SyncTalk's frames for a float32 wav file: all L + 4 of them, uint8 RGB, via the PyTorch reference. */
const REFERENCE = `
import sys, numpy as np, torch
from pathlib import Path
from synctalk_live import mel
from synctalk_live.audio import align_features, attention_window
from synctalk_live.checkpoint import load_audio_head, load_ave, load_nerf_checkpoint
from synctalk_live.dataset import SyncTalkData
from synctalk_live.reference import Reference
root, wav, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
ckpt = root / 'workspace' / 'checkpoints' / 'ngp_ep0001.pth'
sd, _ = load_nerf_checkpoint(ckpt, 'portrait')
data = SyncTalkData(root / 'data')
eyes = data.eyes(False)
spec = mel.melspectrogram(np.fromfile(wav, dtype=np.float32).astype(np.float64)).astype(np.float32)
windows = np.stack([spec[:, s:s + 16] for s in mel.window_starts(spec.shape[1])])[:, None]
ave, head = load_ave(root / 'audio_visual_encoder.pth'), load_audio_head(ckpt, sd)
ref = Reference(sd, 'portrait', data.height, data.width, data.intrinsics)
frames = []
with torch.no_grad():
    per_frame = align_features(ave(torch.from_numpy(windows)))
    for i in range(per_frame.shape[0]):
        n = len(data)
        t = i % n if (i // n) % 2 == 0 else n - 1 - i % n
        enc_a = head(attention_window(per_frame, i))
        img = ref.render(data.poses[t], enc_a, eyes[t:t + 1], data.background(t, False), data.ori(t), data.face_mask(t))
        frames.append((img.numpy() * 255).astype(np.uint8))
np.stack(frames).tofile(out)
print(len(frames))
`;

let dir: string;
let bundleDir: string;
let bundle: SyncTalkBundle;
const speech = speechlike(N);

/** Feeds `samples` to a renderer in chunks of `size` (the last one padded), then ends the segment: frames per call. */
async function stream(r: SyncTalkRenderer, samples: Float32Array, size: number, segment = 0): Promise<Uint8Array[][]> {
  const out: Uint8Array[][] = [];
  for (let at = 0; at < samples.length; at += size) {
    const piece = new Float32Array(size);
    piece.set(samples.subarray(at, at + size));
    const padding = Math.max(0, at + size - samples.length);
    out.push(await r.render(audio(piece, 16_000, 1, at / 16_000, segment, padding)));
  }
  out.push(await r.end(segmentEnd(segment, samples.length / 16_000)));
  return out;
}

describe('synctalk runtime', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synctalk-runtime-'));
    await run(PYTHON, ['-m', 'synctalk_live.make_test_workspace', '--out', join(dir, 'ws'), '--variant', 'portrait', '--size', String(SIZE)], {
      PYTHONPATH: PYTHON_DIR,
    });
    bundleDir = join(dir, 'bundle');
    const ws = join(dir, 'ws');
    const exported = await run(process.execPath, [
      CLI,
      'export',
      ...['--data', join(ws, 'data'), '--workspace', join(ws, 'workspace'), '--ave', join(ws, 'audio_visual_encoder.pth')],
      ...['--out', bundleDir, '--portrait'],
    ]);
    expect(exported.stdout).toContain('manifest.json');
    bundle = await SyncTalkBundle.open(bundleDir, onnxGraphLoader({ providers: ['cpu'], log }));
  }, 120_000);

  afterAll(async () => {
    await bundle?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('export writes a bundle the loader accepts (portrait, 32x32, 6 track frames)', () => {
    expect(bundle.manifest).toMatchObject({ mode: 'portrait', width: SIZE, height: SIZE, frames: 6, eye_dim: 7 });
    expect(bundle.render.inputNames).toEqual(['enc_a', 'eye', 'pose', 'torso_rgba', 'ori', 'mask']);
  });

  it('export: a failure prints the exporter one-line error and exits non-zero', async () => {
    const r = await attempt(process.execPath, [CLI, 'export', '--data', join(dir, 'nope'), '--workspace', join(dir, 'ws', 'workspace'), '--ave', 'x.pth', '--out', join(dir, 'b2')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toBe('synctalk-live: x.pth: file not found\n');
    const noPython = await attempt(process.execPath, [CLI, 'export', '--data', 'a', '--workspace', 'b', '--ave', 'c', '--out', 'd'], { SYNCTALK_PYTHON: join(dir, 'no-python') });
    expect(noPython.code).toBe(1);
    expect(noPython.stderr).toMatch(/^synctalk-live: .*no-python: no such Python/);
  });

  it('a segment of L AVE windows gives L + 4 frames: ceil(n / 640) or one more, for every n up to 25 s', () => {
    for (let n = 3000; n <= 400_000; n++) {
      const frames = aveWindowCount(1 + Math.floor(n / 200)) + 4;
      const cover = Math.ceil(n / 640);
      if (frames !== cover && frames !== cover + 1) expect.fail(`n = ${n}: ${frames} frames for ${cover} frames of audio`);
    }
  });

  it('walks the tracks ping-pong as SyncTalk does', () => {
    expect(Array.from({ length: 14 }, (_, i) => pingPong(i, 4))).toEqual([0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2]);
  });

  it('releases each frame with the chunk that completes its audio: full 252.5 ms, low-latency 132.5 ms', async () => {
    const frames = aveWindowCount(1 + Math.floor(N / 200)) + 4;
    const full = (await stream(new SyncTalkRenderer(bundle), speech, 1280)).map((f) => f.length);
    // chunk c (samples < 1280 (c + 1)) releases frames <= 2c - 5: frame i needs samples < 640 i + 4040
    expect(full).toEqual([0, 0, 0, 2, 2, 2, 2, 2, frames - 10]);
    const low = (await stream(new SyncTalkRenderer(bundle, { lookahead: 'low-latency' }), speech, 1280)).map((f) => f.length);
    // frames <= 2c - 2 after chunk c: frame i needs samples < 640 i + 2120
    expect(low).toEqual([0, 0, 3, 2, 2, 2, 2, 2, frames - 13]);
  }, 120_000);

  it('renders the frames SyncTalk renders for the same audio (PyTorch reference, within 2/255)', async () => {
    const wav = join(dir, 'speech.f32');
    writeFileSync(wav, Buffer.from(speech.buffer));
    const refFile = join(dir, 'reference.u8');
    const [ref, mine] = await Promise.all([
      run(PYTHON, ['-c', REFERENCE, join(dir, 'ws'), wav, refFile], { PYTHONPATH: PYTHON_DIR }),
      stream(new SyncTalkRenderer(bundle), speech, 1280),
    ]);
    const frames = mine.flat();
    expect(frames).toHaveLength(Number(ref.stdout.trim()));
    const want = readFileSync(refFile);
    let max = 0;
    let sum = 0;
    frames.forEach((rgba, f) => {
      for (let p = 0; p < SIZE * SIZE; p++) {
        expect(rgba[p * 4 + 3]).toBe(255);
        for (let c = 0; c < 3; c++) {
          const d = Math.abs(rgba[p * 4 + c] - want[(f * SIZE * SIZE + p) * 3 + c]);
          max = Math.max(max, d);
          sum += d;
        }
      }
    });
    console.log(`${frames.length} frames vs the PyTorch reference: max ${max}/255, mean ${(sum / (frames.length * SIZE * SIZE * 3)).toFixed(4)}/255`);
    expect(max).toBeLessThanOrEqual(2);
    // the frames move: the mouth follows the audio, the head the tracks
    expect(frames.slice(1).some((f) => f.some((v, i) => v !== frames[0][i]))).toBe(true);
  }, 180_000);

  it('idle ticks render one frame each, the tracks walking on; reset starts a fresh segment', async () => {
    const r = new SyncTalkRenderer(bundle);
    const idle = [];
    for (let k = 0; k < 3; k++) idle.push(await r.render(idleTick(k, k * 0.04)));
    expect(idle.map((f) => f.length)).toEqual([1, 1, 1]);
    expect(idle[1][0]).not.toEqual(idle[0][0]);
    // half a segment, then a flush: what was held is dropped, and the next segment is whole
    await r.render(audio(speech.slice(0, 1280 * 4), 16_000, 1, 0, 0));
    r.reset();
    const after = (await stream(r, speech, 1280, 1)).flat();
    expect(after).toHaveLength(aveWindowCount(1 + Math.floor(N / 200)) + 4);
    // a chunk in a format the model cannot take is one InputError
    await expect(r.render(audio(new Float32Array(960), 48_000, 1, 0, 2))).rejects.toThrow(/^infer: a SyncTalk avatar needs 16000 Hz mono audio/);
  }, 120_000);

  it('a missing or malformed bundle is one ModelError naming the file', async () => {
    const broken = join(dir, 'broken');
    cpSync(bundleDir, broken, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(broken, 'manifest.json'), 'utf8')) as { width: number };
    writeFileSync(join(broken, 'manifest.json'), JSON.stringify({ ...manifest, width: 'wide' }));
    expect(() => readSyncTalkManifest(broken)).toThrow(/^.*broken\/manifest\.json: width: expected number, received string$/i);
    writeFileSync(join(broken, 'manifest.json'), JSON.stringify({ ...manifest, version: 1 }));
    expect(() => readSyncTalkManifest(broken)).toThrow(/broken\/manifest\.json: bundle format version 1; this runtime reads version 2 .*: re-export the bundle with synctalk-live export$/);
    writeFileSync(join(broken, 'manifest.json'), JSON.stringify({ ...manifest, width: 48 }));
    expect(() => readSyncTalkManifest(broken)).toThrow(/manifest\.json: graphs\.render declares .*; a portrait bundle needs .*\[batch, 32, 48, 4\]/);
    writeFileSync(join(broken, 'manifest.json'), JSON.stringify(manifest));
    unlinkSync(join(broken, 'ori', '000003.png'));
    await expect(SyncTalkBundle.open(broken, onnxGraphLoader({ providers: ['cpu'], log }))).rejects.toThrow(/broken\/ori: missing 1 of 6 frames \(first: 000003\.png\)$/);
    cpSync(join(bundleDir, 'ori', '000003.png'), join(broken, 'ori', '000003.png'));
    writeFileSync(join(broken, 'render.onnx'), 'not onnx');
    const err = await SyncTalkBundle.open(broken, onnxGraphLoader({ providers: ['cpu'], log })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).subject).toBe(join(broken, 'render.onnx'));
    expect((err as Error).message).not.toContain('\n');
    expect(() => readSyncTalkManifest(join(dir, 'nowhere'))).toThrow(/nowhere: no such bundle folder$/);
  }, 60_000);

  it('synctalk-live render: WAV -> SyncTalk bundle -> MP4 with L + 4 frames and the audio; a broken bundle is one line', async () => {
    const wav = join(dir, 'speech.wav');
    writeFileSync(wav, encodeWav(speech, { sampleRate: 16_000, channels: 1, encoding: 'float', bitsPerSample: 32 }));
    const preset = JSON.parse(readFileSync(join(ROOT, 'src', 'pipelines', 'presets', 'render-synctalk.json'), 'utf8')) as {
      operators: Array<Record<string, unknown>>;
    };
    const spec = (model: string) => ({ ...preset, operators: preset.operators.map((o) => (o.element === 'infer' ? { ...o, model, providers: ['cpu'] } : o)) });
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec(bundleDir)));
    const out = join(dir, 'out.mp4');
    const r = await attempt(process.execPath, [CLI, 'render', '--audio', wav, '--out', out, '--pipeline', join(dir, 'spec.json')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const frames = aveWindowCount(1 + Math.floor(N / 200)) + 4;
    const info = await probe(out);
    expect(info.video).toMatchObject({ width: SIZE, height: SIZE, frames });
    // the audio is the WAV's, followed by silence for the tail frame(s) past its end (pair)
    expect(info.audio!.duration).toBeGreaterThanOrEqual(N / 16_000 - 0.03);
    expect(info.audio!.duration).toBeLessThanOrEqual(frames / 25 + 0.03);

    const missing = join(dir, 'empty-bundle');
    cpSync(join(bundleDir, 'manifest.json'), join(missing, 'manifest.json'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify(spec(missing)));
    const bad = await attempt(process.execPath, [CLI, 'render', '--audio', wav, '--out', join(dir, 'bad.mp4'), '--pipeline', join(dir, 'bad.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^synctalk-live: .*empty-bundle\/tracks\.json: missing\n$/);
  }, 180_000);
});
