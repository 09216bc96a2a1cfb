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
 * A malformed request (`parseRequest`) or message (`MessageReader`) is answered {ok: false} too, with the
 * request's id or -1, and the server then closes the connection. Closing the connection releases every handle it holds.
 */
import { z } from 'zod';
import { ModelError } from '../errors.ts';
import type { Provider, TensorData, TensorFeed, TensorInfo, TensorResult, TensorType } from './model-runner.ts';

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
 * Splits a byte stream into messages. `push` the socket's chunks; `next` returns each complete message once.
 *
 * Linear time: a message is gathered once, when its last byte has arrived (every byte is copied at most once,
 * however small the pieces it came in: a length prefix sent a byte at a time costs what the 8 bytes cost). Bounded:
 * a message larger than `maxBytes` (default 1 GiB) is refused as soon as its prefix is read, before its body is
 * buffered. A malformed message (too large, a header that is not JSON, tensors the body cannot hold) throws
 * `WireError`; the stream cannot be resynchronised after it.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Total bytes of the message being gathered, once its prefix is in. */
  private size: { header: number; total: number } | null = null;

  constructor(private readonly maxBytes = 2 ** 30) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete message, or null until more bytes arrive. Throws WireError on a malformed message. */
  next(): WireMessage<unknown> | null {
    if (this.size === null) {
      if (this.buffered < 8) return null;
      const prefix = this.peek(8);
      const header = prefix.readUInt32LE(0);
      const total = 8 + header + prefix.readUInt32LE(4);
      if (total > this.maxBytes) throw new WireError(`message of ${total} bytes exceeds ${this.maxBytes}`);
      this.size = { header, total };
    }
    const { header: headerBytes, total } = this.size;
    if (this.buffered < total) return null;
    this.size = null;
    const all = this.take(total);
    let header: unknown;
    try {
      header = JSON.parse(all.toString('utf8', 8, 8 + headerBytes));
    } catch (e) {
      throw new WireError(`header is not JSON (${(e as Error).message})`);
    }
    const listed = tensorList(typeof header === 'object' && header !== null && 'tensors' in header ? header.tensors : []);
    if (typeof listed === 'string') throw new WireError(listed);
    const tensors: Record<string, TensorResult> = {};
    let offset = 8 + headerBytes;
    for (const t of listed) {
      const count = t.dims.reduce((n, d) => n * d, 1);
      const bytes = count * ELEMENT_BYTES[t.type];
      if (offset + bytes > all.length) throw new WireError(`tensor ${t.name} needs ${bytes} bytes; the message has ${all.length - offset} left`);
      tensors[t.name] = { type: t.type, dims: t.dims, data: typed(t.type, all.subarray(offset, offset + bytes), count) };
      offset += bytes;
    }
    return { header, tensors };
  }

  /** The first `n` buffered bytes (n <= 8 here), copied out of the chunks they span. */
  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const out = Buffer.alloc(n);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(out, filled, 0, Math.min(c.length, n - filled));
      if (filled === n) break;
    }
    return out;
  }

  /** Removes the first `n` bytes: a view when one chunk holds them, else one copy of exactly those bytes. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0];
        const used = c.copy(out, filled, 0, Math.min(c.length, n - filled));
        filled += used;
        if (used === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(used);
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** A stream that does not follow the wire format. */
export class WireError extends Error {}

const tensorSchema = z
  .object({
    name: z.string().min(1).max(256),
    type: z.enum(['float32', 'float64', 'uint8', 'int8', 'int32', 'int64', 'bool']),
    dims: z.array(z.number().int().min(0).max(2 ** 31)).max(8),
  })
  .strict();

/** The tensors a header lists, or why they are malformed. */
function tensorList(value: unknown): WireTensor[] | string {
  const parsed = z.array(tensorSchema).max(64).safeParse(value);
  if (!parsed.success) return `tensors: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`;
  return parsed.data;
}

const requestSchema = (maxThreads: number) =>
  z.discriminatedUnion('op', [
    z
      .object({
        id: z.number().int(),
        op: z.literal('acquire'),
        path: z.string().min(1).max(4096),
        providers: z.array(z.enum(['cuda', 'webgpu', 'cpu'])).min(1).max(3),
        intraOpThreads: z.number().int().min(1).max(maxThreads, `at most this machine's ${maxThreads} cores`),
      })
      .strict(),
    z.object({ id: z.number().int(), op: z.literal('run'), handle: z.number().int(), tensors: z.array(tensorSchema) }).strict(),
    z.object({ id: z.number().int(), op: z.literal('release'), handle: z.number().int() }).strict(),
  ]);

/**
 * The request a header holds, or why it is not one (a header that is not an object, an unknown op, a missing or
 * mistyped field, intraOpThreads above `maxThreads`), with the request's id when the header has a numeric one.
 */
export function parseRequest(header: unknown, maxThreads: number): { readonly request: WireRequest } | { readonly id: number; readonly problem: string } {
  const parsed = requestSchema(maxThreads).safeParse(header);
  if (parsed.success) return { request: parsed.data };
  const id = typeof header === 'object' && header !== null && 'id' in header && typeof header.id === 'number' && Number.isInteger(header.id) ? header.id : -1;
  const issue = parsed.error.issues[0];
  const at = issue.path.join('.');
  return { id, problem: `malformed request: ${at === '' ? '' : `${at}: `}${issue.message}` };
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
