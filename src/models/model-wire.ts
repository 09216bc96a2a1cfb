/**
 * The model server's wire format (model-server.ts, remote-models.ts): messages over a Unix stream socket.
 *
 * One message: `[u32 LE header bytes][u32 LE body bytes][header: JSON, UTF-8][body]`. The header says
 * what the message is; the body holds the raw bytes of its tensors, in the order the header lists them
 * (`tensors`: name, type, dims). Tensors travel as bytes, not JSON numbers: a 512x512 frame is 3 MB.
 *
 * Requests (client -> server), answered by one reply with the same `id`:
 * - `acquire` {path, providers, intraOpThreads} -> {handle, provider, inputs, outputs}
 * - `run` {handle, tensors} + body -> {tensors} + body
 * - `release` {handle} -> {}
 * A failed request is answered {ok: false, file, problem}: a ModelError on the other side.
 * Closing the connection releases every handle it holds.
 */
import { ModelError } from '../errors.ts';
import type { Provider, TensorData, TensorFeed, TensorInfo, TensorResult, TensorType } from './onnx-model.ts';

export type WireRequest =
  | { readonly id: number; readonly op: 'acquire'; readonly path: string; readonly providers: readonly Provider[]; readonly intraOpThreads: number }
  | { readonly id: number; readonly op: 'run'; readonly handle: number; readonly tensors: readonly WireTensor[] }
  | { readonly id: number; readonly op: 'release'; readonly handle: number };

export type WireReply =
  | { readonly id: number; readonly ok: true; readonly handle?: number; readonly provider?: Provider; readonly inputs?: readonly TensorInfo[]; readonly outputs?: readonly TensorInfo[]; readonly tensors?: readonly WireTensor[] }
  | { readonly id: number; readonly ok: false; readonly file: string; readonly problem: string };

export interface WireTensor {
  readonly name: string;
  readonly type: TensorType;
  readonly dims: readonly number[];
}

/** A decoded message: its header and its tensors (data copied out of the socket's buffers). */
export interface WireMessage<H> {
  readonly header: H;
  readonly tensors: Record<string, TensorResult>;
}

/** Bytes per element of each tensor type. */
const ELEMENT_BYTES: Record<TensorType, number> = { float32: 4, float64: 8, uint8: 1, int8: 1, int32: 4, int64: 8, bool: 1 };

/** Encodes `header` with `tensors` (named feeds) as one message: a list of buffers to write in order. */
export function encode(header: object, tensors: Readonly<Record<string, TensorFeed>> = {}): Buffer[] {
  const list: WireTensor[] = Object.entries(tensors).map(([name, t]) => ({ name, type: t.type, dims: [...t.dims] }));
  const json = Buffer.from(JSON.stringify(list.length > 0 ? { ...header, tensors: list } : header), 'utf8');
  const bodies = Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32LE(json.length, 0);
  prefix.writeUInt32LE(
    bodies.reduce((n, b) => n + b.length, 0),
    4,
  );
  return [prefix, json, ...bodies];
}

/**
 * Splits a byte stream into messages. `push` the socket's chunks; `next` returns each complete
 * message once. A message larger than `maxBytes` (default 1 GiB) is a protocol error.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxBytes = 2 ** 30) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete message, or null until more bytes arrive. Throws on a malformed message. */
  next<H extends object>(): WireMessage<H> | null {
    if (this.buffered < 8) return null;
    const prefix = this.peek(8);
    const headerBytes = prefix.readUInt32LE(0);
    const bodyBytes = prefix.readUInt32LE(4);
    if (8 + headerBytes + bodyBytes > this.maxBytes) throw new Error(`message of ${8 + headerBytes + bodyBytes} bytes exceeds ${this.maxBytes}`);
    if (this.buffered < 8 + headerBytes + bodyBytes) return null;
    const all = this.take(8 + headerBytes + bodyBytes);
    const header = JSON.parse(all.subarray(8, 8 + headerBytes).toString('utf8')) as H & { readonly tensors?: readonly WireTensor[] };
    const tensors: Record<string, TensorResult> = {};
    let offset = 8 + headerBytes;
    for (const t of header.tensors ?? []) {
      const count = t.dims.reduce((n, d) => n * d, 1);
      const bytes = count * ELEMENT_BYTES[t.type];
      if (offset + bytes > all.length) throw new Error(`tensor ${t.name} needs ${bytes} bytes; the message has ${all.length - offset} left`);
      tensors[t.name] = { type: t.type, dims: t.dims, data: typed(t.type, all.subarray(offset, offset + bytes), count) };
      offset += bytes;
    }
    return { header, tensors };
  }

  private peek(n: number): Buffer {
    return this.chunks[0].length >= n ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const rest = joined.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return joined.subarray(0, n);
  }
}

/** A typed array of `type` over a copy of `bytes` (the copy is aligned and owns its buffer). */
function typed(type: TensorType, bytes: Buffer, count: number): TensorData {
  const own = new ArrayBuffer(bytes.length);
  new Uint8Array(own).set(bytes);
  switch (type) {
    case 'float32':
      return new Float32Array(own, 0, count);
    case 'float64':
      return new Float64Array(own, 0, count);
    case 'int8':
      return new Int8Array(own, 0, count);
    case 'int32':
      return new Int32Array(own, 0, count);
    case 'int64':
      return new BigInt64Array(own, 0, count);
    case 'uint8':
    case 'bool':
      return new Uint8Array(own, 0, count);
  }
}

/** The reply for a failed request: a ModelError keeps its file and problem; anything else is filed under `file`. */
export function failure(id: number, err: unknown, file: string): WireReply {
  return err instanceof ModelError ? { id, ok: false, file: err.subject, problem: err.problem } : { id, ok: false, file, problem: err instanceof Error ? err.message : String(err) };
}
