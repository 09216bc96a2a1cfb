/**
 * The agent worker as a process (`node --import tsx src/workers/agent-worker.ts start`) against a real
 * livekit-server on 127.0.0.1, without Gemini credentials (scripted mode): a user joining a room brings
 * the agent in; the agent dispatches 'synctalk-avatar' with both identities in the metadata, speaks its
 * lines to `<agent>-avatar` over lk.audio_stream, and leaves when the user leaves. SIGINT stops the worker.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { ParticipantKind, type Room } from '@livekit/rtc-node';
import { AgentDispatchClient } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AVATAR_AGENT_NAME, parseAvatarDispatchMetadata } from '../../src/agent/avatar-dispatch.ts';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { join, requireServer, waitFor } from '../livekit/helpers.ts';
import { receivingAvatar } from './receiving-avatar.ts';

describe('agent worker process (scripted mode)', () => {
  let server: DevServer;
  let worker: ChildProcess;
  let exited: Promise<number | null>;
  let output = '';

  beforeAll(async () => {
    server = await requireServer();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LIVEKIT_URL: server.url,
      LIVEKIT_API_KEY: server.apiKey,
      LIVEKIT_API_SECRET: server.apiSecret,
      SYNCTALK_AGENT_LINES: 'First line.|Second line.',
      SYNCTALK_AGENT_HTTP_PORT: '0',
      // the test reads the worker's info lines ('scripted agent: done')
      SYNCTALK_LOG_LEVEL: 'info',
    };
    for (const name of ['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_API_KEY']) delete env[name];
    worker = spawn(process.execPath, ['--import', 'tsx', 'src/workers/agent-worker.ts', 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (d: Buffer): void => {
      output = (output + d.toString('utf8')).slice(-20_000);
    };
    worker.stdout?.on('data', keep);
    worker.stderr?.on('data', keep);
    exited = new Promise((resolve) => worker.once('exit', (code) => resolve(code)));
  });
  afterAll(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) process.kill(-worker.pid!, 'SIGKILL');
    await server?.stop();
  });

  it('brings the agent in, dispatches the avatar, speaks to it, leaves with the user', async () => {
    await waitFor('the worker to register', () => (output.includes('"msg":"registered worker"') ? true : undefined), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${output}`);
    });
    const user = await join(server, 'worker-room', 'user-1');
    let avatarRoom: Room | undefined;
    try {
      const agent = await waitFor('the agent to join', () => [...user.remoteParticipants.values()].find((p) => p.info.kind === ParticipantKind.AGENT), 45_000);
      // the agent joins the room first, then dispatches the avatar (and logs it)
      await waitFor('the avatar dispatch', () => (output.includes('"msg":"avatar dispatched"') ? true : undefined), 15_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${output}`);
      });
      const dispatches = await new AgentDispatchClient(server.url, server.apiKey, server.apiSecret).listDispatch('worker-room');
      const avatarDispatch = dispatches.find((d) => d.agentName === AVATAR_AGENT_NAME);
      expect(avatarDispatch, output).toBeDefined();
      expect(parseAvatarDispatchMetadata(avatarDispatch!.metadata)).toEqual({ agentIdentity: agent.identity, avatarIdentity: `${agent.identity}-avatar` });

      avatarRoom = await join(server, 'worker-room', `${agent.identity}-avatar`, agent.identity);
      const avatar = await receivingAvatar(avatarRoom);
      await waitFor('two audio streams', () => (avatar.streams.length === 2 ? true : undefined), 30_000);
      expect(avatar.streams.map((s) => s.attributes)).toEqual([
        { sample_rate: '22050', num_channels: '1' },
        { sample_rate: '22050', num_channels: '1' },
      ]);
      await waitFor('the scripted agent to finish', () => (output.includes('scripted agent: done') ? true : undefined), 10_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${output.slice(-4000)}`);
      });
      await avatar.stop();

      await user.disconnect();
      await waitFor('the agent to leave', () => (avatarRoom!.remoteParticipants.has(agent.identity) ? undefined : true), 20_000);
    } finally {
      await avatarRoom?.disconnect();
      await user.disconnect();
    }
    process.kill(-worker.pid!, 'SIGINT');
    const code = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(code, output).toBe(130);
  });
});
