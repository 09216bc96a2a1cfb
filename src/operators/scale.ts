/**
 * scale: resizes video frames to the output size (`width` x `height`), bilinear, RGBA,
 * keeping the aspect ratio and letterboxing with `background` (GStreamer's videoscale + add-borders).
 *
 * ```
 * input:  -v(256x256)--S--v(256x256)--F-
 * output: -v(640x360)--S--v(640x360)--F-     (other events pass through unchanged)
 * ```
 *
 * The source-to-destination sample map is computed once per input size, so a frame costs one pass
 * over the output pixels. Frames already at the output size pass through untouched.
 */
import { map, type OperatorFunction } from 'rxjs';
import { z } from 'zod';
import type { PipelineEvent, VideoFrame } from '../events.ts';
import type { OperatorElement } from '../pipelines/element.ts';

export interface ScaleOptions {
  /** Output width, pixels. */
  readonly width: number;
  /** Output height, pixels. */
  readonly height: number;
  /** RGBA of the letterbox bars (default opaque black). */
  readonly background?: readonly [number, number, number, number];
}

/** For each output column (or row): the two source indices and the weight of the second, or -1 in a bar. */
interface Axis {
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  readonly w: Float32Array;
}

function axis(src: number, dst: number, content: number): Axis {
  const lo = new Int32Array(dst).fill(-1);
  const hi = new Int32Array(dst).fill(-1);
  const w = new Float32Array(dst);
  const offset = Math.floor((dst - content) / 2);
  for (let i = 0; i < content; i++) {
    const x = Math.min(src - 1, Math.max(0, ((i + 0.5) * src) / content - 0.5));
    const x0 = Math.floor(x);
    lo[offset + i] = x0;
    hi[offset + i] = Math.min(src - 1, x0 + 1);
    w[offset + i] = x - x0;
  }
  return { lo, hi, w };
}

export function scale(options: ScaleOptions): OperatorFunction<PipelineEvent, PipelineEvent> {
  const { width, height } = options;
  const bg = options.background ?? [0, 0, 0, 255];
  let cache: { key: string; xs: Axis; ys: Axis } | undefined;

  const resize = (f: VideoFrame): VideoFrame => {
    if (f.width === width && f.height === height) return f;
    const key = `${f.width}x${f.height}`;
    if (cache?.key !== key) {
      const s = Math.min(width / f.width, height / f.height);
      cache = { key, xs: axis(f.width, width, Math.round(f.width * s)), ys: axis(f.height, height, Math.round(f.height * s)) };
    }
    const { xs, ys } = cache;
    const src = f.data;
    const out = new Uint8Array(width * height * 4);
    for (let y = 0; y < height; y++) {
      const y0 = ys.lo[y];
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 4;
        const x0 = xs.lo[x];
        if (y0 < 0 || x0 < 0) {
          out[o] = bg[0];
          out[o + 1] = bg[1];
          out[o + 2] = bg[2];
          out[o + 3] = bg[3];
          continue;
        }
        const wy = ys.w[y];
        const wx = xs.w[x];
        const r0 = y0 * f.width;
        const r1 = ys.hi[y] * f.width;
        const a = (r0 + x0) * 4;
        const b = (r0 + xs.hi[x]) * 4;
        const c = (r1 + x0) * 4;
        const d = (r1 + xs.hi[x]) * 4;
        for (let k = 0; k < 4; k++) {
          const top = src[a + k] + (src[b + k] - src[a + k]) * wx;
          const bottom = src[c + k] + (src[d + k] - src[c + k]) * wx;
          out[o + k] = Math.round(top + (bottom - top) * wy);
        }
      }
    }
    return { ...f, width, height, data: out };
  };

  return map((e) => (e.type === 'video' ? resize(e) : e.type === 'av' ? { ...e, video: resize(e.video) } : e));
}

const scaleParams = z
  .object({
    width: z.number().int().min(2).max(7680).describe('output width in pixels'),
    height: z.number().int().min(2).max(4320).describe('output height in pixels'),
    background: z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)]).default([0, 0, 0, 255]).describe('RGBA of the letterbox bars (default 0, 0, 0, 255: opaque black)'),
  })
  .strict();

export const scaleElement: OperatorElement<typeof scaleParams> = {
  role: 'operator',
  name: 'scale',
  summary: 'resize video frames to width x height (bilinear, aspect kept, letterboxed)',
  params: scaleParams,
  caps: (p, input) => (input.kind === 'audio' ? `needs video or av frames, got audio` : { kind: input.kind, width: p.width, height: p.height }),
  create: (p) => scale(p),
};
