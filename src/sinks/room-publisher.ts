/**
 * publishToRoom: the avatar's output, published to a LiveKit room as two tracks, `avatar_audio`
 * (SOURCE_MICROPHONE) and `avatar_video` (SOURCE_CAMERA), with the playback events of the protocol.
 *
 * ```
 * source:  -a0--a0-----F--a1--a1----S1--       (a: source audio of segments 0, 1; F: flush; S: segment-end)
 * input:   ---p0--p0------F--p1--p1----S1      (p: av frames of each segment)
 * output:  ---s0-.-.--f0!----s1--.--.----f1    (s: playback-started, f0!: finished interrupted; .: progress)
 * ```
 *
 * - The clock is the audio: each frame's audio goes into an rtc-node AudioSource (queue `audioQueueMs`,
 *   default 100 ms) whose real-time playout makes `captureFrame` wait; the frame's video is captured
 *   the moment its audio is accepted, so the pair is released together (or, with `videoDelayMs` set,
 *   when that audio starts playing plus `videoDelayMs`). Video timestamps (us) are the
 *   seconds of audio accepted before the frame. Tracks are published at the first frame, video
 *   capped at `fps` (default 25) and `videoMaxBitrate` (default 1 Mb/s).
 * - The audio track has one fixed layout, `sampleRate` Hz (default 48000) with `channels` channels
 *   (default 1), whatever the agent sends: each frame's audio is converted to it, so segments of any
 *   rate and channel count, changing from one segment to the next, play on the same track
 *   (`toTrackLayout`). Channels are mixed first (`mixChannels`: mono fans out, extra channels are
 *   averaged), then frames at another rate go through rtc-node's AudioResampler (`resampleQuality`,
 *   default 'low': it holds back about 1 ms of audio, where soxr's 'medium' holds back 10 to 45 ms and
 *   lets the video run ahead of it); a change of rate flushes the resampler's tail first.
 * - Frames wait in a queue of at most `maxQueuedFrames` av frames (default: twice the budget's frames,
 *   100 for 2 s at 25 fps; strategy: drop the oldest, counted as dropped, with a warning). Upstream, the
 *   AudioBudget (strategy: wait) keeps it at most the budget's frames plus one padded tail frame per
 *   segment, so the bound is a safety net that normal operation never reaches. The sink releases each
 *   frame's audio (padding excluded: what the source reserved) when the AudioSource accepts it.
 * - Segments: a segment becomes active when its first audio appears on `sourceEvents` (the source's
 *   own events, in the source's order). `playback-started` is emitted when its first audio is accepted;
 *   `playback-finished` (interrupted false) when its segment-end comes out of the queue and the audio
 *   before it has played (now + the AudioSource's queued duration). Position: seconds of the segment's
 *   audio accepted (padding excluded).
 * - Idle is preemptible: when a speech frame arrives after idle frames, the idle frames not played yet
 *   are dropped (counted as `preempted`, not as `dropped`): those queued here (their budget released),
 *   the one waiting for the AudioSource, and, when only idle audio is in the AudioSource, its queued
 *   audio (`clearQueue()`; the audio clock goes back by what was cleared) and the video captures still
 *   waiting for it. Speech then starts at once instead of behind idle. Speech frames are never preempted:
 *   while the tail of a segment is still queued in the AudioSource, its queue is left alone.
 *
 * ```
 * input:     -i-i-i-i-i-i(s0)-s1-s2-     (i: idle frames arriving faster than they play, s: speech)
 * playing:   -i--i--i--i-X s0-s1-s2-     (X: the idle frames still queued are dropped at s0)
 * ```
 * - Flush (first seen on `sourceEvents`, or on the input): drops the queue, `AudioSource.clearQueue()`,
 *   `budget.reset()`, and emits `playback-finished` (interrupted true, position = audio actually played)
 *   for every active segment, even one none of whose frames arrived yet: an agent waits for it.
 *   Frames of those segments that arrive later are dropped.
 * - `progress` events carry the metrics: frames published, seconds of audio, queue depth, dropped,
 *   preempted and skipped frames, and the A/V offset, measured from what was released to the tracks
 *   (`releaseVideo`: where the audio playout stood when the frame's video was actually captured) and
 *   frames skipped from the gaps in the audio actually fed (`feedAudio`).
 * - Completes when the input has completed and the audio has played out. Unsubscribing unpublishes the
 *   tracks and closes the sources.
 */
import {
  AudioFrame as RtcAudioFrame,
  AudioResampler,
  AudioResamplerQuality,
  AudioSource,
  LocalAudioTrack,
  LocalVideoTrack,
  type Room,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame as RtcVideoFrame,
  VideoSource,
} from '@livekit/rtc-node';
import { Observable, type Subscriber } from 'rxjs';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { audioDuration, chunkDuration, chunkFrames, type AudioChunk, type AvFrame, type PipelineEvent, type SegmentEnd } from '../events.ts';
import type { AudioBudget } from '../flow/audio-budget.ts';
import { AVATAR_AUDIO_TRACK, AVATAR_VIDEO_TRACK } from '../livekit/protocol.ts';
import type { Logger } from '../log.ts';
import type { SinkElement } from '../pipelines/element.ts';
import { acceptsAv } from './accepts-av.ts';

export interface PublisherMetrics {
  /** Frames published. */
  readonly frames: number;
  /** Seconds of audio accepted by the AudioSource, less idle audio taken back from it by a preemption. */
  readonly seconds: number;
  /** Frames waiting in the sink's queue. */
  readonly queued: number;
  /** Frames dropped (queue full, or of an interrupted segment). */
  readonly dropped: number;
  /** Idle frames dropped before they played, because speech arrived (not a loss). */
  readonly preempted: number;
  /**
   * Milliseconds from the moment the last video frame was actually handed to the video track to the
   * moment its audio starts playing on the audio track (by the AudioSource's playout then): negative
   * when the video went out after its audio started. It moves when the two drift (late captures, stalls).
   */
  readonly avOffsetMs: number;
  /**
   * Frames not published in time: frame periods in which the audio track ran dry (all audio handed to
   * it had played) because the next frame was late (rendering or the event loop did not keep up). Not
   * counted after a flush, nor at the start (nothing was due).
   */
  readonly skipped: number;
}

export type PublisherEvent =
  | ({ readonly type: 'progress' } & PublisherMetrics)
  | { readonly type: 'playback-started'; readonly segment: number }
  | { readonly type: 'playback-finished'; readonly segment: number; readonly position: number; readonly interrupted: boolean };

export interface RoomPublisherOptions {
  /** A connected room. */
  readonly room: Room;
  readonly budget: AudioBudget;
  readonly log: Logger;
  /** The source's own events: segments start at their first audio here, and flushes are seen first here. */
  readonly sourceEvents: Observable<PipelineEvent>;
  /** AudioSource queue, milliseconds (default 100). */
  readonly audioQueueMs?: number;
  /** Published audio rate, Hz (default 48000). */
  readonly sampleRate?: number;
  /** Published audio channels (default 1). */
  readonly channels?: number;
  /** Quality of the AudioResampler for frames at another rate (default 'low', about 1 ms of delay). */
  readonly resampleQuality?: ResampleQuality;
  /** Av frames the sink queues at most (default: twice `budget.capacity` in frames). */
  readonly maxQueuedFrames?: number;
  /** Video frames per second, the encoder's cap (default 25). */
  readonly fps?: number;
  /** Video encoder's bitrate cap, bits per second (default 1000000). */
  readonly videoMaxBitrate?: number;
  /**
   * Null (default): a frame's video is captured as soon as its audio is accepted (up to audioQueueMs
   * before that audio plays). A number: captured when its audio starts playing, plus this many ms
   * (to make up for the audio jitter buffer of the viewers); a flush cancels captures still waiting.
   */
  readonly videoDelayMs?: number | null;
}

/** rtc-node AudioResampler qualities (soxr's); higher ones hold more audio back. */
export const RESAMPLE_QUALITIES = { quick: AudioResamplerQuality.QUICK, low: AudioResamplerQuality.LOW, medium: AudioResamplerQuality.MEDIUM, high: AudioResamplerQuality.HIGH, 'very-high': AudioResamplerQuality.VERY_HIGH } as const;
export type ResampleQuality = keyof typeof RESAMPLE_QUALITIES;

/** Float tolerance on the audio clock, seconds. */
const EPSILON = 1e-6;

interface ActiveSegment {
  /** Audio clock (s) when its first audio was accepted; null before. */
  start: number | null;
  /** Seconds of its audio accepted. */
  pushed: number;
  /** Pending playback-finished after its segment-end. */
  finishing?: ReturnType<typeof setTimeout>;
}

interface Output {
  readonly audio: AudioSource;
  readonly video: VideoSource;
  readonly channels: number;
  readonly tracks: Array<LocalAudioTrack | LocalVideoTrack>;
  resampler: AudioResampler | null;
}

export function publishToRoom(options: RoomPublisherOptions): (input: Observable<PipelineEvent>) => Observable<PublisherEvent> {
  const { room, budget, log } = options;
  const queueMs = options.audioQueueMs ?? 100;
  const maxQueued = options.maxQueuedFrames ?? 2 * Math.ceil(budget.capacity * (options.fps ?? 25));
  const videoDelayMs = options.videoDelayMs ?? null;
  const fps = options.fps ?? 25;
  const quality = RESAMPLE_QUALITIES[options.resampleQuality ?? 'low'];

  return (input) =>
    new Observable<PublisherEvent>((subscriber: Subscriber<PublisherEvent>) => {
      const queue: Array<AvFrame | SegmentEnd> = [];
      const active = new Map<number, ActiveSegment>();
      let out: Output | null = null;
      let opening: Promise<Output> | null = null;
      /** Audio clock: seconds of audio accepted. */
      let clock = 0;
      let frames = 0;
      let dropped = 0;
      let preempted = 0;
      let avOffsetMs = 0;
      let skipped = 0;
      /** performance.now() ms when the audio handed to the AudioSource so far has played out; null before any, and after a flush. */
      let dryAt: number | null = null;
      const frameMs = 1000 / fps;
      /** Audio clock where the last speech audio accepted ends: the AudioSource holds only idle audio once it has played. */
      let speechUntil = 0;
      /** The last av frame taken in was idle: the next speech frame preempts the idle ones. */
      let idleBehind = false;
      /** An idle frame is waiting for the AudioSource to accept its audio. */
      let idleInFlight = false;
      /** Bumped by every preemption, so the idle frame in flight knows it was preempted. */
      let preemptions = 0;
      /** Highest segment announced by the source; segments up to `dead` were flushed. */
      let announced = -1;
      let dead = -1;
      /** Bumped by every flush, so a capture in flight across a flush knows it. */
      let generation = 0;
      /** Flushes handled from sourceEvents whose copy on the input is still to come. */
      let flushesAhead = 0;
      let pumping = false;
      let inputDone = false;
      let stopped = false;
      /** Video captures waiting for their audio to play (videoDelayMs set), with where that audio starts on the audio clock. */
      const delayed = new Map<ReturnType<typeof setTimeout>, number>();
      const dropDelayed = (): void => {
        for (const t of delayed.keys()) clearTimeout(t);
        delayed.clear();
      };

      const metrics = (): PublisherEvent => ({ type: 'progress', frames, seconds: clock, queued: queue.length, dropped, preempted, avOffsetMs, skipped });
      /**
       * Seconds of the frame being accepted that were handed to `captureFrame` and are not in `clock` yet:
       * the AudioSource counts a frame as queued from the call on, before it is accepted.
       */
      let accepting = 0;
      /** The audio playout's position on the audio clock, seconds. */
      const played = (): number => clock + accepting - (out?.audio.queuedDuration ?? 0) / 1000;
      const onlyIdleQueued = (): boolean => played() >= speechUntil - EPSILON;

      /**
       * Takes the idle audio in the AudioSource back (only idle audio may be in it), with the video
       * captures waiting for it; returns the idle frames none of whose audio had played.
       */
      const takeBackIdle = (o: Output): number => {
        const queuedSeconds = o.audio.queuedDuration / 1000;
        if (queuedSeconds <= 0) return 0;
        const now = clock - queuedSeconds;
        o.audio.clearQueue();
        dryAt = performance.now();
        clock = now;
        for (const [t, start] of delayed) {
          if (start < now - EPSILON) continue;
          clearTimeout(t);
          delayed.delete(t);
        }
        return Math.floor(queuedSeconds * fps + EPSILON);
      };

      /** Speech has arrived: drops the idle frames that have not played (see the doc comment). */
      const preemptIdle = (): void => {
        for (let i = queue.length - 1; i >= 0; i--) {
          const q = queue[i];
          if (q.type !== 'av' || q.video.segment !== null) continue;
          queue.splice(i, 1);
          budget.release(audioDuration(q.audio));
          preempted++;
        }
        if (idleInFlight) preemptions++;
        else if (out !== null && onlyIdleQueued()) preempted += takeBackIdle(out);
      };

      const finish = (segment: number, position: number, interrupted: boolean): void => {
        subscriber.next({ type: 'playback-finished', segment, position: Math.max(0, position), interrupted });
      };

      const onFlush = (fromSource: boolean): void => {
        if (!fromSource && flushesAhead > 0) {
          flushesAhead--;
          return;
        }
        if (fromSource) flushesAhead++;
        generation++;
        const now = played();
        for (const [segment, st] of [...active].sort((a, b) => a[0] - b[0])) {
          clearTimeout(st.finishing);
          finish(segment, st.start === null ? 0 : Math.min(st.pushed, now - st.start), true);
        }
        active.clear();
        dead = Math.max(dead, announced);
        queue.length = 0;
        idleBehind = false;
        dropDelayed();
        if (out !== null) {
          out.audio.clearQueue();
          out.resampler?.close();
          out.resampler = null;
        }
        budget.reset();
        dryAt = null;
        subscriber.next(metrics());
      };

      const open = async (first: AvFrame): Promise<Output> => {
        const rate = options.sampleRate ?? DEFAULT_TRACK_RATE;
        const channels = options.channels ?? DEFAULT_TRACK_CHANNELS;
        const audioSource = new AudioSource(rate, channels, queueMs);
        const videoSource = new VideoSource(first.video.width, first.video.height);
        const audioTrack = LocalAudioTrack.createAudioTrack(AVATAR_AUDIO_TRACK, audioSource);
        const videoTrack = LocalVideoTrack.createVideoTrack(AVATAR_VIDEO_TRACK, videoSource);
        const local = room.localParticipant;
        if (local === undefined) throw new InputError('livekit-room', 'the room is not connected');
        await local.publishTrack(audioTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
        // Without an explicit encoding the SDK picks a preset by resolution, capping small frames at 15 fps.
        const videoEncoding = { maxFramerate: options.fps ?? 25, maxBitrate: BigInt(options.videoMaxBitrate ?? 1_000_000) };
        await local.publishTrack(videoTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, videoEncoding }));
        return { audio: audioSource, video: videoSource, channels, tracks: [audioTrack, videoTrack], resampler: null };
      };

      /** The frame's audio as rtc-node frames in the track's layout (its rate and channel count). */
      const toTrackLayout = (o: Output, a: AudioChunk): RtcAudioFrame[] => {
        const frames = chunkFrames(a);
        const frame = new RtcAudioFrame(floatToS16(mixChannels(a.samples, a.channels, o.channels)), a.sampleRate, o.channels, frames);
        if (a.sampleRate === o.audio.sampleRate) {
          const tail = o.resampler?.flush() ?? [];
          o.resampler?.close();
          o.resampler = null;
          return [...tail, frame];
        }
        if (o.resampler === null || o.resampler.inputRate !== a.sampleRate) {
          const tail = o.resampler?.flush() ?? [];
          o.resampler?.close();
          o.resampler = new AudioResampler(a.sampleRate, o.audio.sampleRate, o.channels, quality);
          return [...tail, ...o.resampler.push(frame)];
        }
        return o.resampler.push(frame);
      };

      /**
       * Hands a frame's video to the track (timestamp: `start`, where its audio starts on the audio
       * clock) and takes the A/V offset from that moment: how far the audio playout is from `start`.
       */
      const releaseVideo = (o: Output, video: RtcVideoFrame, start: number): void => {
        o.video.captureFrame(video, BigInt(Math.round(start * 1e6)));
        avOffsetMs = (start - played()) * 1000;
      };

      /**
       * Audio of `ms` is handed to the AudioSource now: it plays once what was handed before has played
       * (back to back, in real time). Whole frame periods the track was dry before it count as skipped.
       */
      const feedAudio = (ms: number): void => {
        const now = performance.now();
        if (dryAt !== null && now - dryAt >= frameMs) skipped += Math.floor((now - dryAt) / frameMs);
        dryAt = Math.max(dryAt ?? now, now) + ms;
      };

      const publishFrame = async (f: AvFrame): Promise<void> => {
        opening ??= open(f);
        const o = (out = await opening);
        if (stopped) return;
        const gen = generation;
        const segment = f.video.segment;
        const speech = segment !== null;
        const seconds = chunkDuration(f.audio);
        /** Its audio less padding: what it holds of the budget, and what it adds to the segment's position. */
        const reservedSeconds = audioDuration(f.audio);
        const preemptionsBefore = preemptions;
        idleInFlight = !speech;
        try {
          let captured = 0;
          for (const rf of toTrackLayout(o, f.audio)) {
            accepting += rf.samplesPerChannel / rf.sampleRate;
            feedAudio((1000 * rf.samplesPerChannel) / rf.sampleRate);
            await o.audio.captureFrame(rf);
            if (gen !== generation || stopped) {
              o.audio.clearQueue();
              return;
            }
            captured += rf.samplesPerChannel / rf.sampleRate;
            if (preemptions !== preemptionsBefore && onlyIdleQueued()) {
              // preempted while it waited: its audio goes with the idle audio before it
              clock += captured;
              accepting = 0;
              budget.release(reservedSeconds);
              preempted += Math.max(1, takeBackIdle(o));
              return;
            }
          }
        } finally {
          idleInFlight = false;
          accepting = 0;
        }
        const start = clock;
        clock += seconds;
        if (speech) speechUntil = clock;
        budget.release(reservedSeconds);
        const lead = Math.max(0, o.audio.queuedDuration - seconds * 1000);
        const delay = videoDelayMs === null ? 0 : lead + videoDelayMs;
        const video = new RtcVideoFrame(f.video.data, f.video.width, f.video.height, VideoBufferType.RGBA);
        if (delay <= 0) releaseVideo(o, video, start);
        else {
          const timer = setTimeout(() => {
            delayed.delete(timer);
            if (gen === generation && !stopped) releaseVideo(o, video, start);
          }, delay);
          delayed.set(timer, start);
        }
        frames++;
        if (speech) {
          let st = active.get(segment);
          if (st === undefined) {
            st = { start: null, pushed: 0 };
            active.set(segment, st);
          }
          if (st.start === null) {
            st.start = start;
            subscriber.next({ type: 'playback-started', segment });
          }
          st.pushed += reservedSeconds;
        }
        subscriber.next(metrics());
      };

      const endSegment = (e: SegmentEnd): void => {
        const st = active.get(e.segment);
        if (st === undefined || st.finishing !== undefined) return;
        st.finishing = setTimeout(() => {
          active.delete(e.segment);
          finish(e.segment, st.pushed, false);
          maybeComplete();
        }, out?.audio.queuedDuration ?? 0);
      };

      const maybeComplete = (): void => {
        if (!inputDone || pumping || queue.length > 0 || [...active.values()].some((st) => st.finishing !== undefined)) return;
        const o = out;
        if (o === null) return subscriber.complete();
        void o.audio.waitForPlayout().then(() => subscriber.complete());
      };

      const pump = async (): Promise<void> => {
        if (pumping) return;
        pumping = true;
        try {
          for (let e = queue.shift(); e !== undefined && !stopped; e = queue.shift()) {
            if (e.type === 'segment-end') endSegment(e);
            else await publishFrame(e);
          }
        } catch (err) {
          subscriber.error(err);
          return;
        } finally {
          pumping = false;
        }
        maybeComplete();
      };

      const onInput = (e: PipelineEvent): void => {
        if (e.type === 'flush') return onFlush(false);
        if (e.type === 'segment-end') {
          if (e.segment > dead) queue.push(e);
        } else if (e.type === 'av') {
          const segment = e.video.segment;
          if (segment !== null && segment <= dead) {
            dropped++;
            return;
          }
          if (segment !== null && idleBehind) preemptIdle();
          idleBehind = segment === null;
          if (queue.reduce((n, q) => n + (q.type === 'av' ? 1 : 0), 0) >= maxQueued) {
            const old = queue.findIndex((q) => q.type === 'av');
            const [gone] = queue.splice(old, 1);
            if (gone.type === 'av') {
              budget.release(audioDuration(gone.audio));
              log.warn({ segment: gone.video.segment, index: gone.video.index, maxQueuedFrames: maxQueued }, 'livekit-room: frame queue full; oldest frame dropped');
            }
            dropped++;
          }
          queue.push(e);
        } else {
          log.warn({ type: e.type }, 'livekit-room: takes av frames, segment-ends and flushes; event ignored');
          return;
        }
        void pump();
      };

      const sourceSub = options.sourceEvents.subscribe({
        next: (e) => {
          if (e.type === 'flush') onFlush(true);
          else if (e.type === 'audio' && e.segment > dead && !active.has(e.segment)) {
            announced = Math.max(announced, e.segment);
            active.set(e.segment, { start: null, pushed: 0 });
          }
        },
        error: (err: unknown) => subscriber.error(err),
      });
      const inputSub = input.subscribe({
        next: onInput,
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          inputDone = true;
          maybeComplete();
        },
      });

      return () => {
        stopped = true;
        dropDelayed();
        sourceSub.unsubscribe();
        inputSub.unsubscribe();
        for (const st of active.values()) clearTimeout(st.finishing);
        void (opening ?? Promise.resolve(null)).then(async (o) => {
          if (o === null) return;
          for (const t of o.tracks) if (t.sid !== undefined) await room.localParticipant?.unpublishTrack(t.sid).catch(() => undefined);
          o.resampler?.close();
          await o.audio.close();
          await o.video.close();
        }, () => undefined);
      };
    });
}

/** The audio track's layout when the sink is not told: 48 kHz mono. */
export const DEFAULT_TRACK_RATE = 48_000;
export const DEFAULT_TRACK_CHANNELS = 1;

/**
 * Interleaved samples of `from` channels as `to` channels. Mono fans out to every channel; from more
 * channels, output channel c averages input channels c, c + to, c + 2·to, ... (stereo to mono: (L + R) / 2);
 * from fewer (but more than one), output channel c is input channel c mod `from`. Same count: the input.
 */
export function mixChannels(samples: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return samples;
  const frames = samples.length / from;
  const out = new Float32Array(frames * to);
  if (from < to) {
    for (let i = 0; i < frames; i++) for (let c = 0; c < to; c++) out[i * to + c] = samples[i * from + (c % from)];
    return out;
  }
  for (let c = 0; c < to; c++) {
    const n = Math.ceil((from - c) / to);
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (let k = c; k < from; k += to) sum += samples[i * from + k];
      out[i * to + c] = sum / n;
    }
  }
  return out;
}

/** float32 in [-1, 1] to s16, clipped. */
export function floatToS16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    out[i] = v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
  }
  return out;
}

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
  readonly onPlayback: (e: Exclude<PublisherEvent, { type: 'progress' }>) => void;
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
        publishToRoom({
          room: resource.room,
          budget: ctx.budget,
          log: ctx.log,
          sourceEvents: ctx.sourceEvents,
          audioQueueMs: p.audioQueueMs,
          ...(p.maxQueuedFrames !== undefined ? { maxQueuedFrames: p.maxQueuedFrames } : {}),
          fps: ctx.fps,
          videoMaxBitrate: p.videoMaxBitrate,
          videoDelayMs: p.videoDelayMs,
          resampleQuality: p.resampleQuality,
          sampleRate: p.sampleRate,
          channels: p.channels,
        })(input).subscribe({
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
