/**
 * Interop with the real sender: agents-js's DataStreamAudioOutput (what an AgentSession uses for an
 * avatar) talking to our avatar over a real livekit-server. Its waitForPlayout() has no timeout of its
 * own, so it resolving proves the avatar answered every segment, the interrupted one included.
 */
import { initializeLogger, voice } from '@livekit/agents';
import { AudioFrame, type Room } from '@livekit/rtc-node';
import { share, type Subscription } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AudioBudget } from '../../src/flow/audio-budget.ts';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { PlaybackNotifier } from '../../src/livekit/playback-notifier.ts';
import { rootLogger } from '../../src/log.ts';
import { pairWithAudio } from '../../src/operators/pair.ts';
import { publishToRoom } from '../../src/sinks/room-publisher.ts';
import { dataStreamAudio } from '../../src/sources/datastream-audio.ts';
import { join, requireServer, sineS16, sleep, syntheticFrames } from './helpers.ts';

const log = rootLogger.child({ test: 'agents-interop' }, { level: 'warn' });
const RATE = 24_000;

/** `seconds` of sine as 20 ms rtc-node frames. */
const frames = (seconds: number): AudioFrame[] => {
  const all = new Int16Array(sineS16(seconds, RATE).buffer);
  const size = RATE / 50;
  const out: AudioFrame[] = [];
  for (let i = 0; i < all.length; i += size) out.push(new AudioFrame(all.slice(i, i + size), RATE, 1, Math.min(size, all.length - i)));
  return out;
};

describe('agents-js DataStreamAudioOutput -> our avatar', () => {
  let server: DevServer;
  let agent: Room;
  let avatarRoom: Room;
  const subs: Subscription[] = [];
  let notifier: PlaybackNotifier;

  beforeAll(async () => {
    initializeLogger({ pretty: false, level: 'warn' });
    server = await requireServer();
    agent = await join(server, 'interop', 'agent');
    avatarRoom = await join(server, 'interop', 'avatar', 'agent');
    const budget = new AudioBudget(2);
    const source = dataStreamAudio({ room: avatarRoom, senderIdentity: 'agent' }, { budget, log }).pipe(share());
    notifier = new PlaybackNotifier(avatarRoom, 'agent', log);
    subs.push(source.subscribe());
    subs.push(
      source.pipe(syntheticFrames(25, 160, 96), pairWithAudio(source), publishToRoom({ room: avatarRoom, budget, log, sourceEvents: source })).subscribe((e) => {
        if (e.type === 'playback-started') notifier.started();
        else if (e.type === 'playback-finished') notifier.finished(e.position, e.interrupted);
      }),
    );
  });
  afterAll(async () => {
    subs.forEach((s) => s.unsubscribe());
    await notifier?.close();
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

    for (const f of frames(3)) await out.captureFrame(f);
    await sleep(800);
    out.clearBuffer();
    out.flush();
    const cut = await out.waitForPlayout();
    console.log(`segment 2 (cleared after 0.8 s): ${JSON.stringify(cut)}`);
    expect(cut.interrupted).toBe(true);
    expect(cut.playbackPosition).toBeGreaterThan(0.3);
    expect(cut.playbackPosition).toBeLessThan(1.2);
  });
});
