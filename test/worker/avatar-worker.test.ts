/**
 * The avatar worker as deployed: the agents-js worker process (src/workers/avatar-worker.ts, `dev`)
 * registers as 'synctalk-avatar' with a real livekit-server; an explicit dispatch (as the agent worker
 * makes it) starts a job that joins as the named avatar on behalf of the agent, publishes idle and
 * speech video, answers the scripted agent's segment, and ends when the agent leaves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchAvatar } from '../../src/agent/avatar-dispatch.ts';
import { speakLines } from '../../src/agent/scripted-agent.ts';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { ATTRIBUTE_PUBLISH_ON_BEHALF } from '../../src/livekit/protocol.ts';
import { participantToken } from '../../src/livekit/tokens.ts';
import { joinLocal, recordViewer, SPEECH_OPENING, waitUntil } from '../../bench/livekit.ts';
import { requireServer } from '../livekit/helpers.ts';

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });

describe('avatar worker (agents-js) on a real LiveKit server', () => {
  let server: DevServer;
  let worker: ChildProcess | undefined;
  let output = '';
  const rooms: Room[] = [];

  beforeAll(async () => {
    server = await requireServer();
    worker = spawn(process.execPath, ['--import', 'tsx', 'src/workers/avatar-worker.ts', 'dev', '--log-level', 'info'], {
      env: {
        ...process.env,
        LIVEKIT_URL: server.url,
        LIVEKIT_API_KEY: server.apiKey,
        LIVEKIT_API_SECRET: server.apiSecret,
        SYNCTALK_AVATAR_HTTP_PORT: String(await freePort()),
        SYNCTALK_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer): void => {
      output = (output + d.toString('utf8')).slice(-200_000);
    };
    worker.stdout?.on('data', keep);
    worker.stderr?.on('data', keep);
    await waitUntil('the worker to register', () => output.includes('registered worker'), 60_000);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(rooms.map((r) => r.disconnect()));
    if (worker !== undefined && worker.exitCode === null) {
      const exited = new Promise((r) => worker?.once('exit', r));
      worker.kill('SIGINT');
      const timer = setTimeout(() => worker?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await server?.stop();
  });

  it('a dispatch starts an avatar job that shows the agent speaking and ends when the agent leaves', async () => {
    const agent = await joinLocal(server.url, await participantToken(server, { room: 'dispatched', identity: 'agent', kind: 'agent' }));
    rooms.push(agent);
    const viewer = await joinLocal(server.url, await participantToken(server, { room: 'dispatched', identity: 'viewer' }));
    rooms.push(viewer);
    await dispatchAvatar({ url: server.url, credentials: server, room: 'dispatched', metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
    const seen = recordViewer(viewer, 'agent-avatar');
    await waitUntil('idle frames from the dispatched avatar', () => seen.video.length >= 10, 60_000);
    const avatar = viewer.remoteParticipants.get('agent-avatar');
    expect(avatar?.attributes[ATTRIBUTE_PUBLISH_ON_BEHALF]).toBe('agent');

    const spoken = await speakLines(agent, { avatarIdentity: 'agent-avatar', lines: ['Hello from the dispatched avatar.'] });
    expect(spoken[0].playback.interrupted).toBe(false);
    expect(spoken[0].playback.playbackPosition).toBeCloseTo(spoken[0].seconds, 1);
    expect(seen.video.some((f) => f.opening > SPEECH_OPENING)).toBe(true);
    seen.stop();

    await agent.disconnect();
    await waitUntil('the job to end', () => output.includes('session ended: agent left'), 15_000);
    for (const line of ['connected to room', 'tracks published', 'model loaded (provider']) expect(output).toContain(line);
  }, 120_000);
});
