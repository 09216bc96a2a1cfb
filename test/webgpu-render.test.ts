import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lavapipeEnv, webgpuChild } from './helpers/lavapipe.ts';

/**
 * The SyncTalk render graph runs wholly on WebGPU: a small exported bundle's render.onnx on the webgpu provider over
 * Mesa's lavapipe (scripts/install-lavapipe.sh; CI has no GPU), in a child process with ORT's verbose log on. Its
 * node placement ("All nodes placed on [X]" or per provider "Node(s) placed on [X]", with counts) must name no CPU node (any would copy tensors between
 * host and GPU every frame), and the frame must equal the CPU provider's.
 */

const PYTHON = '/usr/bin/python3';
const ROOT = join(import.meta.dirname, '..');
const PYTHON_DIR = join(ROOT, 'python');
const SIZE = 32;

const run = (file: string, args: string[]) =>
  promisify(execFile)(file, args, { cwd: PYTHON_DIR, encoding: 'utf8', env: { ...process.env, PYTHONPATH: PYTHON_DIR }, maxBuffer: 64 << 20 });

/** Node counts per provider from ORT's verbose placement log. */
const placement = (log: string): Record<string, number> =>
  Object.fromEntries([...log.matchAll(/(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/g)].map(([, provider, n]) => [provider, Number(n)]));

/** The op types placed on `provider`, from the lines that follow its placement line. */
const opsOn = (log: string, provider: string): string[] => {
  const lines = log.split('\n');
  const at = lines.findIndex((l) => l.includes(`Node(s) placed on [${provider}]`));
  if (at < 0) return [];
  const ops: string[] = [];
  for (const line of lines.slice(at + 1)) {
    const m = line.match(/VerifyEachNodeIsAssignedToAnEp\]\s{3}(\w+) \(/);
    if (!m) break;
    ops.push(m[1]);
  }
  return ops;
};

let dir: string;
let bundle: string;

describe.each(['portrait', 'torso'] as const)(`render.onnx on WebGPU (%s, ${SIZE} px)`, (variant) => {
  beforeAll(async () => {
    lavapipeEnv();
    dir = mkdtempSync(join(tmpdir(), `webgpu-render-${variant}-`));
    const ws = join(dir, 'ws');
    bundle = join(dir, 'bundle');
    await run(PYTHON, ['-m', 'synctalk_live.make_test_workspace', '--out', ws, '--variant', variant, '--size', String(SIZE)]);
    const flag = variant === 'torso' ? '--torso' : '--portrait';
    await run(PYTHON, ['-m', 'synctalk_live.export', '--data', join(ws, 'data'), '--workspace', join(ws, 'workspace'), '--ave', join(ws, 'audio_visual_encoder.pth'), '--out', bundle, flag]);
  }, 300_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('places every node on WebGPU and renders the CPU provider frame', async () => {
    const { code, signal, result, stderr } = await webgpuChild(['render', bundle]);
    expect({ code, signal }, stderr.slice(-2000)).toEqual({ code: 0, signal: null });
    const placed = placement(stderr);
    expect(placed.WebGpuExecutionProvider, 'no placement log from ORT').toBeGreaterThan(0);
    expect({ cpuNodes: placed.CPUExecutionProvider ?? 0, ops: opsOn(stderr, 'CPUExecutionProvider') }).toEqual({ cpuNodes: 0, ops: [] });
    const outputs = (result as { outputs: Record<string, { type: string; maxDiff: number }> }).outputs;
    expect(Object.keys(outputs).length).toBeGreaterThan(0);
    for (const [name, o] of Object.entries(outputs)) {
      // float frames within 1e-5; a uint8 frame may differ by one level where the float value sits on a rounding edge
      expect(o.maxDiff, `${name} (${o.type})`).toBeLessThanOrEqual(o.type === 'uint8' ? 1 : 1e-5);
    }
  }, 300_000);
});
