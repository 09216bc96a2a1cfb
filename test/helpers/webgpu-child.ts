/**
 * The WebGPU side of test/webgpu.test.ts, run as a child process: the Vulkan driver (lavapipe) is chosen by
 * environment variables read when the process starts, and a WebGPU crash must not take the test runner down.
 * Prints one JSON line on stdout.
 *
 *  - `shared MODEL`: loads MODEL twice on webgpu (two OnnxModels, as two sessions of a process would) and once on
 *    cpu, runs both WebGPU models concurrently RUNS times with different inputs, and reports the largest difference
 *    from the CPU's outputs and each model's placement. Two threads running WebGPU sessions crash onnxruntime 1.30
 *    (#32561); OnnxModel runs them in one shared thread.
 *  - `render BUNDLE`: runs the bundle's render.onnx once on webgpu (ORT's verbose log on: its node placement goes to
 *    stderr) and once on cpu with the same feeds, and reports the largest difference per output.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { destination, pino } from 'pino';
import type { TensorFeed, TensorResult } from '../../src/models/model-runner.ts';
import { OnnxModel } from '../../src/models/onnx-model.ts';

const RUNS = 12;
const [mode, path] = process.argv.slice(2);
const log = pino({ level: 'warn' }, destination(2));

const maxDiff = (a: TensorResult['data'], b: TensorResult['data']): number => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length && m < Infinity; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])) || (Number.isNaN(Number(a[i])) ? Infinity : 0));
  return m;
};

async function shared(model: string): Promise<object> {
  const [gpuA, gpuB, cpu] = await Promise.all([
    OnnxModel.load(model, { providers: ['webgpu'], log }),
    OnnxModel.load(model, { providers: ['webgpu'], log }),
    OnnxModel.load(model, { providers: ['cpu'], log }),
  ]);
  const feeds = (k: number): Record<string, TensorFeed> => ({
    audio: { type: 'float32', dims: [4, 640], data: Float32Array.from({ length: 4 * 640 }, (_, i) => 0.3 * Math.sin(i * 0.01 * (k + 1))) },
    phase: { type: 'float32', dims: [4], data: Float32Array.from({ length: 4 }, (_, i) => (k + i) / 16) },
  });
  let diff = 0;
  await Promise.all(
    [gpuA, gpuB].map(async (gpu) => {
      for (let k = 0; k < RUNS; k++) {
        const [got, want] = await Promise.all([gpu.run(feeds(k)), cpu.run(feeds(k))]);
        for (const name of Object.keys(want)) diff = Math.max(diff, maxDiff(got[name].data, want[name].data));
      }
    }),
  );
  const result = { providers: [gpuA.provider, gpuB.provider], runs: 2 * RUNS, maxDiff: diff, placement: [gpuA.placement, gpuB.placement] };
  await Promise.all([gpuA.close(), gpuB.close(), cpu.close()]);
  return result;
}

/** Feeds for render.onnx from the bundle's manifest and tracks (track frames 0, 1, ...; images a fixed pattern); a symbolic batch dimension is 2. */
function renderFeeds(bundle: string): Record<string, ort.Tensor> {
  const manifest = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as {
    graphs: { render: { inputs: Array<{ name: string; dtype: 'float32' | 'uint8'; shape: Array<number | string> }> } };
  };
  const tracks = JSON.parse(readFileSync(join(bundle, 'tracks.json'), 'utf8')) as Record<string, number[][]>;
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of manifest.graphs.render.inputs) {
    const shape = input.shape.map((d) => (typeof d === 'number' ? d : 2));
    const n = shape.reduce((a, b) => a * b, 1);
    const track = { pose: tracks.poses, eye: tracks.eyes, anchor: tracks.anchors }[input.name];
    const data =
      input.dtype === 'uint8'
        ? Uint8Array.from({ length: n }, (_, k) => (k * 37) & 255)
        : track
          ? Float32Array.from({ length: n }, (_, k) => track[Math.floor(k / track[0].length) % track.length][k % track[0].length])
          : Float32Array.from({ length: n }, (_, k) => 0.5 * Math.sin(k));
    feeds[input.name] = new ort.Tensor(input.dtype, data, shape);
  }
  return feeds;
}

async function render(bundle: string): Promise<object> {
  const file = join(bundle, 'render.onnx');
  const feeds = renderFeeds(bundle);
  const gpu = await ort.InferenceSession.create(file, { executionProviders: ['webgpu'], logSeverityLevel: 0, logVerbosityLevel: 0 });
  const got = await gpu.run(feeds);
  await gpu.release();
  const cpu = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], logSeverityLevel: 3 });
  const want = await cpu.run(feeds);
  await cpu.release();
  const outputs: Record<string, { type: string; dims: readonly number[]; maxDiff: number }> = {};
  for (const [name, t] of Object.entries(want)) {
    outputs[name] = { type: t.type, dims: t.dims, maxDiff: maxDiff(got[name].data as TensorResult['data'], t.data as TensorResult['data']) };
  }
  return { outputs };
}

if (mode === 'shared' && path) console.log(JSON.stringify(await shared(path)));
else if (mode === 'render' && path) console.log(JSON.stringify(await render(path)));
else {
  console.error('usage: webgpu-child.ts shared MODEL | render BUNDLE');
  process.exitCode = 2;
}
