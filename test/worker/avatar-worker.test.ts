/**
 * The avatar worker as deployed: the agents-js worker process (src/workers/avatar-worker.ts, `dev`)
 * registers as 'synctalk-avatar' with a real livekit-server; an explicit dispatch (as the agent worker
 * makes it) starts a job that joins as the named avatar on behalf of the agent, publishes idle and
 * speech video, answers the scripted agent's segment, and ends when the agent leaves. Then the whole
 * two-worker system: the agent worker (scripted mode) and the avatar worker, a user joining a room.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchAvatar } from '../../src/agent/avatar-dispatch.ts';
import { speakLines } from '../../src/agent/scripted-agent.ts';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { ATTRIBUTE_PUBLISH_ON_BEHALF } from '../../src/livekit/protocol.ts';
import { participantToken } from '../../src/livekit/tokens.ts';
import { joinLocal, recordViewer, SPEECH_OPENING, waitUntil } from '../../bench/livekit.ts';
import { requireServer } from '../livekit/helpers.ts';

/**
 * Per describe block: a server, and `workers` avatar worker processes (`dev`, SYNCTALK_AVATAR_MAX_JOBS
 * `maxJobs`) registered with it. `output` is all of them together, `outputs[i]` worker i's.
 */
function avatarWorkerFixture(workers = 1, maxJobs = 4) {
  const f = { server: undefined as unknown as DevServer, output: '', outputs: [] as string[], rooms: [] as Room[], processes: [] as ChildProcess[] };
  const startWorker = async (i: number): Promise<void> => {
    f.outputs[i] = '';
    const worker = spawn(process.execPath, ['--import', 'tsx', 'src/workers/avatar-worker.ts', 'dev', '--log-level', 'info'], {
      env: {
        ...process.env,
        LIVEKIT_URL: f.server.url,
        LIVEKIT_API_KEY: f.server.apiKey,
        LIVEKIT_API_SECRET: f.server.apiSecret,
        SYNCTALK_AVATAR_HTTP_PORT: '0',
        SYNCTALK_LOG_LEVEL: 'info',
        SYNCTALK_AVATAR_MAX_JOBS: String(maxJobs),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    f.processes.push(worker);
    const keep = (d: Buffer): void => {
      f.output = (f.output + d.toString('utf8')).slice(-200_000);
      f.outputs[i] = (f.outputs[i] + d.toString('utf8')).slice(-200_000);
    };
    worker.stdout?.on('data', keep);
    worker.stderr?.on('data', keep);
    await waitUntil(`worker ${i} to register`, () => f.outputs[i].includes('registered worker'), 60_000);
  };
  beforeAll(async () => {
    f.server = await requireServer();
    for (let i = 0; i < workers; i++) await startWorker(i);
  }, 90_000 * workers);

  afterAll(async () => {
    await Promise.all(f.rooms.map((r) => r.disconnect()));
    for (const w of f.processes) {
      if (w.exitCode !== null || w.signalCode !== null) continue;
      const exited = new Promise((r) => w.once('exit', r));
      w.kill('SIGINT');
      const timer = setTimeout(() => w.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await f.server?.stop();
  });
  return f;
}

describe('avatar worker (agents-js) on a real LiveKit server', () => {
  const f = avatarWorkerFixture();

  /** A dispatch into `room`: the agent speaks one line to the avatar job, then leaves. */
  const dispatched = async (room: string): Promise<void> => {
    const agent = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'agent', kind: 'agent' }));
    f.rooms.push(agent);
    const viewer = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'viewer' }));
    f.rooms.push(viewer);
    const ended = f.output.split('session ended: agent left').length - 1;
    await dispatchAvatar({ url: f.server.url, credentials: f.server, room, metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
    const seen = recordViewer(viewer, 'agent-avatar');
    await waitUntil(`idle frames from the avatar dispatched into ${room}`, () => seen.video.length >= 10, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\navatar worker:\n${f.output.slice(-5000)}`);
    });
    const avatar = viewer.remoteParticipants.get('agent-avatar');
    expect(avatar?.attributes[ATTRIBUTE_PUBLISH_ON_BEHALF]).toBe('agent');

    const spoken = await speakLines(agent, { avatarIdentity: 'agent-avatar', lines: ['Hello from the dispatched avatar.'] });
    expect(spoken[0].playback.interrupted).toBe(false);
    expect(spoken[0].playback.playbackPosition).toBeCloseTo(spoken[0].seconds, 1);
    expect(seen.video.some((v) => v.opening > SPEECH_OPENING)).toBe(true);
    seen.stop();

    await agent.disconnect();
    await viewer.disconnect();
    await waitUntil('the job to end', () => f.output.split('session ended: agent left').length - 1 > ended, 15_000).catch((e: Error) => {
      throw new Error(`${e.message}\navatar worker:\n${f.output.slice(-4000)}`);
    });
  };

  it('a dispatch starts an avatar job that shows the agent speaking and ends when the agent leaves; so does the next', async () => {
    await dispatched('dispatched-1');
    for (const line of ['connected to room', 'tracks published', 'model loaded (provider']) expect(f.output).toContain(line);
    await dispatched('dispatched-2');
  }, 120_000);

  it('6 sessions one after another with SYNCTALK_AVATAR_MAX_JOBS=4 all get an avatar (the worker counts live sessions, not past jobs)', async () => {
    for (let i = 1; i <= 6; i++) {
      const room = `sequential-${i}`;
      const agent = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'agent', kind: 'agent' }));
      const viewer = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'viewer' }));
      f.rooms.push(agent, viewer);
      const ended = f.output.split('session ended: agent left').length - 1;
      await dispatchAvatar({ url: f.server.url, credentials: f.server, room, metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
      const seen = recordViewer(viewer, 'agent-avatar');
      await waitUntil(`idle frames from the avatar of session ${i}`, () => seen.video.length >= 5, 60_000).catch((e: Error) => {
        throw new Error(`${e.message}\navatar worker:\n${f.output.slice(-5000)}`);
      });
      seen.stop();
      await agent.disconnect();
      await viewer.disconnect();
      await waitUntil(`session ${i} to end`, () => f.output.split('session ended: agent left').length - 1 > ended, 20_000);
    }
    await waitUntil('the last lease released', () => /session ended \(released\): 0 of 4 live/.test(f.output), 10_000);
  }, 240_000);

  it('two rooms at once render through the worker\'s model server: one load, its batching metrics count both rooms\' frames', async () => {
    expect(f.output).toContain('model server listening');
    const loadsBefore = f.output.split('model loaded (provider').length - 1;
    const viewers: Array<ReturnType<typeof recordViewer>> = [];
    const agents: Room[] = [];
    for (const room of ['together-1', 'together-2']) {
      const agent = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'agent', kind: 'agent' }));
      const viewer = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'viewer' }));
      f.rooms.push(agent, viewer);
      agents.push(agent);
      await dispatchAvatar({ url: f.server.url, credentials: f.server, room, metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
      viewers.push(recordViewer(viewer, 'agent-avatar'));
    }
    await waitUntil('idle frames in both rooms', () => viewers.every((v) => v.video.length >= 25), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\navatar worker:\n${f.output.slice(-5000)}`);
    });
    // the model server loaded the model once for both job processes (the rooms' sessions overlap)
    expect(f.output.split('model loaded (provider').length - 1 - loadsBefore).toBe(1);
    expect(f.output).toMatch(/model loaded \(provider cpu, sessions' frames batched up to 16\)/);
    // both rooms' frames are rendered by the server's model: its metrics count them (how many shared a
    // run depends on timing; test/worker/model-server.test.ts checks the merging itself)
    const batching = () => [...f.output.matchAll(/"runs":(\d+),"requests":(\d+),"rows":(\d+)[^\n]*model server batching/g)].map((m) => m.slice(1).map(Number));
    const totals = () => batching().reduce((t, x) => t.map((v, i) => v + x[i]), [0, 0, 0]);
    await waitUntil('batching metrics for 25 requests', () => totals()[1] >= 25, 20_000);
    const [runs, requests, rows] = totals();
    process.stdout.write(`model server: ${runs} runs for ${requests} requests (${rows} frames)\n`);
    expect(requests).toBeGreaterThanOrEqual(25);
    expect(runs).toBeLessThanOrEqual(requests);
    viewers.forEach((v) => v.stop());
    const ended = f.output.split('session ended: agent left').length - 1;
    await Promise.all(agents.map((a) => a.disconnect()));
    await waitUntil('both jobs to end', () => f.output.split('session ended: agent left').length - 1 >= ended + 2, 15_000);
  }, 120_000);
});

describe('the two-worker system on a real LiveKit server', () => {
  const f = avatarWorkerFixture();

  it('with the agent worker: a user joining a room sees the avatar speak the scripted line, and both leave with the user', async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LIVEKIT_URL: f.server.url,
      LIVEKIT_API_KEY: f.server.apiKey,
      LIVEKIT_API_SECRET: f.server.apiSecret,
      SYNCTALK_AGENT_LINES: 'Hello, this is the agent speaking through its avatar.',
      SYNCTALK_AGENT_HTTP_PORT: '0',
      // the test reads the worker's info lines ('scripted agent: done')
      SYNCTALK_LOG_LEVEL: 'info',
    };
    for (const name of ['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_API_KEY']) delete env[name];
    const agentWorker = spawn(process.execPath, ['--import', 'tsx', 'src/workers/agent-worker.ts', 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    f.processes.unshift(agentWorker);
    let agentOutput = '';
    const keep = (d: Buffer): void => {
      agentOutput = (agentOutput + d.toString('utf8')).slice(-50_000);
    };
    agentWorker.stdout?.on('data', keep);
    agentWorker.stderr?.on('data', keep);
    await waitUntil('the agent worker to register', () => agentOutput.includes('registered worker'), 60_000);

    const user = await joinLocal(f.server.url, await participantToken(f.server, { room: 'two-workers', identity: 'user' }));
    f.rooms.push(user);
    const onBehalf = () => [...user.remoteParticipants.values()].find((p) => p.attributes[ATTRIBUTE_PUBLISH_ON_BEHALF] !== undefined);
    await waitUntil('the avatar to join', () => onBehalf() !== undefined, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\nagent worker:\n${agentOutput.slice(-3000)}\navatar worker:\n${f.output.slice(-3000)}`);
    });
    const avatar = onBehalf()!;
    expect(avatar.identity).toBe(`${avatar.attributes[ATTRIBUTE_PUBLISH_ON_BEHALF]}-avatar`);
    const seen = recordViewer(user, avatar.identity);
    await waitUntil('the scripted agent to finish', () => agentOutput.includes('scripted agent: done'), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\nagent worker:\n${agentOutput.slice(-6000)}\navatar worker:\n${f.output.slice(-6000)}`);
    });
    seen.stop();
    const speech = seen.video.filter((v) => v.opening > SPEECH_OPENING);
    expect(speech.length).toBeGreaterThan(25);

    await user.disconnect();
    await waitUntil('the avatar session to end with the agent', () => f.output.includes('session ended: agent left'), 30_000);
  }, 180_000);
});

describe('two avatar workers on one server (scale-out by LiveKit dispatch)', () => {
  const f = avatarWorkerFixture(2, 2);

  it('4 rooms at once, 2 sessions each: both workers serve, every room gets its avatar', async () => {
    const viewers: Array<ReturnType<typeof recordViewer>> = [];
    const agents: Room[] = [];
    for (let i = 1; i <= 4; i++) {
      const room = `shared-${i}`;
      const agent = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'agent', kind: 'agent' }));
      const viewer = await joinLocal(f.server.url, await participantToken(f.server, { room, identity: 'viewer' }));
      f.rooms.push(agent, viewer);
      agents.push(agent);
      await dispatchAvatar({ url: f.server.url, credentials: f.server, room, metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
      viewers.push(recordViewer(viewer, 'agent-avatar'));
    }
    await waitUntil('idle frames in all 4 rooms', () => viewers.every((v) => v.video.length >= 5), 120_000).catch((e: Error) => {
      throw new Error(`${e.message}\nworker 0:\n${f.outputs[0].slice(-3000)}\nworker 1:\n${f.outputs[1].slice(-3000)}`);
    });
    const served = f.outputs.map((o) => o.split('"msg":"connected to room').length - 1);
    process.stdout.write(`two workers: sessions per worker ${served.join(' + ')}\n`);
    expect(served).toEqual([2, 2]);
    viewers.forEach((v) => v.stop());
    await Promise.all(agents.map((a) => a.disconnect()));
    await waitUntil('all 4 sessions to end', () => f.output.split('session ended: agent left').length - 1 >= 4, 30_000);
  }, 240_000);
});
