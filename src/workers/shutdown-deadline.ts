/**
 * A deadline on agents-js's shutdown. On SIGINT or SIGTERM agents-js drains the running jobs, then closes its pool
 * of job processes and exits (130 or 143). A job process that the same signal killed while it was starting (a
 * Ctrl+C, or a kill of the process group, reaches every process) can leave that close waiting for good: seen on a
 * loaded machine as "process exited before initializing (code null, signal SIGINT)" and then no exit.
 *
 * ```
 * signal:        ---S-------------------------------------------
 * live sessions: 2--2---1------0--------------------------------
 * agents-js:        drain ......... close (hangs) ..............
 * deadline:                       |<------ graceMs ----->|exit(130 / 143)
 * ```
 *
 * Once a signal has come and no session of this worker is live (checked every `pollMs`, default 250 ms), agents-js
 * gets `graceMs` (default 10 000 ms) to exit by itself; then the worker logs one warning and exits with the
 * signal's code. The timers do not keep the process alive. Returns a function that removes the listeners.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from '../log.ts';

export interface ShutdownDeadlineOptions {
  /** Sessions this worker is serving now. */
  readonly liveSessions: () => number;
  readonly log: Logger;
  /** ms agents-js gets after the last session ended (default 10 000). */
  readonly graceMs?: number;
  /** ms between looks at `liveSessions` (default 250). */
  readonly pollMs?: number;
  /** Default: process.exit. */
  readonly exit?: (code: number) => void;
  /** Where SIGINT and SIGTERM are heard (default: process). */
  readonly signals?: EventEmitter;
}

const CODES = { SIGINT: 130, SIGTERM: 143 } as const;

export function shutdownDeadline(options: ShutdownDeadlineOptions): () => void {
  const { liveSessions, log, graceMs = 10_000, pollMs = 250, exit = (code: number) => process.exit(code), signals = process } = options;
  let armed = false;
  const arm = (signal: keyof typeof CODES): void => {
    if (armed) return;
    armed = true;
    const poll = setInterval(() => {
      if (liveSessions() > 0) return;
      clearInterval(poll);
      setTimeout(() => {
        log.warn({ signal, graceMs }, 'agents-js did not exit within the grace after the last session ended; exiting');
        exit(CODES[signal]);
      }, graceMs).unref();
    }, pollMs);
    poll.unref();
  };
  const onInt = () => arm('SIGINT');
  const onTerm = () => arm('SIGTERM');
  signals.on('SIGINT', onInt);
  signals.on('SIGTERM', onTerm);
  return () => {
    signals.off('SIGINT', onInt);
    signals.off('SIGTERM', onTerm);
  };
}
