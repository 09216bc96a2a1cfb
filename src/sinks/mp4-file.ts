/**
 * mp4-file: writes av frames to an MP4 file (H.264 + AAC) through Debian's `ffmpeg`.
 *
 *   input:   --av--av--av--flush--av--|
 *   file:    (ffmpeg started on the first av) ........ renamed onto `path` at |
 *   output:  --p1--p2--p3---------p4--|          p = { frames, seconds } written so far
 *
 * ffmpeg starts on the first av frame, which fixes the frame size and the audio format (every later
 * frame must match). Video is encoded at `ctx.fps` with a constant frame rate; audio keeps the source
 * sample rate and channel count and is never resampled or cut, so both tracks last frames / fps.
 * Each frame's budget (the seconds of its audio) is released once ffmpeg's pipes took it.
 *
 * Buffer: frames handed to ffmpeg but not yet taken by its pipes, bounded by `ctx.budget` (strategy:
 * wait) since they are released only when taken. A flush resets the budget; frames already received
 * are still written (a file keeps what was rendered), but no longer count against the budget. Events
 * other than av and flush are ignored.
 *
 * The output completes once the file is complete and renamed onto `path`. On an error (in the input,
 * from ffmpeg, a frame that does not match the first, or a `path` that is not a regular file or absent:
 * a directory, FIFO or device is never replaced), on unsubscribe before completion, or when the input
 * ends without any frame, ffmpeg is killed and no file is left behind.
 */
import { Observable } from 'rxjs';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { audioDuration, type AvFrame } from '../events.ts';
import { Mp4Encoder } from '../media/mp4-encoder.ts';
import type { SinkElement, SinkProgress } from '../pipelines/element.ts';
import { acceptsAv } from './accepts-av.ts';

const presets = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'] as const;

const params = z
  .object({
    path: z.string().min(1).describe('Output file (.mp4). Written to a hidden temporary file beside it and renamed when complete.'),
    crf: z
      .number()
      .int()
      .min(0)
      .max(51)
      .default(20)
      .describe('x264 constant rate factor, 0 (lossless) to 51; lower is better quality and bigger files. Default 20.'),
    preset: z.enum(presets).default('veryfast').describe('x264 preset: slower presets make smaller files for more CPU. Default veryfast.'),
    audioBitrate: z
      .string()
      .regex(/^[1-9]\d*k?$/, 'bits per second, e.g. 256k or 128000')
      .default('256k')
      .describe('AAC bitrate in bits per second, k = 1000 (default 256k). The source sample rate and channel count are kept.'),
  })
  .strict();

type Params = z.output<typeof params>;

/** What the first frame fixed; every later frame must match it. */
interface StreamFormat {
  readonly width: number;
  readonly height: number;
  readonly sampleRate: number;
  readonly channels: number;
}

export const mp4File: SinkElement<typeof params> = {
  role: 'sink',
  name: 'mp4-file',
  summary: 'Write av frames to an MP4 file (H.264 + AAC at the source sample rate) with ffmpeg.',
  params,
  accepts: (_params, input) => acceptsAv(input),
  create: (p: Params, ctx) => (input) =>
    new Observable<SinkProgress>((subscriber) => {
      let encoder: Mp4Encoder | undefined;
      let format: StreamFormat | undefined;
      let received = 0;
      let written = 0;
      let finished = false;
      /** Bumped by each flush: frames received before it no longer count against the budget. */
      let generation = 0;

      const fail = (e: unknown): void => {
        encoder?.abort();
        subscriber.error(e);
      };

      const write = (frame: AvFrame): void => {
        const f = frameFormat(frame);
        format ??= f;
        const problem = mismatch(frame, f, format, received);
        if (problem) {
          fail(new InputError('mp4-file', problem));
          return;
        }
        if (!encoder) {
          try {
            encoder = new Mp4Encoder(p.path, { ...f, fps: ctx.fps, crf: p.crf, preset: p.preset, audioBitrate: p.audioBitrate });
          } catch (e) {
            fail(e);
            return;
          }
          encoder.exited.catch(fail);
          ctx.log.debug({ path: p.path, ...f, fps: ctx.fps }, 'ffmpeg started');
        }
        received++;
        const frameGeneration = generation;
        const seconds = audioDuration(frame.audio);
        encoder.write(frame.video.data, frame.audio.samples, () => {
          if (subscriber.closed) return;
          if (frameGeneration === generation) ctx.budget.release(seconds);
          written++;
          subscriber.next({ frames: written, seconds: written / ctx.fps });
        });
      };

      const subscription = input.subscribe({
        next: (e) => {
          if (subscriber.closed) return;
          if (e.type === 'av') write(e);
          else if (e.type === 'flush') {
            generation++;
            ctx.budget.reset();
          }
        },
        error: fail,
        complete: () => {
          if (!encoder) {
            fail(new InputError(p.path, 'the input ended before any av frame; no file written'));
            return;
          }
          encoder.finish().then(() => {
            finished = true;
            ctx.log.info({ path: p.path, frames: written, seconds: written / ctx.fps }, 'mp4 written');
            subscriber.complete();
          }, fail);
        },
      });

      return () => {
        subscription.unsubscribe();
        if (!finished) encoder?.abort();
      };
    }),
};

const frameFormat = (f: AvFrame): StreamFormat => ({
  width: f.video.width,
  height: f.video.height,
  sampleRate: f.audio.sampleRate,
  channels: f.audio.channels,
});

/** Why frame number `n` cannot go into the stream the first frame started, or null. */
const mismatch = (frame: AvFrame, f: StreamFormat, first: StreamFormat, n: number): string | null => {
  if (frame.video.data.length !== f.width * f.height * 4) {
    return `frame ${n}: ${frame.video.data.length} bytes of video, expected ${f.width}x${f.height} RGBA (${f.width * f.height * 4})`;
  }
  if (frame.audio.samples.length % f.channels !== 0) {
    return `frame ${n}: ${frame.audio.samples.length} audio samples is not a whole number of ${f.channels}-channel frames`;
  }
  if (f.width !== first.width || f.height !== first.height) {
    return `frame ${n} is ${f.width}x${f.height}, but the stream started at ${first.width}x${first.height}`;
  }
  if (f.sampleRate !== first.sampleRate || f.channels !== first.channels) {
    return `frame ${n} has ${f.sampleRate} Hz x${f.channels} audio, but the stream started with ${first.sampleRate} Hz x${first.channels}`;
  }
  return null;
};
