import { describe, expect, it } from 'vitest';
import { DEMO_FACE_MODEL_PATH } from '../src/models/demo-face.ts';
import { lavapipeEnv, webgpuChild } from './helpers/lavapipe.ts';

/**
 * All WebGPU runs of a process go through one thread: two OnnxModels on webgpu, run concurrently, would crash
 * onnxruntime 1.30 from two threads (SIGSEGV, #32561); they share OnnxModel's WebGPU thread instead. Runs in a child
 * process on Mesa's lavapipe (scripts/install-lavapipe.sh), so that a crash fails this test, not the runner.
 */
describe('WebGPU models in one process', () => {
  it('two models on webgpu run concurrently through one thread, equal to the cpu, placement reported', async () => {
    lavapipeEnv();
    const { code, signal, result, stderr } = await webgpuChild(['shared', DEMO_FACE_MODEL_PATH]);
    expect({ code, signal }, stderr.slice(-2000)).toEqual({ code: 0, signal: null });
    expect(result).toMatchObject({ providers: ['webgpu', 'webgpu'], runs: 24, maxDiff: 0 });
    // The demo face's Mod has no WebGPU kernel: ORT runs it on the CPU, and the first run says so.
    const placement = (result as { placement: Array<{ nodes: Record<string, number>; cpuOps: string[]; copies: number }> }).placement;
    for (const p of placement) {
      expect(p.nodes.webgpu).toBeGreaterThan(40);
      expect(p.nodes.cpu).toBe(1);
      expect(p.cpuOps).toEqual(['Mod']);
      expect(p.copies).toBeGreaterThan(0);
    }
  }, 120_000);
});
