/**
 * A custom operator written against the public API: scales the samples of every audio chunk by
 * `factor` and passes every other event (segment ends, idle ticks, flushes, frames) through in order.
 *
 *   input:   -a--S--F-|      (a: audio, S: segment-end, F: flush)
 *   gain(2): -A--S--F-|      (A: a with every sample doubled)
 */
import { map, type OperatorFunction } from 'rxjs';
import type { PipelineEvent } from 'synctalk-live';

export const gain = (factor: number): OperatorFunction<PipelineEvent, PipelineEvent> =>
  map((e) => (e.type === 'audio' ? { ...e, samples: e.samples.map((s) => s * factor) } : e));
