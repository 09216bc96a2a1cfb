import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, from } from 'rxjs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemoFaceModel } from '../scripts/make-demo-model.ts';
import { audio, idleTick } from '../src/events.ts';
import { InputError } from '../src/errors.ts';
import {
  DEMO_FACE,
  DEMO_FACE_MODEL_PATH,
  DemoFaceRenderer,
  expectedMouthOpening,
  measureMouthOpening,
  mouthHeight,
} from '../src/models/demo-face.ts';
import { OnnxModel } from '../src/models/onnx-model.ts';

const SIZE: number = DEMO_FACE.size;
const FRAME_BYTES = SIZE * SIZE * 4;
const TOLERANCE = 1 / 60;

/** 640 samples of a 220 Hz sine whose mean power is `db` dBFS over the `burst` samples it fills, zeros after. */
function sineFrame(db: number, burst = 640): Float32Array {
  const amplitude = Math.sqrt(2 * 10 ** (db / 10));
  return Float32Array.from({ length: 640 }, (_, i) => (i < burst ? amplitude * Math.sin((2 * Math.PI * 220 * i) / 16_000) : 0));
}

const LEVELS = [-80, -60, -55, -47, -40, -33.3, -25, -18, -12, -10, -3];
const frames = [...LEVELS.map((db) => sineFrame(db)), sineFrame(-20, 320), sineFrame(-30, 100)];

let model: OnnxModel;

async function render(samples: Float32Array[], phase?: number[]): Promise<Uint8Array[]> {
  const n = samples.length;
  const data = new Float32Array(n * 640);
  samples.forEach((s, i) => data.set(s, i * 640));
  const out = await model.run({
    audio: { type: 'float32', dims: [n, 640], data },
    phase: { type: 'float32', dims: [n], data: Float32Array.from(phase ?? samples.map((_, i) => 10 + i)) },
  });
  expect(out.frame.dims).toEqual([n, SIZE, SIZE, 4]);
  return Array.from({ length: n }, (_, k) => (out.frame.data as Uint8Array).slice(k * FRAME_BYTES, (k + 1) * FRAME_BYTES));
}

const asFrame = (data: Uint8Array, width = SIZE, height = SIZE) => ({ width, height, data });

/** Encodes RGBA frames with libx264 (yuv420p, crf), decodes them back to RGBA at `scale` pixels square. */
function h264RoundTrip(pictures: Uint8Array[], crf: number, scale = SIZE): Uint8Array[] {
  const dir = mkdtempSync(join(tmpdir(), 'demo-face-'));
  try {
    const mp4 = join(dir, 'f.mp4');
    const enc = spawnSync(
      'ffmpeg',
      ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${SIZE}x${SIZE}`, '-r', '25', '-i', '-',
        '-c:v', 'libx264', '-crf', String(crf), '-pix_fmt', 'yuv420p', '-y', mp4],
      { input: Buffer.concat(pictures) },
    );
    expect(enc.status, enc.stderr.toString()).toBe(0);
    const dec = spawnSync('ffmpeg', ['-v', 'error', '-i', mp4, '-vf', `scale=${scale}:${scale}`, '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], {
      maxBuffer: 64 << 20,
    });
    expect(dec.status, dec.stderr.toString()).toBe(0);
    const bytes = scale * scale * 4;
    return pictures.map((_, k) => new Uint8Array(dec.stdout.subarray(k * bytes, (k + 1) * bytes)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  model = await OnnxModel.load(DEMO_FACE_MODEL_PATH, { providers: ['cpu'], log: pino({ level: 'silent' }) });
});
afterAll(() => model.close());

describe('demo-face model', () => {
  it('is what scripts/make-demo-model.ts builds, byte for byte, and small', () => {
    const committed = readFileSync(DEMO_FACE_MODEL_PATH);
    expect(Buffer.from(buildDemoFaceModel()).equals(committed)).toBe(true);
    expect(committed.length).toBeLessThan(64 * 1024);
  });

  it('draws the mouth opening of expectedMouthOpening, read back by measureMouthOpening within 1/60', async () => {
    const pictures = await render(frames);
    const expected = frames.map(expectedMouthOpening);
    const measured = pictures.map((p) => measureMouthOpening(asFrame(p)));
    // the levels span closed (-80, -60 dBFS) to fully open (-10, -3 dBFS)
    expect(expected[0]).toBe(0);
    expect(expected[LEVELS.length - 1]).toBe(1);
    measured.forEach((m, i) => expect(Math.abs(m - expected[i]), `frame ${i}: measured ${m}, expected ${expected[i]}`).toBeLessThan(TOLERANCE));
  });

  it('renders the same pixels in a batch of 4 as one frame at a time', async () => {
    const four = frames.slice(3, 7);
    const batch = await render(four, [0, 1, 2, 3]);
    for (let k = 0; k < 4; k++) {
      const [single] = await render([four[k]], [k]);
      expect(Buffer.from(single).equals(Buffer.from(batch[k])), `frame ${k}`).toBe(true);
    }
  });

  it('blinks and bobs with phase, leaving the mouth measurement unchanged', async () => {
    const level = sineFrame(-30);
    const [closed, open, bobbed] = await render([level, level, level], [1, 10, 12.5]);
    const eyeRow = (p: Uint8Array) => p.subarray((DEMO_FACE.eyes.cy - 8) * SIZE * 4, (DEMO_FACE.eyes.cy - 7) * SIZE * 4);
    expect(Buffer.from(eyeRow(closed)).equals(Buffer.from(eyeRow(open)))).toBe(false);
    expect(Buffer.from(open).equals(Buffer.from(bobbed))).toBe(false);
    for (const p of [closed, open, bobbed]) expect(Math.abs(measureMouthOpening(asFrame(p)) - expectedMouthOpening(level))).toBeLessThan(TOLERANCE);
  });
});

describe('measureMouthOpening', () => {
  it('survives H.264 compression (libx264, yuv420p, crf 30) within 1/60', async () => {
    const pictures = await render(frames);
    const decoded = h264RoundTrip(pictures, 30);
    decoded.forEach((p, i) => {
      const m = measureMouthOpening(asFrame(p));
      expect(Math.abs(m - expectedMouthOpening(frames[i])), `frame ${i}: ${m}`).toBeLessThan(TOLERANCE);
    });
  });

  it('measures a frame rescaled to 192x192 (H.264 crf 23) in scaled coordinates, within 1/60', async () => {
    const pictures = await render(frames);
    const decoded = h264RoundTrip(pictures, 23, 192);
    decoded.forEach((p, i) => {
      const m = measureMouthOpening(asFrame(p, 192, 192));
      expect(Math.abs(m - expectedMouthOpening(frames[i])), `frame ${i}: ${m}`).toBeLessThan(TOLERANCE);
    });
  });

  it('is NaN for a frame that is not the demo face', () => {
    expect(measureMouthOpening(asFrame(new Uint8Array(FRAME_BYTES)))).toBeNaN();
  });

  it('inverts mouthHeight: 2 px closed, 62 px open', () => {
    expect(mouthHeight(0)).toBe(2);
    expect(mouthHeight(1)).toBe(62);
    expect(expectedMouthOpening(new Float32Array(640))).toBe(0);
  });
});

describe('DemoFaceRenderer', () => {
  const chunk = (samples: Float32Array, padding?: number) => audio(samples, 16_000, 1, 1.2, 0, padding);
  const speech = () => {
    const s = new Float32Array(1280);
    s.set(sineFrame(-40), 0);
    s.set(sineFrame(-15), 640);
    return s;
  };

  it('renders a 1280-sample chunk as two frames, in order', async () => {
    const renderer = new DemoFaceRenderer(model);
    const out = await firstValueFrom(from(renderer.render(chunk(speech()))));
    expect(out).toHaveLength(2);
    expect(measureMouthOpening(asFrame(out[0]))).toBeCloseTo(expectedMouthOpening(sineFrame(-40)), 1);
    expect(measureMouthOpening(asFrame(out[1]))).toBeCloseTo(expectedMouthOpening(sineFrame(-15)), 1);
  });

  it('renders only the frames that hold real audio (padding)', async () => {
    const renderer = new DemoFaceRenderer(model);
    const count = async (padding: number) => (await firstValueFrom(from(renderer.render(chunk(speech(), padding))))).length;
    expect(await count(639)).toBe(2);
    expect(await count(640)).toBe(1);
    expect(await count(1279)).toBe(1);
    expect(await count(1280)).toBe(0);
  });

  it('renders an idle tick as one closed-mouth frame', async () => {
    const renderer = new DemoFaceRenderer(model);
    const out = await firstValueFrom(from(renderer.render(idleTick(7, 3.0))));
    expect(out).toHaveLength(1);
    expect(out[0]).toHaveLength(FRAME_BYTES);
    expect(measureMouthOpening(asFrame(out[0]))).toBe(0);
  });

  it('rejects a chunk that is not 16 kHz mono x 1280 with an InputError', () => {
    const renderer = new DemoFaceRenderer(model);
    expect(() => renderer.render(audio(new Float32Array(1280), 48_000, 1, 0, 0))).toThrow(InputError);
    expect(() => renderer.render(audio(new Float32Array(1280), 16_000, 2, 0, 0))).toThrow(/16000 Hz mono chunks of 1280 samples; got 16000 Hz x2, 640 samples/);
  });
});
