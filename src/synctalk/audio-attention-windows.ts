/**
 * AudioAttentionWindowing: turns the AVE features of a speech segment (one per AVE window, in window order) into
 * the 8 features each video frame's audio attention needs, as SyncTalk lines them up (numpy reference:
 * python/synctalk_live/mel.py `feature_windows`, `attention_slots`):
 *
 * - alignment padding (nerf_triplane/provider.py): the feature list is `[f0, f0, f0 ... f(L-1), f(L-1), f(L-1)]`,
 *   L + 4 features for L windows, i.e. feature j is window clamp(j - 2, 0, L - 1);
 * - one video frame per feature: a segment renders L + 4 frames (SyncTalk's test loader has one item per feature);
 * - frame i's attention window (`get_audio_features`, att_mode 2) is features i-4 .. i+3, zeros outside the list.
 *
 * Lookahead modes (frame i starts 40 i ms into the segment; sample counts at 16 kHz):
 * - `'full'` (default, SyncTalk as trained): frame i needs feature i+3 = window i+1, so samples
 *   < 200 floor(3.2 (i+1)) + 3400 <= 640 i + 4040: **252.5 ms of lookahead** after the frame's start. With 80 ms
 *   (1280-sample) chunks, frames <= 2c-5 are released after chunk c (3 chunks, 240 ms, of algorithmic delay).
 * - `'low-latency'`: frame i waits only for feature i (window i-2) and repeats it in slots i+1 .. i+3 instead of
 *   waiting for them: samples < max(3400, 200 floor(3.2 (i-2)) + 3400) <= 640 i + 2120 for i >= 2: **132.5 ms of
 *   lookahead**; with 80 ms chunks, frames <= 2c-2 after chunk c (2 chunks, 160 ms). This is not what the model
 *   was trained with (quality impact untested). The slots do not depend on chunking nor on when the segment ends.
 *
 * Release with 1280-sample chunks, via IncrementalMel and AveWindowing (one letter per chunk, `(ab)` = frames a, b):
 * ```
 * chunk        0---1---2-------3-------4-------5--- ...
 * full         ----------------(01)----(23)----(45) ...  frames 2c-6, 2c-5 after chunk c
 * low-latency  --------(012)---(34)----(56)----(78) ...  frames 2c-3, 2c-2 after chunk c
 * ```
 * At the segment's end (`end`) every remaining frame up to L + 3 is released.
 *
 * Units: features are opaque (`F`, e.g. the AVE's 512 floats); a slot of `null` is SyncTalk's zero feature.
 *
 * Buffer: the features from frame (next - 4)'s source window on, strategy **slide**: at most 8 features.
 */

/** How far ahead of a frame the audio must reach before the frame is released (see the module doc). */
export type AudioLookahead = 'full' | 'low-latency';

/** Seconds of audio after a frame's start needed to release it, per lookahead mode (see the module doc). */
export const LOOKAHEAD_SECONDS: Readonly<Record<AudioLookahead, number>> = { full: 0.2525, 'low-latency': 0.1325 };

/** Slots per frame: features i-4 .. i+3. */
export const ATTENTION_SLOTS = 8;
/** Features SyncTalk repeats at each end of a segment (alignment padding). */
export const ALIGNMENT_PADDING = 2;

/** The audio inputs of one video frame. */
export interface FrameAudio<F> {
  /** Video frame index in the segment (from 0). */
  readonly frame: number;
  /** Features for frames frame-4 .. frame+3; null where SyncTalk feeds zeros. */
  readonly slots: readonly (F | null)[];
}

export class AudioAttentionWindowing<F> {
  private held: F[] = [];
  /** Window index of `held[0]`. */
  private heldStart = 0;
  private nextFrame = 0;

  /** `lookahead`: default `'full'`, SyncTalk's own (252.5 ms); `'low-latency'`: 132.5 ms. */
  constructor(readonly lookahead: AudioLookahead = 'full') {}

  /** Features received in the current segment (= AVE windows encoded). */
  get features(): number {
    return this.heldStart + this.held.length;
  }

  /** Frames released in the current segment. */
  get frames(): number {
    return this.nextFrame;
  }

  /** Adds the feature of the next AVE window; returns the frames whose inputs became complete, in order. */
  pushFeature(feature: F): FrameAudio<F>[] {
    this.held.push(feature);
    const received = this.features;
    const last = this.lookahead === 'full' ? received - 2 : received + 1;
    return this.release(last, null);
  }

  /** Ends the segment: returns every frame not yet released (L + 4 frames in all for L features), then starts a new segment. */
  end(): FrameAudio<F>[] {
    const count = this.features;
    const out = count === 0 ? [] : this.release(count + 2 * ALIGNMENT_PADDING - 1, count);
    this.reset();
    return out;
  }

  /** Drops the current segment (after a flush). */
  reset(): void {
    this.held = [];
    this.heldStart = 0;
    this.nextFrame = 0;
  }

  /** Releases frames up to `last`; `count` is the segment's feature count once known (at its end). */
  private release(last: number, count: number | null): FrameAudio<F>[] {
    const out: FrameAudio<F>[] = [];
    for (; this.nextFrame <= last; this.nextFrame++) {
      const i = this.nextFrame;
      const slots: (F | null)[] = [];
      for (let j = i - 4; j < i + 4; j++) {
        const source = this.lookahead === 'low-latency' && j > i ? i : j;
        slots.push(this.padded(source, count));
      }
      out.push({ frame: i, slots });
    }
    const keepFrom = Math.max(0, this.nextFrame - 4 - ALIGNMENT_PADDING);
    if (keepFrom > this.heldStart) {
      this.held.splice(0, keepFrom - this.heldStart);
      this.heldStart = keepFrom;
    }
    return out;
  }

  /** Feature j of the padded list, or null outside it (`count` null: the end is not known yet, j is in range). */
  private padded(j: number, count: number | null): F | null {
    if (j < 0 || (count !== null && j >= count + 2 * ALIGNMENT_PADDING)) return null;
    const window = Math.max(0, j - ALIGNMENT_PADDING);
    return this.held[(count === null ? window : Math.min(window, count - 1)) - this.heldStart];
  }
}
