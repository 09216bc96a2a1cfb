/**
 * RendererKind: one kind of model the `infer` element can render with (the demo face, a SyncTalk bundle, ...): how
 * to tell a model path is of this kind, what it takes in and gives (RendererFormat, read at build time) and how to
 * open it. The kinds are listed in kinds.ts; adding a model is one entry there (docs/add-a-model.md).
 */
import type { OpenedRenderer, RendererFormat } from '../models/frame-renderer.ts';
import type { ModelSource } from '../models/model-cache.ts';
import type { OnnxModelOptions } from '../models/onnx-model.ts';
import type { AudioLookahead } from '../synctalk/audio-attention-windows.ts';

/** The `infer` parameters a kind may read besides the model path. */
export interface RendererSettings {
  /** Kinds with a choice of latency (SyncTalk bundles): 'full' (default) or 'low-latency'; others ignore it. */
  readonly lookahead?: AudioLookahead;
}

export interface OpenOptions extends RendererSettings {
  /** Where the graphs come from: private loads (privateModels), or the worker's shared ones (ModelCache, RemoteModels). */
  readonly models: ModelSource;
  /** How each graph loads: execution providers, ORT threads, logger. */
  readonly load: OnnxModelOptions;
}

export interface RendererKind {
  /** What it is, in messages and docs ('demo face', 'SyncTalk bundle'). */
  readonly name: string;
  /** Whether the model at `path` (a file or a folder) is of this kind; the kinds are asked in table order. */
  matches(path: string): boolean;
  /** Its format, read at build time (without loading a graph); a ModelError, one line, when the model is malformed. */
  format(path: string, settings: RendererSettings): RendererFormat;
  /** Loads it: one per pipeline run (per-session state is its own; graphs may be shared through `models`). */
  open(path: string, options: OpenOptions): Promise<OpenedRenderer>;
}
