/**
 * The metrics relay (job processes -> main process) and the /metrics route, without LiveKit: registries of
 * "jobs" in this process, a real Unix socket and a real HTTP server.
 */
import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Subject } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { rootLogger } from '../src/log.ts';
import { relayMetrics, serveMetricsRelay, METRICS_SOCKET_ENV } from '../src/metrics/metrics-relay.ts';
import { serveMetricsRoute } from '../src/metrics/metrics-route.ts';
import { defineMetrics, recordSession } from '../src/metrics/prometheus.ts';
import type { SessionMetrics } from '../src/metrics/session-metrics.ts';

const dir = mkdtempSync(join(tmpdir(), 'synctalk-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = rootLogger.child({ element: 'test' });

const snapshot = (frames: number, offset: number): SessionMetrics => ({
  budgetQueuedSeconds: 0.2,
  publisherQueuedFrames: 1,
  modelMsPerFrame: 5,
  modelMsPerFrameMax: 7,
  avOffsetMs: offset,
  droppedFrames: 0,
  idlePreemptedFrames: 0,
  skippedFrames: 0,
  framesPublished: frames,
  audioSeconds: frames / 25,
  segmentsStarted: 1,
  segmentsFinished: 0,
  segmentsInterrupted: 0,
});

const value = (text: string, sample: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
};

/** Polls the main process's scrape until `check` holds (the relay reports every 50 ms here). */
async function until(scrape: () => Promise<string>, check: (text: string) => boolean): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = await scrape();
    if (check(text)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the scrape never satisfied the check:\n${await scrape()}`);
}

describe('metrics relay', () => {
  it('listens on a socket of mode 0600 in a private folder; a folder others can enter is one InputError', async () => {
    const path = join(dir, 'private', 'relay.sock');
    const relay = await serveMetricsRelay({ path, log });
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'private')).mode & 0o777).toBe(0o700);
    } finally {
      await relay.close();
    }
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    await expect(serveMetricsRelay({ path: join(open, 'relay.sock'), log })).rejects.toEqual(
      new InputError(open, `the metrics relay's socket folder must be private (a folder owned by this user, mode 0700); it is mode 755, owner ${process.getuid!()}`),
    );
  });

  it('sums the jobs with the main process; an ended job keeps its counters and loses its gauges', async () => {
    const path = join(dir, 'relay.sock');
    const relay = await serveMetricsRelay({ path, log });
    const main = defineMetrics(new Registry(), () => 2);
    const env = { [METRICS_SOCKET_ENV]: path };
    const scrape = () => relay.scrape(main.registry);

    const jobs = ['room-a', 'room-b'].map((room) => {
      const m = defineMetrics(new Registry());
      const snapshots = new Subject<SessionMetrics>();
      snapshots.pipe(recordSession(m, room)).subscribe();
      return { m, snapshots };
    });
    const relays = await Promise.all(jobs.map((j) => relayMetrics(j.m.registry, { log, env, intervalMs: 50 })));
    jobs[0].snapshots.next(snapshot(10, -5));
    jobs[0].snapshots.next(snapshot(30, -10));
    jobs[1].snapshots.next(snapshot(7, 20));

    const both = await until(scrape, (t) => value(t, 'synctalk_frames_published_total') === 37);
    expect(value(both, 'synctalk_sessions')).toBe(2);
    expect(value(both, 'synctalk_av_offset_ms{room="room-a"}')).toBe(-10);
    expect(value(both, 'synctalk_av_offset_ms{room="room-b"}')).toBe(20);
    expect(value(both, 'synctalk_playback_events_total{event="started"}')).toBe(2);
    expect(relay.jobs).toBe(2);

    jobs[0].snapshots.complete();
    await relays[0].close();
    const one = await until(scrape, () => relay.jobs === 1);
    expect(value(one, 'synctalk_frames_published_total')).toBe(37);
    expect(value(one, 'synctalk_av_offset_ms{room="room-a"}')).toBeUndefined();
    expect(value(one, 'synctalk_av_offset_ms{room="room-b"}')).toBe(20);

    jobs[1].snapshots.next(snapshot(12, 15));
    const later = await until(scrape, (t) => value(t, 'synctalk_frames_published_total') === 42);
    expect(value(later, 'synctalk_playback_events_total{event="started"}')).toBe(2);
    await relays[1].close();
    await relay.close();
  });

  it('a job without SYNCTALK_METRICS_SOCKET relays nothing and closes at once', async () => {
    const r = await relayMetrics(new Registry(), { log, env: {} });
    await r.close();
  });
});

describe('/metrics route', () => {
  it('answers /metrics on the health server and leaves its other routes and other servers alone', async () => {
    const listen = (host: string): Promise<Server> =>
      new Promise((resolve) => {
        const s = createServer((_req, res) => {
          res.writeHead(404);
          res.end('not found');
        });
        s.listen(0, host, () => resolve(s));
      });
    const health = await listen('127.0.0.1');
    const other = await listen('::1');
    const port = (s: Server): number => (s.address() as { port: number }).port;
    const stop = serveMetricsRoute({ host: '127.0.0.1', port: port(health), log, scrape: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'synctalk_sessions 0\n' }) });
    try {
      const metrics = await fetch(`http://127.0.0.1:${port(health)}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toBe('synctalk_sessions 0\n');
      expect((await fetch(`http://127.0.0.1:${port(health)}/metrics?x=1`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port(health)}/`)).status).toBe(404);
      expect((await fetch(`http://[::1]:${port(other)}/metrics`)).status).toBe(404);
    } finally {
      stop();
      health.close();
      other.close();
    }
  });
});
