/**
 * The agent worker's AgentSession wiring on a real livekit-server: the session's speech leaves through
 * the avatar's DataStreamAudioOutput (not a room audio track). The cloud models are left out: speech
 * comes from session.say() through the local espeak-ng TTS, the same TTS slot Gemini's TTS fills.
 */
import { TrackKind } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { startAvatarConversation } from '../../src/agent/avatar-conversation.ts';
import { EspeakTTS } from '../../src/agent/espeak.ts';
import { join, liveServer } from '../livekit/helpers.ts';
import { receivingAvatar } from './receiving-avatar.ts';

describe('startAvatarConversation on a real server', () => {
  const server = liveServer();

  it("sends the session's speech to the avatar as one lk.audio_stream and publishes no audio itself", async () => {
    const agentRoom = await join(server(), 'conversation', 'agent-1');
    const avatarRoom = await join(server(), 'conversation', 'agent-1-avatar', 'agent-1');
    const avatar = await receivingAvatar(avatarRoom);
    const session = await startAvatarConversation({ room: agentRoom, avatarIdentity: 'agent-1-avatar', instructions: 'Say hello.', tts: new EspeakTTS(), vad: null });
    try {
      const handle = session.say('Hello from the agent session.');
      await handle.waitForPlayout();

      expect(handle.interrupted).toBe(false);
      expect(avatar.streams).toHaveLength(1);
      expect(avatar.streams[0].attributes).toEqual({ sample_rate: '22050', num_channels: '1' });
      expect(avatar.streams[0].bytes / 2 / 22050).toBeGreaterThan(1);
      const published = [...agentRoom.localParticipant!.trackPublications.values()];
      expect(published.filter((p) => p.kind === TrackKind.KIND_AUDIO)).toEqual([]);
    } finally {
      await session.close();
      await avatar.stop();
      await avatarRoom.disconnect();
      await agentRoom.disconnect();
    }
  });
});
