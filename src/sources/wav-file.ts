/**
 * wavFile: a WAV file as one speech segment of audio events, paced by the audio budget (strategy: wait).
 *
 *   budget:  reserve ─ok─ reserve ─ok─ reserve ─(full: waits for a sink's release)─ok─ ...
 *   output:  ──a(0)──────a(0.02)──────a(0.04)─────────────────────────────────────...─e(0, T)|
 *
 * On subscribe it opens the file (see readWav for the formats, the non-finite policy and the errors) and, for each
 * chunk of `chunkMs` milliseconds (the last one may be shorter), `await budget.reserve(seconds)` then emits
 * `audio(samples, rate, channels, pts, 0)`: segment 0, `pts` in seconds from 0, the file's own rate and channels.
 * At the end it emits `segmentEnd(0, T)` (T = the file's duration in seconds) and completes. Bad input goes to the
 * error channel as an InputError. Unsubscribing closes the file; a reservation granted after unsubscribing is
 * released at once. Warnings (replaced NaN/Inf samples, clipped floats, a trailing partial frame) go to `log.warn`.
 */
import { Observable } from 'rxjs';
import { z } from 'zod';
import { audio, segmentEnd, type PipelineEvent } from '../events.ts';
import type { AudioBudget } from '../flow/audio-budget.ts';
import type { Logger } from '../log.ts';
import type { SourceElement } from '../pipelines/element.ts';
import { readWav, type WavFormat } from './wav-reader.ts';

export interface WavFileOptions {
  /** Milliseconds of audio per emitted chunk (default 20); rounded to whole frames, at least one. */
  readonly chunkMs?: number;
  /** NaN/Inf float samples: 'silence' (default) replaces them with 0 and warns once, 'reject' errors. */
  readonly nonFinite?: 'silence' | 'reject';
  /** Each chunk's duration is reserved here before it is emitted. */
  readonly budget: AudioBudget;
  readonly log: Logger;
}

/** Frames per chunk of `chunkMs` milliseconds at the file's rate. */
const framesPerChunk = (chunkMs: number) => (format: WavFormat): number => Math.max(1, Math.round((format.sampleRate * chunkMs) / 1000));

export function wavFile(path: string, opts: WavFileOptions): Observable<PipelineEvent> {
  const { chunkMs = 20, nonFinite = 'silence', budget, log } = opts;
  return new Observable<PipelineEvent>((subscriber) => {
    const blocks = readWav(path, {
      blockFrames: framesPerChunk(chunkMs),
      nonFinite,
      onWarning: (message) => log.warn({ path }, message),
    });
    const run = async (): Promise<void> => {
      let frames = 0;
      let sampleRate = 1;
      for await (const { format, samples } of blocks) {
        sampleRate = format.sampleRate;
        const n = samples.length / format.channels;
        const seconds = n / sampleRate;
        if (subscriber.closed) return;
        await budget.reserve(seconds);
        if (subscriber.closed) {
          budget.release(seconds);
          return;
        }
        subscriber.next(audio(samples, sampleRate, format.channels, frames / sampleRate, 0));
        frames += n;
      }
      subscriber.next(segmentEnd(0, frames / sampleRate));
      subscriber.complete();
    };
    run().catch((e: unknown) => subscriber.error(e));
    return () => {
      blocks.return(undefined).catch((e: unknown) => log.warn({ path, err: e }, 'closing the WAV file failed'));
    };
  });
}

const params = z
  .object({
    path: z.string().min(1).describe('the WAV file to read'),
    chunkMs: z.number().positive().max(1000).default(20).describe('milliseconds of audio per emitted chunk (default 20; at most 1000)'),
    nonFinite: z
      .enum(['silence', 'reject'])
      .default('silence')
      .describe("NaN/Inf float samples: 'silence' replaces them with 0 and warns once (default), 'reject' fails"),
  })
  .strict();

/** The `wav-file` source: one WAV file (PCM, float, mu-law, A-law; any rate and channels) as segment 0. */
export const wavFileElement: SourceElement<typeof params> = {
  name: 'wav-file',
  role: 'source',
  summary: 'reads a WAV file (PCM 8-32 bit, float, mu-law, A-law; any rate and channels) as one speech segment',
  params,
  caps: () => ({ kind: 'audio', sampleRate: null, channels: null, chunk: null }),
  holds: (p) => p.chunkMs / 1000,
  create: (p, ctx) => wavFile(p.path, { chunkMs: p.chunkMs, nonFinite: p.nonFinite, budget: ctx.budget, log: ctx.log }),
};
