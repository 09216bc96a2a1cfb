/**
 * infer: audio chunks and idle ticks in, rendered video frames out, through a FrameRenderer (a
 * model), with up to `maxInFlight` renders running at once and every output in input order.
 */
import { from, Observable, switchMap, type ObservableInput, type OperatorFunction, type Subscription } from 'rxjs';
import { z } from 'zod';
import type { AudioChunk, IdleTick, PipelineEvent, VideoFrame } from '../events.ts';
import { DEMO_FACE, DEMO_FACE_MODEL_PATH, DemoFaceRenderer } from '../models/demo-face.ts';
import { DEFAULT_PROVIDERS, OnnxModel } from '../models/onnx-model.ts';
import type { OperatorElement } from '../pipelines/element.ts';

/** A model that turns one input into its video frames. */
export interface FrameRenderer {
  /** Frame size, pixels. */
  readonly width: number;
  readonly height: number;
  /**
   * The frames for one audio chunk (as many as it holds real audio for, possibly none) or one idle
   * tick, in order: RGBA, `width * height * 4` bytes each. A Promise, or an Observable whose first
   * value is used (tests use cold marbles).
   */
  render(input: AudioChunk | IdleTick): ObservableInput<Uint8Array[]>;
}

export interface InferOptions {
  /** Renders running at once (default 2): the next input starts while the previous one renders. */
  readonly maxInFlight?: number;
  /** Frames per second (default 25): frame k of a chunk gets pts = chunk pts + k / fps. */
  readonly fps?: number;
}

type Entry =
  | { readonly kind: 'event'; readonly event: PipelineEvent }
  | { readonly kind: 'render'; readonly input: AudioChunk | IdleTick; frames: Uint8Array[] | null; sub: Subscription | null };

/**
 * Renders audio chunks and idle ticks into `video` frames with `renderer`, running up to
 * `maxInFlight` renders concurrently and emitting everything in input order.
 *
 * - Frame k of an audio chunk gets pts = chunk pts + k / fps, segment = the chunk's segment and
 *   `index` = its number within the segment, from 0. Idle frames get segment null and their number
 *   within the idle run (reset by speech frames and by a flush).
 * - `segment-end` and every other event (video, av) are forwarded in order: after the frames of the
 *   inputs that came before them.
 * - `flush` overtakes: it is forwarded at once, everything queued is dropped, and the results of
 *   renders started before it are discarded (their subscriptions are closed).
 *
 * Buffering, strategy **wait**: inputs beyond `maxInFlight` queue here until a render slot frees.
 * The queue is not bounded by a count: the AudioBudget bounds it, since a source emits no more
 * audio than the budget's capacity (2 s by default) ahead of the sink.
 *
 * Errors from the renderer are forwarded as errors.
 *
 * ```
 * maxInFlight = 2, every render takes 3 frames; a..d are inputs, A..D their frames, e a segment-end,
 * F a flush; (Be) is B then e in the same frame
 * input:   -a-b-e-------c-F---d------|
 * renders:  a--A
 *             b--B
 *                       c-x   (dropped by F)
 *                             d--D
 * output:  ----A-(Be)-----F------D---|
 * ```
 */
export function infer(renderer: FrameRenderer, options: InferOptions = {}): OperatorFunction<PipelineEvent, PipelineEvent> {
  const { maxInFlight = 2, fps = 25 } = options;
  return (source) =>
    new Observable<PipelineEvent>((subscriber) => {
      let queue: Entry[] = [];
      let inFlight = 0;
      let sourceDone = false;
      let speech: { segment: number; next: number } | null = null;
      let idleNext = 0;
      let flushes = 0;
      let pumping = false;
      let again = false;

      const frameOf = (input: AudioChunk | IdleTick, data: Uint8Array, k: number): VideoFrame => {
        const pts = input.pts + k / fps;
        const base = { type: 'video', width: renderer.width, height: renderer.height, data, pts } as const;
        if (input.type === 'idle') return { ...base, segment: null, index: idleNext++ };
        if (speech?.segment !== input.segment) speech = { segment: input.segment, next: 0 };
        idleNext = 0;
        return { ...base, segment: input.segment, index: speech.next++ };
      };

      const start = (entry: Extract<Entry, { kind: 'render' }>): void => {
        inFlight++;
        let rendered: ObservableInput<Uint8Array[]>;
        try {
          rendered = renderer.render(entry.input);
        } catch (e) {
          subscriber.error(e);
          return;
        }
        entry.sub = from(rendered).subscribe({
          next: (frames) => {
            entry.frames ??= frames;
          },
          error: (e: unknown) => subscriber.error(e),
          complete: () => {
            entry.frames ??= [];
            inFlight--;
            pump();
          },
        });
      };

      // Emits the ready head of the queue and starts renders while slots are free. Re-entrant calls
      // (a render completing synchronously, a downstream reaction) only ask for another pass.
      const pump = (): void => {
        if (pumping) {
          again = true;
          return;
        }
        pumping = true;
        do {
          again = false;
          while (queue.length > 0 && !subscriber.closed) {
            const head = queue[0];
            if (head.kind === 'render' && head.frames === null) break;
            queue.shift();
            if (head.kind === 'event') subscriber.next(head.event);
            else {
              // a flush arriving while these frames go out (a synchronous loop downstream) stops them too
              const at = flushes;
              for (const [k, data] of (head.frames ?? []).entries()) {
                if (flushes !== at) break;
                subscriber.next(frameOf(head.input, data, k));
              }
            }
          }
          for (const entry of queue) {
            if (inFlight >= maxInFlight || subscriber.closed) break;
            if (entry.kind === 'render' && entry.sub === null && entry.frames === null) start(entry);
          }
        } while (again);
        pumping = false;
        if (sourceDone && queue.length === 0) subscriber.complete();
      };

      const dropAll = (): void => {
        for (const entry of queue) if (entry.kind === 'render') entry.sub?.unsubscribe();
        queue = [];
        inFlight = 0;
      };

      const sub = source.subscribe({
        next: (event) => {
          if (event.type === 'flush') {
            flushes++;
            dropAll();
            speech = null;
            idleNext = 0;
            subscriber.next(event);
            return;
          }
          queue.push(
            event.type === 'audio' || event.type === 'idle'
              ? { kind: 'render', input: event, frames: null, sub: null }
              : { kind: 'event', event },
          );
          pump();
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => {
          sourceDone = true;
          pump();
        },
      });
      return () => {
        sub.unsubscribe();
        dropAll();
      };
    });
}

const providerName = z.enum(['cuda', 'webgpu', 'cpu']);

export const inferParams = z.object({
  model: z
    .string()
    .min(1)
    .default('demo')
    .describe("ONNX model: 'demo' (default) = the bundled models/demo-face.onnx, else a path to a model with the same inputs and output"),
  providers: z
    .array(providerName)
    .min(1)
    .default([...DEFAULT_PROVIDERS])
    .describe('execution providers to try, in order (default cuda, webgpu, cpu); each failure is logged once'),
  maxInFlight: z.number().int().min(1).default(2).describe('renders running at once (default 2)'),
  intraOpThreads: z.number().int().min(1).default(1).describe('ORT threads per operator (default 1)'),
});

/**
 * The `infer` element: renders 16 kHz mono chunks of 1280 samples (80 ms, two 25 fps frames) and
 * idle ticks into 256x256 RGBA frames with the demo-face model (or a model with its contract, see
 * src/models/demo-face.ts). The model is loaded, in a worker thread, when the pipeline is
 * subscribed, and closed when it is unsubscribed; input arriving meanwhile waits in the queue.
 */
export const inferElement: OperatorElement<typeof inferParams> = {
  name: 'infer',
  role: 'operator',
  summary: 'render audio chunks and idle ticks into video frames with an ONNX model (default: the demo face)',
  params: inferParams,
  caps: (_params, input, fps) => {
    const { sampleRate, chunkSamples, size } = DEMO_FACE;
    if (input.kind !== 'audio') return `needs audio input; got ${input.kind}`;
    if (input.sampleRate !== sampleRate) {
      return `needs audio at ${sampleRate} Hz; got ${input.sampleRate === null ? 'an unknown rate' : `${input.sampleRate} Hz`} (add a resample element)`;
    }
    if (input.channels !== 1) return `needs mono audio; got ${input.channels ?? 'an unknown number of'} channels`;
    if (input.chunk !== chunkSamples) {
      return `needs chunks of ${chunkSamples} samples (80 ms); got ${input.chunk === null ? 'any size' : input.chunk} (add a chunk element)`;
    }
    if (fps !== DEMO_FACE.fps) return `renders ${DEMO_FACE.fps} fps (640 samples at 16 kHz per frame); the pipeline runs at ${fps} fps`;
    return { kind: 'video', width: size, height: size };
  },
  create: (params, ctx) => (input) =>
    new Observable<PipelineEvent>((subscriber) => {
      const path = params.model === 'demo' ? DEMO_FACE_MODEL_PATH : params.model;
      const log = ctx.log.child({ element: 'infer' });
      const loading = OnnxModel.load(path, { providers: params.providers, intraOpThreads: params.intraOpThreads, log });
      const ready = loading.then((model) => new DemoFaceRenderer(model));
      ready.catch((e: unknown) => subscriber.error(e));
      const renderer: FrameRenderer = {
        width: DEMO_FACE.size,
        height: DEMO_FACE.size,
        render: (x) => from(ready).pipe(switchMap((r) => r.render(x))),
      };
      const sub = input.pipe(infer(renderer, { maxInFlight: params.maxInFlight, fps: ctx.fps })).subscribe(subscriber);
      return () => {
        sub.unsubscribe();
        void loading.then(
          (model) => model.close().then(() => log.debug({ model: path }, 'model closed')),
          () => undefined,
        );
      };
    }),
};
