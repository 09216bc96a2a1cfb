/**
 * SyncTalkBundle: an avatar bundle (docs/synctalk-bundle.md) opened for rendering: manifest and tracks validated,
 * the three graphs loaded (OnnxModel, each in its own worker thread), the per-frame images read on demand.
 *
 * - `readSyncTalkManifest(dir)` (synchronous, for build-time caps checks) validates manifest.json alone.
 * - Format version 2: every graph takes a batch of frames (first dimension symbolic, `batch`), render.onnx gives
 *   uint8 RGBA. A bundle of another version (1: unbatched, float RGB) is one ModelError saying to re-export it.
 * - `SyncTalkBundle.open(dir, loader)` also validates tracks.json, the image folders (N PNG files each, frame 0
 *   decoded and checked) and each graph's inputs and outputs against the manifest's signatures and the mode's
 *   contract. Anything missing or corrupt is one ModelError `"<bundle path>: <problem>"` (or the file at fault).
 * - Graphs come from a `GraphLoader`, so a process can share them between sessions (a ModelCache lease per graph,
 *   which batches the frames of every session using the bundle into one run); `onnxGraphLoader` loads private
 *   ones. `close()` releases them (idempotent).
 *
 * Images: PNG frames are decoded when a render needs them (a bundle of a real clip holds thousands: 8 bytes per
 * pixel per frame in portrait mode would not fit in memory). Cache: the last `IMAGE_CACHE` frames decoded,
 * strategy **slide** (least recently used out); a ping-pong walk reuses each frame at the turns.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ascii, ModelError } from '../errors.ts';
import type { ModelRunner, TensorFeed, TensorInfo } from '../models/model-runner.ts';
import { privateModels, type ModelLease } from '../models/model-cache.ts';
import type { OnnxModelOptions } from '../models/onnx-model.ts';
import { decodePng, decodePngAsync } from './png.ts';

export const BUNDLE_FORMAT = 'synctalk-avatar';
export const BUNDLE_VERSION = 2;
/** The symbolic first (batch) dimension of every graph input and output. */
export const BATCH = 'batch';
type Dim = typeof BATCH | number;
/** Decoded frames kept per bundle (all image folders of one track frame count as one). */
export const IMAGE_CACHE = 8;

const io = z.object({ name: z.string(), dtype: z.enum(['float32', 'uint8']), shape: z.array(z.union([z.literal(BATCH), z.number().int().positive()])) });
const graph = z.object({ inputs: z.array(io), outputs: z.array(io) });

/** Largest frame side, pixels (a 4096x4096 RGBA frame is 64 MiB). */
const MAX_SIDE = 4096;
/** Bound on every number in tracks.json: poses, eye features and anchors are O(1) to O(100); 1e30 is corruption. */
const TRACK_LIMIT = 1e4;

const manifestSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION),
  fps: z.literal(25),
  width: z.number().int().positive().max(MAX_SIDE),
  height: z.number().int().positive().max(MAX_SIDE),
  mode: z.enum(['head', 'portrait', 'torso']),
  au45: z.boolean(),
  eye_dim: z.number().int().positive().max(64),
  frames: z.number().int().positive().max(1_000_000),
  samples: z.number().int().positive().max(1024),
  audio: z.object({
    sample_rate: z.literal(16000),
    mel_bins: z.literal(80),
    mel_window: z.literal(16),
    mel_hop: z.literal(200),
    attention: z.object({ before: z.literal(4), after: z.literal(3), pad: z.literal('zeros') }),
    feature_offset: z.literal(2),
  }),
  loop: z.literal('pingpong'),
  files: z.array(z.string()),
  graphs: z.object({ audio: graph, audio_att: graph, render: graph }),
});

export type SyncTalkManifest = z.infer<typeof manifestSchema>;
export type BundleMode = SyncTalkManifest['mode'];
type GraphName = keyof SyncTalkManifest['graphs'];

/** Image folders of each mode, with their channels. */
const IMAGE_FOLDERS: Record<BundleMode, ReadonlyArray<readonly ['torso_rgba' | 'ori' | 'mask', 1 | 3 | 4]>> = {
  head: [['torso_rgba', 4]],
  portrait: [
    ['torso_rgba', 4],
    ['ori', 3],
    ['mask', 1],
  ],
  torso: [],
};

/** What each graph must take and give (names, types, shapes after the batch dimension; E = eye_dim, H x W = the frame). */
export function contract(m: SyncTalkManifest): Record<GraphName, z.infer<typeof graph>> {
  const f32 = (name: string, shape: number[]) => ({ name, dtype: 'float32' as const, shape: [BATCH, ...shape] as Dim[] });
  const u8 = (name: string, shape: number[]) => ({ name, dtype: 'uint8' as const, shape: [BATCH, ...shape] as Dim[] });
  const { width: w, height: h } = m;
  const perMode = m.mode === 'torso' ? [f32('anchor', [6])] : IMAGE_FOLDERS[m.mode].map(([n, c]) => u8(n, [h, w, c]));
  return {
    audio: { inputs: [f32('mel', [1, 80, 16])], outputs: [f32('feature', [512])] },
    audio_att: { inputs: [f32('features', [8, 512])], outputs: [f32('enc_a', [32])] },
    render: { inputs: [f32('enc_a', [32]), f32('eye', [m.eye_dim]), f32('pose', [4, 4]), ...perMode], outputs: [u8('rgba', [h, w, 4])] },
  };
}

const sig = (t: { name: string; dtype?: string; type?: string | null; shape: ReadonlyArray<number | string> }): string =>
  `${t.name} ${t.dtype ?? t.type ?? '?'} [${t.shape.join(', ')}]`;

/** Reads and validates `dir/manifest.json` (not the other files): ModelError(dir, problem) if it is missing or wrong. */
export function readSyncTalkManifest(dir: string): SyncTalkManifest {
  const path = join(dir, 'manifest.json');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelError(dir, 'no such bundle folder');
  const json = readJson(path, 1 << 20, 'missing (not a SyncTalk avatar bundle)');
  const version = typeof json === 'object' && json !== null && 'version' in json ? json.version : undefined;
  if (typeof version === 'number' && version !== BUNDLE_VERSION) {
    throw new ModelError(path, `bundle format version ${version}; this runtime reads version ${BUNDLE_VERSION} (batched graphs, uint8 RGBA frames): re-export the bundle with synctalk-live export`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelError(path, ascii(`${issue.path.join('.') || 'manifest'}: ${issue.message}`));
  }
  const m = parsed.data;
  const want = contract(m);
  for (const name of ['audio', 'audio_att', 'render'] as const) {
    const got = [...m.graphs[name].inputs, ...m.graphs[name].outputs].map(sig).join(', ');
    const expected = [...want[name].inputs, ...want[name].outputs].map(sig).join(', ');
    if (got !== expected) throw new ModelError(path, `graphs.${name} declares ${got}; a ${m.mode} bundle needs ${expected}`);
  }
  return m;
}

/** True when `path` is a folder. */
const isFolder = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

/** True when `path` is a folder: a bundle, valid or not (one without manifest.json is reported as such, not as a model file). */
export const isBundleFolder = isFolder;

const trackNumber = z.number().finite().min(-TRACK_LIMIT).max(TRACK_LIMIT);

const tracksSchema = (m: SyncTalkManifest) =>
  z.object({
    poses: z.array(z.array(trackNumber).length(16)).length(m.frames),
    eyes: z.array(z.array(trackNumber).length(m.eye_dim)).length(m.frames),
    anchors: m.mode === 'torso' ? z.array(z.array(trackNumber).length(6)).length(m.frames) : z.undefined().optional(),
  });

/** Per track frame (flattened, float32): pose [N, 16] row-major 4x4, eye [N, E], anchor [N, 6] (torso). */
export interface SyncTalkTracks {
  readonly poses: Float32Array;
  readonly eyes: Float32Array;
  readonly anchors: Float32Array | null;
}

/** Where a bundle's graphs come from: a lease on each (a ModelCache lease, the model server's, or a private model). */
export type GraphLoader = (path: string) => Promise<ModelLease>;

/** Loads each graph privately with OnnxModel (providers and threads from `options`); release closes it. */
export const onnxGraphLoader =
  (options: OnnxModelOptions): GraphLoader =>
  (path) =>
    privateModels.acquire(path, options);

export class SyncTalkBundle {
  private readonly cache = new Map<number, Promise<Record<string, TensorFeed>>>();
  private closed: Promise<void> | null = null;

  private constructor(
    readonly dir: string,
    readonly manifest: SyncTalkManifest,
    readonly tracks: SyncTalkTracks,
    private readonly leases: Record<GraphName, ModelLease>,
  ) {}

  get audio(): ModelRunner {
    return this.leases.audio.model;
  }

  get audioAttention(): ModelRunner {
    return this.leases.audio_att.model;
  }

  get render(): ModelRunner {
    return this.leases.render.model;
  }

  /** Opens the bundle at `dir`, loading its graphs with `loader`; every check of the module doc, one ModelError. */
  static async open(dir: string, loader: GraphLoader): Promise<SyncTalkBundle> {
    const manifest = readSyncTalkManifest(dir);
    const tracks = readTracks(dir, manifest);
    for (const [folder, channels] of IMAGE_FOLDERS[manifest.mode]) {
      const names = isFolder(join(dir, folder)) ? readdirSync(join(dir, folder)) : [];
      const missing = Array.from({ length: manifest.frames }, (_, i) => frameFile(i)).filter((f) => !names.includes(f));
      if (missing.length > 0) throw new ModelError(join(dir, folder), `missing ${missing.length} of ${manifest.frames} frames (first: ${missing[0]})`);
      const first = join(dir, folder, frameFile(0));
      const image = decodePng(first, readImage(first), { width: manifest.width, height: manifest.height, channels });
      if (image.width !== manifest.width || image.height !== manifest.height || image.channels !== channels) {
        throw new ModelError(first, `is ${image.width}x${image.height}x${image.channels}; the bundle needs ${manifest.width}x${manifest.height}x${channels}`);
      }
    }
    const want = contract(manifest);
    const loaded = await Promise.allSettled((['audio', 'audio_att', 'render'] as const).map((g) => loader(join(dir, `${g}.onnx`))));
    const leases = loaded.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = loaded.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const [audio, audioAtt, render] = leases;
    const bad =
      failed?.reason ??
      (['audio', 'audio_att', 'render'] as const)
        .map((g, k) => checkGraph(leases[k].model, want[g]))
        .find((e) => e !== null);
    if (bad !== undefined && bad !== null) {
      await Promise.all(leases.map((l) => l.release()));
      throw bad;
    }
    return new SyncTalkBundle(dir, manifest, tracks, { audio, audio_att: audioAtt, render });
  }

  /** The image inputs of track frame `i` for render.onnx, batch of one (none in torso mode), decoded on demand (see the cache). */
  images(i: number): Promise<Record<string, TensorFeed>> {
    const hit = this.cache.get(i);
    if (hit !== undefined) {
      this.cache.delete(i);
      this.cache.set(i, hit);
      return hit;
    }
    const { width: w, height: h, mode } = this.manifest;
    const decoding = Promise.all(
      IMAGE_FOLDERS[mode].map(async ([folder, channels]) => {
        const path = join(this.dir, folder, frameFile(i));
        const bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
          throw new ModelError(path, `cannot read (${e.code ?? e.message})`);
        });
        const image = await decodePngAsync(path, bytes, { width: w, height: h, channels });
        if (image.width !== w || image.height !== h || image.channels !== channels) {
          throw new ModelError(path, `is ${image.width}x${image.height}x${image.channels}; the bundle needs ${w}x${h}x${channels}`);
        }
        return [folder, { type: 'uint8', dims: [1, h, w, channels], data: image.data }] as const;
      }),
    ).then((entries) => Object.fromEntries(entries));
    this.cache.set(i, decoding);
    decoding.catch(() => this.cache.delete(i));
    if (this.cache.size > IMAGE_CACHE) this.cache.delete(this.cache.keys().next().value as number);
    return decoding;
  }

  /** Releases the graphs (closes them, or hands back the shared leases). Idempotent. */
  close(): Promise<void> {
    this.closed ??= Promise.all(Object.values(this.leases).map((l) => l.release())).then(() => undefined);
    return this.closed;
  }
}

/** The JSON in the file at `path`, of at most `maxBytes`; ModelError(path) saying `missing`, too big, or not JSON. */
function readJson(path: string, maxBytes: number, missing: string): unknown {
  const file = statSync(path, { throwIfNoEntry: false });
  if (file === undefined) throw new ModelError(path, missing);
  if (!file.isFile()) throw new ModelError(path, 'not a file');
  if (file.size > maxBytes) throw new ModelError(path, `${file.size} bytes, more than the ${maxBytes} a bundle's JSON may take`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelError(path, ascii(`not valid JSON (${(e as Error).message})`));
  }
}

/** The bytes of the image file at `path`; ModelError(path) if it cannot be read (a folder, unreadable). */
function readImage(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ModelError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** File name of track frame i in an image folder. */
const frameFile = (i: number): string => `${String(i).padStart(6, '0')}.png`;

function readTracks(dir: string, m: SyncTalkManifest): SyncTalkTracks {
  const path = join(dir, 'tracks.json');
  const json = readJson(path, 256 << 20, 'missing');
  const parsed = tracksSchema(m).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelError(path, ascii(`${issue.path.join('.')}: ${issue.message} (manifest: ${m.frames} frames, eye_dim ${m.eye_dim}, mode ${m.mode})`));
  }
  const t = parsed.data;
  return {
    poses: Float32Array.from(t.poses.flat()),
    eyes: Float32Array.from(t.eyes.flat()),
    anchors: t.anchors === undefined ? null : Float32Array.from(t.anchors.flat()),
  };
}

/** null when `model` has exactly the inputs and outputs of `want`, else the ModelError saying how it differs. */
function checkGraph(model: ModelRunner, want: z.infer<typeof graph>): ModelError | null {
  const has = (declared: readonly TensorInfo[]) => declared.map((t) => sig(t)).join(', ');
  const got = `${has(model.inputs)} -> ${has(model.outputs)}`;
  const expected = `${want.inputs.map(sig).join(', ')} -> ${want.outputs.map(sig).join(', ')}`;
  return got === expected ? null : new ModelError(model.path, `has ${got}; expected ${expected}`);
}
