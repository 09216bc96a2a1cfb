/**
 * The wiring of a worker's Prometheus metrics (prometheus.ts) into its processes.
 *
 * ```
 * main process:  serveWorkerMetrics -> registry + relay socket (SYNCTALK_METRICS_SOCKET) + GET /metrics on the health port
 * job process:   jobMetrics -> registry, relayed every second: render() per model render, follow(session.metrics, room)
 * ```
 *
 * Call `serveWorkerMetrics` before agents-js starts (the job processes inherit the socket's path), and
 * `jobMetrics` in a job's entry; its `close` (a shutdown callback) sends the job's last figures.
 */
import { Registry } from 'prom-client';
import type { Observable, Subscription } from 'rxjs';
import type { Logger } from '../log.ts';
import { privateSocketPath } from '../net/private-socket.ts';
import { METRICS_SOCKET_ENV, relayMetrics, serveMetricsRelay } from './metrics-relay.ts';
import { serveMetricsRoute } from './metrics-route.ts';
import { defineMetrics, recordRender, recordSession, workerMetrics, type WorkerMetricSet } from './prometheus.ts';
import type { SessionMetrics } from './session-metrics.ts';

export interface WorkerMetricsOptions {
  /** The health server's host and port (ServerOptions host and port; 0: any). */
  readonly host: string;
  readonly port: number;
  /** Sessions served at once at most. */
  readonly maxJobs: number;
  /** Sessions live now (read at each scrape). */
  readonly liveSessions: () => number;
  readonly log: Logger;
}

/** In a worker's main process: its metrics, with `/metrics` on the health port summing its job processes'. */
export async function serveWorkerMetrics(options: WorkerMetricsOptions): Promise<WorkerMetricSet> {
  const m = workerMetrics({ maxJobs: options.maxJobs, liveSessions: options.liveSessions });
  const path = privateSocketPath('synctalk-metrics-', 'metrics.sock');
  const relay = await serveMetricsRelay({ path, log: options.log });
  process.env[METRICS_SOCKET_ENV] = path;
  serveMetricsRoute({
    host: options.host,
    port: options.port,
    log: options.log,
    scrape: async () => ({ contentType: m.registry.contentType, body: await relay.scrape(m.registry) }),
  });
  return m;
}

export interface JobMetrics {
  /** One model render of the session: `ms` for `frames` frames (AvatarSessionOptions.onRender). */
  readonly render: (ms: number, frames: number) => void;
  /** Counts the session's snapshots (AvatarSession.metrics) under its room until they complete. */
  follow(snapshots: Observable<SessionMetrics>, room: string): void;
  /** Counts a session end by reason. */
  ended(reason: string): void;
  /** Stops following, sends the last figures to the main process and disconnects. */
  close(): Promise<void>;
}

/** In a job process: a registry of its own, relayed to the main process's /metrics. */
export async function jobMetrics(log: Logger): Promise<JobMetrics> {
  const m = defineMetrics(new Registry());
  const relay = await relayMetrics(m.registry, { log });
  const subs: Subscription[] = [];
  return {
    render: (ms, frames) => recordRender(m, ms, frames),
    follow: (snapshots, room) => void subs.push(snapshots.pipe(recordSession(m, room)).subscribe()),
    ended: (reason) => m.sessionEnds.inc({ reason }),
    close: async () => {
      subs.forEach((s) => s.unsubscribe());
      await relay.close();
    },
  };
}
