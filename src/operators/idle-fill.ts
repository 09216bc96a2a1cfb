/**
 * idleFill: keeps the video at a steady frame rate when no speech is flowing, by letting idle ticks
 * into the stream between segments. Placed before the model, so idle frames are rendered by the same
 * model (breathing, blinking) and paired with silence.
 *
 * ```
 * ticks:  -t-t-t-t-t-t-t-t-t-
 * input:  ----a-a-a-S----F---      (a: audio of segment 0, S: its end, F: flush)
 * output: -i-ia-a-a-S-i-iF-i-      (ticks dropped while a segment is open; idle resumes after S or F)
 * ```
 *
 * - A segment is open from its first audio chunk until its segment-end (or a flush).
 * - Ticks that arrive while a segment is open are dropped (strategy: drop; they stand for time, not data).
 * - Ticks are also dropped while more than `lead` seconds of audio are in flight downstream
 *   (AudioBudget.queued): the idle clock only tops up the output queue, so speech that arrives is
 *   never queued behind more than `lead` of idle frames, and the tail of a segment plays out before
 *   idle frames follow it. Each idle frame reserves 1/fps s of the budget; the sink releases it.
 * - Idle frames are preemptible downstream: the livekit-room sink drops those it has not played yet
 *   when speech reaches it (and releases their budget), so speech does not even wait behind `lead`.
 * - Completes when the input completes.
 */
import { Observable, type OperatorFunction } from 'rxjs';
import { z } from 'zod';
import { idleTick, type IdleTick, type PipelineEvent } from '../events.ts';
import type { AudioBudget } from '../flow/audio-budget.ts';
import { idleTicks } from '../sources/idle-ticks.ts';
import type { OperatorElement } from '../pipelines/element.ts';

export interface IdleFillOptions {
  /** The idle clock. */
  readonly ticks: Observable<IdleTick>;
  /** Frames per second (default 25): each idle frame stands for 1/fps s. */
  readonly fps?: number;
  /** The pipeline's budget; when given, ticks only pass while at most `lead` s are in flight. */
  readonly budget?: AudioBudget;
  /** Seconds of queued output below which idle frames are added (default 0.12 = 3 frames at 25 fps). */
  readonly lead?: number;
}

export function idleFill(options: IdleFillOptions): OperatorFunction<PipelineEvent, PipelineEvent> {
  const frame = 1 / (options.fps ?? 25);
  const lead = options.lead ?? 0.12;
  return (input) =>
    new Observable<PipelineEvent>((subscriber) => {
      const open = new Set<number>();
      let index = 0;
      const tickSub = options.ticks.subscribe((t) => {
        if (open.size > 0) return;
        if (options.budget !== undefined && !options.budget.tryReserve(frame, lead)) return;
        subscriber.next(idleTick(index++, t.pts));
      });
      const inputSub = input.subscribe({
        next: (e) => {
          if (e.type === 'audio') open.add(e.segment);
          else if (e.type === 'segment-end') open.delete(e.segment);
          else if (e.type === 'flush') open.clear();
          subscriber.next(e);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        tickSub.unsubscribe();
        inputSub.unsubscribe();
      };
    });
}

const idleFillParams = z
  .object({
    lead: z.number().min(0).default(0.12).describe('seconds of queued output below which idle frames are added (default 0.12)'),
  })
  .strict();

export const idleFillElement: OperatorElement<typeof idleFillParams> = {
  role: 'operator',
  name: 'idle-fill',
  summary: 'render idle frames at the output frame rate while no speech is flowing',
  params: idleFillParams,
  caps: (_p, input) => (input.kind === 'audio' ? input : `goes before the model and needs audio, got ${input.kind}`),
  create: (p, ctx) => idleFill({ ticks: idleTicks(ctx.fps, ctx.scheduler), fps: ctx.fps, budget: ctx.budget, lead: p.lead }),
};
