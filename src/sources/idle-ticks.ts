/**
 * idleTicks: the idle clock, one IdleTick per output frame period.
 *
 * ```
 * idleTicks(25):  -t-t-t-t-t-t-...   (every 40 ms; index 0, 1, 2, ...; pts = scheduler time in s)
 * ```
 *
 * Tick n is due at start + (n + 1) / fps on the scheduler's clock: a late tick does not delay the
 * ones after it, so the rate holds at exactly `fps` over time (a plain `interval` drifts slower).
 * It ticks forever; `idleFill` decides which ticks become idle frames.
 */
import { Observable, asyncScheduler, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { idleTick, type IdleTick } from '../events.ts';

/** `fps`: frames per second (default 25). `scheduler`: a TestScheduler in marble tests. */
export function idleTicks(fps = 25, scheduler: SchedulerLike = asyncScheduler): Observable<IdleTick> {
  const period = 1000 / fps;
  return new Observable<IdleTick>((subscriber) => {
    const start = scheduler.now();
    let n = 0;
    return scheduler.schedule(function (this: SchedulerAction<undefined>) {
      subscriber.next(idleTick(n, (scheduler.now() - start) / 1000));
      n += 1;
      this.schedule(undefined, Math.max(0, start + (n + 1) * period - scheduler.now()));
    }, period);
  });
}
