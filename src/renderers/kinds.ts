/**
 * The renderer kinds, and the model a `model` parameter names: the first kind in RENDERER_KINDS whose `matches`
 * accepts the path. Adding a model is one entry here, before the demo face, which takes any path that is not a
 * folder (docs/add-a-model.md).
 *
 * ```
 * model "demo"          -> models/demo-face.onnx -> demo face
 * model "avatars/may/"  -> a folder              -> SyncTalk bundle
 * model "face.onnx"     -> a file                -> demo face (its contract is checked when it loads)
 * ```
 */
import { ModelError } from '../errors.ts';
import { DEMO_FACE_MODEL_PATH } from '../models/demo-face.ts';
import type { OpenedRenderer, RendererFormat } from '../models/frame-renderer.ts';
import { privateModels, type ModelSource } from '../models/model-cache.ts';
import { DEFAULT_PROVIDERS, type Provider } from '../models/model-runner.ts';
import type { Logger } from '../log.ts';
import { demoFaceKind } from './demo-face-kind.ts';
import type { RendererKind, RendererSettings } from './renderer-kind.ts';
import { syncTalkBundleKind } from './synctalk-kind.ts';

/** Asked in order; the first that matches a path renders it. */
export const RENDERER_KINDS: readonly RendererKind[] = [syncTalkBundleKind, demoFaceKind];

/** The model file or folder a `model` parameter names: 'demo' is the bundled demo face. */
export const modelPath = (model: string): string => (model === 'demo' ? DEMO_FACE_MODEL_PATH : model);

/** The kind of the model `model` names; a ModelError when no kind takes it. */
export function rendererKind(model: string): RendererKind {
  const path = modelPath(model);
  const kind = RENDERER_KINDS.find((k) => k.matches(path));
  if (kind === undefined) throw new ModelError(path, `no renderer takes it (kinds: ${RENDERER_KINDS.map((k) => k.name).join(', ')})`);
  return kind;
}

/** The format of the renderer `params.model` names, read at build time (ModelError, one line, for a malformed model). */
export function rendererFormat(params: { readonly model: string } & RendererSettings): RendererFormat {
  return rendererKind(params.model).format(modelPath(params.model), params);
}

/** What `openRenderer` reads of the `infer` parameters. */
export interface RendererParams extends RendererSettings {
  readonly model: string;
  /** Execution providers to try, in order (default cuda, webgpu, cpu). */
  readonly providers?: readonly Provider[];
  /** ORT threads per operator (default 1). */
  readonly intraOpThreads?: number;
}

/**
 * Loads the renderer `params.model` names, its graphs from `options.models` (default: private OnnxModels; a live
 * worker passes its ModelCache or model server to share them). `close` releases the graphs.
 */
export async function openRenderer(params: RendererParams, options: { readonly log: Logger; readonly models?: ModelSource }): Promise<OpenedRenderer> {
  const path = modelPath(params.model);
  const load = { providers: params.providers ?? DEFAULT_PROVIDERS, intraOpThreads: params.intraOpThreads ?? 1, log: options.log };
  return rendererKind(params.model).open(path, { models: options.models ?? privateModels, load, lookahead: params.lookahead });
}
