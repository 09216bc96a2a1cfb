/**
 * PlaybackAnswers: exactly one `lk.playback_finished` for every `lk.audio_stream` the avatar takes
 * from its agent, sent in the order the streams arrived.
 *
 * ```
 * streams opened:  0    1    2(bad)  3
 * answers given:   ---------2!--1---0----3---      (2!: skipped at once; 1, 0: played; 3: played)
 * sent:            -------------------0,1,2--3---  (each once every earlier stream is answered)
 * ```
 *
 * - `opened(segment)`: the source numbers every stream from the agent 0, 1, 2, ... in arrival order,
 *   whether it will be played, skipped (bad attributes) or dropped (too many waiting).
 * - `answer(segment, position, interrupted)`: the first answer for a segment counts; later ones are
 *   ignored (the publisher answers what it played, the source answers streams nothing of which
 *   played, and a clear_buffer may reach a stream from both sides). An agent counts answers against
 *   its segments, so an answer is held until every earlier segment has been answered, then sent.
 * - `answerOutstanding()`: answers every opened, unanswered segment with position 0, interrupted
 *   (the session ending while the agent may still wait).
 * - Bounded: at most `maxOutstanding` segments (default 1024) opened and not yet sent. Beyond it
 *   (strategy: answer at once, out of order, with a warning) a new segment is answered immediately.
 */
import type { Logger } from '../log.ts';

export interface PlaybackAnswersOptions {
  /** Segments opened and not yet sent, at most (default 1024). */
  readonly maxOutstanding?: number;
}

interface Answer {
  readonly position: number;
  readonly interrupted: boolean;
}

export class PlaybackAnswers {
  /** Lowest segment not yet sent. */
  private next = 0;
  /** One past the highest segment opened. */
  private end = 0;
  private readonly held = new Map<number, Answer>();
  /** Segments sent out of order because the bound was reached. */
  private readonly early = new Set<number>();
  private readonly maxOutstanding: number;

  constructor(
    private readonly send: (position: number, interrupted: boolean) => void,
    private readonly log: Logger,
    options: PlaybackAnswersOptions = {},
  ) {
    this.maxOutstanding = options.maxOutstanding ?? 1024;
  }

  /** A stream from the agent was numbered `segment` (numbers come in order, from 0). */
  opened(segment: number): void {
    this.end = Math.max(this.end, segment + 1);
    if (this.end - this.next > this.maxOutstanding) {
      this.log.warn({ segment, outstanding: this.end - this.next }, 'too many audio streams unanswered; answering this one at once, out of order');
      this.early.add(segment);
      this.send(0, true);
    }
  }

  /** The answer for `segment`; the first one counts, and it is sent once every earlier one has been. */
  answer(segment: number, position: number, interrupted: boolean): void {
    if (!this.hold(segment, position, interrupted)) return;
    this.drain();
  }

  /** Answers every opened segment not answered yet: position 0, interrupted (answers already given keep theirs). */
  answerOutstanding(): void {
    for (let s = this.next; s < this.end; s++) this.hold(s, 0, true);
    this.drain();
  }

  /** Keeps the first answer of an open segment; false when the segment has one already or is not open. */
  private hold(segment: number, position: number, interrupted: boolean): boolean {
    if (segment < this.next || segment >= this.end || this.held.has(segment) || this.early.has(segment)) return false;
    this.held.set(segment, { position: Math.max(0, position), interrupted });
    return true;
  }

  /** Sends the held answers from the lowest unsent segment on, while there is no gap. */
  private drain(): void {
    for (;;) {
      if (this.early.delete(this.next)) {
        this.next++;
        continue;
      }
      const a = this.held.get(this.next);
      if (a === undefined) return;
      this.held.delete(this.next);
      this.next++;
      this.send(a.position, a.interrupted);
    }
  }

  /** Segments opened and not yet sent. */
  get outstanding(): number {
    return this.end - this.next;
  }
}
