/**
 * decodePng: the pixels of a PNG as the avatar bundle stores them (python/synctalk_live/export.py writes them with
 * PIL): 8 bits per channel, not interlaced, gray (1 channel), RGB (3) or RGBA (4). Anything else is a ModelError
 * naming the file, as is a corrupt stream (bad signature, missing chunk, short image data).
 *
 * Bounded: the image data is inflated with a limit of exactly what `height` rows of `width` pixels take
 * (`expected`, e.g. the bundle manifest's frame size: an image of another size is refused before inflating), and
 * at most MAX_PIXELS pixels in any case, so a zip bomb is one error line, not gigabytes. Chunk types that are not
 * four ASCII letters are shown as hex bytes.
 *
 * Units: output bytes row-major, `height * width * channels`, channel order as stored (R, G, B, A).
 * Cost: one zlib inflate plus the PNG row filters (about 1 ms for 64 kB of RGBA on the development machine).
 */
import { inflateSync } from 'node:zlib';
import { ModelError } from '../errors.ts';

export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  /** 1 (gray), 3 (RGB) or 4 (RGBA). */
  readonly channels: 1 | 3 | 4;
  readonly data: Uint8Array;
}

/** What an image may be when the caller expects a size (a bundle frame). */
export interface ExpectedImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3 | 4;
}

/** Largest image decoded without an expected size: 4096 x 4096 pixels (64 MiB of RGBA). */
export const MAX_PIXELS = 4096 * 4096;

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** A chunk type for a message: four ASCII letters as they are, anything else as hex bytes. */
const showType = (b: Uint8Array): string =>
  /^[A-Za-z]{4}$/.test(String.fromCharCode(...b)) ? String.fromCharCode(...b) : `(bytes ${Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1 ')})`;
const CHANNELS: Record<number, 1 | 3 | 4> = { 0: 1, 2: 3, 6: 4 };

/** Decodes `bytes`, the content of the PNG file `path` (named in errors), which must be `expected` if given. */
export function decodePng(path: string, bytes: Uint8Array, expected?: ExpectedImage): DecodedImage {
  const fail = (problem: string): never => {
    throw new ModelError(path, problem);
  };
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) fail('not a PNG file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  let channels: 1 | 3 | 4 = 1;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (body.length !== length) fail(`truncated chunk ${showType(bytes.subarray(at + 4, at + 8))}`);
    if (type === 'IHDR') {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      const [depth, colour, , , interlace] = body.subarray(8, 13);
      const c = CHANNELS[colour];
      if (depth !== 8 || c === undefined || interlace !== 0) {
        fail(`unsupported PNG (bit depth ${depth}, colour type ${colour}, interlace ${interlace}); expected 8-bit gray, RGB or RGBA, not interlaced`);
      }
      channels = c;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    at += 12 + length;
  }
  if (width === 0 || height === 0) fail('no IHDR chunk');
  if (expected !== undefined && (width !== expected.width || height !== expected.height || channels !== expected.channels)) {
    fail(`is ${width}x${height}x${channels}; the bundle needs ${expected.width}x${expected.height}x${expected.channels}`);
  }
  if (width * height > MAX_PIXELS) fail(`is ${width}x${height}, more than the ${MAX_PIXELS} pixels decoded at most`);
  const stride = width * channels;
  const size = height * (stride + 1);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: size });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(
      code === 'ERR_BUFFER_TOO_LARGE'
        ? `image data inflates to more than the ${size} bytes of a ${width}x${height}x${channels} image`
        : `corrupt image data (${(e as Error).message})`,
    );
  }
  if (raw.length < size) fail(`image data holds ${raw.length} bytes, expected ${size}`);
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? data[row + x - channels] : 0;
      const b = y > 0 ? data[prev + x] : 0;
      const c = x >= channels && y > 0 ? data[prev + x - channels] : 0;
      let predictor: number;
      if (filter === 0) predictor = 0;
      else if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else return fail(`row ${y} has unknown filter ${filter}`);
      data[row + x] = (raw[src + x] + predictor) & 0xff;
    }
  }
  return { width, height, channels, data };
}
