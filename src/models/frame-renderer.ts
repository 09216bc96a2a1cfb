/**
 * FrameRenderer: a model that turns audio chunks and idle ticks into video frames, as the `infer` operator drives it,
 * and RendererFormat, what a renderer takes in and gives, known before it loads (the pipeline's build-time checks).
 * The kinds of renderer (demo face, SyncTalk bundle, ...) and how each opens: src/renderers/kinds.ts.
 */
import type { ObservableInput } from 'rxjs';
import type { AudioChunk, IdleTick, SegmentEnd } from '../events.ts';

/** A model that turns one input into its video frames. */
export interface FrameRenderer {
  /** Frame size, pixels. */
  readonly width: number;
  readonly height: number;
  /**
   * The frames for one audio chunk (as many as it holds real audio for, possibly none) or one idle
   * tick, in order: RGBA, `width * height * 4` bytes each. A Promise, or an Observable whose first
   * value is used (tests use cold marbles).
   */
  render(input: AudioChunk | IdleTick): ObservableInput<Uint8Array[]>;
  /**
   * For renderers that hold audio back (lookahead): the frames of `segment` still held, at its segment-end. A
   * renderer with `end` numbers frames per segment: the frame that `render` or `end` returns as the segment's i-th
   * gets pts = the segment's first chunk pts + i / fps, whichever input released it.
   */
  end?(segment: SegmentEnd): ObservableInput<Uint8Array[]>;
  /** For renderers that hold state: drop what is held (called on a flush, before it is forwarded). */
  reset?(): void;
}

/** What a renderer takes in and gives. */
export interface RendererFormat {
  /** Frame size, pixels. */
  readonly width: number;
  readonly height: number;
  /** Input audio rate, Hz. */
  readonly sampleRate: number;
  /** Input audio channels. */
  readonly channels: number;
  /** Samples per channel every input chunk must hold, or null for chunks of any size. */
  readonly chunk: number | null;
  /** Frames per second it renders: the pipeline's fps must be this. */
  readonly fps: number;
  /**
   * Seconds of audio after a frame's start it needs before it renders that frame. 0: it renders each chunk's own
   * frames as the chunk comes (no `end`, no `reset`); more: it holds audio back, and has `end` and `reset`.
   */
  readonly lookahead: number;
}

/** A loaded renderer and the release of what it holds (its graphs). */
export interface OpenedRenderer {
  readonly renderer: FrameRenderer;
  close(): Promise<void>;
}
