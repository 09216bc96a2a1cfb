/**
 * The contract every pipeline element (source, operator, sink) fulfils, and the caps
 * (stream formats) checked when a pipeline is built, GStreamer-style.
 */
import type { Observable, SchedulerLike } from 'rxjs';
import type { z } from 'zod';
import type { PipelineEvent } from '../events.ts';
import type { AudioBudget } from '../flow/audio-budget.ts';
import type { Logger } from '../log.ts';
import type { ModelSource } from '../models/model-cache.ts';

/** What flows out of an element, as far as the build-time check needs to know. */
export type Caps =
  | {
      readonly kind: 'audio';
      /** Hz, or null when only known at run time (a WAV source before its header is read). */
      readonly sampleRate: number | null;
      readonly channels: number | null;
      /** Samples per channel in every chunk, or null for any size. */
      readonly chunk: number | null;
    }
  | { readonly kind: 'video'; readonly width: number; readonly height: number }
  | { readonly kind: 'av'; readonly width: number; readonly height: number };

/** Everything an element may use at run time. One per pipeline run (one per session when live). */
export interface PipelineContext {
  /** Output frame rate, frames per second (default 25). */
  readonly fps: number;
  /** The bound on audio in flight (strategy: wait). */
  readonly budget: AudioBudget;
  /** The source's own events (audio at its original rate and channels, segment ends, flushes), shared. */
  readonly sourceEvents: Observable<PipelineEvent>;
  readonly log: Logger;
  /** For timers (idle ticks); a TestScheduler in marble tests. Undefined means RxJS's default. */
  readonly scheduler?: SchedulerLike;
  /**
   * Where model elements get their graphs: a live worker's ModelCache or model server, shared by its sessions.
   * Undefined: each element loads its own for this run (privateModels).
   */
  readonly models?: ModelSource;
  /** Told of every render of a model element: its wall time in ms (queueing included) and the frames it gave (metrics). */
  readonly onRender?: (ms: number, frames: number) => void;
}

export type EventOperator = (input: Observable<PipelineEvent>) => Observable<PipelineEvent>;

/** Progress a sink reports as it writes. */
export interface SinkProgress {
  readonly frames: number;
  /** Seconds of media written. */
  readonly seconds: number;
}

interface ElementBase<P extends z.ZodTypeAny> {
  /** The name used in pipeline specs, kebab-case. */
  readonly name: string;
  /** One line for `--help` and error messages. */
  readonly summary: string;
  /**
   * Parameters, with defaults and units documented in their `describe()`: a `z.object`. Specs and code parse it
   * with `parseParams` (pipelines/params.ts), which rejects keys it does not declare.
   */
  readonly params: P;
}

export interface SourceElement<P extends z.ZodTypeAny = z.ZodTypeAny> extends ElementBase<P> {
  readonly role: 'source';
  readonly caps: (params: z.output<P>) => Caps;
  /** Seconds of audio it reserves from the budget at once (its chunk), for the budget check; default 0. */
  readonly holds?: (params: z.output<P>) => number;
  readonly create: (params: z.output<P>, ctx: PipelineContext) => Observable<PipelineEvent>;
}

export interface OperatorElement<P extends z.ZodTypeAny = z.ZodTypeAny> extends ElementBase<P> {
  readonly role: 'operator';
  /** Output caps for these input caps, or a string naming why the input cannot be accepted. */
  readonly caps: (params: z.output<P>, input: Caps, fps: number) => Caps | string;
  /**
   * Seconds of input audio it may take in before it emits what covers the first of them (a chunk to fill, a
   * filter's or a model's look-ahead), at most, for these input caps; default 0. The spec check requires a budget
   * of at least the sum of these along the pipeline plus one frame: a smaller one would stall the pipeline.
   */
  readonly holds?: (params: z.output<P>, input: Caps) => number;
  readonly create: (params: z.output<P>, ctx: PipelineContext) => EventOperator;
}

export interface SinkElement<P extends z.ZodTypeAny = z.ZodTypeAny> extends ElementBase<P> {
  readonly role: 'sink';
  /** null when the input is accepted, else why not. */
  readonly accepts: (params: z.output<P>, input: Caps) => string | null;
  /** Subscribing writes; completes when everything is written (file closed, tracks flushed). */
  readonly create: (params: z.output<P>, ctx: PipelineContext) => (input: Observable<PipelineEvent>) => Observable<SinkProgress>;
}

export type Element = SourceElement | OperatorElement | SinkElement;
