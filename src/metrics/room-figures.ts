/**
 * publishRoomFigures: a session's live figures as attributes of the avatar participant, so that viewers in
 * the room (the test page, src/client/public) can show them without a metrics endpoint.
 *
 * ```
 * snapshots:   -s-s-s-s-s-s-s-s-s-s-s-s-s-s-s-s-s-|     (about 25 a second)
 * attributes:  ----------A---------A---------A----|     (every intervalMs, the latest: setAttributes)
 * ```
 *
 * - `synctalk.av_offset_ms`: SessionMetrics.avOffsetMs, rounded (ms the last frame's audio starts after its video).
 * - Every `intervalMs` (default 2000 ms: attribute updates go through the LiveKit server to every participant),
 *   and only when the value differs from the one last set. Updates never overlap: a sample taken while one is
 *   in flight is dropped (strategy drop; the next sample carries the latest value). A failed update is logged
 *   once and the next sample tries again.
 * - The participant's token needs `canUpdateOwnMetadata` (LiveKit's agent job tokens have it; livekit/tokens.ts's
 *   avatarToken too).
 */
import { catchError, EMPTY, exhaustMap, filter, from, map, type Observable, sampleTime, type SchedulerLike } from 'rxjs';
import type { Logger } from '../log.ts';
import type { SessionMetrics } from './session-metrics.ts';

/** The avatar participant's attribute carrying the A/V offset, in ms. */
export const AV_OFFSET_ATTRIBUTE = 'synctalk.av_offset_ms';

export interface RoomFiguresOptions {
  readonly log: Logger;
  /** Milliseconds between updates at most (default 2000). */
  readonly intervalMs?: number;
  readonly scheduler?: SchedulerLike;
}

export function publishRoomFigures(
  participant: { setAttributes(attributes: Record<string, string>): Promise<void> },
  snapshots: Observable<SessionMetrics>,
  options: RoomFiguresOptions,
): Observable<Record<string, string>> {
  let warned = false;
  let set: string | null = null;
  return snapshots.pipe(
    sampleTime(options.intervalMs ?? 2000, options.scheduler),
    map((m) => String(Math.round(m.avOffsetMs))),
    filter((offset) => offset !== set),
    exhaustMap((offset) =>
      from(participant.setAttributes({ [AV_OFFSET_ATTRIBUTE]: offset })).pipe(
        map(() => {
          set = offset;
          return { [AV_OFFSET_ATTRIBUTE]: offset };
        }),
        catchError((e: unknown) => {
          if (!warned) options.log.warn({ err: (e as Error).message }, 'room figures: cannot set the avatar participant\'s attributes');
          warned = true;
          return EMPTY;
        }),
      ),
    ),
  );
}
