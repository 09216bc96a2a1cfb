/**
 * The publisher's metrics measure what went out, on a real livekit-server: the A/V offset comes from
 * the moment each frame's video was handed to the track against where the audio playout stood (it sits
 * near -videoDelayMs while all is well and moves when a stall makes video and audio drift), and
 * skipped frames count only the frame periods the audio track ran dry.
 */
import type { Room } from '@livekit/rtc-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AUDIO_STREAM_TOPIC } from '../../src/livekit/protocol.ts';
import type { PublisherEvent } from '../../src/sinks/av-publisher.ts';
import { liveRooms, sineS16, sleep, startSyntheticAvatar, waitFor } from './helpers.ts';

const log = pino({ level: 'silent' });
const RATE = 24_000;

type Progress = Extract<PublisherEvent, { type: 'progress' }>;

async function speak(agent: Room, seconds: number): Promise<void> {
  const w = await agent.localParticipant!.streamBytes({ name: 'AUDIO_m', topic: AUDIO_STREAM_TOPIC, destinationIdentities: ['avatar'], attributes: { sample_rate: String(RATE), num_channels: '1' } });
  const bytes = sineS16(seconds, RATE);
  for (let i = 0; i < bytes.length; i += 4800) await w.write(bytes.slice(i, i + 4800));
  await w.close();
}

/** Keeps the event loop busy for `ms` (a render or GC stall). */
const stall = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('publisher metrics from what was released (real LiveKit server)', () => {
  const { joined } = liveRooms();

  it('A/V offset near -videoDelayMs while smooth, moving under a stall; skipped frames only when the audio ran dry', async () => {
    const agent = await joined('metrics', 'agent');
    const avatarRoom = await joined('metrics', 'avatar', 'agent');
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log, { publisher: { videoDelayMs: 20 } });
    await sleep(200);
    const progress = (): Array<{ at: number; e: Progress }> => avatar.published.flatMap((p) => (p.e.type === 'progress' ? [{ at: p.at, e: p.e }] : []));

    await speak(agent, 4);
    await waitFor('a second of speech published', () => (progress().filter((p) => p.e.frames > 0).length >= 25 ? true : undefined), 10_000);
    const smooth = progress().slice(5).map((p) => p.e.avOffsetMs);
    const skippedBefore = progress().at(-1)!.e.skipped;
    const stalledAt = performance.now();
    stall(300);
    await sleep(1500);
    const after = progress().filter((p) => p.at > stalledAt);
    await avatar.stop();

    const offsets = after.map((p) => p.e.avOffsetMs);
    const skipped = after.at(-1)!.e.skipped - skippedBefore;
    console.log(
      `A/V offset smooth: median ${median(smooth).toFixed(1)} ms (${Math.min(...smooth).toFixed(1)}..${Math.max(...smooth).toFixed(1)}); ` +
        `after a 300 ms stall: ${Math.min(...offsets).toFixed(1)}..${Math.max(...offsets).toFixed(1)} ms; skipped before ${skippedBefore}, by the stall ${skipped}`,
    );
    // smooth: the video goes out videoDelayMs after its audio starts, never before it (timers and the audio clock's
    // estimate wander: -21 ms median on a quiet machine, -54 ms beside two CPU hogs whose load makes timers late;
    // the A/V offset target is `npm run bench`'s, at the viewer); measured per frame, not a constant
    expect(median(smooth)).toBeLessThan(10);
    expect(new Set(smooth.map((x) => Math.round(x))).size).toBeGreaterThan(1);
    // the stall: a video capture went out late against its audio (-79 ms quiet: the 100 ms queue played on while
    // the timer waited), and the audio track ran dry
    expect(Math.min(...offsets)).toBeLessThan(-40);
    expect(skipped).toBeGreaterThanOrEqual(2);
    expect(skipped).toBeLessThanOrEqual(8);
  });
});
