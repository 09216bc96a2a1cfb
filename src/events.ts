/**
 * The one discriminated union of everything that flows through a pipeline.
 *
 * Units: times are seconds (`pts`, presentation time from the start of the session);
 * samples are float32 in [-1, 1], interleaved by channel; video is RGBA, 8 bits per channel, row-major.
 *
 * Data events: `audio`, `idle`, `video`, `av`. Control events: `segment-end`, `flush`.
 * Control events overtake queued data: an element receiving `flush` drops everything it holds and
 * forwards the flush at once (see docs/design.md).
 */
/** A block of PCM audio. `segment` is the speech segment it belongs to (0, 1, 2, ... per session). */
export interface AudioChunk {
  readonly type: 'audio';
  /** Interleaved float32 samples, `frames * channels` long, in [-1, 1]. */
  readonly samples: Float32Array;
  /** Hz. */
  readonly sampleRate: number;
  readonly channels: number;
  /** Seconds from the start of the session. */
  readonly pts: number;
  readonly segment: number;
  /** Samples per channel at the end of this chunk that are padding, not speech (set by a padded flush). */
  readonly padding?: number;
}

/** The speech segment `segment` has ended: elements flush what they hold for it (padded), then idle may resume. */
export interface SegmentEnd {
  readonly type: 'segment-end';
  readonly segment: number;
  readonly pts: number;
}

/** One tick of the idle clock: stands for one output frame with no speech. */
export interface IdleTick {
  readonly type: 'idle';
  readonly pts: number;
  /** Running count of idle ticks in this session; models use it to animate (breathing, blinking). */
  readonly index: number;
}

/** One rendered video frame. `segment` is null for an idle frame. */
export interface VideoFrame {
  readonly type: 'video';
  readonly width: number;
  readonly height: number;
  /** RGBA, `width * height * 4` bytes. */
  readonly data: Uint8Array;
  readonly pts: number;
  readonly segment: number | null;
  /** Frame number within its segment (speech) or idle run (idle), from 0. */
  readonly index: number;
}

/** A video frame zipped with exactly 1/fps seconds of the original audio (source rate and channels). */
export interface AvFrame {
  readonly type: 'av';
  readonly video: VideoFrame;
  readonly audio: AudioChunk;
}

/** An interruption: every element drops what it queued and forwards this at once. */
export interface Flush {
  readonly type: 'flush';
  readonly reason: string;
  /**
   * Which interruption, numbered by the source that makes it (1, 2, 3, ... per run; 0 for one made by hand). A sink
   * that also watches the source's own events sees a flush twice, there and through the elements: the id tells the
   * copy from a new interruption.
   */
  readonly id: number;
}

export type PipelineEvent = AudioChunk | SegmentEnd | IdleTick | VideoFrame | AvFrame | Flush;

/** Seconds of audio per channel held by a chunk. */
export const chunkDuration = (a: AudioChunk): number => a.samples.length / a.channels / a.sampleRate;

/**
 * Seconds of real audio in a chunk: its duration less the `padding` (silence that completes a
 * segment's last frame). This is what a source reserved for it in the AudioBudget, so it is what a
 * sink releases.
 */
export const audioDuration = (a: AudioChunk): number => chunkDuration(a) - (a.padding ?? 0) / a.sampleRate;

/** Samples per channel of a chunk. */
export const chunkFrames = (a: AudioChunk): number => a.samples.length / a.channels;

export const audio = (
  samples: Float32Array,
  sampleRate: number,
  channels: number,
  pts: number,
  segment: number,
  padding?: number,
): AudioChunk => ({ type: 'audio', samples, sampleRate, channels, pts, segment, ...(padding ? { padding } : {}) });

export const segmentEnd = (segment: number, pts: number): SegmentEnd => ({ type: 'segment-end', segment, pts });

export const idleTick = (index: number, pts: number): IdleTick => ({ type: 'idle', index, pts });

export const flush = (reason: string, id = 0): Flush => ({ type: 'flush', reason, id });

