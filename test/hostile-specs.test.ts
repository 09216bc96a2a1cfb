/**
 * A corpus of hostile pipeline specs (as JSON text, the way a user's file reaches the loader), each with the one
 * line it must be rejected with: out-of-range numbers, unknown and misspelt parameters of every element, budgets
 * that would stall, wrong JSON shapes, keys and names carrying control characters, `__proto__`.
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { PipelineSpecError } from '../src/errors.ts';
import { registry } from '../src/registry.ts';
import { validatePipeline, withOverrides } from '../src/pipelines/spec.ts';

interface Op {
  readonly element: string;
  readonly [key: string]: unknown;
}

const operators = (): Op[] => [
  { element: 'resample', rate: 16000, channels: 1 },
  { element: 'chunk', size: 1280 },
  { element: 'infer', model: 'demo', providers: ['cpu'] },
  { element: 'pair' },
];
const spec = (extra: object = {}, ops: Op[] = operators()): object => ({ source: { element: 'wav-file' }, operators: ops, sink: { element: 'mp4-file' }, ...extra });
/** The default spec with operator `i` changed. */
const withOp = (i: number, change: object): object => spec({}, operators().map((o, k) => (k === i ? { ...o, ...change } : o)));
const json = (value: object): string => JSON.stringify(value);

const CORES = availableParallelism();
const INFER_PARAMS = 'parameters: model, providers, maxInFlight, intraOpThreads, lookahead';

const corpus: Array<[string, string, string]> = [
  [
    'a budget smaller than one 80 ms chunk',
    json(spec({ budgetSeconds: 0.05 })),
    'budgetSeconds: 0.05 s cannot hold the 0.162 s of audio the pipeline takes in before its first frame is written (wav-file 0.02 s, resample 0.022 s, chunk 0.08 s, one frame 0.04 s); the pipeline would stall',
  ],
  [
    'a budget below the source chunks',
    json(spec({ budgetSeconds: 0.3, source: { element: 'wav-file', chunkMs: 300 } })),
    'budgetSeconds: 0.3 s cannot hold the 0.442 s of audio the pipeline takes in before its first frame is written (wav-file 0.3 s, resample 0.022 s, chunk 0.08 s, one frame 0.04 s); the pipeline would stall',
  ],
  ['a zero budget', json(spec({ budgetSeconds: 0 })), 'budgetSeconds: number must be greater than 0'],
  ['an infinite budget (1e999)', '{"budgetSeconds": 1e999, "source": {"element": "wav-file"}, "sink": {"element": "mp4-file"}}', 'budgetSeconds: number must be less than or equal to 3600'],
  ['a negative fps', json(spec({ fps: -1 })), 'fps: number must be greater than 0'],
  ['fps as a string', json(spec({ fps: '25' })), 'fps: expected number, received string'],
  ['intraOpThreads 1e4', json(withOp(2, { intraOpThreads: 1e4 })), `operators[2].intraOpThreads: at most this machine's ${CORES} cores (infer)`],
  ['intraOpThreads 1e6', json(withOp(2, { intraOpThreads: 1e6 })), `operators[2].intraOpThreads: at most this machine's ${CORES} cores (infer)`],
  ['intraOpThreads 0', json(withOp(2, { intraOpThreads: 0 })), 'operators[2].intraOpThreads: number must be greater than or equal to 1 (infer)'],
  ['maxInFlight 1e9', json(withOp(2, { maxInFlight: 1e9 })), 'operators[2].maxInFlight: number must be less than or equal to 64 (infer)'],
  ['infer: providres (a typo)', json(withOp(2, { providres: ['cpu'] })), `operators[2].providres: unknown parameter of infer (${INFER_PARAMS})`],
  ['infer: maxInflight (a typo)', json(withOp(2, { maxInflight: 4 })), `operators[2].maxInflight: unknown parameter of infer (${INFER_PARAMS})`],
  ['infer: an unknown provider', json(withOp(2, { providers: ['tpu'] })), "operators[2].providers[0]: invalid enum value. Expected 'cuda' | 'webgpu' | 'cpu', received 'tpu' (infer)"],
  ['infer: no providers', json(withOp(2, { providers: [] })), 'operators[2].providers: array must contain at least 1 element(s) (infer)'],
  ['resample: 7 Hz', json(withOp(0, { rate: 7 })), 'operators[0].rate: number must be greater than or equal to 1000 (resample)'],
  ['resample: 1e9 Hz', json(withOp(0, { rate: 1e9 })), 'operators[0].rate: number must be less than or equal to 768000 (resample)'],
  ['resample: a fractional rate', json(withOp(0, { rate: 16000.5 })), 'operators[0].rate: expected integer, received float (resample)'],
  ['resample: an unknown key', json(withOp(0, { quality: 'high' })), 'operators[0].quality: unknown parameter of resample (parameters: rate, channels)'],
  ['chunk: 1e9 samples', json(withOp(1, { size: 1e9 })), 'operators[1].size: number must be less than or equal to 1048576 (chunk)'],
  ['chunk: half a sample', json(withOp(1, { size: 0.5 })), 'operators[1].size: expected integer, received float (chunk)'],
  ['chunk: an unknown key', json(withOp(1, { samples: 1280 })), 'operators[1].samples: unknown parameter of chunk (parameters: size)'],
  ['pair: 1e6 idle channels', json(withOp(3, { idleChannels: 1e6 })), 'operators[3].idleChannels: number must be less than or equal to 64 (pair)'],
  ['pair: a 4 GHz idle rate', json(withOp(3, { idleSampleRate: 4294967295 })), 'operators[3].idleSampleRate: number must be less than or equal to 768000 (pair)'],
  ['idle-fill: an unknown key', json(spec({}, [{ element: 'idle-fill', leed: 1 }, ...operators()])), 'operators[0].leed: unknown parameter of idle-fill (parameters: lead)'],
  ['scale: a huge frame', json(spec({}, [...operators().slice(0, 3), { element: 'scale', width: 1e9, height: 2 }, { element: 'pair' }])), 'operators[3].width: number must be less than or equal to 7680 (scale)'],
  ['wav-file: 1e6 ms chunks', json(spec({ source: { element: 'wav-file', chunkMs: 1e6 } })), 'source.chunkMs: number must be less than or equal to 1000 (wav-file)'],
  ['wav-file: an unknown key', json(spec({ source: { element: 'wav-file', file: 'x.wav' } })), 'source.file: unknown parameter of wav-file (parameters: path, chunkMs, nonFinite)'],
  ['mp4-file: crf 99', json(spec({ sink: { element: 'mp4-file', crf: 99 } })), 'sink.crf: number must be less than or equal to 51 (mp4-file)'],
  ['mp4-file: an unknown key', json(spec({ sink: { element: 'mp4-file', bitrate: '1M' } })), 'sink.bitrate: unknown parameter of mp4-file (parameters: path, crf, preset, audioBitrate)'],
  ['null: any key', json(spec({ sink: { element: 'null', path: 'x' } })), 'sink.path: unknown parameter of null (it takes none)'],
  ['a source that is a number', json(spec({ source: 5 })), 'source: expected object, received number'],
  ['operators that are an object', json(spec({ operators: {} })), 'operators: expected array, received object'],
  ['an element name with a newline', json(withOp(0, { element: 'resam\nple' })), 'operators[0].element: unknown operator "resam\\x0aple" (valid operators: idle-fill, resample, chunk, infer, scale, pair)'],
  ['a key with a newline', json(withOp(0, { 'ra\nte': 1 })), 'operators[0].ra\\x0ate: unknown parameter of resample (parameters: rate, channels)'],
  ['a __proto__ key', json(withOp(0, {})).replace('"rate":16000', '"__proto__":{"rate":1}'), 'operators[0].__proto__: not a valid key'],
  ['a top-level typo', json(spec({ budget: 1 })), 'budget: unknown key (a pipeline spec has: $schema, description, fps, budgetSeconds, source, operators, sink)'],
  ['null', 'null', 'expected object, received null'],
  ['an array', '[]', 'expected object, received array'],
];

describe('hostile pipeline specs: each rejected with its one line', () => {
  it.each(corpus)('%s', (_name, text, problem) => {
    let error: unknown;
    try {
      validatePipeline(withOverrides(JSON.parse(text), { source: { path: 'in.wav' }, sink: { path: 'out.mp4' } }), registry, 'spec.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PipelineSpecError);
    expect((error as Error).message).toBe(`spec.json: ${problem}`);
  });

  it('a budget of exactly what the elements hold is accepted', () => {
    expect(validatePipeline(withOverrides(spec({ budgetSeconds: 0.162 }), { source: { path: 'in.wav' }, sink: { path: 'out.mp4' } }), registry, 'spec.json').budgetSeconds).toBe(0.162);
  });
});
