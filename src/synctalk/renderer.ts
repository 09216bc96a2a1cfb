/**
 * SyncTalkRenderer: the FrameRenderer of a SyncTalk avatar bundle, streaming. One per session (pipeline run);
 * the bundle (graphs, tracks, image cache) may be shared by many.
 *
 * Speech (per segment), as SyncTalk's test mode computes a clip (docs/synctalk-bundle.md, "Per frame at run time"):
 * 16 kHz mono samples -> IncrementalMel -> AveWindowing (window w = mel frames [floor(3.2 w), +16)) -> audio.onnx
 * feature per window -> AudioAttentionWindowing (alignment padding: feature j = window clamp(j - 2); frame i's
 * slots = features i-4 .. i+3, zeros outside) -> audio_att.onnx enc_a -> render.onnx with the track frame's
 * eye, pose and images (or torso anchor) -> RGBA from the graph (`uint8(rgb * 255)`, truncated as SyncTalk writes,
 * alpha 255). Every run is a batch of one frame: where the graphs are shared (ModelCache, model server), the frames
 * of all sessions using the bundle are merged into one run (BatchedModel).
 *
 * Release (frames are emitted as soon as the audio they need has arrived, not later):
 * - lookahead `'full'` (default; SyncTalk as trained): frame i needs samples < 640 i + 4040, i.e. **252.5 ms of
 *   audio after the frame's start**; with 1280-sample (80 ms) chunks the frames of chunk c come out with chunk c + 3.
 * - lookahead `'low-latency'`: the last available feature is replicated into the future slots: frame i needs
 *   samples < 640 i + 2120, **132.5 ms** after its start; the frames of chunk c come out with chunk c + 2.
 *   (Not how the model was trained; lip quality impact untested.)
 * ```
 * 1280-sample chunks   0---1---2-------3-------4------- ... segment-end
 * full                 ----------------(01)----(23)---- ... (every remaining frame, up to L + 3)
 * low-latency          --------(012)---(34)----(56)---- ...
 * ```
 * A chunk of any size is accepted; a chunk's `padding` (samples appended by a padded chunker) is not audio and is
 * left out, so a segment's features are those of exactly its audio.
 *
 * Segment end (`end`): the mel tail is computed over the zero-padded end as offline (a segment shorter than 16 mel
 * frames, 187.5 ms, is extended with silence to one AVE window), the end-clamped windows and the alignment padding
 * follow, and every remaining frame comes out: a segment of L AVE windows (L = SyncTalk's `data_len`) gives
 * **L + 4 frames** in all. Frame i stands for audio [640 i, 640 (i + 1)) of the segment (feature i is centred on
 * the middle of that span: window i - 2 covers [40 i - 80, 40 i + 120) ms), so the L + 4 frames cover the segment's
 * n samples: L + 4 = ceil(n / 640) or one more (checked for every n up to 25 s in the tests); the pairing element
 * gives the frames past the audio silence. A new segment's audio arriving before the previous segment's end
 * starts afresh (the unfinished segment's frames are dropped).
 *
 * Idle ticks: one frame each, enc_a of silence (audio.onnx on an all-silent mel window, the same feature in all
 * slots), so the avatar keeps breathing, blinking and moving its head with the tracks.
 *
 * Tracks: one session-wide frame counter walks the tracks ping-pong (0 .. N-1, N-1 .. 0, ...) over speech and
 * idle frames alike, so the head never jumps; a clip rendered from a fresh renderer shows SyncTalk's own
 * sequence. `reset()` (a flush) drops the segment in progress; the counter goes on.
 *
 * Renders of one renderer run one after another (each waits for the previous: features must enter the attention
 * windows in order); the graphs' own queues (OnnxModel) serialize runs across sessions.
 */
import { ModelError, InputError } from '../errors.ts';
import { chunkFrames, type AudioChunk, type IdleTick, type SegmentEnd } from '../events.ts';
import type { TensorFeed } from '../models/model-runner.ts';
import type { FrameRenderer } from '../models/frame-renderer.ts';
import { ATTENTION_SLOTS, AudioAttentionWindowing, type AudioLookahead, type FrameAudio } from './audio-attention-windows.ts';
import { AVE_WINDOW_FRAMES, AveWindowing, type AveWindow } from './ave-windows.ts';
import type { SyncTalkBundle } from './bundle.ts';
import { IncrementalMel, MEL_BANDS, MEL_SAMPLE_RATE } from './mel.ts';
import { pingPong } from './ping-pong.ts';

export interface SyncTalkRendererOptions {
  /** `'full'` (default, 252.5 ms) or `'low-latency'` (132.5 ms), see the module doc. */
  readonly lookahead?: AudioLookahead;
}

/** The normalised mel value of silence (20 log10(1e-5) - 20 dB, clipped): every bin of a silent window. */
const SILENT_MEL = -4;
const FEATURE = 512;

/** The audio state of the segment in progress. */
class SegmentState {
  readonly mel = new IncrementalMel();
  readonly ave = new AveWindowing();
  readonly attention: AudioAttentionWindowing<Float32Array>;

  constructor(
    readonly segment: number,
    lookahead: AudioLookahead,
  ) {
    this.attention = new AudioAttentionWindowing(lookahead);
  }
}

export class SyncTalkRenderer implements FrameRenderer {
  readonly width: number;
  readonly height: number;
  readonly lookahead: AudioLookahead;
  private state: SegmentState | null = null;
  /** Output frames so far in this session: the track walk's position. */
  private shown = 0;
  /** Bumped by reset(): work started before it emits nothing. */
  private epoch = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private silentEncA: Promise<Float32Array> | null = null;

  constructor(
    private readonly bundle: SyncTalkBundle,
    options: SyncTalkRendererOptions = {},
  ) {
    this.width = bundle.manifest.width;
    this.height = bundle.manifest.height;
    this.lookahead = options.lookahead ?? 'full';
  }

  render(input: AudioChunk | IdleTick): Promise<Uint8Array[]> {
    if (input.type === 'idle') return this.serial(async () => [await this.frame(await this.silence())]);
    if (input.sampleRate !== MEL_SAMPLE_RATE || input.channels !== 1) {
      return Promise.reject(new InputError('infer', `a SyncTalk avatar needs ${MEL_SAMPLE_RATE} Hz mono audio; got ${input.sampleRate} Hz x${input.channels}`));
    }
    const real = input.samples.subarray(0, chunkFrames(input) - (input.padding ?? 0));
    return this.serial(async (epoch) => {
      if (this.state?.segment !== input.segment) this.state = new SegmentState(input.segment, this.lookahead);
      const s = this.state;
      return this.speech(s, s.ave.pushMel(s.mel.push(real)), false, epoch);
    });
  }

  /** The remaining frames of `segment` (see the module doc); none if no audio of it is held. */
  end(segment: SegmentEnd): Promise<Uint8Array[]> {
    return this.serial(async (epoch) => {
      const s = this.state;
      if (s === null || s.segment !== segment.segment) return [];
      this.state = null;
      const windows = s.ave.pushMel(s.mel.end(AVE_WINDOW_FRAMES));
      windows.push(...s.ave.end());
      return this.speech(s, windows, true, epoch);
    });
  }

  /** Drops the segment in progress and the work queued (a flush). */
  reset(): void {
    this.epoch++;
    this.state = null;
  }

  /** Runs `step` after the previous one; it yields nothing when a reset came in between. */
  private serial(step: (epoch: number) => Promise<Uint8Array[]>): Promise<Uint8Array[]> {
    const epoch = this.epoch;
    const run = this.tail.then(() => (epoch === this.epoch ? step(epoch) : []));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async speech(s: SegmentState, windows: AveWindow[], last: boolean, epoch: number): Promise<Uint8Array[]> {
    const ready: FrameAudio<Float32Array>[] = [];
    for (const w of windows) {
      const feature = await this.feature(w.mel);
      if (epoch !== this.epoch) return [];
      ready.push(...s.attention.pushFeature(feature));
    }
    if (last) ready.push(...s.attention.end());
    const frames: Uint8Array[] = [];
    for (const f of ready) {
      const slots = new Float32Array(f.slots.length * FEATURE);
      f.slots.forEach((x, k) => (x === null ? undefined : slots.set(x, k * FEATURE)));
      const encA = await this.encA(slots);
      if (epoch !== this.epoch) return [];
      frames.push(await this.frame(encA));
      if (epoch !== this.epoch) return [];
    }
    return frames;
  }

  private async feature(mel: Float32Array): Promise<Float32Array> {
    const out = await this.bundle.audio.run({ mel: { type: 'float32', dims: [1, 1, MEL_BANDS, AVE_WINDOW_FRAMES], data: mel } });
    return float32(this.bundle.audio.path, out.feature?.data, FEATURE, 'feature');
  }

  private async encA(slots: Float32Array): Promise<Float32Array> {
    const out = await this.bundle.audioAttention.run({ features: { type: 'float32', dims: [1, ATTENTION_SLOTS, FEATURE], data: slots } });
    return float32(this.bundle.audioAttention.path, out.enc_a?.data, 32, 'enc_a');
  }

  /** enc_a of silence, computed once. */
  private silence(): Promise<Float32Array> {
    this.silentEncA ??= this.feature(new Float32Array(MEL_BANDS * AVE_WINDOW_FRAMES).fill(SILENT_MEL)).then((f) => {
      const slots = new Float32Array(ATTENTION_SLOTS * FEATURE);
      for (let k = 0; k < ATTENTION_SLOTS; k++) slots.set(f, k * FEATURE);
      return this.encA(slots);
    });
    const once = this.silentEncA;
    once.catch(() => {
      if (this.silentEncA === once) this.silentEncA = null;
    });
    return once;
  }

  /** Renders the next frame of the track walk with `encA`: RGBA bytes. */
  private async frame(encA: Float32Array): Promise<Uint8Array> {
    const { manifest, tracks, render } = this.bundle;
    const t = pingPong(this.shown++, manifest.frames);
    // The next frame's images decode while this one renders (errors surface when that frame asks for them).
    if (tracks.anchors === null) this.bundle.images(pingPong(this.shown, manifest.frames)).catch(() => undefined);
    const e = manifest.eye_dim;
    const feeds: Record<string, TensorFeed> = {
      enc_a: { type: 'float32', dims: [1, 32], data: encA.slice() },
      eye: { type: 'float32', dims: [1, e], data: tracks.eyes.slice(t * e, (t + 1) * e) },
      pose: { type: 'float32', dims: [1, 4, 4], data: tracks.poses.slice(t * 16, (t + 1) * 16) },
    };
    if (tracks.anchors !== null) feeds.anchor = { type: 'float32', dims: [1, 6], data: tracks.anchors.slice(t * 6, (t + 1) * 6) };
    else {
      // copies: a feed's buffer is handed over to the inference worker, the cached images stay
      for (const [name, f] of Object.entries(await this.bundle.images(t))) feeds[name] = { ...f, data: f.data.slice() };
    }
    const rgba = (await render.run(feeds)).rgba?.data;
    if (!(rgba instanceof Uint8Array) || rgba.length !== this.width * this.height * 4) {
      throw new ModelError(render.path, `output rgba is not ${this.width * this.height * 4} uint8 values`);
    }
    return rgba;
  }
}

function float32(path: string, data: unknown, length: number, name: string): Float32Array {
  if (!(data instanceof Float32Array) || data.length !== length) throw new ModelError(path, `output ${name} is not ${length} float32 values`);
  return data;
}
