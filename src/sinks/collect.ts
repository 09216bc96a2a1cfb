/**
 * collect: a sink for tests that keeps every event it receives, in order, and otherwise behaves as
 * the `null` sink (releases each av frame's audio from the budget, resets it on a flush, reports
 * progress). Not a pipeline element: its result is read from code.
 *
 *   input:   --audio--av--flush--av--|
 *   events:  [audio, av, flush, av]  (grows as they arrive)
 *   output:  ---------p1---------p2--|
 *
 * Buffer: `events` is unbounded by design (a test's whole output); do not use it on endless streams.
 */
import { tap, type Observable } from 'rxjs';
import type { PipelineEvent } from '../events.ts';
import type { PipelineContext, SinkProgress } from '../pipelines/element.ts';
import { consume } from './null.ts';

export interface Collector {
  /** Every event received so far, in order. */
  readonly events: PipelineEvent[];
  /** Subscribe to consume an input; completes when the input does. */
  readonly sink: (input: Observable<PipelineEvent>) => Observable<SinkProgress>;
}

export const collect = (ctx: Pick<PipelineContext, 'budget' | 'fps'>): Collector => {
  const events: PipelineEvent[] = [];
  return {
    events,
    sink: (input) => consume(ctx)(input.pipe(tap((e) => events.push(e)))),
  };
};
