/**
 * PlaybackTracker: the segments an avatar is playing, their playout positions and the playback events of LiveKit's
 * avatar protocol, as plain bookkeeping (no timers, no I/O): the publisher tells it what happens, it answers with
 * the events to send.
 *
 * ```
 * announce:  -0------------1---------     (the source's first audio of a segment)
 * accepted:  ---0-0-0-0-------1-1--       (frames accepted by the output, with where their audio starts)
 * end/finish:--------e---f-----------     (segment-end out of the queue; its audio has played)
 * flush:     ---------------------F
 * events:    ---s--------f0---s1--f1!     (s: playback-started, f0: finished, f1!: finished, interrupted)
 * ```
 *
 * - A segment is active from its announcement (or its first accepted frame) until it finishes or a flush.
 * - `playback-started` at its first accepted frame; position = seconds of its audio accepted (padding excluded).
 * - `end` marks a segment whose segment-end came out of the queue: its `finish` is due once the audio before it
 *   has played (the publisher's timer); `finish` gives `playback-finished`, interrupted false, at its position.
 * - `flush(played)` gives `playback-finished`, interrupted, for every active segment in order (even one none of
 *   whose frames was accepted: an agent waits for it), position = its audio that had played by `played` on the
 *   audio clock; every announced segment is then flushed: its later frames and segment-ends are to be dropped.
 * - Bounded by the agent: one entry per segment announced and not finished.
 */

export type PlaybackEvent =
  | { readonly type: 'playback-started'; readonly segment: number }
  | { readonly type: 'playback-finished'; readonly segment: number; readonly position: number; readonly interrupted: boolean };

interface Segment {
  /** Audio clock (s) where its first accepted audio starts; null before. */
  start: number | null;
  /** Seconds of its audio accepted. */
  pushed: number;
  /** Its segment-end came out of the queue; the finish is due. */
  ending: boolean;
}

export class PlaybackTracker {
  private readonly active = new Map<number, Segment>();
  /** Highest segment announced; segments up to `flushedUpTo` were flushed. */
  private announced = -1;
  private flushedUpTo = -1;

  /** The source's first audio of `segment`: it is active from now on (unless it was flushed already). */
  announce(segment: number): void {
    if (segment <= this.flushedUpTo || this.active.has(segment)) return;
    this.announced = Math.max(this.announced, segment);
    this.active.set(segment, { start: null, pushed: 0, ending: false });
  }

  /** Whether `segment` was flushed: its frames and segment-end are dropped. */
  flushed(segment: number): boolean {
    return segment <= this.flushedUpTo;
  }

  /** A frame of `segment` was accepted: its audio starts at `start` on the audio clock and holds `seconds` of the segment. */
  accepted(segment: number, start: number, seconds: number): PlaybackEvent | null {
    let st = this.active.get(segment);
    if (st === undefined) {
      st = { start: null, pushed: 0, ending: false };
      this.active.set(segment, st);
    }
    st.pushed += seconds;
    if (st.start !== null) return null;
    st.start = start;
    return { type: 'playback-started', segment };
  }

  /** The segment-end of `segment` came out of the queue: true when its finish is now due (it is active and was not ending). */
  end(segment: number): boolean {
    const st = this.active.get(segment);
    if (st === undefined || st.ending) return false;
    st.ending = true;
    return true;
  }

  /** The audio before the end of `segment` has played: its playback-finished (null if a flush came first). */
  finish(segment: number): PlaybackEvent | null {
    const st = this.active.get(segment);
    if (st === undefined) return null;
    this.active.delete(segment);
    return { type: 'playback-finished', segment, position: st.pushed, interrupted: false };
  }

  /** Some segment's finish is due. */
  get ending(): boolean {
    return [...this.active.values()].some((st) => st.ending);
  }

  /** An interruption with the playout at `played` (s, audio clock): playback-finished, interrupted, for every active segment. */
  flush(played: number): PlaybackEvent[] {
    const events = [...this.active]
      .sort((a, b) => a[0] - b[0])
      .map(([segment, st]): PlaybackEvent => ({
        type: 'playback-finished',
        segment,
        position: Math.max(0, st.start === null ? 0 : Math.min(st.pushed, played - st.start)),
        interrupted: true,
      }));
    this.active.clear();
    this.flushedUpTo = Math.max(this.flushedUpTo, this.announced);
    return events;
  }
}
