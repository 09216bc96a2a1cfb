/**
 * AvOutput: where the avatar publisher hands its audio and video, as small as the publisher needs it. In a room it
 * is rtc-node's AudioSource and VideoSource behind two tracks (rtc-av-output.ts); in tests, a model of an audio
 * queue playing out on virtual time.
 *
 * The audio side is a queue that plays in real time: a capture completes once the queue has taken the audio, and
 * waits while it is full, so the playout paces the publisher (the audio is the clock).
 */
import type { ObservableInput } from 'rxjs';
import type { AudioChunk, VideoFrame } from '../events.ts';

/** A piece of a frame's audio in the output's layout. */
export interface AudioPiece {
  /** Its duration, seconds. */
  readonly seconds: number;
  /** Hands it over: completes once the output has taken it (it waits while the queue is full). Counts as queued from the call on. */
  capture(): ObservableInput<void>;
}

export interface AvOutput {
  /** A frame's audio converted to the output's layout, as the pieces to capture one after the other. */
  audio(chunk: AudioChunk): readonly AudioPiece[];
  /** Milliseconds of audio handed over and not played yet (a piece being captured included). */
  readonly queuedMs: number;
  /** Drops the audio not played yet. */
  clearQueue(): void;
  /** Drops the audio not played yet and what the converter holds (a flush: the next audio starts afresh). */
  reset(): void;
  /** Hands a frame's video over, stamped `timestampUs` (where its audio starts on the audio clock). */
  video(frame: VideoFrame, timestampUs: number): void;
  /** Completes once the audio handed over has played. */
  playedOut(): ObservableInput<void>;
  /** Unpublishes and releases everything (teardown). */
  close(): Promise<void>;
}

/** Opens the output for frames of this size (at the first frame). */
export type AvOutputOpener = (frame: { readonly width: number; readonly height: number }) => ObservableInput<AvOutput>;
