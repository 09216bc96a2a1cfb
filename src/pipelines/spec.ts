/**
 * Pipelines as data: a JSON spec (source, operator list with parameters, sink) validated into a
 * typed pipeline, with every element's caps checked against its neighbours before anything runs.
 *
 * ```json
 * { "fps": 25,
 *   "source":    { "element": "wav-file" },
 *   "operators": [ { "element": "resample", "rate": 16000 }, { "element": "chunk", "size": 1280 },
 *                  { "element": "infer", "model": "demo" }, { "element": "pair" } ],
 *   "sink":      { "element": "mp4-file" } }
 * ```
 *
 * Errors are one line naming where: `demo.json: operators[1].element: unknown element "chunks"
 * (operators: resample, chunk, ...)`, `demo.json: operators[2].maxInFlight: expected number, received string`.
 * Parameters are strict (pipelines/params.ts). `budgetSeconds` must hold what the elements take in before the
 * first frame reaches the sink (the sum of their `holds`, plus one frame); a smaller budget would stall.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { PipelineSpecError } from '../errors.ts';
import type { Caps, Element, OperatorElement, SinkElement, SourceElement } from './element.ts';
import { jsonPath, parseParams } from './params.ts';

const elementRef = z.object({ element: z.string() }).passthrough();

export const pipelineSpecSchema = z
  .object({
    $schema: z.string().optional(),
    description: z.string().optional(),
    fps: z.number().positive().max(240).default(25).describe('output frames per second (default 25; at most 240)'),
    budgetSeconds: z
      .number()
      .positive()
      .max(3600)
      .default(2)
      .describe('seconds of audio allowed in flight between source and sink (default 2; at least what the elements hold before the first frame, see holds)'),
    source: elementRef,
    operators: z.array(elementRef).default([]),
    sink: elementRef,
  })
  .strict();

/** The JSON form of a pipeline, as users write it. */
export type PipelineSpec = z.input<typeof pipelineSpecSchema>;

export interface Bound<E extends Element> {
  readonly element: E;
  readonly params: z.output<E['params']>;
  /** Caps flowing out of this element (for sinks: what it receives). */
  readonly caps: Caps;
}

/** A validated pipeline: every element resolved, parameters parsed with defaults, caps checked. */
export interface TypedPipeline {
  readonly fps: number;
  readonly budgetSeconds: number;
  readonly source: Bound<SourceElement>;
  readonly operators: ReadonlyArray<Bound<OperatorElement>>;
  readonly sink: Bound<SinkElement>;
}

export type Registry = ReadonlyArray<Element>;

const describeCaps = (c: Caps): string =>
  c.kind === 'audio'
    ? `audio (${c.sampleRate ?? 'any'} Hz, ${c.channels ?? 'any'} ch, chunk ${c.chunk ?? 'any'})`
    : `${c.kind} ${c.width}x${c.height}`;

function resolve<R extends Element['role']>(
  registry: Registry,
  role: R,
  ref: z.infer<typeof elementRef>,
  path: ReadonlyArray<string | number>,
  origin: string,
): { element: Extract<Element, { role: R }>; params: unknown } {
  const candidates = registry.filter((e): e is Extract<Element, { role: R }> => e.role === role);
  const element = candidates.find((e) => e.name === ref.element);
  if (element === undefined) {
    const names = candidates.map((e) => e.name).join(', ');
    throw new PipelineSpecError(origin, `${jsonPath([...path, 'element'])}: unknown ${role} "${ref.element}" (valid ${role}s: ${names})`);
  }
  const { element: _name, ...raw } = ref;
  return { element, params: parseParams(element.name, element.params, raw, { origin, prefix: path }) };
}

/** Seconds, rounded up to the millisecond, for messages. */
const ms = (s: number): string => `${Math.ceil(s * 1000 - 1e-6) / 1000}`;

/** The path of the first `__proto__` key in `json` (JSON.parse keeps it as a key; object spreads would drop it), or null. */
function protoKey(json: unknown, path: ReadonlyArray<string | number> = []): ReadonlyArray<string | number> | null {
  if (typeof json !== 'object' || json === null) return null;
  for (const [k, v] of Object.entries(json)) {
    const at = [...path, Array.isArray(json) ? Number(k) : k];
    if (k === '__proto__') return at;
    const inner = protoKey(v, at);
    if (inner !== null) return inner;
  }
  return null;
}

/** Validate a parsed JSON value into a typed pipeline. `origin` names it in errors (a file path). */
export function validatePipeline(json: unknown, registry: Registry, origin = 'pipeline'): TypedPipeline {
  const proto = protoKey(json);
  if (proto !== null) throw new PipelineSpecError(origin, `${jsonPath(proto)}: not a valid key`);
  const top = pipelineSpecSchema.safeParse(json);
  if (!top.success) {
    const issue = top.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      throw new PipelineSpecError(origin, `${jsonPath([...issue.path, issue.keys[0]])}: unknown key (a pipeline spec has: ${Object.keys(pipelineSpecSchema.shape).join(', ')})`);
    }
    const at = jsonPath(issue.path);
    throw new PipelineSpecError(origin, `${at === '' ? '' : `${at}: `}${issue.message.replace(/^./, (c) => c.toLowerCase())}`);
  }
  const spec = top.data;

  const src = resolve(registry, 'source', spec.source, ['source'], origin);
  let caps = src.element.caps(src.params);
  const source: Bound<SourceElement> = { element: src.element, params: src.params, caps };
  const holds: Array<[string, number]> = [[src.element.name, src.element.holds?.(src.params) ?? 0]];

  const operators = spec.operators.map((ref, i): Bound<OperatorElement> => {
    const op = resolve(registry, 'operator', ref, ['operators', i], origin);
    const out = op.element.caps(op.params, caps, spec.fps);
    if (typeof out === 'string') throw new PipelineSpecError(origin, `operators[${i}] (${op.element.name}): ${out}; it receives ${describeCaps(caps)}`);
    holds.push([op.element.name, op.element.holds?.(op.params, caps) ?? 0]);
    caps = out;
    return { element: op.element, params: op.params, caps: out };
  });

  const snk = resolve(registry, 'sink', spec.sink, ['sink'], origin);
  const refused = snk.element.accepts(snk.params, caps);
  if (refused !== null) throw new PipelineSpecError(origin, `sink (${snk.element.name}): ${refused}; it receives ${describeCaps(caps)}`);

  const held = holds.filter(([, s]) => s > 0);
  const needed = held.reduce((sum, [, s]) => sum + s, 0) + 1 / spec.fps;
  if (spec.budgetSeconds < needed - 1e-9) {
    const parts = [...held.map(([name, s]) => `${name} ${ms(s)} s`), `one frame ${ms(1 / spec.fps)} s`].join(', ');
    throw new PipelineSpecError(
      origin,
      `budgetSeconds: ${spec.budgetSeconds} s cannot hold the ${ms(needed)} s of audio the pipeline takes in before its first frame is written (${parts}); the pipeline would stall`,
    );
  }

  return { fps: spec.fps, budgetSeconds: spec.budgetSeconds, source, operators, sink: { element: snk.element, params: snk.params, caps } };
}

/** Read and validate a pipeline spec file. */
export async function loadPipeline(path: string, registry: Registry, overrides: { source?: object; sink?: object } = {}): Promise<TypedPipeline> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new PipelineSpecError(path, `cannot read pipeline spec (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PipelineSpecError(path, `not valid JSON (${(e as Error).message})`);
  }
  return validatePipeline(withOverrides(json, overrides), registry, path);
}

/** Merge parameters into the source and sink of a spec (the CLI's --audio and --out). */
export function withOverrides(json: unknown, overrides: { source?: object; sink?: object }): unknown {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return json;
  const spec = json as Record<string, unknown>;
  const merge = (key: 'source' | 'sink'): unknown => {
    const base = spec[key];
    const extra = overrides[key];
    return extra !== undefined && typeof base === 'object' && base !== null ? { ...base, ...extra } : base;
  };
  return { ...spec, source: merge('source'), sink: merge('sink') };
}
