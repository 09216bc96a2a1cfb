import { describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { validatePipeline, withOverrides, type PipelineSpec } from '../src/pipelines/spec.ts';
import { registry } from '../src/registry.ts';
import { PipelineSpecError } from '../src/errors.ts';
import { parseParams } from '../src/pipelines/params.ts';
import { z } from 'zod';

const base = (): PipelineSpec => ({
  source: { element: 'wav-file', path: 'in.wav' },
  operators: [
    { element: 'resample', rate: 16000, channels: 1 },
    { element: 'chunk', size: 1280 },
    { element: 'infer', model: 'demo' },
    { element: 'pair' },
  ],
  sink: { element: 'mp4-file', path: 'out.mp4' },
});

const errorOf = (json: unknown): string => {
  try {
    validatePipeline(json, registry, 'spec.json');
  } catch (e) {
    expect(e).toBeInstanceOf(PipelineSpecError);
    return (e as Error).message;
  }
  throw new Error('expected the spec to be rejected');
};

describe('pipeline specs', () => {
  it('validates into a typed pipeline with defaults filled in and caps walked', () => {
    const p = validatePipeline(base(), registry, 'spec.json');
    expect(p.fps).toBe(25);
    expect(p.operators.map((o) => o.element.name)).toEqual(['resample', 'chunk', 'infer', 'pair']);
    expect(p.operators[1].caps).toEqual({ kind: 'audio', sampleRate: 16000, channels: 1, chunk: 1280 });
    expect(p.sink.caps.kind).toBe('av');
  });

  it('a typo in an operator name lists the valid names', () => {
    const spec = base();
    spec.operators![1] = { element: 'chunks', size: 1280 };
    expect(errorOf(spec)).toBe(
      'spec.json: operators[1].element: unknown operator "chunks" (valid operators: idle-fill, resample, chunk, infer, scale, pair)',
    );
  });

  it('a wrong parameter type names the JSON path', () => {
    const spec = base();
    spec.operators![2] = { element: 'infer', model: 'demo', maxInFlight: 'two' };
    expect(errorOf(spec)).toMatch(/^spec\.json: operators\[2\]\.maxInFlight: expected number, received string/);
  });

  it('an unknown parameter is named', () => {
    const spec = base();
    spec.operators![0] = { element: 'resample', rat: 16000 };
    expect(errorOf(spec)).toBe('spec.json: operators[0].rat: unknown parameter of resample (parameters: rate, channels)');
  });

  it('formats are checked when the pipeline is built', () => {
    const spec = base();
    spec.operators!.splice(0, 1);
    expect(errorOf(spec)).toMatch(/^spec\.json: operators\[1\] \(infer\): .*16000.*; it receives audio/);
    const noPair = base();
    noPair.operators!.pop();
    expect(errorOf(noPair)).toMatch(/^spec\.json: sink \(mp4-file\): .*; it receives video 256x256/);
  });

  it('the example pipeline validates', async () => {
    const path = fileURLToPath(new URL('../examples/custom-pipeline.json', import.meta.url));
    const json: unknown = JSON.parse(await readFile(path, 'utf8'));
    const p = validatePipeline(withOverrides(json, { source: { path: 'in.wav' }, sink: { path: 'out.mp4' } }), registry, path);
    expect(p.budgetSeconds).toBe(1);
    expect(p.operators[2].params).toMatchObject({ maxInFlight: 4 });
  });

  it('top-level mistakes are named too', () => {
    expect(errorOf({ ...base(), fps: 'fast' })).toBe('spec.json: fps: expected number, received string');
    expect(errorOf({ ...base(), sinks: {} })).toBe('spec.json: sinks: unknown key (a pipeline spec has: $schema, description, fps, budgetSeconds, source, operators, sink)');
  });

  // Live presets name room-bound elements: test/worker/live-preset.test.ts validates them with a session's registry.
  it('every shipped file preset validates', async () => {
    const dir = fileURLToPath(new URL('../src/pipelines/presets/', import.meta.url));
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json') && !f.startsWith('live-'));
    expect(files).toContain('render-demo.json');
    for (const f of files) {
      const json: unknown = JSON.parse(await readFile(dir + f, 'utf8'));
      const p = validatePipeline(withOverrides(json, { source: { path: 'in.wav' }, sink: { path: 'out.mp4' } }), registry, f);
      expect(p.sink.caps.kind).toBe('av');
    }
  });

  it('every registered element takes a z.object of described parameters and rejects a key it does not declare', () => {
    for (const element of registry) {
      expect(element.params, element.name).toBeInstanceOf(z.ZodObject);
      const shape = (element.params as z.AnyZodObject).shape as Record<string, z.ZodTypeAny>;
      for (const [key, schema] of Object.entries(shape)) expect(schema.description, `${element.name}.${key}`).toBeTruthy();
      expect(() => parseParams(element.name, element.params, { notAParameter: 1 }, { origin: 'spec.json', prefix: ['x'] })).toThrow(
        new PipelineSpecError('spec.json', `x.notAParameter: unknown parameter of ${element.name} (${Object.keys(shape).length === 0 ? 'it takes none' : `parameters: ${Object.keys(shape).join(', ')}`})`),
      );
    }
  });
});
