/**
 * Live sessions: a worker's own count of the jobs it is serving, and the load it reports to LiveKit
 * from that count (agents-js's job list is not used: in `dev` it keeps finished jobs for good, and its
 * default load is the machine's CPU use, which refuses work a worker can do on a busy or GPU machine).
 *
 * ```
 * main process:  requestFunc: accept(job A) ---- accept(job B) --------------------------------
 * job process A:                    hold(A) ====================== release (session end or exit)
 * job process B:                                    hold(B) ========================= ...
 * live:          0       1                           2           1
 * ```
 *
 * - The main process serves a Unix socket (`serveLiveSessions`); it passes the path to its job
 *   processes in SYNCTALK_SESSION_SOCKET. A job counts from the moment the worker accepts it; the job
 *   process then holds its lease (`holdSession`): one connection to the socket, carrying the job id.
 *   The job ends when the connection closes: released by the session, or the process exited.
 * - An accepted job whose process never holds its lease stops counting after `claimTimeoutMs`
 *   (default 120 s, beyond the workers' 60 s for a job process to start; the launch failed).
 * - `load()`: live / maxJobs, scaled so that a worker with room reports less than livekit-server's
 *   target load (its `agents.target_load`, 0.7 by default: the server dispatches only to workers below
 *   it), and 1 once `maxJobs` are live. Use it as agents-js's `loadFunc`, with `targetLoad` as its
 *   `loadThreshold`: then exactly `maxJobs` sessions are served. `full()` is for requestFunc: a
 *   dispatch that arrives between two load reports while full is rejected (the server tries another worker).
 * - Bounded: one entry per accepted job (at most `maxJobs` are accepted at a time).
 */
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { InputError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { listenPrivate } from '../net/private-socket.ts';

/** The environment variable that tells job processes where the worker's session socket listens. */
export const SESSION_SOCKET_ENV = 'SYNCTALK_SESSION_SOCKET';

/** livekit-server's default `agents.target_load`: it dispatches only to workers whose load is below it. */
export const SERVER_TARGET_LOAD = 0.7;

export interface LiveSessionsOptions {
  /** Unix socket path. */
  readonly path: string;
  /** Sessions served at once, at most. */
  readonly maxJobs: number;
  /** The server's target load (default 0.7). */
  readonly targetLoad?: number;
  /** Milliseconds an accepted job may take to hold its lease (default 120000). */
  readonly claimTimeoutMs?: number;
  readonly log: Logger;
}

export interface LiveSessions {
  /** Jobs accepted and not ended. */
  readonly live: number;
  /** The load to report: live / maxJobs × targetLoad, or 1 when full. */
  load(): number;
  /** True when `maxJobs` are live. */
  full(): boolean;
  /** The worker accepted job `id`. */
  accepted(id: string): void;
  /** Stops listening; removes the socket. */
  close(): Promise<void>;
}

/** The load for `live` of `maxJobs` sessions: below `targetLoad` while there is room, 1 when full. */
export const sessionLoad = (live: number, maxJobs: number, targetLoad = SERVER_TARGET_LOAD): number => (live >= maxJobs ? 1 : (live / maxJobs) * targetLoad);

/** Serves the session socket of a worker's main process. */
export async function serveLiveSessions(options: LiveSessionsOptions): Promise<LiveSessions> {
  const { path, maxJobs, log } = options;
  const targetLoad = options.targetLoad ?? SERVER_TARGET_LOAD;
  const claimTimeoutMs = options.claimTimeoutMs ?? 120_000;
  /** Per job id: the timer that ends an unclaimed acceptance, or the lease's connection. */
  const jobs = new Map<string, { timer?: ReturnType<typeof setTimeout>; socket?: Socket }>();

  const end = (id: string, why: string): void => {
    const job = jobs.get(id);
    if (job === undefined) return;
    clearTimeout(job.timer);
    jobs.delete(id);
    log.info({ job: id, live: jobs.size, maxJobs }, `session ended (${why}): ${jobs.size} of ${maxJobs} live`);
  };

  const server: Server = createServer((socket) => {
    let id = '';
    let line = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (id !== '') return;
      line += chunk;
      const nl = line.indexOf('\n');
      if (nl < 0) {
        if (line.length > 1024) socket.destroy();
        return;
      }
      id = line.slice(0, nl);
      const job = jobs.get(id) ?? {};
      clearTimeout(job.timer);
      jobs.set(id, { socket });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (id !== '' && jobs.get(id)?.socket === socket) end(id, 'released');
    });
  });

  await listenPrivate(server, path, 'the session counter');
  return {
    get live() {
      return jobs.size;
    },
    load: () => sessionLoad(jobs.size, maxJobs, targetLoad),
    full: () => jobs.size >= maxJobs,
    accepted: (id) => {
      if (jobs.has(id)) return;
      const timer = setTimeout(() => end(id, `not started within ${claimTimeoutMs} ms`), claimTimeoutMs);
      timer.unref();
      jobs.set(id, { timer });
      log.info({ job: id, live: jobs.size, maxJobs }, `session accepted: ${jobs.size} of ${maxJobs} live`);
    },
    close: () =>
      new Promise<void>((done) => {
        for (const job of jobs.values()) {
          clearTimeout(job.timer);
          job.socket?.destroy();
        }
        server.close(() => {
          rmSync(path, { force: true });
          done();
        });
      }),
  };
}

/**
 * In a job process: holds job `id`'s lease on the worker's session socket (SYNCTALK_SESSION_SOCKET)
 * until the returned release is called or the process exits. Without the variable (a job run outside
 * such a worker) there is nothing to hold.
 */
export async function holdSession(id: string, env: NodeJS.ProcessEnv = process.env): Promise<() => void> {
  const path = env[SESSION_SOCKET_ENV];
  if (path === undefined || path === '') return () => undefined;
  const socket = connect(path);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (e) => reject(new InputError(SESSION_SOCKET_ENV, `cannot reach the worker's session socket ${path} (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
  });
  socket.on('error', () => undefined);
  socket.write(`${id}\n`);
  socket.unref();
  return () => void socket.end();
}

/** The session limit from environment variable `name`: a whole number of at least 1, or `fallback` when unset. */
export function maxJobsFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || !Number.isInteger(n) || n < 1) throw new InputError(name, `not a whole number of at least 1: ${raw}`);
  return n;
}

/** The server's target load from SYNCTALK_SERVER_TARGET_LOAD (a number in (0, 1]), or 0.7 when unset. */
export function targetLoadFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.SYNCTALK_SERVER_TARGET_LOAD;
  if (raw === undefined || raw === '') return SERVER_TARGET_LOAD;
  const n = Number(raw);
  if (!/^[0-9.]+$/.test(raw) || !(n > 0 && n <= 1)) throw new InputError('SYNCTALK_SERVER_TARGET_LOAD', `not a number in (0, 1]: ${raw}`);
  return n;
}
