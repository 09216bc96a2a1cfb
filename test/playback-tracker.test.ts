/** PlaybackTracker (livekit/playback-tracker.ts): the segments' playback events and positions, without timers. */
import { describe, expect, it } from 'vitest';
import { PlaybackTracker } from '../src/livekit/playback-tracker.ts';

describe('PlaybackTracker', () => {
  it('started at the first accepted frame; finished, not interrupted, at the audio accepted', () => {
    const t = new PlaybackTracker();
    t.announce(0);
    expect(t.accepted(0, 1.0, 0.04)).toEqual({ type: 'playback-started', segment: 0 });
    expect(t.accepted(0, 1.04, 0.03)).toBeNull();
    expect(t.ending).toBe(false);
    expect(t.end(0)).toBe(true);
    expect(t.end(0)).toBe(false);
    expect(t.ending).toBe(true);
    expect(t.finish(0)).toEqual({ type: 'playback-finished', segment: 0, position: expect.closeTo(0.07, 9), interrupted: false });
    expect(t.finish(0)).toBeNull();
    expect(t.ending).toBe(false);
  });

  it('a flush finishes every active segment in order, interrupted, at what had played; flushed segments stay dropped', () => {
    const t = new PlaybackTracker();
    t.announce(1);
    t.announce(0);
    t.accepted(0, 2, 0.2);
    // segment 1 announced, nothing of it accepted: position 0; segment 0 played 0.05 s of its 0.2 s
    expect(t.flush(2.05)).toEqual([
      { type: 'playback-finished', segment: 0, position: expect.closeTo(0.05, 9), interrupted: true },
      { type: 'playback-finished', segment: 1, position: 0, interrupted: true },
    ]);
    expect(t.flushed(1)).toBe(true);
    expect(t.flushed(2)).toBe(false);
    t.announce(1);
    expect(t.flush(3)).toEqual([]);
    expect(t.end(0)).toBe(false);
  });

  it('a position never exceeds the audio accepted, nor goes below 0', () => {
    const t = new PlaybackTracker();
    t.announce(0);
    t.accepted(0, 1, 0.1);
    expect(t.flush(5)).toEqual([{ type: 'playback-finished', segment: 0, position: expect.closeTo(0.1, 9), interrupted: true }]);
    t.announce(1);
    t.accepted(1, 6, 0.1);
    expect(t.flush(5.9)).toEqual([{ type: 'playback-finished', segment: 1, position: 0, interrupted: true }]);
  });
});
