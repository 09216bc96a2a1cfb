/**
 * The model server over a real Unix socket, with the real demo model: clients (job processes) share one
 * load, their runs are batched together, errors come back as one-line ModelErrors, and a client that
 * goes away gives its leases back.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, isInputError } from '../../src/errors.ts';
import { rootLogger } from '../../src/log.ts';
import { DEMO_FACE_MODEL_PATH } from '../../src/models/demo-face.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { serveModels, type ModelServer } from '../../src/models/model-server.ts';
import { encode, MessageReader, type WireReply } from '../../src/models/model-wire.ts';
import type { TensorFeed } from '../../src/models/model-runner.ts';
import { OnnxModel } from '../../src/models/onnx-model.ts';
import { RemoteModels } from '../../src/models/remote-models.ts';

const log = rootLogger.child({ test: 'model-server' }, { level: 'warn' });
const cpu = { providers: ['cpu' as const], log };

const feeds = (rows: number, level: number): Record<string, TensorFeed> => ({
  audio: { type: 'float32', dims: [rows, 640], data: Float32Array.from({ length: rows * 640 }, (_, i) => level * Math.sin(i / 5)) },
  phase: { type: 'float32', dims: [rows], data: Float32Array.from({ length: rows }, (_, k) => k) },
});

const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
};

describe('model server', () => {
  let dir: string;
  let cache: ModelCache;
  let server: ModelServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synctalk-model-server-'));
    cache = new ModelCache();
    server = await serveModels({ path: join(dir, 'models.sock'), models: cache, log });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves one load to every client, batches their runs, and gives the same frames as a local model', async () => {
    const local = await OnnxModel.load(DEMO_FACE_MODEL_PATH, cpu);
    const expected = [(await local.run(feeds(2, 0.5))).frame.data as Uint8Array, (await local.run(feeds(1, 0.1))).frame.data as Uint8Array];
    await local.close();

    const [a, b] = [new RemoteModels(server.path), new RemoteModels(server.path)];
    const [la, lb] = await Promise.all([a.acquire(DEMO_FACE_MODEL_PATH, cpu), b.acquire(DEMO_FACE_MODEL_PATH, cpu)]);
    expect(cache.size).toBe(1);
    expect(la.model.provider).toBe('cpu');
    expect(la.model.inputNames).toEqual(['audio', 'phase']);

    const outs = await Promise.all([la.model.run(feeds(2, 0.5)), lb.model.run(feeds(1, 0.1)), la.model.run(feeds(2, 0.5)), lb.model.run(feeds(1, 0.1))]);
    outs.forEach((o, i) => {
      const want = expected[i % 2];
      const got = o.frame.data as Uint8Array;
      expect(o.frame.dims).toEqual([i % 2 === 0 ? 2 : 1, 256, 256, 4]);
      expect(got.length).toBe(want.length);
      expect(got.reduce((n, v, k) => n + (v === want[k] ? 0 : 1), 0)).toBe(0);
    });
    const [stats] = cache.batchStats();
    expect(stats.requests).toBe(4);
    expect(stats.runs).toBeLessThan(4);

    await la.release();
    expect(cache.size).toBe(1);
    await lb.release();
    expect(cache.size).toBe(0);
    await Promise.all([a.close(), b.close()]);
  });

  it('answers a bad request with a one-line ModelError and goes on', async () => {
    const client = new RemoteModels(server.path);
    const missing = await client.acquire('/nonexistent/model.onnx', cpu).catch((e: unknown) => e);
    expect(isInputError(missing)).toBe(true);
    expect((missing as Error).message).toBe('/nonexistent/model.onnx: no such file');

    const lease = await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    const wrong = await lease.model.run({ audio: feeds(1, 0).audio }).catch((e: unknown) => e);
    expect((wrong as Error).message).toMatch(/demo-face\.onnx: .*missing input phase/);
    expect((await lease.model.run(feeds(1, 0.3))).frame.data.length).toBe(256 * 256 * 4);
    await lease.release();
    await client.close();
  });

  it('releases the leases of a client that disconnects without releasing', async () => {
    const client = new RemoteModels(server.path);
    await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    expect(cache.size).toBe(1);
    await client.close();
    await until('the model closed', () => cache.size === 0);
    await expect(client.acquire(DEMO_FACE_MODEL_PATH, cpu)).rejects.toThrow(`${server.path}: closed`);
  });

  it('fails the runs of a client whose server went away with a ModelError naming the socket', async () => {
    const own = await serveModels({ path: join(dir, 'short-lived.sock'), models: new ModelCache(), log });
    const client = new RemoteModels(own.path);
    const lease = await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    await own.close();
    const err = await lease.model.run(feeds(1, 0)).catch((e: unknown) => e);
    expect(isInputError(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${own.path}: model server connection (closed|failed: write EPIPE)$`));
    const unreachable = await new RemoteModels(join(dir, 'nobody.sock')).acquire(DEMO_FACE_MODEL_PATH, cpu).catch((e: unknown) => e);
    expect((unreachable as Error).message).toMatch(/nobody\.sock: model server unreachable: connect ENOENT/);
  });
});

/** A raw client: sends messages as bytes and collects the replies until the server closes the connection. */
class RawClient {
  readonly replies: Array<{ header: WireReply; at: number }> = [];
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly reader = new MessageReader();

  constructor(path: string) {
    this.socket = connect(path);
    this.socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let m = this.reader.next(); m !== null; m = this.reader.next()) this.replies.push({ header: m.header as WireReply, at: performance.now() });
    });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  send(...buffers: Buffer[]): void {
    for (const b of buffers) this.socket.write(b);
  }

  /** One message with `header` as its JSON (any JSON value, valid request or not). */
  message(header: unknown, tensors?: Record<string, TensorFeed>): Buffer {
    return Buffer.concat(encode(header as object, tensors));
  }

  async reply(id: number): Promise<WireReply> {
    await until(`a reply to ${id}`, () => this.replies.some((r) => r.header.id === id));
    return this.replies.find((r) => r.header.id === id)!.header;
  }

  end(): void {
    this.socket.destroy();
  }
}

describe('model server under abuse', () => {
  let dir: string;
  let cache: ModelCache;
  let server: ModelServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synctalk-model-server-abuse-'));
    cache = new ModelCache({ maxBatch: 4 });
    const umask = process.umask(0);
    try {
      server = await serveModels({ path: join(dir, 'private', 'models.sock'), models: cache, log, maxMessageBytes: 64 << 20 });
    } finally {
      process.umask(umask);
    }
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('listens on a socket of mode 0600 in a folder of mode 0700, even under umask 000', () => {
    expect(statSync(server.path).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(server.path)).mode & 0o777).toBe(0o700);
  });

  it('refuses a socket folder others can enter, in one line', async () => {
    const open = join(dir, 'open');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    await expect(serveModels({ path: join(open, 'models.sock'), models: cache, log })).rejects.toThrow(
      new InputError(open, `the model server's socket folder must be private (a folder owned by this user, mode 0700); it is mode 755, owner ${process.getuid!()}`),
    );
    expect(existsSync(join(open, 'models.sock'))).toBe(false);
  });

  it.each([
    ['a header that is a JSON number', 5, -1, 'malformed request: Expected object, received number'],
    ['an unknown op', { id: 3, op: 'explode' }, 3, "malformed request: op: Invalid discriminator value. Expected 'acquire' | 'run' | 'release'"],
    ['a run without a handle', { id: 4, op: 'run', tensors: [] }, 4, 'malformed request: handle: Required'],
    ['an acquire of 1e6 threads', { id: 5, op: 'acquire', path: DEMO_FACE_MODEL_PATH, providers: ['cpu'], intraOpThreads: 1e6 }, 5, `malformed request: intraOpThreads: at most this machine's ${availableParallelism()} cores`],
    ['an acquire with an unknown key', { id: 6, op: 'acquire', path: DEMO_FACE_MODEL_PATH, providers: ['cpu'], intraOpThreads: 1, threads: 8 }, 6, "malformed request: Unrecognized key(s) in object: 'threads'"],
  ])('answers %s, then closes the connection (and loads nothing)', async (_name, header, id, problem) => {
    const client = new RawClient(server.path);
    client.send(client.message(header));
    expect(await client.reply(id)).toEqual({ id, ok: false, file: 'model server', problem });
    await client.closed;
    expect(cache.size).toBe(0);
  });

  it('answers a header that is not JSON and a message over the size limit (refused on its prefix), then closes', async () => {
    const garbage = new RawClient(server.path);
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32LE(5, 0);
    garbage.send(prefix, Buffer.from('{nope'));
    expect((await garbage.reply(-1)).ok).toBe(false);
    expect(((await garbage.reply(-1)) as { problem: string }).problem).toMatch(/^malformed message: header is not JSON/);
    await garbage.closed;

    const huge = new RawClient(server.path);
    const claim = Buffer.alloc(8);
    claim.writeUInt32LE(16, 0);
    claim.writeUInt32LE(0xfffffff0, 4);
    huge.send(claim);
    expect(await huge.reply(-1)).toEqual({ id: -1, ok: false, file: 'model server', problem: `malformed message: message of ${8 + 16 + 0xfffffff0} bytes exceeds ${64 << 20}` });
    await huge.closed;
  });

  it('a run of more rows than the max batch is refused with one line, and the connection goes on', async () => {
    const client = new RemoteModels(server.path);
    const lease = await client.acquire(DEMO_FACE_MODEL_PATH, cpu);
    await expect(lease.model.run(feeds(5, 0.2))).rejects.toThrow(`${DEMO_FACE_MODEL_PATH}: a run of 5 rows; the model server takes at most 4 per request (its max batch)`);
    expect((await lease.model.run(feeds(4, 0.2))).frame.dims).toEqual([4, 256, 256, 4]);
    await lease.release();
    await client.close();
  });

  it("one client's burst does not stall another's run beyond one run", async () => {
    const [a, b] = [new RemoteModels(server.path), new RemoteModels(server.path)];
    const [la, lb] = await Promise.all([a.acquire(DEMO_FACE_MODEL_PATH, cpu), b.acquire(DEMO_FACE_MODEL_PATH, cpu)]);
    const done: string[] = [];
    const burst = Array.from({ length: 12 }, (_, i) => la.model.run(feeds(4, 0.1)).then(() => void done.push(`a${i}`)));
    await until("the burst's first run", () => done.length > 0);
    const sentAfter = done.length;
    await lb.model.run(feeds(1, 0.3)).then(() => void done.push('b'));
    await Promise.all(burst);
    // after b was sent: at most the run of a then in flight finished before b
    expect(done.indexOf('b') - sentAfter).toBeLessThanOrEqual(1);
    await Promise.all([la.release(), lb.release()]);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('MessageReader', () => {
  it('gathers a 32 MiB message sent in 16 KiB pieces, its prefix a byte at a time, in linear time', () => {
    const body = Buffer.alloc(32 << 20, 3);
    const [prefix, header] = encode({ id: 1, op: 'run', handle: 1 }, { x: { type: 'uint8', dims: [body.length], data: body } });
    const reader = new MessageReader();
    const started = performance.now();
    for (const byte of prefix) {
      reader.push(Buffer.from([byte]));
      expect(reader.next()).toBeNull();
    }
    reader.push(header);
    for (let at = 0; at < body.length; at += 16 << 10) {
      reader.push(body.subarray(at, at + (16 << 10)));
      if (at + (16 << 10) < body.length) expect(reader.next()).toBeNull();
    }
    const m = reader.next();
    const ms = performance.now() - started;
    expect(m?.header).toEqual({ id: 1, op: 'run', handle: 1, tensors: [{ name: 'x', type: 'uint8', dims: [body.length] }] });
    expect(m?.tensors.x.data.length).toBe(body.length);
    // re-joining everything buffered on each piece (the quadratic reader) copies 32 GiB here: minutes, not this
    expect(ms).toBeLessThan(5000);
    expect(reader.next()).toBeNull();
  });
});

describe('model server process', () => {
  it('answers an acquire of 1e6 threads without starting it, and SIGTERM ends the process even with a load in flight', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'synctalk-model-server-process-'));
    const path = join(dir, 'models.sock');
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/model-server-process.ts', import.meta.url)), path], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
        child.once('exit', () => reject(new Error('the server process exited before listening')));
      });
      const raw = new RawClient(path);
      raw.send(raw.message({ id: 1, op: 'acquire', path: DEMO_FACE_MODEL_PATH, providers: ['cpu'], intraOpThreads: 1e6 }));
      expect(await raw.reply(1)).toMatchObject({ id: 1, ok: false, problem: expect.stringMatching(/intraOpThreads: at most/) });
      const client = new RemoteModels(path);
      const loading = client.acquire(DEMO_FACE_MODEL_PATH, cpu).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000))]);
      expect(code).toBe(143);
      await loading;
      await client.close();
      raw.end();
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
