/**
 * The worker's own session count (src/workers/live-sessions.ts) over a real Unix socket: accepted jobs
 * count at once, a job process's lease keeps them counted until it is released or its process goes,
 * unclaimed acceptances expire, and the load stays below the server's 0.7 until maxJobs are live.
 */
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { privateSocketPath } from '../../src/net/private-socket.ts';
import { holdSession, type LiveSessions, maxJobsFromEnv, serveLiveSessions, SESSION_SOCKET_ENV, sessionLoad } from '../../src/workers/live-sessions.ts';
import { waitFor } from '../livekit/helpers.ts';

const log = pino({ level: 'silent' });

describe('live sessions', () => {
  let sessions: LiveSessions | undefined;
  afterEach(async () => {
    await sessions?.close();
  });

  it('load: below 0.7 while there is room, 1 at maxJobs', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => sessionLoad(n, 4))).toEqual([0, 0.175, 0.35, 0.525, 1, 1].map((x) => expect.closeTo(x, 9)));
    expect(sessionLoad(3, 4)).toBeLessThan(0.7);
    expect(sessionLoad(0, 1)).toBe(0);
    expect(sessionLoad(1, 1)).toBe(1);
    expect(sessionLoad(5, 6, 0.5)).toBeLessThan(0.5);
  });

  it('counts an accepted job, holds it while its lease is open, and drops it when released or its process exits', async () => {
    const path = privateSocketPath('synctalk-sessions-test-', 'sessions.sock');
    sessions = await serveLiveSessions({ path, maxJobs: 2, log });
    const env = { [SESSION_SOCKET_ENV]: path };
    sessions.accepted('job-a');
    expect(sessions.live).toBe(1);
    const release = await holdSession('job-a', env);
    sessions.accepted('job-a');
    expect(sessions.live).toBe(1);
    sessions.accepted('job-b');
    expect(sessions.full()).toBe(true);
    expect(sessions.load()).toBe(1);

    // job b's process holds its lease, then dies without releasing it
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import('./src/workers/live-sessions.ts').then(async (m) => { await m.holdSession('job-b'); setTimeout(() => process.exit(0), 300); setInterval(() => {}, 1000); })`], {
      env: { ...process.env, ...env },
      stdio: 'ignore',
    });
    await new Promise((r) => child.once('exit', r));
    await waitFor('job b to end with its process', () => (sessions!.live === 1 ? true : undefined), 5000);
    expect(sessions.full()).toBe(false);
    release();
    await waitFor('job a to end when released', () => (sessions!.live === 0 ? true : undefined), 5000);
    expect(sessions.load()).toBe(0);
  });

  it('an acceptance no job process claims expires', async () => {
    const path = privateSocketPath('synctalk-sessions-test-', 'sessions.sock');
    sessions = await serveLiveSessions({ path, maxJobs: 1, claimTimeoutMs: 200, log });
    sessions.accepted('lost');
    expect(sessions.full()).toBe(true);
    await waitFor('the acceptance to expire', () => (sessions!.live === 0 ? true : undefined), 3000);
  });

  it('without the socket variable there is nothing to hold; bad limits are named', async () => {
    const release = await holdSession('x', {});
    release();
    expect(maxJobsFromEnv({}, 'SYNCTALK_AVATAR_MAX_JOBS', 4)).toBe(4);
    expect(maxJobsFromEnv({ SYNCTALK_AVATAR_MAX_JOBS: '6' }, 'SYNCTALK_AVATAR_MAX_JOBS', 4)).toBe(6);
    for (const bad of ['0', '-1', '2.5', 'four', '1e2']) {
      expect(() => maxJobsFromEnv({ SYNCTALK_AVATAR_MAX_JOBS: bad }, 'SYNCTALK_AVATAR_MAX_JOBS', 4)).toThrow(`SYNCTALK_AVATAR_MAX_JOBS: not a whole number of at least 1: ${bad}`);
    }
    await expect(holdSession('x', { [SESSION_SOCKET_ENV]: '/nonexistent/socket' })).rejects.toThrow(/SYNCTALK_SESSION_SOCKET: cannot reach the worker's session socket \/nonexistent\/socket \(ENOENT\)/);
  });
});
