/**
 * resample: converts audio to `rate` Hz (and to mono when `channels` is 1) with our own anti-aliased
 * resampler (src/dsp/resampler.ts: Kaiser-windowed sinc, polyphase, any ratio of whole-Hz rates).
 *
 * ```
 * input:  -a---b---i---S---c---F---      (a, b, c: 44.1 kHz audio; S: segment-end; i: idle; F: flush)
 * output: -a'--b'--i---(tS)c'--F---      (a', b', c': 16 kHz; t: the segment's tail; c's state dropped at F)
 * ```
 *
 * - Zero delay: output sample n of a segment is the input at time n / rate from the segment's first
 *   sample, and a segment of N input samples gives round(N * rate / inRate) output samples. Each chunk
 *   holds what the filter's look-ahead (under 2 ms of input) allows; the rest, the tail, comes out when
 *   the segment ends, before its segment-end is forwarded.
 * - Each output chunk's pts is the time of its first sample: the segment's first pts + n / rate.
 * - A chunk of another segment, rate or channel count ends the stream in progress (its tail first).
 *   Completion of the input ends it too.
 * - Padding (samples marked as padding by an upstream padded flush) keeps its place in time.
 * - Flush drops the state and is forwarded at once. Other events pass through in order.
 * - Input already at `rate` passes through untouched (only downmixed when asked to).
 * - Bounded: holds at most the filter's length of input per stream (strategy: wait, for its look-ahead).
 */
import { Observable, type OperatorFunction, type Subscriber } from 'rxjs';
import { z } from 'zod';
import { MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, sampleRateProblem } from '../dsp/audio-limits.ts';
import { designFilter, lookaheadSeconds, StreamResampler, type PolyphaseFilter } from '../dsp/resampler.ts';
import { InputError } from '../errors.ts';
import { audio, chunkFrames, type AudioChunk, type PipelineEvent } from '../events.ts';
import type { OperatorElement } from '../pipelines/element.ts';
import { parseParams } from '../pipelines/params.ts';

const resampleParams = z
  .object({
    rate: z
      .number()
      .int()
      .min(MIN_SAMPLE_RATE)
      .max(MAX_SAMPLE_RATE)
      .default(16000)
      .describe(`output sample rate, Hz (default 16000; ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE})`),
    channels: z
      .number()
      .int()
      .positive()
      .default(1)
      .describe('output channels (default 1): 1 averages the input channels to mono; any other count must equal the input'),
  })
  .strict();

export type ResampleOptions = z.input<typeof resampleParams>;

/** The stream of one segment at one input format, in conversion. */
class Stream {
  private readonly resampler: StreamResampler;
  /** Output sample index from which the samples are padding (Infinity: none). */
  private padFrom = Infinity;

  constructor(
    filter: PolyphaseFilter,
    private readonly first: AudioChunk,
    private readonly channels: number,
  ) {
    this.resampler = new StreamResampler(filter, first.channels, channels);
  }

  accepts(a: AudioChunk): boolean {
    return a.segment === this.first.segment && a.sampleRate === this.first.sampleRate && a.channels === this.first.channels;
  }

  push(a: AudioChunk): AudioChunk | null {
    if (a.padding) {
      const inStart = this.resampler.received + chunkFrames(a) - a.padding;
      this.padFrom = Math.ceil((inStart * this.resampler.filter.outRate) / a.sampleRate);
    } else {
      this.padFrom = Infinity;
    }
    return this.wrap(this.resampler.push(a.samples));
  }

  finish(): AudioChunk | null {
    return this.wrap(this.resampler.finish());
  }

  private wrap(samples: Float32Array): AudioChunk | null {
    if (samples.length === 0) return null;
    const rate = this.resampler.filter.outRate;
    const end = this.resampler.produced;
    const start = end - samples.length / this.channels;
    const padding = Math.max(0, end - Math.max(start, this.padFrom));
    return audio(samples, rate, this.channels, this.first.pts + start / rate, this.first.segment, padding);
  }
}

/** Averages interleaved channels into one. */
function downmix(a: AudioChunk): AudioChunk {
  const frames = chunkFrames(a);
  const out = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let s = 0;
    for (let c = 0; c < a.channels; c++) s += a.samples[i * a.channels + c];
    out[i] = s / a.channels;
  }
  return audio(out, a.sampleRate, 1, a.pts, a.segment, a.padding);
}

export function resample(options: ResampleOptions = {}): OperatorFunction<PipelineEvent, PipelineEvent> {
  const { rate, channels } = parseParams('resample', resampleParams, options);
  const filters = new Map<number, PolyphaseFilter>();
  const filterFrom = (inRate: number): PolyphaseFilter => {
    let f = filters.get(inRate);
    if (f === undefined) {
      f = designFilter(inRate, rate);
      filters.set(inRate, f);
    }
    return f;
  };

  return (input) =>
    new Observable<PipelineEvent>((subscriber: Subscriber<PipelineEvent>) => {
      let stream: Stream | null = null;
      const emit = (a: AudioChunk | null): void => {
        if (a !== null) subscriber.next(a);
      };
      const end = (): void => {
        if (stream !== null) emit(stream.finish());
        stream = null;
      };
      const onAudio = (a: AudioChunk): void => {
        if (channels !== 1 && a.channels !== channels) {
          throw new InputError('resample', `cannot make ${channels} channels of ${a.channels}-channel audio (channels=1 downmixes; other counts must match)`);
        }
        const badRate = sampleRateProblem(a.sampleRate);
        if (badRate !== null) throw new InputError('resample', `input ${badRate}`);
        if (stream !== null && !stream.accepts(a)) end();
        if (a.sampleRate === rate) {
          emit(a.channels === channels ? a : downmix(a));
          return;
        }
        stream ??= new Stream(filterFrom(a.sampleRate), a, channels);
        emit(stream.push(a));
      };
      return input.subscribe({
        next: (e) => {
          try {
            if (e.type === 'audio') onAudio(e);
            else if (e.type === 'segment-end') {
              end();
              subscriber.next(e);
            } else if (e.type === 'flush') {
              stream = null;
              subscriber.next(e);
            } else subscriber.next(e);
          } catch (err: unknown) {
            subscriber.error(err);
          }
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          end();
          subscriber.complete();
        },
      });
    });
}

export const resampleElement: OperatorElement<typeof resampleParams> = {
  role: 'operator',
  name: 'resample',
  summary: 'convert audio to another sample rate (anti-aliased, zero delay), downmixing to mono by default',
  params: resampleParams,
  caps: ({ rate, channels }, input) => {
    if (input.kind !== 'audio') return `resample takes audio, got ${input.kind}`;
    if (channels !== 1 && input.channels !== null && input.channels !== channels) {
      return `cannot make ${channels} channels of ${input.channels}-channel audio (channels=1 downmixes; other counts must match)`;
    }
    return { kind: 'audio', sampleRate: rate, channels, chunk: input.sampleRate === rate ? input.chunk : null };
  },
  // the filter's look-ahead; for an input rate known only at run time, at the lowest rate taken (the longest)
  holds: ({ rate }, input) => (input.kind === 'audio' ? lookaheadSeconds(input.sampleRate ?? MIN_SAMPLE_RATE, rate) : 0),
  create: (p) => resample(p),
};
