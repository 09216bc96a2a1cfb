/**
 * ModelRunner: what a renderer needs of a model, its signature and its runs, and the tensors that go in and out.
 * The runners: OnnxModel (one onnxruntime-node session in a worker thread), BatchedModel (the runs of many sessions
 * merged into one), RemoteModels' runner (a graph of the worker's model server, over its socket).
 */

export type Provider = 'cuda' | 'webgpu' | 'cpu';

/** The default provider order: the first that loads is used. */
export const DEFAULT_PROVIDERS: readonly Provider[] = ['cuda', 'webgpu', 'cpu'];

export type TensorType = 'float32' | 'float64' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool';
export type TensorData = Float32Array | Float64Array | Uint8Array | Int8Array | Int32Array | BigInt64Array;

/** An input tensor. `dims` are row-major; `data` holds their product of elements. */
export interface TensorFeed {
  readonly type: TensorType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

export interface TensorResult {
  readonly type: TensorType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** A model input or output as declared in the file: symbolic dimensions are strings ('N'). */
export interface TensorInfo {
  readonly name: string;
  /** null for a non-tensor value. */
  readonly type: string | null;
  readonly shape: ReadonlyArray<number | string>;
}

/**
 * What a renderer needs of a model: its signature and runs. An OnnxModel is one; so is a BatchedModel,
 * which merges the runs of many sessions into one.
 */
export interface ModelRunner {
  /** The model file. */
  readonly path: string;
  /** The execution provider the session runs on. */
  readonly provider: Provider;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly inputNames: string[];
  readonly outputNames: string[];
  run(feeds: Readonly<Record<string, TensorFeed>>): Promise<Record<string, TensorResult>>;
}
