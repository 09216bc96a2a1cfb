/**
 * infer: audio chunks and idle ticks in, rendered video frames out, through a FrameRenderer (a
 * model), with up to `maxInFlight` renders running at once and every output in input order.
 */
import { availableParallelism } from 'node:os';
import { defer, from, Observable, of, switchMap, tap, type ObservableInput, type OperatorFunction, type Subscriber, type Subscription } from 'rxjs';
import { z } from 'zod';
import type { AudioChunk, IdleTick, PipelineEvent, SegmentEnd, VideoFrame } from '../events.ts';
import type { FrameRenderer, RendererFormat } from '../models/frame-renderer.ts';
import { DEFAULT_PROVIDERS } from '../models/model-runner.ts';
import type { Caps, OperatorElement } from '../pipelines/element.ts';
import { modelPath, openRenderer, rendererFormat } from '../renderers/kinds.ts';

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
      const run = new InferRun(renderer, maxInFlight, fps, subscriber);
      const sub = source.subscribe({
        next: (event) => run.next(event),
        error: (e: unknown) => subscriber.error(e),
        complete: () => run.complete(),
      });
      return () => {
        sub.unsubscribe();
        run.dropAll();
      };
    });
}

type RenderEntry = Extract<Entry, { kind: 'render' }>;

/** One subscription of `infer`: the entries in input order, the renders in flight, the frame numbering. */
class InferRun {
  private queue: Entry[] = [];
  private inFlight = 0;
  private sourceDone = false;
  private speech: { segment: number; next: number } | null = null;
  /** The segment of the last audio queued and its first chunk's pts. */
  private queued: { segment: number; base: number } | null = null;
  private idleNext = 0;
  private flushes = 0;
  private pumping = false;
  private again = false;

  constructor(
    private readonly renderer: FrameRenderer,
    private readonly maxInFlight: number,
    private readonly fps: number,
    private readonly out: Subscriber<PipelineEvent>,
  ) {}

  next(event: PipelineEvent): void {
    if (event.type === 'flush') this.flush(event);
    else {
      this.enqueue(event);
      this.pump();
    }
  }

  complete(): void {
    this.sourceDone = true;
    this.pump();
  }

  /** Drops every queued entry and closes the renders in flight. */
  dropAll(): void {
    for (const entry of this.queue) if (entry.kind === 'render') entry.sub?.unsubscribe();
    this.queue = [];
    this.inFlight = 0;
  }

  /** Overtakes: forwarded at once, the queue and the renders dropped, numbering and the renderer reset. */
  private flush(event: PipelineEvent): void {
    this.flushes++;
    this.dropAll();
    this.speech = null;
    this.queued = null;
    this.idleNext = 0;
    this.renderer.reset?.();
    this.out.next(event);
  }

  private enqueue(event: PipelineEvent): void {
    if (event.type === 'audio' && this.queued?.segment !== event.segment) this.queued = { segment: event.segment, base: event.pts };
    const render = (input: RenderInput): RenderEntry => ({
      kind: 'render',
      input,
      base: input.type !== 'idle' && this.queued?.segment === input.segment ? this.queued.base : input.pts,
      frames: null,
      sub: null,
    });
    if (event.type === 'audio' || event.type === 'idle') this.queue.push(render(event));
    else if (event.type === 'segment-end' && this.renderer.end !== undefined) this.queue.push(render(event), { kind: 'event', event });
    else this.queue.push({ kind: 'event', event });
  }

  private frameOf(entry: RenderEntry, data: Uint8Array, k: number): VideoFrame {
    const { input } = entry;
    const { renderer, fps } = this;
    const base = { type: 'video', width: renderer.width, height: renderer.height, data } as const;
    if (input.type === 'idle') return { ...base, pts: input.pts + k / fps, segment: null, index: this.idleNext++ };
    if (this.speech?.segment !== input.segment) this.speech = { segment: input.segment, next: 0 };
    this.idleNext = 0;
    const index = this.speech.next++;
    const pts = renderer.end === undefined && input.type === 'audio' ? input.pts + k / fps : entry.base + index / fps;
    return { ...base, pts, segment: input.segment, index };
  }

  private start(entry: RenderEntry): void {
    this.inFlight++;
    let rendered: ObservableInput<Uint8Array[]>;
    try {
      const { input } = entry;
      rendered = input.type === 'segment-end' ? (this.renderer.end?.(input) ?? []) : this.renderer.render(input);
    } catch (e) {
      this.out.error(e);
      return;
    }
    entry.sub = from(rendered).subscribe({
      next: (frames) => {
        entry.frames ??= frames;
      },
      error: (e: unknown) => this.out.error(e),
      complete: () => {
        entry.frames ??= [];
        this.inFlight--;
        this.pump();
      },
    });
  }

  /**
   * Emits the ready head of the queue and starts renders while slots are free. Re-entrant calls (a render
   * completing synchronously, a downstream reaction) only ask for another pass.
   */
  private pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    do {
      this.again = false;
      this.emitReady();
      this.startRenders();
    } while (this.again);
    this.pumping = false;
    if (this.sourceDone && this.queue.length === 0) this.out.complete();
  }

  private emitReady(): void {
    while (this.queue.length > 0 && !this.out.closed) {
      const head = this.queue[0];
      if (head.kind === 'render' && head.frames === null) break;
      this.queue.shift();
      if (head.kind === 'event') this.out.next(head.event);
      else {
        // a flush arriving while these frames go out (a synchronous loop downstream) stops them too
        const at = this.flushes;
        for (const [k, data] of (head.frames ?? []).entries()) {
          if (this.flushes !== at) break;
          this.out.next(this.frameOf(head, data, k));
        }
      }
    }
  }

  private startRenders(): void {
    for (const entry of this.queue) {
      if (this.inFlight >= this.maxInFlight || this.out.closed) break;
      if (entry.kind === 'render' && entry.sub === null && entry.frames === null) this.start(entry);
    }
  }
}

const providerName = z.enum(['cuda', 'webgpu', 'cpu']);

/** The machine's cores: ORT threads per operator beyond them only oversubscribe it (and a huge count never starts). */
const CORES = availableParallelism();

export const inferParams = z
  .object({
    model: z
      .string()
      .min(1)
      .default('demo')
      .describe(
        "'demo' (default) = the bundled models/demo-face.onnx; a path to an ONNX model with the demo-face inputs and output; or a SyncTalk avatar bundle folder (docs/synctalk-bundle.md); the renderer kinds: src/renderers/kinds.ts",
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
  })
  .strict();

export type InferParams = z.output<typeof inferParams>;

/**
 * Build-time check of infer's input against the format of the renderer `params.model` names (renderers/kinds.ts):
 * its rate, channels and chunk size (the demo face: 16 kHz mono chunks of 1280 samples; a SyncTalk bundle: 16 kHz
 * mono, any chunk size), and the pipeline's fps. Throws ModelError for a malformed model (a bundle's manifest).
 */
export function inferCaps(params: InferParams, input: Caps, fps: number): Caps | string {
  const format = rendererFormat(params);
  const { sampleRate, channels, chunk } = format;
  if (input.kind !== 'audio') return `needs audio input; got ${input.kind}`;
  if (input.sampleRate !== sampleRate) {
    return `needs audio at ${sampleRate} Hz; got ${input.sampleRate === null ? 'an unknown rate' : `${input.sampleRate} Hz`} (add a resample element)`;
  }
  if (input.channels !== channels) {
    return `needs ${channels === 1 ? 'mono' : `${channels}-channel`} audio; got ${input.channels ?? 'an unknown number of'} channels`;
  }
  if (chunk !== null && input.chunk !== chunk) {
    return `needs chunks of ${chunk} samples (${(chunk / sampleRate) * 1000} ms); got ${input.chunk === null ? 'any size' : input.chunk} (add a chunk element)`;
  }
  if (fps !== format.fps) {
    return `renders ${format.fps} fps (${sampleRate / format.fps} samples at ${sampleRate / 1000} kHz per frame); the pipeline runs at ${fps} fps`;
  }
  return { kind: 'video', width: format.width, height: format.height };
}

/**
 * A FrameRenderer usable at once for the one `ready` resolves with: each render waits for it. It has `end` and
 * `reset` when the format holds audio back (lookahead). `onRender` is told the wall time of every render (from the
 * moment it starts, the model round trip and its queueing included) and the frames it gave.
 */
function whenReady(format: RendererFormat, ready: Promise<FrameRenderer>, onRender?: (ms: number, frames: number) => void): FrameRenderer {
  const timed = (run: (r: FrameRenderer) => ObservableInput<Uint8Array[]>) =>
    from(ready).pipe(
      switchMap((r) =>
        defer(() => {
          const started = performance.now();
          return from(run(r)).pipe(tap((frames) => onRender?.(performance.now() - started, frames.length)));
        }),
      ),
    );
  const { width, height } = format;
  if (format.lookahead === 0) return { width, height, render: (x) => timed((r) => r.render(x)) };
  return {
    width,
    height,
    render: (x) => timed((r) => r.render(x)),
    end: (x: SegmentEnd) => timed((r) => (r.end === undefined ? of([]) : r.end(x))),
    reset: () => void ready.then((r) => r.reset?.(), () => undefined),
  };
}

/**
 * The `infer` element: renders 16 kHz mono audio chunks and idle ticks into RGBA frames with the renderer the
 * `model` parameter names (renderers/kinds.ts): the demo-face model (chunks of 1280 samples, 80 ms, two 25 fps frames
 * each; 256x256) or a SyncTalk avatar bundle (any chunk size; the bundle's frame size; `lookahead` sets its latency,
 * see src/synctalk/renderer.ts).
 *
 * The model is loaded, in worker threads, when the pipeline is subscribed, and closed when it is unsubscribed; input
 * arriving meanwhile waits in the queue. Its graphs come from the context's `models` (a live worker's shared cache
 * or model server; default: loaded for this run alone), and every render is reported to the context's `onRender`.
 */
export const inferElement: OperatorElement<typeof inferParams> = {
  name: 'infer',
  role: 'operator',
  summary: 'render audio chunks and idle ticks into video frames with an ONNX model (default: the demo face) or a SyncTalk avatar bundle',
  params: inferParams,
  caps: inferCaps,
  // a renderer with lookahead waits for that much audio after each frame's start; the demo face renders each chunk as it comes
  holds: (params) => rendererFormat(params).lookahead,
  create: (params, ctx) => (input) =>
    new Observable<PipelineEvent>((subscriber) => {
      const { log } = ctx;
      const opening = openRenderer(params, { log, models: ctx.models });
      const ready = opening.then((o) => o.renderer);
      ready.catch((e: unknown) => subscriber.error(e));
      const renderer = whenReady(rendererFormat(params), ready, ctx.onRender);
      const sub = input.pipe(infer(renderer, { maxInFlight: params.maxInFlight, fps: ctx.fps })).subscribe(subscriber);
      return () => {
        sub.unsubscribe();
        void opening.then(
          (o) => o.close().then(() => log.debug({ model: modelPath(params.model) }, 'model closed')),
          () => undefined,
        );
      };
    }),
};
