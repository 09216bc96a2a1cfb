import { crc32, deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.ts';
import { decodePng, decodePngAsync } from '../src/synctalk/png.ts';

/** A PNG of `pixels` (8-bit, `channels` 1/3/4) whose row y is filtered with `filters[y % filters.length]`. */
function encodePng(width: number, height: number, channels: 1 | 3 | 4, pixels: Uint8Array, filters: number[]): Uint8Array {
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const f = filters[y % filters.length];
    raw[y * (stride + 1)] = f;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const predictor = [0, a, b, (a + b) >> 1, paeth][f] ?? 0;
      raw[y * (stride + 1) + 1 + x] = (pixels[y * stride + x] - predictor) & 0xff;
    }
  }
  const chunk = (type: string, body: Uint8Array): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, { 1: 0, 3: 2, 4: 6 }[channels], 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())]);
}

/** Deterministic bytes with both smooth runs and jumps, so every predictor branch is taken. */
const pixelsOf = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 37 + ((i * i) >> 5) + (i % 7 === 0 ? 200 : 0)) & 0xff);

describe('decodePng', () => {
  for (const channels of [1, 3, 4] as const) {
    for (const filters of [[0], [1], [2], [3], [4], [4, 3, 2, 1, 0]]) {
      it(`undoes row filter(s) ${filters.join(',')} at ${channels} channel(s), the same synchronously and on the thread pool`, async () => {
        const pixels = pixelsOf(13 * 9 * channels);
        const png = encodePng(13, 9, channels, pixels, filters);
        const expected = { width: 13, height: 9, channels };
        expect(decodePng('x.png', png, expected)).toEqual({ ...expected, data: pixels });
        expect(await decodePngAsync('x.png', png, expected)).toEqual({ ...expected, data: pixels });
      });
    }
  }

  it('an unknown row filter and a size other than the expected one are one ModelError each, on both paths', async () => {
    const unknownFilter = encodePng(4, 2, 1, pixelsOf(8), [0, 5]);
    const filterError = new ModelError('x.png', 'row 1 has unknown filter 5');
    expect(() => decodePng('x.png', unknownFilter)).toThrow(filterError);
    await expect(decodePngAsync('x.png', unknownFilter)).rejects.toThrow(filterError);
    const wrongSize = { width: 5, height: 2, channels: 1 } as const;
    const sizeError = new ModelError('x.png', 'is 4x2x1; the bundle needs 5x2x1');
    expect(() => decodePng('x.png', encodePng(4, 2, 1, pixelsOf(8), [0]), wrongSize)).toThrow(sizeError);
    await expect(decodePngAsync('x.png', encodePng(4, 2, 1, pixelsOf(8), [0]), wrongSize)).rejects.toThrow(sizeError);
  });
});
