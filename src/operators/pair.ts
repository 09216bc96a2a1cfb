/**
 * pairWithAudio: zips each video frame with exactly 1/fps seconds of the ORIGINAL audio (the
 * source's own rate and channels, not the model's 16 kHz copy), so audio quality is untouched.
 *
 * ```
 * audio (source): -a----a----a--|S|--        (a: source audio chunks of segment 0, S: its end)
 * input (video):  ------v0---v1--v2--E-      (frames of segment 0, E: segment-end)
 * output:         ------p0---p1--p2--E-      (p_i = v_i + samples [round(i*sr/fps), round((i+1)*sr/fps)))
 * ```
 *
 * - Frame i of a segment takes source samples `[round(i*sr/fps), round((i+1)*sr/fps))` of that
 *   segment, so no sample is duplicated or lost even when sr/fps is not an integer.
 * - A frame whose audio has not arrived yet waits for it; a frame that reaches past the end of the
 *   segment's audio (the padded tail) is completed with silence, marked as `padding` so playback
 *   positions count speech only.
 * - Idle frames (segment null) are paired with silence in the format of the last source audio
 *   (default `idleFormat`, 48 kHz mono, before any audio has been seen).
 * - A flush (from either side) drops the held audio and waiting frames; the input's flush is forwarded.
 * - Bounded by the AudioBudget: the source cannot get more than `budget.capacity` seconds ahead, so
 *   the held audio never exceeds it (strategy: wait, applied at the source).
 */
import { Observable, type OperatorFunction } from 'rxjs';
import { match } from 'ts-pattern';
import { z } from 'zod';
import { MAX_CHANNELS, MAX_SAMPLE_RATE } from '../dsp/audio-limits.ts';
import { audio, type AudioChunk, type AvFrame, type PipelineEvent, type VideoFrame } from '../events.ts';
import type { OperatorElement } from '../pipelines/element.ts';

export interface AudioFormat {
  /** Hz. */
  readonly sampleRate: number;
  readonly channels: number;
}

export interface PairOptions {
  /** Frames per second of the video (default 25). */
  readonly fps?: number;
  /** Format of the silence paired with idle frames before any source audio was seen (default 48 kHz mono). */
  readonly idleFormat?: AudioFormat;
  /** Called with the number of samples per channel left unpaired at a segment's end (more audio than frames). */
  readonly onUnpaired?: (segment: number, samples: number) => void;
}

/** The source audio of one segment, held until its frames take it. */
class SegmentAudio {
  private readonly pieces: Float32Array[] = [];
  /** Samples per channel already dropped from the front of `pieces`. */
  private base = 0;
  /** Samples per channel received so far. */
  received = 0;
  ended = false;

  constructor(
    readonly format: AudioFormat,
    readonly pts: number,
  ) {}

  push(samples: Float32Array): void {
    this.pieces.push(samples);
    this.received += samples.length / this.format.channels;
  }

  /** True when frame range [from, to) can be served now (arrived, or the segment has ended). */
  has(to: number): boolean {
    return this.ended || this.received >= to;
  }

  /** Copy samples [from, to) per channel (silence beyond what was received), and drop everything before `to`. */
  take(from: number, to: number): Float32Array {
    const ch = this.format.channels;
    const out = new Float32Array((to - from) * ch);
    let pos = this.base;
    for (const piece of this.pieces) {
      const frames = piece.length / ch;
      const lo = Math.max(from, pos);
      const hi = Math.min(to, pos + frames);
      if (hi > lo) out.set(piece.subarray((lo - pos) * ch, (hi - pos) * ch), (lo - from) * ch);
      pos += frames;
      if (pos >= to) break;
    }
    this.dropBefore(to);
    return out;
  }

  /** Samples per channel received at or after `from`. */
  remainingAfter(from: number): number {
    return Math.max(0, this.received - from);
  }

  private dropBefore(frame: number): void {
    const ch = this.format.channels;
    while (this.pieces.length > 0) {
      const frames = this.pieces[0].length / ch;
      if (this.base + frames > frame) break;
      this.pieces.shift();
      this.base += frames;
    }
  }
}

export function pairWithAudio(sourceAudio: Observable<PipelineEvent>, options: PairOptions = {}): OperatorFunction<PipelineEvent, PipelineEvent> {
  const fps = options.fps ?? 25;
  return (input) =>
    new Observable<PipelineEvent>((subscriber) => {
      const segments = new Map<number, SegmentAudio>();
      /** Video frames and segment-ends waiting for audio, in order. */
      const waiting: PipelineEvent[] = [];
      /** Per segment: the end (samples per channel) of the last frame paired, to report unpaired audio. */
      const pairedUpTo = new Map<number, number>();
      let idleFormat: AudioFormat = options.idleFormat ?? { sampleRate: 48_000, channels: 1 };

      const bounds = (i: number, sr: number): [number, number] => [Math.round((i * sr) / fps), Math.round(((i + 1) * sr) / fps)];

      const pairSpeech = (v: VideoFrame, seg: SegmentAudio): AvFrame => {
        const [from, to] = bounds(v.index, seg.format.sampleRate);
        const padding = seg.ended ? Math.max(0, to - Math.max(from, seg.received)) : 0;
        const samples = seg.take(from, to);
        pairedUpTo.set(v.segment ?? 0, to);
        const a = audio(samples, seg.format.sampleRate, seg.format.channels, seg.pts + from / seg.format.sampleRate, v.segment ?? 0, padding);
        return { type: 'av', video: v, audio: a };
      };

      const pairIdle = (v: VideoFrame): AvFrame => {
        const [from, to] = bounds(v.index, idleFormat.sampleRate);
        const a = audio(new Float32Array((to - from) * idleFormat.channels), idleFormat.sampleRate, idleFormat.channels, v.pts, -1);
        return { type: 'av', video: v, audio: a };
      };

      /** Emit waiting events from the front while their audio is there. */
      const drain = (): void => {
        while (waiting.length > 0) {
          const head = waiting[0];
          if (head.type === 'video' && head.segment !== null) {
            const seg = segments.get(head.segment);
            if (seg === undefined || !seg.has(bounds(head.index, seg.format.sampleRate)[1])) return;
            waiting.shift();
            subscriber.next(pairSpeech(head, seg));
          } else if (head.type === 'segment-end') {
            const seg = segments.get(head.segment);
            if (seg !== undefined && !seg.ended) return;
            waiting.shift();
            if (seg !== undefined) {
              segments.delete(head.segment);
              const left = seg.remainingAfter(pairedUpTo.get(head.segment) ?? 0);
              if (left > 0) options.onUnpaired?.(head.segment, left);
            }
            pairedUpTo.delete(head.segment);
            subscriber.next(head);
          } else {
            waiting.shift();
            subscriber.next(head.type === 'video' ? pairIdle(head) : head);
          }
        }
      };
      const onAudioSide = (e: PipelineEvent): void =>
        match(e)
          .with({ type: 'audio' }, (a: AudioChunk) => {
            let seg = segments.get(a.segment);
            if (seg === undefined) {
              seg = new SegmentAudio({ sampleRate: a.sampleRate, channels: a.channels }, a.pts);
              segments.set(a.segment, seg);
              idleFormat = seg.format;
            }
            seg.push(a.samples);
          })
          .with({ type: 'segment-end' }, (s) => {
            const seg = segments.get(s.segment);
            if (seg !== undefined) seg.ended = true;
            else segments.set(s.segment, Object.assign(new SegmentAudio(idleFormat, s.pts), { ended: true }));
          })
          .with({ type: 'flush' }, () => {
            segments.clear();
            pairedUpTo.clear();
          })
          .otherwise(() => undefined);

      const onVideoSide = (e: PipelineEvent): void =>
        match(e)
          .with({ type: 'flush' }, (f) => {
            waiting.length = 0;
            segments.clear();
            pairedUpTo.clear();
            subscriber.next(f);
          })
          .otherwise((other) => {
            waiting.push(other);
          });

      let inputDone = false;
      let audioDone = false;
      const maybeComplete = (): void => {
        if (inputDone && waiting.length === 0) subscriber.complete();
      };
      const audioSub = sourceAudio.subscribe({
        next: (e) => {
          onAudioSide(e);
          drain();
          maybeComplete();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          audioDone = true;
          for (const seg of segments.values()) seg.ended = true;
          drain();
          maybeComplete();
        },
      });
      const inputSub = input.subscribe({
        next: (e) => {
          onVideoSide(e);
          if (audioDone) for (const seg of segments.values()) seg.ended = true;
          drain();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          inputDone = true;
          maybeComplete();
        },
      });
      return () => {
        inputSub.unsubscribe();
        audioSub.unsubscribe();
      };
    });
}

const pairParams = z
  .object({
    idleSampleRate: z
      .number()
      .int()
      .min(8000)
      .max(MAX_SAMPLE_RATE)
      .default(48_000)
      .describe(`Hz of the silence paired with idle frames before any audio was seen (default 48000; 8000 to ${MAX_SAMPLE_RATE})`),
    idleChannels: z.number().int().min(1).max(MAX_CHANNELS).default(1).describe(`channels of that silence (default 1; at most ${MAX_CHANNELS})`),
  })
  .strict();

export const pairElement: OperatorElement<typeof pairParams> = {
  role: 'operator',
  name: 'pair',
  summary: 'zip each video frame with exactly 1/fps s of the source audio (source rate and channels)',
  params: pairParams,
  caps: (_p, input) => (input.kind === 'video' ? { kind: 'av', width: input.width, height: input.height } : `needs video frames, got ${input.kind}`),
  create: (p, ctx) =>
    pairWithAudio(ctx.sourceEvents, {
      fps: ctx.fps,
      idleFormat: { sampleRate: p.idleSampleRate, channels: p.idleChannels },
      onUnpaired: (segment, samples) => ctx.log.warn({ segment, samples }, 'audio left unpaired at segment end'),
    }),
};
