/**
 * The `infer` element of a live session: the pipeline registry's `infer` (same parameters, caps and
 * ordering, see operators/infer.ts), except that the model comes from a ModelCache, so every session
 * of a worker process renders with one loaded model, and every render is timed for the metrics.
 *
 * ```
 * session 1: ---infer(lease)--------------------| release
 * session 2:         ---infer(lease)------| release
 * model:     load ----------------------------------- close (by the last release)
 * ```
 *
 * - The lease is taken when the pipeline is subscribed and released when it is unsubscribed; input
 *   arriving while the model loads waits in infer's queue (bounded by the AudioBudget).
 * - `onRender(ms, frames)`: wall time of each render (the worker round trip, queueing included) and
 *   the frames it gave.
 */
import { defer, from, Observable, switchMap, tap } from 'rxjs';
import type { PipelineEvent } from '../events.ts';
import { DEMO_FACE, DEMO_FACE_MODEL_PATH, DemoFaceRenderer } from '../models/demo-face.ts';
import type { ModelCache } from '../models/model-cache.ts';
import { infer, inferElement, type FrameRenderer } from '../operators/infer.ts';
import type { OperatorElement } from '../pipelines/element.ts';

export function sharedModelInferElement(models: ModelCache, onRender: (ms: number, frames: number) => void): OperatorElement<typeof inferElement.params> {
  return {
    ...inferElement,
    summary: `${inferElement.summary}; the model is shared by the sessions of this process`,
    create: (params, ctx) => (input) =>
      new Observable<PipelineEvent>((subscriber) => {
        const path = params.model === 'demo' ? DEMO_FACE_MODEL_PATH : params.model;
        const leasing = models.acquire(path, { providers: params.providers, intraOpThreads: params.intraOpThreads, log: ctx.log });
        const ready = leasing.then((lease) => new DemoFaceRenderer(lease.model));
        ready.catch((e: unknown) => subscriber.error(e));
        const renderer: FrameRenderer = {
          width: DEMO_FACE.size,
          height: DEMO_FACE.size,
          render: (x) =>
            from(ready).pipe(
              switchMap((r) =>
                defer(() => {
                  const started = performance.now();
                  return from(r.render(x)).pipe(tap((frames) => onRender(performance.now() - started, frames.length)));
                }),
              ),
            ),
        };
        const sub = input.pipe(infer(renderer, { maxInFlight: params.maxInFlight, fps: ctx.fps })).subscribe(subscriber);
        return () => {
          sub.unsubscribe();
          void leasing.then(
            (lease) => lease.release(),
            () => undefined,
          );
        };
      }),
  };
}
