/**
 * The layers of src/ run one way: no import cycle (type-only imports included), and no module imports one of a
 * higher layer. A module may import modules of its own folder (the cycle check keeps those acyclic), and of any
 * lower layer; two folders of one layer are independent of each other.
 *
 * A new folder (or a new file at the root of src/) fails this test until it is given its place in LAYERS.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Lowest first. An entry is a folder of src/ (`models/`) or a file at its root (`events.ts`). */
const LAYERS: ReadonlyArray<readonly string[]> = [
  // the event union, errors, logging: used everywhere
  ['errors.ts', 'log.ts', 'events.ts'],
  // leaf helpers: signal processing, the audio budget, ffmpeg, private Unix sockets
  ['dsp/', 'flow/', 'media/', 'net/'],
  // LiveKit: protocol names, tokens, playback bookkeeping, the rtc-node output
  ['livekit/'],
  // model runners (ONNX worker threads, cache, server), the renderer interface and the demo face
  ['models/'],
  // the SyncTalk runtime (bundle, mel, windows, renderer)
  ['synctalk/'],
  // the renderer kinds: which model a path is, and how to open it
  ['renderers/'],
  // the element contract, the parameter parser, spec validation and the runner
  ['pipelines/'],
  ['sources/'],
  ['operators/', 'sinks/'],
  // every element by name
  ['registry.ts'],
  ['metrics/', 'agent/'],
  ['workers/'],
  ['client/'],
  ['cli.ts', 'index.ts'],
];

/** Every TypeScript / JavaScript module of src/, relative to it, with `/` separators. */
function modules(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return modules(path);
    return /\.(ts|mts|mjs|js)$/.test(e.name) ? [relative(SRC, path).split(sep).join('/')] : [];
  });
}

/** The modules of src/ that `file` imports: static, type-only, re-exports and dynamic imports alike. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(SRC, file), 'utf8'), true, true);
  return info.importedFiles
    .map((i) => i.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => normalize(join(dirname(file), name)).split(sep).join('/'));
}

/** The LAYERS entry of a module: its top folder, or its own name at the root. */
const unitOf = (file: string): string => (file.includes('/') ? `${file.split('/')[0]}/` : file);
const layerOf = (unit: string): number => LAYERS.findIndex((l) => l.includes(unit));

const graph = new Map(modules().map((f) => [f, importsOf(f)]));

/** The strongly connected components of more than one module, or a module importing itself (Tarjan). */
function cycles(): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('the layers of src/', () => {
  it('every module imports only modules that exist', () => {
    const missing = [...graph].flatMap(([from, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${from} -> ${d}`));
    expect(missing).toEqual([]);
  });

  it('no import cycle, type-only imports included', () => {
    expect(cycles()).toEqual([]);
  });

  it('every folder and root file has a layer', () => {
    const units = [...new Set([...graph.keys()].map(unitOf))];
    expect(units.filter((u) => layerOf(u) < 0)).toEqual([]);
  });

  it('no module imports one of a higher layer, or of another folder of its own layer', () => {
    const wrong = [...graph].flatMap(([from, deps]) =>
      deps
        .filter((to) => unitOf(to) !== unitOf(from) && layerOf(unitOf(to)) >= layerOf(unitOf(from)))
        .map((to) => `${from} -> ${to}`),
    );
    expect(wrong).toEqual([]);
  });

  it('finds what it looks for: a cycle and an upward import in a made-up graph', () => {
    const saved = new Map(graph);
    graph.set('models/x.ts', ['operators/y.ts']);
    graph.set('operators/y.ts', ['models/x.ts']);
    try {
      expect(cycles()).toContainEqual(['models/x.ts', 'operators/y.ts']);
      expect(layerOf(unitOf('operators/y.ts'))).toBeGreaterThan(layerOf(unitOf('models/x.ts')));
    } finally {
      graph.clear();
      for (const [k, v] of saved) graph.set(k, v);
    }
  });
});
