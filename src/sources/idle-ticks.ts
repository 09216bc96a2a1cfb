/**
 * idleTicks: the idle clock, one IdleTick per output frame period.
 *
 * ```
 * idleTicks(25):  -t-t-t-t-t-t-...   (every 40 ms; index 0, 1, 2, ...; pts = scheduler time in s)
 * ```
 *
 * It ticks forever; `idleFill` decides which ticks become idle frames.
 */
import { interval, map, type Observable, type SchedulerLike, asyncScheduler } from 'rxjs';
import { idleTick, type IdleTick } from '../events.ts';

/** `fps`: frames per second (default 25). `scheduler`: a TestScheduler in marble tests. */
export function idleTicks(fps = 25, scheduler: SchedulerLike = asyncScheduler): Observable<IdleTick> {
  const start = scheduler.now();
  return interval(1000 / fps, scheduler).pipe(map((i) => idleTick(i, (scheduler.now() - start) / 1000)));
}
