/**
 * `GET /metrics` on the workers' health ports, scraped while a session runs: the avatar worker (agents-js,
 * `dev`) on a real livekit-server, dispatched into a room where an agent speaks one line through it, and the
 * agent worker. Every name docs/metrics.md lists is there; the session's figures move between scrapes and
 * stay (counters) or go (the room's gauges) when the session ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchAvatar } from '../src/agent/avatar-dispatch.ts';
import { speakLines } from '../src/agent/scripted-agent.ts';
import type { DevServer } from '../src/livekit/dev-server.ts';
import { participantToken } from '../src/livekit/tokens.ts';
import { joinLocal, recordViewer, waitUntil } from '../bench/livekit.ts';
import { requireServer } from './livekit/helpers.ts';

/** The metric names docs/metrics.md documents (its `synctalk_*` rows). */
const DOCUMENTED = [...readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8').matchAll(/^\| `(synctalk_[a-z_]+)`/gm)].map((m) => m[1]);

/** A free TCP port on 127.0.0.1. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });

/** Prometheus text -> value of each sample, keyed by name and labels as written (`name{a="b"}`). */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The sum of every sample of `name` whose labels contain `labels` (e.g. 'room="x"'). */
const total = (s: Map<string, number>, name: string, labels = ''): number =>
  [...s].filter(([k]) => (k === name || k.startsWith(`${name}{`)) && k.includes(labels)).reduce((t, [, v]) => t + v, 0);

/** Polls `check` every 200 ms until it holds; fails after `ms` naming `what`. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const scrape = async (port: number): Promise<{ text: string; samples: Map<string, number> }> => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parse(text) };
};

interface Worker {
  readonly process: ChildProcess;
  readonly port: number;
  output: string;
}

async function startWorker(server: DevServer, script: string, env: Record<string, string>): Promise<Worker> {
  const port = await freePort();
  const portVar = script.includes('avatar') ? 'SYNCTALK_AVATAR_HTTP_PORT' : 'SYNCTALK_AGENT_HTTP_PORT';
  const child = spawn(process.execPath, ['--import', 'tsx', script, 'dev', '--log-level', 'info'], {
    env: { ...process.env, LIVEKIT_URL: server.url, LIVEKIT_API_KEY: server.apiKey, LIVEKIT_API_SECRET: server.apiSecret, SYNCTALK_LOG_LEVEL: 'info', [portVar]: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w: Worker = { process: child, port, output: '' };
  const keep = (d: Buffer): void => {
    w.output = (w.output + d.toString('utf8')).slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  await waitUntil(`${script} to register`, () => w.output.includes('registered worker'), 60_000);
  return w;
}

async function stop(w: Worker | undefined): Promise<void> {
  if (w === undefined || w.process.exitCode !== null || w.process.signalCode !== null) return;
  const exited = new Promise((r) => w.process.once('exit', r));
  w.process.kill('SIGINT');
  const timer = setTimeout(() => w.process.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

describe('/metrics on the health ports', () => {
  let server: DevServer;
  let avatar: Worker | undefined;
  const rooms: Room[] = [];

  beforeAll(async () => {
    server = await requireServer();
    avatar = await startWorker(server, 'src/workers/avatar-worker.ts', { SYNCTALK_AVATAR_MAX_JOBS: '3' });
  }, 90_000);

  afterAll(async () => {
    await Promise.all(rooms.map((r) => r.disconnect()));
    await stop(avatar);
    await server?.stop();
  });

  it('docs/metrics.md lists the metric names', () => {
    expect(DOCUMENTED.length).toBeGreaterThanOrEqual(15);
  });

  it('the avatar worker: every documented name before any session, moving figures during one, totals kept after it', async () => {
    const w = avatar!;
    const before = await scrape(w.port);
    for (const name of DOCUMENTED) expect(before.text, name).toContain(`# TYPE ${name} `);
    expect(before.samples.get('synctalk_sessions')).toBe(0);
    expect(before.samples.get('synctalk_sessions_max')).toBe(3);
    expect(before.text).toContain('nodejs_eventloop_lag_seconds');
    // agents-js's own routes still answer
    expect((await fetch(`http://127.0.0.1:${w.port}/`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${w.port}/worker`)).status).toBe(200);

    const room = 'metrics-room';
    const agent = await joinLocal(server.url, await participantToken(server, { room, identity: 'agent', kind: 'agent' }));
    const viewer = await joinLocal(server.url, await participantToken(server, { room, identity: 'viewer' }));
    rooms.push(agent, viewer);
    await dispatchAvatar({ url: server.url, credentials: server, room, metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
    const seen = recordViewer(viewer, 'agent-avatar');
    await waitUntil('idle frames at the viewer', () => seen.video.length >= 25, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\navatar worker:\n${w.output.slice(-4000)}`);
    });

    // idle: two scrapes 1.5 s apart (the job relays every second) see the frame count move
    const idle1 = (await scrape(w.port)).samples;
    await new Promise((r) => setTimeout(r, 1500));
    const idle2 = (await scrape(w.port)).samples;
    expect(idle2.get('synctalk_sessions')).toBe(1);
    expect(total(idle1, 'synctalk_frames_published_total')).toBeGreaterThan(0);
    expect(total(idle2, 'synctalk_frames_published_total')).toBeGreaterThan(total(idle1, 'synctalk_frames_published_total'));
    expect(total(idle2, 'synctalk_model_ms_per_frame_count')).toBeGreaterThan(total(idle1, 'synctalk_model_ms_per_frame_count'));
    expect(total(idle2, 'synctalk_model_batch_frames_count')).toBeGreaterThan(total(idle1, 'synctalk_model_batch_frames_count'));
    expect(total(idle2, 'synctalk_model_run_ms_sum')).toBeGreaterThan(0);
    expect(total(idle2, 'synctalk_jobs_total', 'outcome="accepted"')).toBe(1);
    for (const gauge of ['synctalk_av_offset_ms', 'synctalk_budget_queued_seconds', 'synctalk_publisher_queued_frames']) {
      expect([...idle2.keys()], gauge).toContain(`${gauge}{room="${room}"}`);
    }

    // the session's A/V offset reaches viewers as the avatar's attribute (the job token allows it)
    await waitUntil("the avatar's A/V offset attribute at the viewer", () => viewer.remoteParticipants.get('agent-avatar')?.attributes['synctalk.av_offset_ms'] !== undefined, 10_000);

    const spoken = await speakLines(agent, { avatarIdentity: 'agent-avatar', lines: ['Metrics while I speak.'] });
    expect(spoken[0].playback.interrupted).toBe(false);
    seen.stop();
    let speech = new Map<string, number>();
    await eventually('the finished segment in /metrics', async () => {
      speech = (await scrape(w.port)).samples;
      return total(speech, 'synctalk_playback_events_total', 'event="finished"') >= 1;
    });
    expect(total(speech, 'synctalk_playback_events_total', 'event="started"')).toBe(1);
    expect(total(speech, 'synctalk_playback_events_total', 'event="finished"')).toBe(1);
    expect(total(speech, 'synctalk_audio_published_seconds_total')).toBeGreaterThan(spoken[0].seconds);
    const avOffset = speech.get(`synctalk_av_offset_ms{room="${room}"}`) ?? NaN;
    expect(Math.abs(avOffset)).toBeLessThan(200);
    process.stdout.write(
      `metrics during the session: ${total(speech, 'synctalk_frames_published_total')} frames published, ` +
        `model ${(total(speech, 'synctalk_model_ms_per_frame_sum') / total(speech, 'synctalk_model_ms_per_frame_count')).toFixed(1)} ms/frame, ` +
        `${(total(speech, 'synctalk_model_batch_frames_sum') / total(speech, 'synctalk_model_batch_frames_count')).toFixed(2)} frames per model run, A/V offset ${avOffset} ms\n`,
    );

    await agent.disconnect();
    await viewer.disconnect();
    let after = new Map<string, number>();
    await eventually('the session end in /metrics', async () => {
      after = (await scrape(w.port)).samples;
      return total(after, 'synctalk_session_ends_total') >= 1 && after.get('synctalk_sessions') === 0;
    }, 30_000);
    expect(after.get('synctalk_sessions')).toBe(0);
    expect(total(after, 'synctalk_session_ends_total', 'reason="agent left"')).toBe(1);
    expect(total(after, 'synctalk_frames_published_total')).toBeGreaterThanOrEqual(total(speech, 'synctalk_frames_published_total'));
    expect(total(after, 'synctalk_playback_events_total', 'event="finished"')).toBe(1);
    expect([...after.keys()].filter((k) => k.includes(`room="${room}"`))).toEqual([]);
  }, 180_000);

  it('the agent worker: its sessions and jobs', async () => {
    const agentWorker = await startWorker(server, 'src/workers/agent-worker.ts', { SYNCTALK_AGENT_MAX_JOBS: '5', GOOGLE_APPLICATION_CREDENTIALS: '', GOOGLE_API_KEY: '' });
    try {
      const { text, samples } = await scrape(agentWorker.port);
      expect(samples.get('synctalk_sessions')).toBe(0);
      expect(samples.get('synctalk_sessions_max')).toBe(5);
      expect(text).toContain('# TYPE synctalk_jobs_total counter');
      expect(text).toContain('process_cpu_seconds_total');
    } finally {
      await stop(agentWorker);
    }
  }, 90_000);
});
