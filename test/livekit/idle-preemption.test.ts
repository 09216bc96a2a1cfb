/**
 * Idle preemption in the room publisher, on a real livekit-server (127.0.0.1) and a real rtc-node
 * AudioSource: speech that arrives behind queued idle frames starts at once, the idle frames not played
 * yet are dropped and counted as preempted (not as dropped), speech is never dropped, and the tail of a
 * segment still in the AudioSource is never cleared.
 */
import type { Room } from '@livekit/rtc-node';
import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { audio, segmentEnd, type AvFrame, type PipelineEvent } from '../../src/events.ts';
import { AudioBudget } from '../../src/flow/audio-budget.ts';
import { rootLogger } from '../../src/log.ts';
import type { PublisherEvent, PublisherMetrics } from '../../src/sinks/av-publisher.ts';
import { publishToRoom } from '../../src/sinks/room-publisher.ts';
import { liveRooms, sleep, waitFor } from './helpers.ts';

const log = rootLogger.child({ test: 'idle-preemption' }, { level: 'warn' });
const RATE = 48_000;
const FRAME = RATE / 25;
const SIZE = 32;

/** One 40 ms av frame: idle (silence) when `segment` is null, else a 440 Hz tone. */
function frame(segment: number | null, index: number): AvFrame {
  const samples = new Float32Array(FRAME);
  if (segment !== null) for (let i = 0; i < FRAME; i++) samples[i] = 0.5 * Math.sin((2 * Math.PI * 440 * (index * FRAME + i)) / RATE);
  return {
    type: 'av',
    video: { type: 'video', width: SIZE, height: SIZE, data: new Uint8Array(SIZE * SIZE * 4), pts: index / 25, segment, index },
    audio: audio(samples, RATE, 1, index / 25, segment ?? 0),
  };
}

/** A publisher fed by hand; frames reserve their duration in the budget as the pipeline's would. */
function publisher(room: Room) {
  const budget = new AudioBudget(10);
  const input = new Subject<PipelineEvent>();
  const sourceEvents = new Subject<PipelineEvent>();
  const events: Array<{ at: number; e: PublisherEvent }> = [];
  const sub = input.pipe(publishToRoom({ room, budget, log, sourceEvents, audioQueueMs: 100, videoDelayMs: 40 })).subscribe({
    next: (e) => events.push({ at: performance.now(), e }),
    error: (err: unknown) => log.error({ err }, 'publisher failed'),
  });
  const last = (): PublisherMetrics | undefined => events.flatMap((t) => (t.e.type === 'progress' ? [t.e] : [])).at(-1);
  return {
    budget,
    events,
    last,
    push(f: AvFrame): void {
      void budget.reserve(0.04);
      input.next(f);
    },
    /** The segment's first audio, as the source announces it. */
    announce(segment: number): void {
      sourceEvents.next(audio(new Float32Array(FRAME), RATE, 1, 0, segment));
    },
    end(segment: number): void {
      input.next(segmentEnd(segment, 0));
    },
    stop: () => sub.unsubscribe(),
  };
}

describe('room publisher: idle is preemptible', () => {
  const { joined } = liveRooms();

  it('speech behind queued idle frames starts at once; the idle frames not played are preempted, not dropped', async () => {
    const room = await joined('preempt', 'avatar');
    const p = publisher(room);
    p.push(frame(null, 0));
    await waitFor('the tracks published', () => p.last());
    // 400 ms of idle at once: 100 ms go into the AudioSource, the rest waits.
    for (let i = 1; i <= 10; i++) p.push(frame(null, i));
    await sleep(100);
    const idleAccepted = p.last()!.frames;

    const spokeAt = performance.now();
    p.announce(0);
    for (let i = 0; i < 5; i++) p.push(frame(0, i));
    p.end(0);
    const started = await waitFor('playback-started', () => p.events.find((t) => t.e.type === 'playback-started'));
    const finished = await waitFor('playback-finished', () => p.events.find((t) => t.e.type === 'playback-finished'), 5000);
    const m = p.last()!;
    process.stdout.write(`idle preemption: playback-started ${(started.at - spokeAt).toFixed(0)} ms after the speech arrived; ${idleAccepted} idle frames had been accepted; ${JSON.stringify(m)}\n`);
    p.stop();

    // Behind the idle frames it would have waited about 300 ms.
    expect(started.at - spokeAt).toBeLessThan(100);
    expect(finished.e).toEqual({ type: 'playback-finished', segment: 0, position: expect.closeTo(0.2, 6), interrupted: false });
    // Every speech frame published, no frame counted as dropped; the idle frames that never played preempted.
    expect(m.dropped).toBe(0);
    expect(m.preempted).toBeGreaterThanOrEqual(11 - idleAccepted);
    expect(m.frames + m.preempted).toBeGreaterThanOrEqual(16);
    expect(m.frames).toBeGreaterThanOrEqual(5 + 1);
    // The audio clock counts what plays: the idle that played and the speech.
    expect(m.seconds).toBeCloseTo((16 - m.preempted) * 0.04, 1);
    expect(p.budget.queued).toBe(0);
  });

  it('the tail of a segment still in the AudioSource is not cleared: only the idle frames after it that wait are dropped', async () => {
    const room = await joined('tail', 'avatar');
    const p = publisher(room);
    p.push(frame(null, 0));
    await waitFor('the tracks published', () => p.last());
    p.announce(0);
    for (let i = 0; i < 3; i++) p.push(frame(0, i));
    p.end(0);
    for (let i = 1; i <= 4; i++) p.push(frame(null, i));
    // The speech tail (up to 100 ms) is in the AudioSource, idle frames queued behind it.
    await waitFor('segment 0 accepted', () => (p.last()!.frames >= 4 ? true : undefined));
    const before = p.last()!;
    p.announce(1);
    for (let i = 0; i < 3; i++) p.push(frame(1, i));
    p.end(1);
    const done = await waitFor('both playback-finished', () => {
      const f = p.events.flatMap((t) => (t.e.type === 'playback-finished' ? [t.e] : []));
      return f.length === 2 ? f : undefined;
    });
    const m = p.last()!;
    process.stdout.write(`idle preemption behind a speech tail: ${JSON.stringify(before)} then ${JSON.stringify(m)}\n`);
    p.stop();

    expect(done).toEqual([
      { type: 'playback-finished', segment: 0, position: expect.closeTo(0.12, 6), interrupted: false },
      { type: 'playback-finished', segment: 1, position: expect.closeTo(0.12, 6), interrupted: false },
    ]);
    expect(m.dropped).toBe(0);
    // Nothing was taken back from the AudioSource after segment 0: the clock only went on.
    expect(m.seconds).toBeCloseTo(before.seconds + (m.frames - before.frames) * 0.04, 6);
    expect(m.frames + m.preempted).toBe(1 + 3 + 4 + 3);
    expect(p.budget.queued).toBe(0);
  });
});
