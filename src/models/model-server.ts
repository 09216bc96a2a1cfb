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
 * - A connection's requests run concurrently (each caller bounds its own in-flight runs); a failed
 *   request is answered with its ModelError, and the connection goes on.
 * - A malformed message closes that connection (logged), never the server.
 * - The socket file is created by `listen` and removed by `close()`; a stale file from a crashed
 *   process is replaced.
 * - Metrics: every `statsIntervalMs` (default 5000) in which a batching model ran, one "model server
 *   batching" line per model: runs, requests and rows since the last line, and rows per run.
 */
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { Logger } from '../log.ts';
import type { BatchStats } from './batched-model.ts';
import type { ModelCache, ModelLease } from './model-cache.ts';
import { encode, failure, MessageReader, type WireReply, type WireRequest } from './model-wire.ts';

export interface ModelServer {
  /** The Unix socket path clients connect to. */
  readonly path: string;
  /** Stops accepting, closes every connection (releasing its leases) and removes the socket file. */
  close(): Promise<void>;
}

export interface ModelServerOptions {
  /** The Unix socket to listen on. */
  readonly path: string;
  readonly models: ModelCache;
  readonly log: Logger;
  /** Milliseconds between batching metrics lines (default 5000). */
  readonly statsIntervalMs?: number;
}

export async function serveModels(options: ModelServerOptions): Promise<ModelServer> {
  const { path, models, log } = options;
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveConnection(socket, models, log);
  });
  rmSync(path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
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

function serveConnection(socket: Socket, models: ModelCache, log: Logger): void {
  const reader = new MessageReader();
  const leases = new Map<number, ModelLease>();
  let nextHandle = 1;

  const reply = (r: WireReply, tensors?: Parameters<typeof encode>[1]): void => {
    if (socket.destroyed) return;
    for (const b of encode(r, tensors)) socket.write(b);
  };

  const handle = async (request: WireRequest, tensors: Parameters<typeof encode>[1]): Promise<void> => {
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
        const outputs = await lease.model.run(tensors ?? {});
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
    reader.push(chunk);
    try {
      for (let m = reader.next<WireRequest>(); m !== null; m = reader.next<WireRequest>()) {
        const request = m.header;
        const file = request.op === 'acquire' ? request.path : (leases.get(request.handle)?.model.path ?? 'model server');
        handle(request, m.tensors).catch((err: unknown) => reply(failure(request.id, err, file)));
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'model server: malformed message; connection closed');
      socket.destroy();
    }
  });
  socket.on('error', (err) => log.warn({ err: err.message }, 'model server: connection failed'));
  socket.on('close', () => {
    for (const lease of leases.values()) void lease.release();
    leases.clear();
  });
}
