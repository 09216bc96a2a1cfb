/**
 * Running a typed pipeline: source -> operators -> sink, one context per run (one per session when live).
 *
 * The source is multicast (a connectable observable) so the `pair` operator can take the original
 * audio from it while the model branch works on its 16 kHz copy; it is connected only after the whole
 * chain has subscribed, so no element misses the first events. Unsubscribing tears every element down
 * (files closed, child processes killed, workers terminated).
 */
import { EMPTY, Observable, Subject, connectable, type SchedulerLike } from 'rxjs';
import type { PipelineEvent } from '../events.ts';
import { AudioBudget } from '../flow/audio-budget.ts';
import { rootLogger, type Logger } from '../log.ts';
import type { PipelineContext, SinkProgress } from './element.ts';
import type { TypedPipeline } from './spec.ts';

export interface RunOptions {
  readonly log?: Logger;
  readonly scheduler?: SchedulerLike;
  /** Replaces the budget made from the spec's budgetSeconds (a live session shares it with its sink). */
  readonly budget?: AudioBudget;
  /** Where model elements get their graphs (PipelineContext.models; default: their own). */
  readonly models?: PipelineContext['models'];
  /** Told of every render of a model element (PipelineContext.onRender). */
  readonly onRender?: PipelineContext['onRender'];
}

/**
 * The events that reach the sink. `sink` is applied to them inside the same subscription, so the
 * source is connected only once the sink has subscribed too.
 */
export function runPipeline(p: TypedPipeline, options: RunOptions = {}): Observable<SinkProgress> {
  return new Observable<SinkProgress>((subscriber) => {
    const log = options.log ?? rootLogger;
    const budget = options.budget ?? new AudioBudget(p.budgetSeconds);
    const base = { fps: p.fps, budget, scheduler: options.scheduler, models: options.models, onRender: options.onRender };
    const bootstrap: PipelineContext = { ...base, log, sourceEvents: EMPTY };
    const source = connectable(p.source.element.create(p.source.params, { ...bootstrap, log: log.child({ element: p.source.element.name }) }), {
      connector: () => new Subject<PipelineEvent>(),
      resetOnDisconnect: false,
    });
    const context = (name: string): PipelineContext => ({ ...base, sourceEvents: source, log: log.child({ element: name }) });
    const chain = p.operators.reduce<Observable<PipelineEvent>>((acc, op) => acc.pipe(op.element.create(op.params, context(op.element.name))), source);
    const sub = p.sink.element.create(p.sink.params, context(p.sink.element.name))(chain).subscribe(subscriber);
    sub.add(source.connect());
    return sub;
  });
}
