/**
 * Interop with the real sender: agents-js's DataStreamAudioOutput (what an AgentSession uses for an
 * avatar) talking to our avatar over a real livekit-server. Its waitForPlayout() has no timeout of its
 * own, so it resolving proves the avatar answered every segment, the interrupted one included.
 */
import { initializeLogger, voice } from '@livekit/agents';
import { AudioFrame, type Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { rootLogger } from '../../src/log.ts';
import { join, requireServer, sineS16, sleep, startSyntheticAvatar } from './helpers.ts';

const log = rootLogger.child({ test: 'agents-interop' }, { level: 'warn' });
const RATE = 24_000;

/** `seconds` of sine as 20 ms rtc-node frames at `rate` Hz, the same on each of `channels` channels. */
const frames = (seconds: number, rate = RATE, channels = 1): AudioFrame[] => {
  const mono = new Int16Array(sineS16(seconds, rate).buffer);
  const all = new Int16Array(mono.length * channels);
  for (let i = 0; i < mono.length; i++) for (let c = 0; c < channels; c++) all[i * channels + c] = mono[i];
  const size = rate / 50;
  const out: AudioFrame[] = [];
  for (let i = 0; i < mono.length; i += size) {
    const n = Math.min(size, mono.length - i);
    out.push(new AudioFrame(all.slice(i * channels, (i + n) * channels), rate, channels, n));
  }
  return out;
};

describe('agents-js DataStreamAudioOutput -> our avatar', () => {
  let server: DevServer;
  let agent: Room;
  let avatarRoom: Room;
  let avatar: ReturnType<typeof startSyntheticAvatar> | undefined;

  beforeAll(async () => {
    initializeLogger({ pretty: false, level: 'warn' });
    server = await requireServer();
    agent = await join(server, 'interop', 'agent');
    avatarRoom = await join(server, 'interop', 'avatar', 'agent');
    avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
  });
  afterAll(async () => {
    await avatar?.stop();
    await agent?.disconnect();
    await avatarRoom?.disconnect();
    await server?.stop();
  });

  it('a flushed segment plays out and resolves waitForPlayout; clearBuffer resolves it interrupted', async () => {
    const out = new voice.DataStreamAudioOutput({ room: agent, destinationIdentity: 'avatar', sampleRate: RATE });
    for (const f of frames(1.2)) await out.captureFrame(f);
    out.flush();
    const t = performance.now();
    const done = await out.waitForPlayout();
    console.log(`segment 1: waitForPlayout after ${(performance.now() - t).toFixed(0)} ms: ${JSON.stringify(done)}`);
    expect(done.interrupted).toBe(false);
    expect(done.playbackPosition).toBeCloseTo(1.2, 1);

    const sent = performance.now();
    for (const f of frames(3)) await out.captureFrame(f);
    await sleep(800);
    out.clearBuffer();
    // what can have been played by the clear: the wall time since the first byte went out (a loaded machine
    // stretches the 800 ms sleep; the bound is the promise, not the sleep)
    const playable = (performance.now() - sent) / 1000;
    out.flush();
    const cut = await out.waitForPlayout();
    console.log(`segment 2 (cleared after ${playable.toFixed(2)} s): ${JSON.stringify(cut)}`);
    expect(cut.interrupted).toBe(true);
    expect(cut.playbackPosition).toBeGreaterThan(0.3);
    expect(cut.playbackPosition).toBeLessThan(Math.min(playable, 3));
  });

  it('stereo 48 kHz TTS (then mono again) plays through the same track; waitForPlayout resolves each time', async () => {
    const out = new voice.DataStreamAudioOutput({ room: agent, destinationIdentity: 'avatar', sampleRate: 48_000 });
    for (const f of frames(1, 48_000, 2)) await out.captureFrame(f);
    out.flush();
    const stereo = await out.waitForPlayout();
    console.log(`stereo 48 kHz segment: ${JSON.stringify(stereo)}`);
    expect(stereo.interrupted).toBe(false);
    expect(stereo.playbackPosition).toBeCloseTo(1, 2);
    const mono = new voice.DataStreamAudioOutput({ room: agent, destinationIdentity: 'avatar', sampleRate: RATE });
    for (const f of frames(0.6)) await mono.captureFrame(f);
    mono.flush();
    const after = await mono.waitForPlayout();
    expect(after.interrupted).toBe(false);
    expect(after.playbackPosition).toBeCloseTo(0.6, 2);
    expect(avatar?.failure()).toBeUndefined();
  });
});
