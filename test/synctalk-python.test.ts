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
 * run with onnxruntime-node against the PyTorch reference (python/tests/make_reference_cases.py).
 * Tolerances: rendered frames 2/255 max and 0.5/255 mean per pixel; audio features 1e-4 relative (max-norm).
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
  }, 300_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('python unit tests pass', async () => {
    const run = await python(['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.', '-v']);
    expect(run.stderr).toMatch(/Ran \d+ tests/);
    expect(run.stderr).toMatch(/\nOK\n/);
  }, 300_000);

  it('exported graphs match the PyTorch reference', async () => {
    expect(cases.filter((c) => c.kind === 'render').length).toBeGreaterThanOrEqual(8);
    const sessions = new Map<string, ort.InferenceSession>();
    for (const c of cases) {
      const path = join(dir, c.bundle, c.graph);
      const session = sessions.get(path) ?? (await ort.InferenceSession.create(path));
      sessions.set(path, session);
      const manifest = JSON.parse(readFileSync(join(dir, c.bundle, 'manifest.json'), 'utf8')) as {
        graphs: Record<string, { inputs: { name: string; shape: number[] }[] }>;
      };
      const declared = manifest.graphs[c.graph.replace('.onnx', '')]?.inputs ?? [];
      expect(declared.map((i) => [i.name, i.shape])).toEqual(c.inputs.map((i) => [i.name, i.shape]));
      const feeds = Object.fromEntries(c.inputs.map((t) => [t.name, load(t)]));
      const t0 = performance.now();
      const out = await session.run(feeds);
      const ms = performance.now() - t0;
      const got = out[c.expected.name]?.data as Float32Array;
      const want = load(c.expected).data as Float32Array;
      expect(got.length).toBe(want.length);
      let maxDiff = 0;
      let sum = 0;
      let maxRef = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i]! - want[i]!);
        maxDiff = Math.max(maxDiff, d);
        sum += d;
        maxRef = Math.max(maxRef, Math.abs(want[i]!));
      }
      const label = `${c.bundle}/${c.graph}`;
      if (c.kind === 'render') {
        console.log(
          `${label}: max ${(maxDiff * 255).toFixed(4)}/255 mean ${((sum / want.length) * 255).toFixed(5)}/255, ` +
            `onnx ${ms.toFixed(1)} ms, torch reference ${c.reference_ms} ms`,
        );
        expect(maxDiff, label).toBeLessThanOrEqual(2 / 255);
        expect(sum / want.length, label).toBeLessThanOrEqual(0.5 / 255);
        expect(Math.max(...want) - Math.min(...want), label).toBeGreaterThan(0.3);
      } else {
        console.log(`${label}: relative error ${(maxDiff / maxRef).toExponential(2)}`);
        expect(maxDiff / maxRef, label).toBeLessThanOrEqual(1e-4);
      }
    }
    await Promise.all([...sessions.values()].map((s) => s.release()));
  }, 300_000);
});
