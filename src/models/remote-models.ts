/**
 * RemoteModels: a job process's ModelSource backed by the worker's model server (model-server.ts), so
 * its sessions render with the models every room of the worker shares, batched together.
 *
 * ```
 * session:  acquire(demo) --run--run--run-- release
 * socket:   [acquire]>  <[handle] [run]> <[frames] ...  [release]>
 * ```
 *
 * - One connection per RemoteModels, opened by the first `acquire`; leases, runs and errors behave as
 *   ModelCache's (`model` is a ModelRunner with the served model's signature and provider).
 * - Feeds travel as bytes (model-wire.ts) and are left untouched; outputs arrive in buffers of their own.
 * - If the connection fails or the server goes away, every request waiting and every later one
 *   rejects with a ModelError naming the socket: sessions end, the process does not crash.
 * - `close()` ends the connection (the server releases what it still held for it).
 */
import { connect, type Socket } from 'node:net';
import { ModelError } from '../errors.ts';
import type { ModelLease, ModelSource } from './model-cache.ts';
import { encode, MessageReader, type WireReply, type WireRequest } from './model-wire.ts';
import { DEFAULT_PROVIDERS, type ModelRunner, type Provider, type TensorFeed, type TensorInfo, type TensorResult } from './model-runner.ts';
import type { OnnxModelOptions } from './onnx-model.ts';

type Reply = { readonly header: WireReply; readonly tensors: Record<string, TensorResult> };

/** Distributive Omit: keeps each member of the request union apart. */
type Unsent<R> = R extends unknown ? Omit<R, 'id'> : never;

export class RemoteModels implements ModelSource {
  private socket: Promise<Socket> | null = null;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: ModelError | null = null;

  /** `path`: the model server's Unix socket. */
  constructor(readonly path: string) {}

  async acquire(path: string, options: OnnxModelOptions): Promise<ModelLease> {
    const { header } = await this.request({ op: 'acquire', path, providers: options.providers ?? DEFAULT_PROVIDERS, intraOpThreads: options.intraOpThreads ?? 1 });
    if (!header.ok || header.handle === undefined || header.provider === undefined || header.inputs === undefined || header.outputs === undefined) {
      throw new ModelError(this.path, 'model server sent an incomplete acquire reply');
    }
    const model = new RemoteModel(this, header.handle, path, header.provider, header.inputs, header.outputs);
    let released = false;
    return {
      model,
      release: async () => {
        if (released) return;
        released = true;
        await this.request({ op: 'release', handle: model.handle }).catch(() => undefined);
      },
    };
  }

  /** Ends the connection; requests still waiting reject. Idempotent. */
  async close(): Promise<void> {
    const pending = this.socket;
    this.fail('closed');
    (await pending?.catch(() => null))?.destroy();
  }

  /** Sends one request and resolves with its reply; a failed reply rejects with its ModelError. */
  async request(message: Unsent<WireRequest>, tensors?: Readonly<Record<string, TensorFeed>>): Promise<Reply> {
    if (this.failure) throw this.failure;
    const socket = await (this.socket ??= this.open());
    const id = this.nextId++;
    const reply = new Promise<Reply>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    for (const b of encode({ ...message, id }, tensors)) socket.write(b);
    const r = await reply;
    if (!r.header.ok) throw new ModelError(r.header.file, r.header.problem);
    return r;
  }

  private open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.path);
      const reader = new MessageReader();
      let connected = false;
      socket.once('connect', () => {
        connected = true;
        resolve(socket);
      });
      socket.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        try {
          for (let m = reader.next(); m !== null; m = reader.next()) {
            const header = m.header;
            if (typeof header !== 'object' || header === null || !('id' in header) || typeof header.id !== 'number' || !('ok' in header) || typeof header.ok !== 'boolean') {
              throw new Error('a reply without a numeric id and ok');
            }
            const reply = header as WireReply;
            if (reply.id === -1 && !reply.ok) {
              this.fail(`the model server refused this connection's messages: ${reply.problem}`);
              socket.destroy();
              return;
            }
            const w = this.waiting.get(reply.id);
            this.waiting.delete(reply.id);
            w?.resolve({ header: reply, tensors: m.tensors });
          }
        } catch (err) {
          this.fail(`malformed reply from the model server (${(err as Error).message})`);
          socket.destroy();
        }
      });
      socket.on('error', (err) => {
        this.fail(connected ? `model server connection failed: ${err.message}` : `model server unreachable: ${err.message}`);
        reject(this.failure);
      });
      socket.on('close', () => this.fail('model server connection closed'));
    });
  }

  private fail(why: string): void {
    this.failure ??= new ModelError(this.path, why);
    for (const w of this.waiting.values()) w.reject(this.failure);
    this.waiting.clear();
  }
}

/** A model served by the model server, as a ModelRunner. */
class RemoteModel implements ModelRunner {
  constructor(
    private readonly server: RemoteModels,
    readonly handle: number,
    readonly path: string,
    readonly provider: Provider,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
  ) {}

  get inputNames(): string[] {
    return this.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.outputs.map((o) => o.name);
  }

  async run(feeds: Readonly<Record<string, TensorFeed>>): Promise<Record<string, TensorResult>> {
    return (await this.server.request({ op: 'run', handle: this.handle, tensors: [] }, feeds)).tensors;
  }
}
