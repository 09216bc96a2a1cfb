/**
 * publishToRoom and the `livekit-room` sink: the avatar's output published to a LiveKit room as two tracks,
 * `avatar_audio` and `avatar_video` (livekit/rtc-av-output.ts: the track layout, the AudioSource queue, the video
 * encoding), with the playback events of the protocol. The publishing itself (the queue, idle preemption, flushes,
 * playback events, metrics): sinks/av-publisher.ts.
 *
 * ```
 * input:   ---p0--p0------F--p1--p1----S1      (p: av frames of segments 0, 1; F: flush; S: segment-end)
 * room:    ---p0--p0---------p1--p1            (avatar_audio + avatar_video, paced by the audio playout)
 * output:  ---s0-.-.--f0!----s1--.--.----f1    (s: playback-started, f0!: finished interrupted; .: progress)
 * ```
 */
import type { Room } from '@livekit/rtc-node';
import { Observable } from 'rxjs';
import { z } from 'zod';
import type { PipelineEvent } from '../events.ts';
import { DEFAULT_TRACK_CHANNELS, DEFAULT_TRACK_RATE, rtcAvOutput, type RtcAvOutputOptions } from '../livekit/rtc-av-output.ts';
import type { PlaybackEvent } from '../livekit/playback-tracker.ts';
import type { SinkElement } from '../pipelines/element.ts';
import { acceptsAv } from './accepts-av.ts';
import { publishAv, type AvPublisherOptions, type PublisherEvent, type PublisherMetrics } from './av-publisher.ts';

export interface RoomPublisherOptions extends Omit<AvPublisherOptions, 'output'>, RtcAvOutputOptions {
  /** A connected room. */
  readonly room: Room;
}

/** publishAv to the room's avatar tracks. */
export const publishToRoom = (options: RoomPublisherOptions): ((input: Observable<PipelineEvent>) => Observable<PublisherEvent>) => {
  const { room, audioQueueMs, sampleRate, channels, resampleQuality, fps, videoMaxBitrate, ...publisher } = options;
  return publishAv({ ...publisher, fps, output: rtcAvOutput(room, { audioQueueMs, sampleRate, channels, resampleQuality, fps, videoMaxBitrate }) });
};

const roomPublisherParams = z
  .object({
    audioQueueMs: z.number().int().min(10).default(100).describe('AudioSource queue, milliseconds (default 100)'),
    sampleRate: z.number().int().min(8000).max(192_000).default(DEFAULT_TRACK_RATE).describe('published audio rate, Hz (default 48000); every segment is converted to it'),
    channels: z.number().int().min(1).max(8).default(DEFAULT_TRACK_CHANNELS).describe('published audio channels (default 1); every segment is mixed to it'),
    resampleQuality: z
      .enum(['quick', 'low', 'medium', 'high', 'very-high'])
      .default('low')
      .describe("quality of the resampler for audio at another rate (default 'low': about 1 ms of delay; 'medium' holds back 10 to 45 ms)"),
    maxQueuedFrames: z.number().int().min(1).optional().describe('av frames queued in the sink at most (default: twice the budget in frames; strategy: drop oldest)'),
    videoMaxBitrate: z.number().int().min(50_000).default(1_000_000).describe('video encoder bitrate cap, bits per second (default 1000000)'),
    videoDelayMs: z
      .number()
      .min(0)
      .nullable()
      .default(null)
      .describe("null (default): video captured when its audio is accepted; ms: captured when its audio starts playing plus this delay (the viewers' audio jitter buffer)"),
  })
  .strict();

/** What the worker gives the `livekit-room` sink: the room, and where the playback events go. */
export interface RoomPublisherResource {
  readonly room: Room;
  readonly onPlayback: (e: PlaybackEvent) => void;
  /** Where the publisher's metrics go, one call per progress event (default: nowhere). */
  readonly onMetrics?: (m: PublisherMetrics) => void;
}

/** The `livekit-room` sink, bound to one session's room (the worker builds one per session). */
export function roomPublisherElement(resource: RoomPublisherResource): SinkElement<typeof roomPublisherParams> {
  return {
    role: 'sink',
    name: 'livekit-room',
    summary: 'publish av frames to a LiveKit room as avatar_audio / avatar_video tracks (audio playout is the clock)',
    params: roomPublisherParams,
    accepts: (_p, caps) => acceptsAv(caps),
    create: (p, ctx) => (input) =>
      new Observable((subscriber) =>
        publishToRoom({ room: resource.room, budget: ctx.budget, log: ctx.log, sourceEvents: ctx.sourceEvents, scheduler: ctx.scheduler, fps: ctx.fps, ...p })(input).subscribe({
          next: (e) => {
            if (e.type !== 'progress') return resource.onPlayback(e);
            resource.onMetrics?.(e);
            subscriber.next({ frames: e.frames, seconds: e.seconds });
          },
          error: (err: unknown) => subscriber.error(err),
          complete: () => subscriber.complete(),
        }),
      ),
  };
}
