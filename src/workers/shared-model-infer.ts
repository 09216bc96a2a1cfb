/**
 * The `infer` element of a live session: the pipeline registry's `infer` (same parameters, caps and
 * ordering, see operators/infer.ts: the demo face or a SyncTalk bundle), except that its ONNX graphs come
 * from a ModelSource: the process's ModelCache, or the worker's model server (RemoteModels), so every
 * session renders with one loaded copy of each graph, batched with the others where the graph can
 * batch, and every render is timed for the metrics.
 *
 * ```
 * session 1: ---infer(leases)--------------------| release
 * session 2:         ---infer(leases)------| release
 * graphs:    load ------------------------------------ close (by the last release)
 * ```
 *
 * - The leases are taken when the pipeline is subscribed and released when it is unsubscribed; input
 *   arriving while the graphs load waits in infer's queue (bounded by the AudioBudget). Per-session
 *   renderer state (a SyncTalk renderer's audio history) is not shared.
 * - `onRender(ms, frames)`: wall time of each render (the worker round trip, queueing included) and
 *   the frames it gave.
 */
import { defer, from, Observable, of, switchMap, tap, type ObservableInput } from 'rxjs';
import type { PipelineEvent, SegmentEnd } from '../events.ts';
import type { ModelSource } from '../models/model-cache.ts';
import { infer, inferElement, modelPath, openRenderer, rendererSize, type FrameRenderer } from '../operators/infer.ts';
import { isBundleFolder } from '../synctalk/bundle.ts';
import type { OperatorElement } from '../pipelines/element.ts';

export function sharedModelInferElement(models: ModelSource, onRender: (ms: number, frames: number) => void): OperatorElement<typeof inferElement.params> {
  const timed = (run: () => ObservableInput<Uint8Array[]>) =>
    defer(() => {
      const started = performance.now();
      return from(run()).pipe(tap((frames) => onRender(performance.now() - started, frames.length)));
    });
  return {
    ...inferElement,
    summary: `${inferElement.summary}; its graphs are shared by the sessions of this process`,
    create: (params, ctx) => (input) =>
      new Observable<PipelineEvent>((subscriber) => {
        const log = ctx.log;
        const opening = openRenderer(params, { log, loader: (path) => models.acquire(path, { providers: params.providers, intraOpThreads: params.intraOpThreads, log }) });
        const ready = opening.then((o) => o.renderer);
        ready.catch((e: unknown) => subscriber.error(e));
        const renderer: FrameRenderer = {
          ...rendererSize(params),
          render: (x) => from(ready).pipe(switchMap((r) => timed(() => r.render(x)))),
          // as infer's own element: only a SyncTalk bundle holds audio back (end) and state (reset)
          ...(isBundleFolder(modelPath(params))
            ? {
                end: (x: SegmentEnd) => from(ready).pipe(switchMap((r) => (r.end === undefined ? of([]) : timed(() => r.end!(x))))),
                reset: () => void ready.then((r) => r.reset?.(), () => undefined),
              }
            : {}),
        };
        const sub = input.pipe(infer(renderer, { maxInFlight: params.maxInFlight, fps: ctx.fps })).subscribe(subscriber);
        return () => {
          sub.unsubscribe();
          void opening.then(
            (o) => o.close(),
            () => undefined,
          );
        };
      }),
  };
}
