/**
 * AveWindowing: cuts the mel frames of a speech segment into the [80, 16] inputs of SyncTalk's audio-visual encoder
 * (AVE), where SyncTalk's `AudDataset` cuts them (nerf_triplane/utils.py; numpy reference:
 * python/synctalk_live/mel.py `window_starts`).
 *
 * Window w (one per 40 ms video frame, w = 0, 1, ...) is mel frames `[start(w), start(w) + 16)` with
 * `start(w) = int(80 * (w / 25))` = floor(3.2 w), i.e. 200 ms of audio starting 40 w ms into the segment.
 * A segment of n mel frames has `count(n) = int((n - 16) / 80 * 25) + 2` windows (SyncTalk's `data_len`, float
 * expression kept: it is one less than the exact value for some n, e.g. n = 384); the last one may run past the end
 * and is then end-clamped to `[n - 16, n)`.
 *
 * Timing: window w is emitted by the `pushMel` that brings in mel frame start(w) + 15, which needs samples
 * < 200 floor(3.2 w) + 3400 (212.5 ms after the window's start at most). Windows that touch the segment's end
 * (the end-clamped one included) come out of `end`.
 *
 * Units: mel frames are `Float32Array(80)` (IncrementalMel's output); a window is a `Float32Array(80 * 16)`,
 * mel-band-major (`mel[band * 16 + t]`), the `[1, 80, 16]` AVE input without its batch axis.
 *
 * Buffer: the last 16 mel frames (the next window's start is always among them, and the end clamp needs them),
 * strategy **slide**: 16 frames between calls, plus the frames of one `pushMel` during it.
 */
import { InputError } from '../errors.ts';
import { MEL_BANDS } from './mel.ts';

/** Mel frames per AVE window (200 ms). */
export const AVE_WINDOW_FRAMES = 16;

/** Video frames per second the windows are placed for (window w starts 40 w ms into the segment). */
export const SYNCTALK_FPS = 25;

/** One AVE input. */
export interface AveWindow {
  /** Window index in the segment = video frame it was cut for before SyncTalk's alignment padding (w). */
  readonly index: number;
  /** First mel frame (segment index). */
  readonly start: number;
  /** `[80, 16]`, mel-band-major. */
  readonly mel: Float32Array;
}

/** First mel frame of window w before the end clamp (SyncTalk: `int(80. * (w / float(25)))`). */
export const aveWindowStart = (w: number): number => Math.trunc(80 * (w / 25));

/** Windows of a segment with `melFrames` mel frames (SyncTalk's `data_len`; needs melFrames >= 16). */
export const aveWindowCount = (melFrames: number): number => Math.trunc(((melFrames - AVE_WINDOW_FRAMES) / 80) * 25) + 2;

export class AveWindowing {
  private held: Float32Array[] = [];
  /** Segment index of `held[0]`. */
  private heldStart = 0;
  private nextWindow = 0;

  /** Mel frames received in the current segment. */
  get melFrames(): number {
    return this.heldStart + this.held.length;
  }

  /** Windows emitted in the current segment. */
  get windows(): number {
    return this.nextWindow;
  }

  /** Adds the next mel frames of the segment; returns the windows that became complete, in order. */
  pushMel(frames: readonly Float32Array[]): AveWindow[] {
    for (const f of frames) {
      if (f.length !== MEL_BANDS) throw new InputError('AVE windowing', `a mel frame has ${f.length} bands, expected ${MEL_BANDS}`);
      this.held.push(f);
    }
    const out: AveWindow[] = [];
    while (aveWindowStart(this.nextWindow) + AVE_WINDOW_FRAMES <= this.melFrames) {
      out.push(this.cut(this.nextWindow, aveWindowStart(this.nextWindow)));
      this.nextWindow++;
    }
    const keepFrom = Math.min(aveWindowStart(this.nextWindow), this.melFrames - AVE_WINDOW_FRAMES);
    if (keepFrom > this.heldStart) {
      this.held.splice(0, keepFrom - this.heldStart);
      this.heldStart = keepFrom;
    }
    return out;
  }

  /**
   * Ends the segment: returns the windows not yet emitted up to `aveWindowCount` (the last one end-clamped where
   * it runs past the end), then starts a new segment. A segment without mel frames has no windows; one with 1 to 15
   * is an error (flush IncrementalMel with `minFrames` 16 to pad it with silence).
   */
  end(): AveWindow[] {
    const n = this.melFrames;
    if (n > 0 && n < AVE_WINDOW_FRAMES) {
      this.reset();
      throw new InputError('AVE windowing', `a segment of ${n} mel frames is shorter than one ${AVE_WINDOW_FRAMES}-frame window`);
    }
    const out: AveWindow[] = [];
    const count = n === 0 ? 0 : aveWindowCount(n);
    for (; this.nextWindow < count; this.nextWindow++) {
      out.push(this.cut(this.nextWindow, Math.min(aveWindowStart(this.nextWindow), n - AVE_WINDOW_FRAMES)));
    }
    this.reset();
    return out;
  }

  /** Drops the current segment (after a flush). */
  reset(): void {
    this.held = [];
    this.heldStart = 0;
    this.nextWindow = 0;
  }

  private cut(index: number, start: number): AveWindow {
    const mel = new Float32Array(MEL_BANDS * AVE_WINDOW_FRAMES);
    for (let t = 0; t < AVE_WINDOW_FRAMES; t++) {
      const frame = this.held[start - this.heldStart + t];
      for (let b = 0; b < MEL_BANDS; b++) mel[b * AVE_WINDOW_FRAMES + t] = frame[b];
    }
    return { index, start, mel };
  }
}
