/**
 * null: a sink that writes nothing. It takes each av frame as written at once, releasing its audio
 * from the budget, resets the budget on a flush, and reports progress; other events are ignored.
 * For benchmarks and for running a pipeline for its side effects.
 *
 *   input:   --av--av--flush--av--|
 *   budget:    -r----r---reset--r       r = release(seconds of that frame's audio)
 *   output:  --p1--p2---------p3--|     p = { frames, seconds } written so far
 */
import { filter, map, scan, tap, type Observable } from 'rxjs';
import { z } from 'zod';
import { audioDuration, type AvFrame, type PipelineEvent } from '../events.ts';
import type { PipelineContext, SinkElement, SinkProgress } from '../pipelines/element.ts';
import { acceptsAv } from './accepts-av.ts';

/** Consumes av frames as `null` does: the budget bookkeeping every sink owes, with nothing written. */
export const consume =
  (ctx: Pick<PipelineContext, 'budget' | 'fps'>) =>
  (input: Observable<PipelineEvent>): Observable<SinkProgress> =>
    input.pipe(
      tap((e) => {
        if (e.type === 'av') ctx.budget.release(audioDuration(e.audio));
        else if (e.type === 'flush') ctx.budget.reset();
      }),
      filter((e): e is AvFrame => e.type === 'av'),
      scan((frames) => frames + 1, 0),
      map((frames) => ({ frames, seconds: frames / ctx.fps })),
    );

const params = z.object({}).strict().describe('No parameters.');

export const nullSink: SinkElement<typeof params> = {
  role: 'sink',
  name: 'null',
  summary: 'Consume av frames and write nothing (releases the audio budget, reports progress).',
  params,
  accepts: (_params, input) => acceptsAv(input),
  create: (_params, ctx) => consume(ctx),
};
