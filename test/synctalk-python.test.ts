import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The Python side of SyncTalk avatars (python/synctalk_live): its own unit tests, then the exported ONNX graphs
 * run with onnxruntime-node against the PyTorch reference (python/tests/make_reference_cases.py), one frame per run
 * (batch of one): the six flag sets (head, portrait, torso, au45, portrait + au45, torso + au45) at 64 x 64 and
 * portrait at 128 x 128, three track frames each, rendered with SyncTalk's marching schedule by both.
 * Tolerances: rendered uint8 frames within 1 per channel of the reference's (a float32 rounding can cross a
 * truncation level), alpha 255; audio features 1e-4 relative (max-norm).
 */

const PYTHON = '/usr/bin/python3';
const PYTHON_DIR = join(import.meta.dirname, '..', 'python');

interface TensorFile {
  readonly name: string;
  readonly dtype: 'float32' | 'uint8';
  readonly shape: number[];
  readonly file: string;
}
interface Case {
  readonly bundle: string;
  readonly graph: string;
  readonly kind: 'render' | 'feature';
  readonly inputs: TensorFile[];
  readonly expected: TensorFile;
  readonly reference_ms?: number;
  /** The reference's n_step per iteration of SyncTalk's loop (render cases). */
  readonly n_steps?: number[];
}

let dir: string;
let cases: Case[];

/** Runs /usr/bin/python3 in python/ without blocking the test worker; rejects (with stderr) on a non-zero exit. */
const python = (args: string[]): Promise<{ stdout: string; stderr: string }> =>
  promisify(execFile)(PYTHON, args, { cwd: PYTHON_DIR, encoding: 'utf8', maxBuffer: 16 << 20 });

const load = (t: TensorFile): ort.Tensor => {
  const bytes = readFileSync(join(dir, t.file));
  const data =
    t.dtype === 'uint8'
      ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      : new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return new ort.Tensor(t.dtype, data, t.shape);
};

describe('synctalk python', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synctalk-python-'));
    await python(['tests/make_reference_cases.py', dir]);
    cases = (JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { cases: Case[] }).cases;
  }, 600_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('python unit tests pass', async () => {
    const run = await python(['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.', '-v']);
    expect(run.stderr).toMatch(/Ran \d+ tests/);
    expect(run.stderr).toMatch(/\nOK\n/);
  }, 300_000);

  it('exported graphs match the PyTorch reference', async () => {
    const renders = cases.filter((c) => c.kind === 'render');
    expect(new Set(renders.map((c) => c.bundle)).size).toBe(7);
    // frames whose surviving rays take more than 16 samples: the samples past 16 are compared too
    expect(renders.filter((c) => (c.n_steps ?? []).reduce((a, b) => a + b, 0) > 16).length).toBeGreaterThanOrEqual(7);
    const sessions = new Map<string, ort.InferenceSession>();
    for (const c of cases) {
      const path = join(dir, c.bundle, c.graph);
      const session = sessions.get(path) ?? (await ort.InferenceSession.create(path));
      sessions.set(path, session);
      const manifest = JSON.parse(readFileSync(join(dir, c.bundle, 'manifest.json'), 'utf8')) as {
        graphs: Record<string, { inputs: { name: string; shape: Array<number | 'batch'> }[] }>;
      };
      const declared = manifest.graphs[c.graph.replace('.onnx', '')]?.inputs ?? [];
      expect(declared.map((i) => [i.name, i.shape])).toEqual(c.inputs.map((i) => [i.name, ['batch', ...i.shape.slice(1)]]));
      const feeds = Object.fromEntries(c.inputs.map((t) => [t.name, load(t)]));
      const t0 = performance.now();
      const out = await session.run(feeds);
      const ms = performance.now() - t0;
      const label = `${c.bundle}/${c.graph}`;
      if (c.kind === 'render') {
        // rgba [1, H, W, 4] against the reference's RGB [H, W, 3]
        const got = out.rgba?.data as Uint8Array;
        const want = load(c.expected).data as Uint8Array;
        expect(got.length, label).toBe((want.length / 3) * 4);
        let maxDiff = 0;
        let sum = 0;
        let opaque = true;
        for (let p = 0; p < want.length / 3; p++) {
          opaque &&= got[p * 4 + 3] === 255;
          for (let ch = 0; ch < 3; ch++) {
            const d = Math.abs(got[p * 4 + ch]! - want[p * 3 + ch]!);
            maxDiff = Math.max(maxDiff, d);
            sum += d;
          }
        }
        const steps = c.n_steps ?? [];
        console.log(
          `${label}: max ${maxDiff}/255 mean ${(sum / want.length).toFixed(5)}/255, n_step ${steps.join(',')} ` +
            `(${steps.reduce((a, b) => a + b, 0)} samples), onnx ${ms.toFixed(1)} ms, torch reference ${c.reference_ms} ms`,
        );
        expect(opaque, label).toBe(true);
        expect(maxDiff, label).toBeLessThanOrEqual(1);
        expect(sum / want.length, label).toBeLessThanOrEqual(0.05);
        expect(Math.max(...want) - Math.min(...want), label).toBeGreaterThan(0.3 * 255);
      } else {
        const got = out[c.expected.name]?.data as Float32Array;
        const want = load(c.expected).data as Float32Array;
        expect(got.length).toBe(want.length);
        let maxDiff = 0;
        let maxRef = 0;
        for (let i = 0; i < want.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
          maxRef = Math.max(maxRef, Math.abs(want[i]!));
        }
        console.log(`${label}: relative error ${(maxDiff / maxRef).toExponential(2)}`);
        expect(maxDiff / maxRef, label).toBeLessThanOrEqual(1e-4);
      }
    }
    await Promise.all([...sessions.values()].map((s) => s.release()));
  }, 300_000);
});
