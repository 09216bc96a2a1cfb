/**
 * serveModels: the model server of an avatar worker machine. agents-js runs every job (room) in its own
 * child process; this server, in the worker's main process, holds the models, and the job processes
 * run their frames through it over a Unix socket (RemoteModels). So every room of the worker shares
 * one loaded copy of each graph, and the frames of all of them are batched into each model run
 * (ModelCache hands out a BatchedModel for a model that can batch).
 *
 * ```
 * job process (room A) --\                 /-- ModelCache -- BatchedModel(demo) -- OnnxModel (worker thread, GPU)
 * job process (room B) ----> unix socket --
 * job process (room C) --/                 \-- BatchedModel(audio, audio_att, render of a SyncTalk bundle) -- ...
 * ```
 *
 * - Wire format: model-wire.ts. Each connection's handles are its ModelCache leases; closing the
 *   connection (a job process ending, or dying) releases them, and the last release closes the model.
 * - Every request gets a reply. A failed request is answered with its ModelError, and the connection
 *   goes on. A malformed message or request (not JSON, not an object, an unknown op, a missing field,
 *   intraOpThreads above the machine's cores, a message over `maxMessageBytes`) is answered with the
 *   problem (its id, or -1) and the connection is then closed (logged), never the server.
 * - Limits: a run of a batching model takes at most the cache's `maxBatch` rows (frames) per request.
 *   Fairness: each connection has at most `maxBatch` rows of each model in flight (a request of a model
 *   that cannot batch counts as `maxBatch`: one at a time), so one client's burst queues in its own
 *   connection and delays the others by at most one run. While a connection has a request waiting for
 *   its share, or replies the client has not read, its socket is not read (strategy: wait; the client's
 *   writes block), so what a connection buffers is bounded.
 * - The socket file is created by `listen` (a stale one from a crashed process is replaced) in a private
 *   folder: created mode 0700 when missing; an existing folder must be this user's and closed to group
 *   and others (an InputError otherwise). The socket itself is made mode 0600; `close()` removes it.
 *   `privateSocketPath()` (net/private-socket.ts) gives a fresh such path.
 * - Metrics: every `statsIntervalMs` (default 5000) in which a batching model ran, one "model server
 *   batching" line per model: runs, requests and rows since the last line, and rows per run.
 */
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Logger } from '../log.ts';
import { listenPrivate } from '../net/private-socket.ts';
import { BatchedModel, type BatchStats } from './batched-model.ts';
import type { ModelCache, ModelLease } from './model-cache.ts';
import { encode, failure, MessageReader, parseRequest, type WireReply, type WireRequest } from './model-wire.ts';
import type { ModelRunner, TensorResult } from './model-runner.ts';

export interface ModelServer {
  /** The Unix socket path clients connect to. */
  readonly path: string;
  /** Stops accepting, closes every connection (releasing its leases) and removes the socket file. */
  close(): Promise<void>;
}

export interface ModelServerOptions {
  /** The Unix socket to listen on, in a private folder (see the module doc; `privateSocketPath()`). */
  readonly path: string;
  readonly models: ModelCache;
  readonly log: Logger;
  /** Milliseconds between batching metrics lines (default 5000). */
  readonly statsIntervalMs?: number;
  /** Largest message a client may send, bytes (default 256 MiB). */
  readonly maxMessageBytes?: number;
}

export async function serveModels(options: ModelServerOptions): Promise<ModelServer> {
  const { path, models, log } = options;
  const limits: ConnectionLimits = { maxBatch: models.maxBatch, maxThreads: availableParallelism(), maxMessageBytes: options.maxMessageBytes ?? 256 * 2 ** 20 };
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveConnection(socket, models, log, limits);
  });
  await listenPrivate(server, path, 'the model server');
  log.info({ socket: path }, 'model server listening');
  const reported = new Map<string, BatchStats>();
  const stats = setInterval(() => {
    for (const { path: model, ...now } of models.batchStats()) {
      const before = reported.get(model) ?? { runs: 0, requests: 0, rows: 0 };
      reported.set(model, now);
      const runs = now.runs - before.runs;
      if (runs <= 0) continue;
      const requests = now.requests - before.requests;
      const rows = now.rows - before.rows;
      log.info({ model, runs, requests, rows, rowsPerRun: +(rows / runs).toFixed(2) }, 'model server batching');
    }
  }, options.statsIntervalMs ?? 5000);
  stats.unref();
  return {
    path,
    close: async () => {
      clearInterval(stats);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of connections) s.destroy();
      await closed;
      rmSync(path, { force: true });
    },
  };
}

interface ConnectionLimits {
  /** Rows per request, and rows in flight per connection and model. */
  readonly maxBatch: number;
  /** intraOpThreads at most. */
  readonly maxThreads: number;
  readonly maxMessageBytes: number;
}

/** One connection's share of one model: rows in flight, and the requests waiting for room (FIFO). */
interface Share {
  rows: number;
  readonly waiting: Array<{ readonly rows: number; readonly start: () => void }>;
}

function serveConnection(socket: Socket, models: ModelCache, log: Logger, limits: ConnectionLimits): void {
  const reader = new MessageReader(limits.maxMessageBytes);
  const leases = new Map<number, ModelLease>();
  const shares = new Map<ModelRunner, Share>();
  let nextHandle = 1;
  let broken = false;
  /** Requests waiting for their connection's share of a model; the socket is not read while there are any. */
  let waiting = 0;

  const flow = (): void => {
    if (broken || socket.destroyed) return;
    if (waiting > 0 || socket.writableNeedDrain) socket.pause();
    else socket.resume();
  };
  socket.on('drain', flow);

  const reply = (r: WireReply, tensors?: Readonly<Record<string, TensorResult>>): void => {
    if (socket.destroyed) return;
    for (const b of encode(r, tensors)) socket.write(b);
    flow();
  };

  /** Replies with the problem, then closes the connection: the stream or the client cannot be trusted further. */
  const refuse = (id: number, problem: string): void => {
    if (broken) return;
    log.warn({ problem }, 'model server: malformed message; connection closed');
    reply({ id, ok: false, file: 'model server', problem });
    broken = true;
    socket.end();
    socket.pause();
  };

  /** Runs `run` once this connection has room for `rows` more rows of `model` (see Fairness in the module doc). */
  const withShare = async <T,>(model: ModelRunner, rows: number, run: () => Promise<T>): Promise<T> => {
    let share = shares.get(model);
    if (share === undefined) {
      share = { rows: 0, waiting: [] };
      shares.set(model, share);
    }
    const own = share;
    if (own.rows > 0 && (own.waiting.length > 0 || own.rows + rows > limits.maxBatch)) {
      waiting++;
      flow();
      // started by a finishing request, which counts our rows in
      await new Promise<void>((start) => own.waiting.push({ rows, start }));
      waiting--;
      flow();
    } else own.rows += rows;
    try {
      return await run();
    } finally {
      own.rows -= rows;
      while (own.waiting.length > 0 && (own.rows === 0 || own.rows + own.waiting[0].rows <= limits.maxBatch)) {
        const next = own.waiting.shift()!;
        own.rows += next.rows;
        next.start();
      }
    }
  };

  const handle = async (request: WireRequest, tensors: Record<string, TensorResult>): Promise<void> => {
    switch (request.op) {
      case 'acquire': {
        const lease = await models.acquire(request.path, { providers: request.providers, intraOpThreads: request.intraOpThreads, log });
        if (socket.destroyed) return void (await lease.release());
        const h = nextHandle++;
        leases.set(h, lease);
        const m = lease.model;
        return reply({ id: request.id, ok: true, handle: h, provider: m.provider, inputs: m.inputs, outputs: m.outputs });
      }
      case 'run': {
        const lease = leases.get(request.handle);
        if (lease === undefined) return reply({ id: request.id, ok: false, file: 'model server', problem: `no model with handle ${request.handle} (released?)` });
        const batching = lease.model instanceof BatchedModel;
        const rows = batching ? Math.max(1, ...Object.values(tensors).map((t) => t.dims[0] ?? 1)) : limits.maxBatch;
        if (batching && rows > limits.maxBatch) {
          return reply({ id: request.id, ok: false, file: lease.model.path, problem: `a run of ${rows} rows; the model server takes at most ${limits.maxBatch} per request (its max batch)` });
        }
        const outputs = await withShare(lease.model, rows, () => lease.model.run(tensors));
        return reply({ id: request.id, ok: true }, outputs);
      }
      case 'release': {
        const lease = leases.get(request.handle);
        leases.delete(request.handle);
        await lease?.release();
        return reply({ id: request.id, ok: true });
      }
    }
  };

  socket.on('data', (chunk: Buffer) => {
    if (broken) return;
    reader.push(chunk);
    try {
      for (let m = reader.next(); m !== null && !broken; m = reader.next()) {
        const parsed = parseRequest(m.header, limits.maxThreads);
        if (!('request' in parsed)) return refuse(parsed.id, parsed.problem);
        const { request } = parsed;
        const file = request.op === 'acquire' ? request.path : (leases.get(request.handle)?.model.path ?? 'model server');
        handle(request, m.tensors).catch((err: unknown) => reply(failure(request.id, err, file)));
      }
    } catch (err) {
      refuse(-1, `malformed message: ${(err as Error).message}`);
    }
  });
  socket.on('error', (err) => log.warn({ err: err.message }, 'model server: connection failed'));
  socket.on('close', () => {
    for (const lease of leases.values()) void lease.release();
    leases.clear();
  });
}
