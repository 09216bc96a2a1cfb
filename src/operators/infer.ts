/**
 * infer: audio chunks and idle ticks in, rendered video frames out, through a FrameRenderer (a
 * model), with up to `maxInFlight` renders running at once and every output in input order.
 */
import { availableParallelism } from 'node:os';
import { from, Observable, of, switchMap, type ObservableInput, type OperatorFunction, type Subscription } from 'rxjs';
import { z } from 'zod';
import type { Logger } from '../log.ts';
import type { AudioChunk, IdleTick, PipelineEvent, SegmentEnd, VideoFrame } from '../events.ts';
import { DEMO_FACE, DEMO_FACE_MODEL_PATH, DemoFaceRenderer } from '../models/demo-face.ts';
import { DEFAULT_PROVIDERS } from '../models/onnx-model.ts';
import type { Caps, OperatorElement } from '../pipelines/element.ts';
import { isBundleFolder, onnxGraphLoader, readSyncTalkManifest, SyncTalkBundle, type GraphLoader } from '../synctalk/bundle.ts';
import { SyncTalkRenderer } from '../synctalk/renderer.ts';

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
  /**
   * Optional, for renderers that hold audio back (lookahead): the frames of `segment` still held, at its
   * segment-end. A renderer with `end` numbers frames per segment: the frame that `render` or `end` returns as the
   * segment's i-th gets pts = the segment's first chunk pts + i / fps, whichever input released it.
   */
  end?(segment: SegmentEnd): ObservableInput<Uint8Array[]>;
  /** Optional: drop what is held (called on a flush, before it is forwarded). */
  reset?(): void;
}

export interface InferOptions {
  /** Renders running at once (default 2): the next input starts while the previous one renders. */
  readonly maxInFlight?: number;
  /** Frames per second (default 25): frame k of a chunk gets pts = chunk pts + k / fps. */
  readonly fps?: number;
}

type RenderInput = AudioChunk | IdleTick | SegmentEnd;

type Entry =
  | { readonly kind: 'event'; readonly event: PipelineEvent }
  | {
      readonly kind: 'render';
      readonly input: RenderInput;
      /** pts of the segment's first chunk (renderers with `end`). */
      readonly base: number;
      frames: Uint8Array[] | null;
      sub: Subscription | null;
    };

/**
 * Renders audio chunks and idle ticks into `video` frames with `renderer`, running up to
 * `maxInFlight` renders concurrently and emitting everything in input order.
 *
 * - Frame k of an audio chunk gets pts = chunk pts + k / fps, segment = the chunk's segment and
 *   `index` = its number within the segment, from 0. Idle frames get segment null and their number
 *   within the idle run (reset by speech frames and by a flush).
 * - A renderer with `end` (lookahead: a chunk may release earlier frames, or none) is also asked for
 *   the segment's remaining frames at its `segment-end`, which follows them; its speech frame i gets
 *   pts = the segment's first chunk pts + i / fps.
 * - `segment-end` and every other event (video, av) are forwarded in order: after the frames of the
 *   inputs that came before them.
 * - `flush` overtakes: it is forwarded at once, everything queued is dropped, the results of
 *   renders started before it are discarded (their subscriptions are closed) and the renderer is
 *   `reset`.
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
      /** The segment of the last audio queued and its first chunk's pts. */
      let queued: { segment: number; base: number } | null = null;
      let idleNext = 0;
      let flushes = 0;
      let pumping = false;
      let again = false;

      const frameOf = (entry: Extract<Entry, { kind: 'render' }>, data: Uint8Array, k: number): VideoFrame => {
        const { input } = entry;
        const base = { type: 'video', width: renderer.width, height: renderer.height, data } as const;
        if (input.type === 'idle') return { ...base, pts: input.pts + k / fps, segment: null, index: idleNext++ };
        if (speech?.segment !== input.segment) speech = { segment: input.segment, next: 0 };
        idleNext = 0;
        const index = speech.next++;
        const pts = renderer.end === undefined && input.type === 'audio' ? input.pts + k / fps : entry.base + index / fps;
        return { ...base, pts, segment: input.segment, index };
      };

      const start = (entry: Extract<Entry, { kind: 'render' }>): void => {
        inFlight++;
        let rendered: ObservableInput<Uint8Array[]>;
        try {
          const { input } = entry;
          rendered = input.type === 'segment-end' ? (renderer.end?.(input) ?? []) : renderer.render(input);
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
                subscriber.next(frameOf(head, data, k));
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
            queued = null;
            idleNext = 0;
            renderer.reset?.();
            subscriber.next(event);
            return;
          }
          if (event.type === 'audio' && queued?.segment !== event.segment) queued = { segment: event.segment, base: event.pts };
          const baseOf = (e: RenderInput): number => (e.type !== 'idle' && queued?.segment === e.segment ? queued.base : e.pts);
          if (event.type === 'audio' || event.type === 'idle') queue.push({ kind: 'render', input: event, base: baseOf(event), frames: null, sub: null });
          else if (event.type === 'segment-end' && renderer.end !== undefined) {
            queue.push({ kind: 'render', input: event, base: baseOf(event), frames: null, sub: null }, { kind: 'event', event });
          } else queue.push({ kind: 'event', event });
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

/** The machine's cores: ORT threads per operator beyond them only oversubscribe it (and a huge count never starts). */
const CORES = availableParallelism();

/** Lookahead of a SyncTalk bundle, seconds of audio after a frame's start (src/synctalk/audio-attention-windows.ts). */
const LOOKAHEAD_SECONDS = { full: 0.2525, 'low-latency': 0.1325 } as const;

export const inferParams = z.object({
  model: z
    .string()
    .min(1)
    .default('demo')
    .describe(
      "'demo' (default) = the bundled models/demo-face.onnx; a path to an ONNX model with the demo-face inputs and output; or a SyncTalk avatar bundle folder (docs/synctalk-bundle.md)",
    ),
  providers: z
    .array(providerName)
    .min(1)
    .default([...DEFAULT_PROVIDERS])
    .describe('execution providers to try, in order (default cuda, webgpu, cpu); each failure is logged once'),
  maxInFlight: z.number().int().min(1).max(64).default(2).describe('renders running at once (default 2; at most 64)'),
  intraOpThreads: z
    .number()
    .int()
    .min(1)
    .max(CORES, `at most this machine's ${CORES} cores`)
    .default(1)
    .describe(`ORT threads per operator (default 1; at most the machine's cores, ${CORES} here)`),
  lookahead: z
    .enum(['full', 'low-latency'])
    .optional()
    .describe(
      "SyncTalk bundles: audio after a frame's start needed to render it: 'full' (default) 252.5 ms, as trained; 'low-latency' 132.5 ms (future features replicated)",
    ),
}).strict();

export type InferParams = z.output<typeof inferParams>;

/** The model file or bundle folder `params.model` names. */
export const modelPath = (params: Pick<InferParams, 'model'>): string => (params.model === 'demo' ? DEMO_FACE_MODEL_PATH : params.model);

/**
 * Frame size of the renderer `params.model` names, read at build time: the demo face's, or a bundle's
 * manifest.json (ModelError, one line, for a missing or malformed manifest).
 */
export function rendererSize(params: Pick<InferParams, 'model'>): { width: number; height: number } {
  const path = modelPath(params);
  if (isBundleFolder(path)) {
    const { width, height } = readSyncTalkManifest(path);
    return { width, height };
  }
  return { width: DEMO_FACE.size, height: DEMO_FACE.size };
}

/** A loaded renderer and the release of what it holds. */
export interface OpenedRenderer {
  readonly renderer: FrameRenderer;
  close(): Promise<void>;
}

/**
 * Loads the renderer `params.model` names, its ONNX graphs through `loader` (default: private OnnxModels with
 * `params.providers` and `params.intraOpThreads`; a live worker passes ModelCache leases to share them):
 * a SyncTalk bundle folder gives a SyncTalkRenderer (one per call: per-session state), anything else a
 * DemoFaceRenderer. `close` releases the graphs.
 */
export async function openRenderer(params: InferParams, options: { readonly log: Logger; readonly loader?: GraphLoader }): Promise<OpenedRenderer> {
  const path = modelPath(params);
  const loader = options.loader ?? onnxGraphLoader({ providers: params.providers, intraOpThreads: params.intraOpThreads, log: options.log });
  if (isBundleFolder(path)) {
    const bundle = await SyncTalkBundle.open(path, loader);
    return { renderer: new SyncTalkRenderer(bundle, { lookahead: params.lookahead }), close: () => bundle.close() };
  }
  const lease = await loader(path);
  try {
    return { renderer: new DemoFaceRenderer(lease.model), close: () => lease.release() };
  } catch (e) {
    await lease.release();
    throw e;
  }
}

/**
 * Build-time check of infer's input: 16 kHz mono at 25 fps; the demo face also needs chunks of 1280 samples
 * (a SyncTalk bundle takes any chunk size). Throws ModelError for a malformed bundle manifest.
 */
export function inferCaps(params: InferParams, input: Caps, fps: number): Caps | string {
  const { sampleRate, chunkSamples } = DEMO_FACE;
  const bundle = isBundleFolder(modelPath(params));
  const { width, height } = rendererSize(params);
  if (input.kind !== 'audio') return `needs audio input; got ${input.kind}`;
  if (input.sampleRate !== sampleRate) {
    return `needs audio at ${sampleRate} Hz; got ${input.sampleRate === null ? 'an unknown rate' : `${input.sampleRate} Hz`} (add a resample element)`;
  }
  if (input.channels !== 1) return `needs mono audio; got ${input.channels ?? 'an unknown number of'} channels`;
  if (!bundle && input.chunk !== chunkSamples) {
    return `needs chunks of ${chunkSamples} samples (80 ms); got ${input.chunk === null ? 'any size' : input.chunk} (add a chunk element)`;
  }
  if (fps !== DEMO_FACE.fps) return `renders ${DEMO_FACE.fps} fps (640 samples at 16 kHz per frame); the pipeline runs at ${fps} fps`;
  return { kind: 'video', width, height };
}

/**
 * The `infer` element: renders 16 kHz mono audio chunks and idle ticks into RGBA frames, either with the
 * demo-face model (chunks of 1280 samples, 80 ms, two 25 fps frames each; 256x256) or with a SyncTalk avatar
 * bundle (any chunk size; the bundle's frame size; `lookahead` sets its latency, see src/synctalk/renderer.ts).
 * The model is loaded, in worker threads, when the pipeline is subscribed, and closed when it is
 * unsubscribed; input arriving meanwhile waits in the queue.
 */
export const inferElement: OperatorElement<typeof inferParams> = {
  name: 'infer',
  role: 'operator',
  summary: 'render audio chunks and idle ticks into video frames with an ONNX model (default: the demo face) or a SyncTalk avatar bundle',
  params: inferParams,
  caps: inferCaps,
  // a SyncTalk bundle waits for its lookahead of audio after each frame's start; the demo face renders each chunk as it comes
  holds: (params) => (isBundleFolder(modelPath(params)) ? LOOKAHEAD_SECONDS[params.lookahead ?? 'full'] : 0),
  create: (params, ctx) => (input) =>
    new Observable<PipelineEvent>((subscriber) => {
      const path = modelPath(params);
      const log = ctx.log.child({ element: 'infer' });
      const opening = openRenderer(params, { log });
      const { width, height } = rendererSize(params);
      const ready = opening.then((o) => o.renderer);
      ready.catch((e: unknown) => subscriber.error(e));
      const renderer: FrameRenderer = {
        width,
        height,
        render: (x) => from(ready).pipe(switchMap((r) => r.render(x))),
        // a SyncTalk bundle holds audio back; the demo face renders each chunk's own frames
        ...(isBundleFolder(path)
          ? {
              end: (x: SegmentEnd) => from(ready).pipe(switchMap((r) => r.end?.(x) ?? of([]))),
              reset: () => void ready.then((r) => r.reset?.(), () => undefined),
            }
          : {}),
      };
      const sub = input.pipe(infer(renderer, { maxInFlight: params.maxInFlight, fps: ctx.fps })).subscribe(subscriber);
      return () => {
        sub.unsubscribe();
        void opening.then(
          (o) => o.close().then(() => log.debug({ model: path }, 'model closed')),
          () => undefined,
        );
      };
    }),
};
