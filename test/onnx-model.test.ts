import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, ModelError } from '../src/errors.ts';
import { DEMO_FACE_MODEL_PATH } from '../src/models/demo-face.ts';
import type { TensorFeed } from '../src/models/model-runner.ts';
import { OnnxModel } from '../src/models/onnx-model.ts';

/** A pino logger whose JSON lines are kept in `lines`. */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string; provider?: string; reason?: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

const silent = pino({ level: 'silent' });

const feeds = (n: number): Record<string, TensorFeed> => ({
  audio: { type: 'float32', dims: [n, 640], data: new Float32Array(n * 640) },
  phase: { type: 'float32', dims: [n], data: new Float32Array(n) },
});

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'onnx-model-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('OnnxModel.load', () => {
  it("falls back from ['cuda', 'cpu'] to cpu with one warning per process naming the reason (no CUDA libraries here)", async () => {
    const { log, lines } = capturingLogger();
    const model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cuda', 'cpu'], log });
    try {
      const warnings = lines.filter((l) => l.level === 40);
      if (model.provider === 'cpu') {
        expect(warnings).toHaveLength(1);
        expect(warnings[0].provider).toBe('cuda');
        expect(warnings[0].msg).toMatch(/provider cuda unavailable, trying the next: libonnxruntime_providers_shared\.so and libonnxruntime_providers_cuda\.so not installed/);
        // Found once per process: a second load (another session) skips cuda without a warning.
        const again = capturingLogger();
        const second = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cuda', 'cpu'], log: again.log });
        await second.close();
        expect(again.lines.filter((l) => l.level === 40)).toHaveLength(0);
      } else {
        expect(model.provider).toBe('cuda');
        expect(warnings).toHaveLength(0);
      }
      expect(lines.filter((l) => l.level === 30).map((l) => l.msg)).toEqual([`using provider ${model.provider}`]);
    } finally {
      await model.close();
    }
  });

  it('reports the inputs and outputs the file declares', async () => {
    const model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log: silent });
    try {
      expect(model.provider).toBe('cpu');
      expect(model.inputNames).toEqual(['audio', 'phase']);
      expect(model.outputNames).toEqual(['frame']);
      expect(model.inputs[0]).toEqual({ name: 'audio', type: 'float32', shape: ['N', 640] });
      expect(model.outputs[0]).toEqual({ name: 'frame', type: 'uint8', shape: ['N', 256, 256, 4] });
    } finally {
      await model.close();
    }
  });

  it('gives a one-line ModelError for a missing file', async () => {
    const missing = join(dir, 'nope.onnx');
    await expect(OnnxModel.load(missing, { log: silent })).rejects.toThrow(new ModelError(missing, 'no such file'));
  });

  it('gives a one-line ModelError for a file that is not ONNX', async () => {
    const corrupt = join(dir, 'corrupt.onnx');
    writeFileSync(corrupt, 'this is not a protobuf\n'.repeat(20));
    const error = await OnnxModel.load(corrupt, { providers: ['cpu'], log: silent }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).message).toMatch(new RegExp(`^${corrupt}: cannot load: .*Protobuf parsing failed`));
    expect((error as ModelError).message).not.toContain('\n');
  });

  it('gives a ModelError for a folder', async () => {
    await expect(OnnxModel.load(dir, { log: silent })).rejects.toThrow(`${dir}: not a file`);
  });
});

describe('OnnxModel.run', () => {
  let model: OnnxModel;
  beforeAll(async () => {
    model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log: silent });
  });
  afterAll(() => model.close());

  it('runs a batch and transfers the outputs back', async () => {
    const out = await model.run(feeds(3));
    expect(out.frame.type).toBe('uint8');
    expect(out.frame.dims).toEqual([3, 256, 256, 4]);
    expect(out.frame.data).toBeInstanceOf(Uint8Array);
    expect(out.frame.data.length).toBe(3 * 256 * 256 * 4);
  });

  it('leaves inference threads at the process priority by default (SYNCTALK_INFERENCE_NICE unset)', () => {
    expect(threadNices().every((t) => t.nice === getPriority())).toBe(true);
  });

  it('transfers whole-buffer feeds and copies views into a larger buffer', async () => {
    const whole = feeds(1);
    await model.run(whole);
    expect(whole.audio.data.length).toBe(0);
    const shared = new Float32Array(641);
    shared[640] = 42;
    await model.run({ ...feeds(1), audio: { type: 'float32', dims: [1, 640], data: shared.subarray(0, 640) } });
    expect(shared[640]).toBe(42);
  });

  it('rejects wrong input names with a ModelError naming them', async () => {
    const { phase } = feeds(1);
    const wrong = { samples: { type: 'float32', dims: [1, 640], data: new Float32Array(640) }, phase } as const;
    await expect(model.run(wrong)).rejects.toThrow(
      new ModelError(DEMO_FACE_MODEL_PATH, 'missing input audio; unknown input samples (expects audio, phase)'),
    );
  });

  it('turns a failed run (wrong dims) into a one-line ModelError', async () => {
    const bad = { ...feeds(1), audio: { type: 'float32', dims: [1, 320], data: new Float32Array(320) } } as const;
    const error = await model.run(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).message).toMatch(/: run failed: .*audio/);
    expect((error as ModelError).message).not.toContain('\n');
  });

  it('serves concurrent runs in order, as one queue', async () => {
    const results = await Promise.all([1, 2, 3, 4].map((n) => model.run(feeds(n))));
    expect(results.map((r) => r.frame.dims[0])).toEqual([1, 2, 3, 4]);
  });

  it('keeps the event loop responsive while inference runs in the worker', async () => {
    // Were run() on the main thread, the loop would stall for a whole run (batch 32: ~120 ms) each time.
    const histogram = monitorEventLoopDelay({ resolution: 2 });
    const runs: number[] = [];
    histogram.enable();
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      await model.run(feeds(32));
      runs.push(performance.now() - t0);
    }
    histogram.disable();
    const p99 = histogram.percentile(99) / 1e6;
    const shortest = Math.min(...runs);
    expect(p99, `p99 loop delay ${p99.toFixed(1)} ms (max ${(histogram.max / 1e6).toFixed(1)}), shortest run ${shortest.toFixed(1)} ms`).toBeLessThan(shortest / 2);
  });
});

/** The nice value of each thread of this process (Linux keeps one per thread). */
function threadNices(): { tid: number; nice: number }[] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
  });
}

describe('SYNCTALK_INFERENCE_NICE', () => {
  afterAll(() => {
    delete process.env.SYNCTALK_INFERENCE_NICE;
  });

  it('runs inference on threads at that nice value while the main thread keeps its priority', async () => {
    process.env.SYNCTALK_INFERENCE_NICE = '12';
    const model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log: silent });
    try {
      const nices = threadNices();
      expect(nices.find((t) => t.tid === process.pid)?.nice).toBe(getPriority());
      expect(nices.some((t) => t.nice === Math.max(getPriority(), 12) && t.tid !== process.pid)).toBe(true);
    } finally {
      await model.close();
    }
  });

  it('a value that is not 0 to 19 is one InputError naming the variable', async () => {
    for (const bad of ['-1', '20', 'low', '2.5']) {
      process.env.SYNCTALK_INFERENCE_NICE = bad;
      const error = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log: silent }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toBe(`SYNCTALK_INFERENCE_NICE: not a whole number from 0 to 19: ${bad}`);
    }
  });
});

describe('OnnxModel.close', () => {
  it('ends the worker: queued and later runs reject with ModelError "closed"; close is idempotent', async () => {
    const model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log: silent });
    const queued = expect(model.run(feeds(8))).rejects.toThrow(new ModelError(DEMO_FACE_MODEL_PATH, 'closed'));
    await model.close();
    await queued;
    await expect(model.run(feeds(1))).rejects.toThrow(new ModelError(DEMO_FACE_MODEL_PATH, 'closed'));
    await model.close();
  });
});
