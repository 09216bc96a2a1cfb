/**
 * The scripted agent against a real livekit-server on 127.0.0.1: its lines reach a receiving participant
 * as lk.audio_stream byte streams (one per line, with sample_rate/num_channels), and it hears the
 * receiver's lk.playback_finished for each. The receiver publishes a small video track first, since the
 * agent waits for the avatar's video before speaking.
 */
import { describe, expect, it } from 'vitest';
import { runScriptedAgent } from '../../src/agent/scripted-agent.ts';
import { isInputError } from '../../src/errors.ts';
import { join, liveServer } from '../livekit/helpers.ts';
import { receivingAvatar } from './receiving-avatar.ts';

describe('runScriptedAgent on a real server', () => {
  const server = liveServer();

  it('times out with an InputError naming the avatar when none joins', async () => {
    const started = Date.now();
    const err = await runScriptedAgent({ ...server(), room: 'lonely', identity: 'scripted', avatarIdentity: 'nobody', lines: ['Hello.'], joinTimeoutMs: 1500 }).catch((e: unknown) => e);
    expect(isInputError(err)).toBe(true);
    expect((err as Error).message).toBe('avatar nobody: did not join and publish its video within 1500 ms');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('sends one lk.audio_stream per line and gets playback_finished for each', async () => {
    const avatarRoom = await join(server(), 'scripted-room', 'avatar-1', 'scripted');
    const avatar = await receivingAvatar(avatarRoom);
    try {
      const lines = ['Hello, I am the scripted agent.', 'This is my second line.'];
      const spoken = await runScriptedAgent({ ...server(), room: 'scripted-room', identity: 'scripted', avatarIdentity: 'avatar-1', lines });

      expect(spoken.map((s) => s.text)).toEqual(lines);
      expect(avatar.streams).toHaveLength(2);
      for (const [i, stream] of avatar.streams.entries()) {
        expect(stream.attributes).toEqual({ sample_rate: '22050', num_channels: '1' });
        const seconds = stream.bytes / 2 / 22050;
        expect(seconds).toBeCloseTo(spoken[i].seconds, 6);
        expect(seconds).toBeGreaterThan(1);
        expect(spoken[i].playback.interrupted).toBe(false);
        expect(spoken[i].playback.playbackPosition).toBeCloseTo(seconds, 6);
      }
    } finally {
      await avatar.stop();
      await avatarRoom.disconnect();
    }
  });
});
