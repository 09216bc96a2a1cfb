import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { shutdownDeadline } from '../../src/workers/shutdown-deadline.ts';

describe('shutdownDeadline', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const setup = (live: { n: number }) => {
    const signals = new EventEmitter();
    const exits: number[] = [];
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const stop = shutdownDeadline({ liveSessions: () => live.n, log, graceMs: 1000, pollMs: 100, exit: (c) => exits.push(c), signals });
    return { signals, exits, lines, stop };
  };

  it('exits with the signal code graceMs after the last session ended, not before', () => {
    const live = { n: 2 };
    const { signals, exits, lines } = setup(live);
    signals.emit('SIGTERM');
    vi.advanceTimersByTime(5000);
    expect(exits).toEqual([]);
    live.n = 0;
    vi.advanceTimersByTime(100 + 999);
    expect(exits).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(exits).toEqual([143]);
    expect(JSON.parse(lines[0]!).msg).toBe('agents-js did not exit within the grace after the last session ended; exiting');
  });

  it('SIGINT gives 130; a second signal does not start a second deadline; no signal, no exit', () => {
    const live = { n: 0 };
    const { signals, exits, stop } = setup(live);
    vi.advanceTimersByTime(60_000);
    expect(exits).toEqual([]);
    signals.emit('SIGINT');
    signals.emit('SIGTERM');
    vi.advanceTimersByTime(1100);
    expect(exits).toEqual([130]);
    stop();
    expect(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM')).toBe(0);
  });
});
