/**
 * chunk: re-blocks audio into chunks of exactly `size` samples per channel, as a model's fixed input
 * window needs (default 1280 = 80 ms at 16 kHz = two 25 fps frames).
 *
 * ```
 * size = 4; the digit is samples per channel; S: segment-end, i: idle tick, F: flush
 * input:  -3--6----i--2--S---2--F---
 * output: ----(44)-i-----(pS)---F---   (p: 3 samples + 1 of zero padding; the 2 before F are dropped)
 * ```
 *
 * - Remainders carry across input chunk boundaries; each output chunk's pts is the pts of its first sample.
 * - At a segment-end the remainder is padded with zeros to `size` and emitted with `padding` = the
 *   padded samples per channel, then the segment-end is forwarded. A segment that is an exact multiple
 *   of `size` gets no padded chunk. Padding marked upstream keeps its place.
 * - A chunk of another segment, rate or channel count ends the block in progress the same way (padded),
 *   and so does completion of the input.
 * - Flush drops the remainder and is forwarded at once. Idle ticks and all other events pass through in order.
 * - Bounded: holds at most `size - 1` samples per channel (strategy: wait, until the block is full).
 */
import { Observable, type OperatorFunction, type Subscriber } from 'rxjs';
import { z } from 'zod';
import { audio, chunkFrames, type AudioChunk, type PipelineEvent } from '../events.ts';
import { MIN_SAMPLE_RATE } from '../dsp/audio-limits.ts';
import type { OperatorElement } from '../pipelines/element.ts';
import { parseParams } from '../pipelines/params.ts';

/** Largest chunk, samples per channel (65.5 s at 16 kHz). */
const MAX_CHUNK = 1 << 20;

const chunkParams = z
  .object({
    size: z
      .number()
      .int()
      .positive()
      .max(MAX_CHUNK)
      .default(1280)
      .describe(`samples per channel in every output chunk (default 1280: 80 ms at 16 kHz, two 25 fps frames; at most ${MAX_CHUNK})`),
  })
  .strict();

export type ChunkOptions = z.input<typeof chunkParams>;

/** The block being filled, for one segment at one format. */
class Block {
  /** Allocated when the first sample of a block arrives. */
  private samples: Float32Array | null = null;
  private filled = 0;
  private pts = 0;
  /** Samples per channel of this format taken before the block's first sample. */
  private start = 0;
  /** Index (same count as `start`) from which samples are padding marked upstream; Infinity: none. */
  private padFrom = Infinity;

  constructor(
    private readonly size: number,
    readonly first: AudioChunk,
  ) {}

  accepts(a: AudioChunk): boolean {
    return a.segment === this.first.segment && a.sampleRate === this.first.sampleRate && a.channels === this.first.channels;
  }

  /** Takes `a`, calling `emit` with every block it completes. */
  push(a: AudioChunk, emit: (a: AudioChunk) => void): void {
    const ch = a.channels;
    const frames = chunkFrames(a);
    this.padFrom = a.padding ? this.start + this.filled + frames - a.padding : Infinity;
    let at = 0;
    while (at < frames) {
      if (this.samples === null) {
        this.samples = new Float32Array(this.size * ch);
        this.pts = a.pts + at / a.sampleRate;
      }
      const n = Math.min(this.size - this.filled, frames - at);
      this.samples.set(a.samples.subarray(at * ch, (at + n) * ch), this.filled * ch);
      this.filled += n;
      at += n;
      if (this.filled === this.size) emit(this.take(this.samples));
    }
  }

  /** The remainder, zero-padded to `size`, or null when nothing is held. */
  finish(): AudioChunk | null {
    if (this.samples === null) return null;
    this.padFrom = Math.min(this.padFrom, this.start + this.filled);
    return this.take(this.samples);
  }

  private take(samples: Float32Array): AudioChunk {
    const end = this.start + this.size;
    const padding = Math.max(0, end - Math.max(this.start, this.padFrom));
    const out = audio(samples, this.first.sampleRate, this.first.channels, this.pts, this.first.segment, padding);
    this.samples = null;
    this.filled = 0;
    this.start = end;
    return out;
  }
}

export function chunk(options: ChunkOptions = {}): OperatorFunction<PipelineEvent, PipelineEvent> {
  const { size } = parseParams('chunk', chunkParams, options);

  return (input) =>
    new Observable<PipelineEvent>((subscriber: Subscriber<PipelineEvent>) => {
      let block: Block | null = null;
      const emit = (a: AudioChunk): void => subscriber.next(a);
      const end = (): void => {
        const rest = block?.finish() ?? null;
        if (rest !== null) emit(rest);
        block = null;
      };
      return input.subscribe({
        next: (e) => {
          if (e.type === 'audio') {
            if (block !== null && !block.accepts(e)) end();
            block ??= new Block(size, e);
            block.push(e, emit);
          } else if (e.type === 'segment-end') {
            end();
            subscriber.next(e);
          } else if (e.type === 'flush') {
            block = null;
            subscriber.next(e);
          } else subscriber.next(e);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          end();
          subscriber.complete();
        },
      });
    });
}

export const chunkElement: OperatorElement<typeof chunkParams> = {
  role: 'operator',
  name: 'chunk',
  summary: 're-block audio into chunks of exactly `size` samples per channel, zero-padding the end of each segment',
  params: chunkParams,
  caps: ({ size }, input) => (input.kind === 'audio' ? { ...input, chunk: size } : `chunk takes audio, got ${input.kind}`),
  // one whole chunk; at a rate known only at run time, at the lowest rate taken (the longest)
  holds: ({ size }, input) => (input.kind === 'audio' ? size / (input.sampleRate ?? MIN_SAMPLE_RATE) : 0),
  create: (p) => chunk(p),
};
