/**
 * The demo avatar: a small ONNX model (models/demo-face.onnx, built by scripts/make-demo-model.ts)
 * that draws a cartoon face whose mouth opening is a known function of the speech energy of each
 * 40 ms frame. It is the **measuring instrument** for A/V sync: the opening can be read back from
 * the pixels of a (compressed, even rescaled) video frame with `measureMouthOpening` and compared
 * with `expectedMouthOpening` of the audio, frame by frame, to find the offset between the two.
 *
 * Model contract:
 *  - inputs `audio` float32 [N, 640] (40 ms at 16 kHz per frame, N = batch) and `phase` float32 [N]
 *    (idle animation clock in frames: eyes blink, head bobs);
 *  - output `frame` uint8 [N, 256, 256, 4], RGBA.
 *
 * Drawing (pixel centres at integer + 0.5, y down, all lengths in pixels of the 256x256 frame):
 *  - opening o = clamp((10 log10(mean(x²) + 1e-10) + 60) / 50, 0, 1): closed at -60 dBFS, fully
 *    open at -10 dBFS;
 *  - the mouth is a filled ellipse centred at (128, 184), horizontal radius 36 px, **height
 *    2 + 60 o px**, vertically anti-aliased so that the coverage summed down its centre column is
 *    that height exactly;
 *  - the whole face bobs by 2 sin(2π phase / 50) px; the eyes close for 4 of every 90 phase frames.
 */
import { from, type ObservableInput } from 'rxjs';
import { fileURLToPath } from 'node:url';
import { chunkFrames, type AudioChunk, type IdleTick, type VideoFrame } from '../events.ts';
import { InputError, ModelError } from '../errors.ts';
import type { FrameRenderer } from './frame-renderer.ts';
import type { ModelRunner, TensorResult } from './model-runner.ts';

/** The model bundled with the repository. */
export const DEMO_FACE_MODEL_PATH = fileURLToPath(new URL('../../models/demo-face.onnx', import.meta.url));

type Rgba = readonly [number, number, number, number];

/** Every constant of the drawing; scripts/make-demo-model.ts builds the graph from these. */
export const DEMO_FACE = {
  /** Output width and height, pixels. */
  size: 256,
  /** Input sample rate, Hz (mono). */
  sampleRate: 16_000,
  /** Samples per frame: 40 ms at 16 kHz. */
  samplesPerFrame: 640,
  /** Frames per second implied by samplesPerFrame. */
  fps: 25,
  /** Samples per input chunk the renderer accepts: 80 ms, two frames. */
  chunkSamples: 1280,
  colors: {
    background: [28, 32, 48, 255] as Rgba,
    skin: [236, 196, 160, 255] as Rgba,
    eye: [40, 48, 72, 255] as Rgba,
    mouth: [150, 24, 48, 255] as Rgba,
  },
  /** Head ellipse: centre and radii, pixels. */
  head: { cx: 128, cy: 128, rx: 100, ry: 118 },
  /** Two eye ellipses at cx ± dx; vertical radius ryOpen, or ryClosed while blinking. */
  eyes: { cx: 128, dx: 38, cy: 100, rx: 16, ryOpen: 12, ryClosed: 1.5 },
  /** Eyes are closed while (phase mod period) < frames. */
  blink: { period: 90, frames: 4 },
  /** Vertical offset of the whole face: amplitude sin(2π phase / period), pixels. */
  bob: { amplitude: 2, period: 50 },
  /** Mouth ellipse: centre, horizontal radius; height = baseHeight + gain * opening, pixels. */
  mouth: { cx: 128, cy: 184, rx: 36, baseHeight: 2, gain: 60 },
  /** Opening 0 at floorDb, 1 at floorDb + rangeDb (dBFS of the frame's mean power). */
  level: { floorDb: -60, rangeDb: 50, epsilon: 1e-10 },
} as const;

/** Mouth height in pixels (of the 256 px frame) for an opening in [0, 1]. */
export const mouthHeight = (opening: number): number => DEMO_FACE.mouth.baseHeight + DEMO_FACE.mouth.gain * opening;

/**
 * The opening the model draws for one 640-sample frame of 16 kHz mono audio, in [0, 1]:
 * clamp((10 log10(mean(x²) + 1e-10) + 60) / 50, 0, 1), the same formula as the graph.
 */
export function expectedMouthOpening(samples640: Float32Array): number {
  let power = 0;
  for (const x of samples640) power += x * x;
  power /= samples640.length;
  const { floorDb, rangeDb, epsilon } = DEMO_FACE.level;
  const db = 10 * Math.log10(power + epsilon);
  return Math.min(1, Math.max(0, (db - floorDb) / rangeDb));
}

/** Colour-distance thresholds of the measurement, in 8-bit RGB units / fractions of the skin-to-mouth distance. */
const MEASURE = {
  /** A pixel further than this from the skin-mouth colour line is neither (not a demo-face frame). */
  foreignDistance: 90,
  /** Projections below this count as pure skin, above 1 - this as pure mouth (compression noise). */
  snap: 0.12,
  /** More than this fraction of foreign pixels in the measured window makes the result NaN. */
  maxForeign: 0.25,
  /** Rows measured beyond the largest mouth and the bob, each side, pixels. */
  margin: 6,
} as const;

/**
 * Reads the mouth opening back from a demo-face frame: the number of mouth-coloured rows in the
 * mouth's centre column (the two pixel columns either side of x = 128, averaged), converted back
 * with the inverse of `mouthHeight`, clamped to [0, 1].
 *
 * Robust to lossy video (H.264 / VP8 over WebRTC): each pixel is projected onto the line from the
 * skin colour to the mouth colour; projections within 12 % of either end snap to it (compression
 * noise), the ones in between count as that fraction of a row (the model's anti-aliased edges, or
 * blurred ones, whose sum a linear blur preserves). Frames of another size are measured in scaled
 * coordinates. Returns NaN for a frame that is not the demo face (more than a quarter of the
 * measured pixels far from both colours).
 */
export function measureMouthOpening(frame: Pick<VideoFrame, 'width' | 'height' | 'data'>): number {
  const { width, height, data } = frame;
  const sx = width / DEMO_FACE.size;
  const sy = height / DEMO_FACE.size;
  const { mouth, bob, colors } = DEMO_FACE;
  const reach = mouthHeight(1) / 2 + bob.amplitude + MEASURE.margin;
  const top = Math.max(0, Math.floor((mouth.cy - reach) * sy));
  const bottom = Math.min(height, Math.ceil((mouth.cy + reach) * sy));
  const centre = mouth.cx * sx;
  const columns = [Math.max(0, Math.ceil(centre) - 1), Math.min(width - 1, Math.floor(centre))];
  const skin = colors.skin;
  const axis = [0, 1, 2].map((c) => colors.mouth[c] - skin[c]);
  const axisLength2 = axis.reduce((s, a) => s + a * a, 0);
  let rows = 0;
  let foreign = 0;
  for (const x of columns) {
    for (let y = top; y < bottom; y++) {
      const at = (y * width + x) * 4;
      const d = [0, 1, 2].map((c) => data[at + c] - skin[c]);
      const t = Math.min(1, Math.max(0, (d[0] * axis[0] + d[1] * axis[1] + d[2] * axis[2]) / axisLength2));
      const off = Math.hypot(d[0] - t * axis[0], d[1] - t * axis[1], d[2] - t * axis[2]);
      if (off > MEASURE.foreignDistance) foreign++;
      rows += t < MEASURE.snap ? 0 : t > 1 - MEASURE.snap ? 1 : t;
    }
  }
  if (foreign > MEASURE.maxForeign * columns.length * (bottom - top)) return Number.NaN;
  const heightPx = rows / columns.length / sy;
  return Math.min(1, Math.max(0, (heightPx - mouth.baseHeight) / mouth.gain));
}

/** Checks that a loaded model follows the demo-face contract (names and shapes); ModelError otherwise. */
export function checkDemoFaceContract(model: ModelRunner): void {
  const input = (name: string) => model.inputs.find((i) => i.name === name);
  const output = model.outputs.find((o) => o.name === 'frame');
  const audio = input('audio');
  const phase = input('phase');
  const names = `inputs [${model.inputNames.join(', ')}], outputs [${model.outputNames.join(', ')}]`;
  if (!audio || !phase || !output || model.inputNames.length !== 2) {
    throw new ModelError(model.path, `expected inputs [audio, phase] and output frame (the demo-face contract); has ${names}`);
  }
  const { size, samplesPerFrame } = DEMO_FACE;
  const fits = (shape: ReadonlyArray<number | string>, want: readonly number[]) =>
    shape.length === want.length + 1 && want.every((w, i) => shape[i + 1] === w);
  if (audio.type !== 'float32' || !fits(audio.shape, [samplesPerFrame])) {
    throw new ModelError(model.path, `input audio must be float32 [N, ${samplesPerFrame}]; is ${audio.type} [${audio.shape.join(', ')}]`);
  }
  if (output.type !== 'uint8' || !fits(output.shape, [size, size, 4])) {
    throw new ModelError(model.path, `output frame must be uint8 [N, ${size}, ${size}, 4]; is ${output.type} [${output.shape.join(', ')}]`);
  }
}

/**
 * The FrameRenderer for a demo-face model. Audio chunks must be 16 kHz mono, 1280 samples (80 ms):
 * frame k (k = 0, 1) covers samples [640k, 640k + 640) and is rendered only when it holds real
 * audio (k * 640 < 1280 - padding); all frames of a chunk go through the model as one batch.
 * Speech frames animate with phase = pts * 25 + k; an IdleTick renders one frame from 640 zeros
 * with phase = its index.
 */
export class DemoFaceRenderer implements FrameRenderer {
  readonly width = DEMO_FACE.size;
  readonly height = DEMO_FACE.size;

  /** Throws ModelError when `model` does not follow the demo-face contract. */
  constructor(private readonly model: ModelRunner) {
    checkDemoFaceContract(model);
  }

  render(input: AudioChunk | IdleTick): ObservableInput<Uint8Array[]> {
    const { samplesPerFrame, fps } = DEMO_FACE;
    if (input.type === 'idle') {
      return this.run(new Float32Array(samplesPerFrame), Float32Array.of(input.index), 1);
    }
    checkChunk(input);
    const real = chunkFrames(input) - (input.padding ?? 0);
    const count = Math.min(2, Math.max(0, Math.ceil(real / samplesPerFrame)));
    if (count === 0) return from([[]]);
    const phase = Float32Array.from({ length: count }, (_, k) => input.pts * fps + k);
    return this.run(input.samples.slice(0, count * samplesPerFrame), phase, count);
  }

  private async run(audio: Float32Array, phase: Float32Array, count: number): Promise<Uint8Array[]> {
    const { samplesPerFrame, size } = DEMO_FACE;
    const out = await this.model.run({
      audio: { type: 'float32', dims: [count, samplesPerFrame], data: audio },
      phase: { type: 'float32', dims: [count], data: phase },
    });
    return splitFrames(this.model.path, out.frame, count, size * size * 4);
  }
}

function checkChunk(a: AudioChunk): void {
  const { sampleRate, chunkSamples } = DEMO_FACE;
  if (a.sampleRate !== sampleRate || a.channels !== 1 || chunkFrames(a) !== chunkSamples) {
    throw new InputError(
      'infer',
      `the demo-face model needs ${sampleRate} Hz mono chunks of ${chunkSamples} samples; got ${a.sampleRate} Hz x${a.channels}, ${chunkFrames(a)} samples`,
    );
  }
}

function splitFrames(path: string, frame: TensorResult | undefined, count: number, bytes: number): Uint8Array[] {
  if (!frame || !(frame.data instanceof Uint8Array) || frame.data.length !== count * bytes) {
    throw new ModelError(path, `output frame is not ${count} RGBA frames of ${bytes} bytes`);
  }
  const data = frame.data;
  // Views, not copies: the frames of one run share the output buffer (sinks read or copy, never transfer it).
  return Array.from({ length: count }, (_, k) => data.subarray(k * bytes, (k + 1) * bytes));
}
