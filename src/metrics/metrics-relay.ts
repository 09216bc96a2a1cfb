/**
 * Metrics relay: the job processes of a worker send their Prometheus registry to the main process, which
 * answers /metrics for all of them (agents-js runs each job in a child process of its own, and only the main
 * process has the health port).
 *
 * ```
 * job process A:  connect --m--m--m--m--(m|)            (m: registry.getMetricsAsJSON(), one JSON line)
 * job process B:           connect --m--m--m-- exit
 * main process:   scrape = sum(main registry, last m of each live job, retired totals)
 * ```
 *
 * - The main process serves a Unix socket (`serveMetricsRelay`) and passes its path to its job processes in
 *   SYNCTALK_METRICS_SOCKET. A job process (`relayMetrics`) sends its registry every `intervalMs` (default
 *   1000) and once more when closed, so a scrape sees figures at most that old.
 * - Aggregation is prom-client's (AggregatorRegistry.aggregate): same name and labels are summed.
 * - When a job's connection closes, its last counters and histograms are added to the retired totals, so
 *   counters never go down; its gauges (its room's levels) go with it.
 * - Bounded: one last message per live connection, a message of at most 4 MiB (a longer line closes that
 *   connection, logged); the retired totals have one series per name and label set.
 * - Without SYNCTALK_METRICS_SOCKET (a job run outside such a worker) the job relays nothing.
 */
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { listenPrivate } from '../net/private-socket.ts';

/** The environment variable that tells job processes where the main process's metrics socket listens. */
export const METRICS_SOCKET_ENV = 'SYNCTALK_METRICS_SOCKET';

/** The longest message accepted, bytes. */
const MAX_MESSAGE = 4 * 1024 * 1024;

type Snapshot = MetricObjectWithValues<MetricValue<string>>[];

/** prom-client's JSON says 'gauge', 'counter', ... (its typings declare a numeric enum that does not exist at run time). */
const isGauge = (metric: { readonly type: unknown }): boolean => metric.type === 'gauge';

export interface MetricsRelay {
  /** The Prometheus text of `main` summed with every job's last message and the retired totals. */
  scrape(main: Registry): Promise<string>;
  /** Live job connections. */
  readonly jobs: number;
  /** Stops listening, closes the connections and removes the socket file. */
  close(): Promise<void>;
}

/** Serves the metrics socket of a worker's main process at `path`. */
export async function serveMetricsRelay(options: { readonly path: string; readonly log: Logger }): Promise<MetricsRelay> {
  const { path, log } = options;
  const live = new Map<Socket, Snapshot>();
  let retired: Snapshot = [];
  /** Retirements in order (each reads the totals the one before wrote). */
  let retiring: Promise<void> = Promise.resolve();

  const retire = (last: Snapshot | undefined): void => {
    if (last === undefined) return;
    const totals = last.filter((m) => !isGauge(m));
    retiring = retiring.then(async () => {
      retired = (await AggregatorRegistry.aggregate([retired, totals]).getMetricsAsJSON()) as Snapshot;
    });
  };

  const server: Server = createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const parsed: unknown = JSON.parse(line);
          if (!Array.isArray(parsed)) throw new Error('not an array of metrics');
          live.set(socket, parsed as Snapshot);
        } catch (e) {
          log.warn({ err: (e as Error).message }, 'metrics relay: a malformed message; connection closed');
          socket.destroy();
          return;
        }
        nl = buffered.indexOf('\n');
      }
      if (buffered.length > MAX_MESSAGE) {
        log.warn({ bytes: buffered.length }, 'metrics relay: a message over 4 MiB; connection closed');
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      retire(live.get(socket));
      live.delete(socket);
    });
  });

  await listenPrivate(server, path, 'the metrics relay');
  return {
    scrape: async (main) => {
      await retiring;
      return AggregatorRegistry.aggregate([(await main.getMetricsAsJSON()) as Snapshot, retired, ...live.values()]).metrics();
    },
    get jobs() {
      return live.size;
    },
    close: () =>
      new Promise<void>((done) => {
        for (const socket of live.keys()) socket.destroy();
        server.close(() => {
          rmSync(path, { force: true });
          done();
        });
      }),
  };
}

export interface JobMetricsRelay {
  /** Sends the registry a last time and disconnects. Idempotent. */
  close(): Promise<void>;
}

/**
 * In a job process: sends `registry` to the main process (SYNCTALK_METRICS_SOCKET) every `intervalMs`
 * (default 1000) until closed. Without the variable, or when the socket cannot be reached (logged), nothing is sent.
 */
export async function relayMetrics(registry: Registry, options: { readonly log: Logger; readonly intervalMs?: number; readonly env?: NodeJS.ProcessEnv }): Promise<JobMetricsRelay> {
  const path = (options.env ?? process.env)[METRICS_SOCKET_ENV];
  if (path === undefined || path === '') return { close: async () => undefined };
  const socket = connect(path);
  const reached = await new Promise<boolean>((resolve) => {
    const unreachable = (e: NodeJS.ErrnoException): void => {
      options.log.warn({ socket: path, err: e.code ?? e.message }, "metrics relay: cannot reach the worker's metrics socket; this job's metrics are not reported");
      resolve(false);
    };
    socket.once('error', unreachable);
    socket.once('connect', () => {
      socket.off('error', unreachable);
      resolve(true);
    });
  });
  if (!reached) return { close: async () => undefined };
  socket.on('error', () => undefined);
  socket.unref();
  const send = async (): Promise<void> => {
    const json = JSON.stringify(await registry.getMetricsAsJSON());
    if (!socket.destroyed) socket.write(`${json}\n`);
  };
  const timer = setInterval(() => void send(), options.intervalMs ?? 1000);
  timer.unref();
  let closing: Promise<void> | null = null;
  return {
    close: () =>
      (closing ??= (async () => {
        clearInterval(timer);
        await send();
        await new Promise<void>((done) => socket.end(done));
      })()),
  };
}
