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
 * Cost: one zlib inflate plus the PNG row filters, about 8 ms of CPU for a 512x512 RGBA frame on the development
 * machine, of which the inflate is most. `decodePngAsync` inflates on libuv's thread pool, so the calling thread
 * (a session's event loop, which paces the frames) only undoes the row filters.
 */
import { inflate, inflateSync, type ZlibOptions } from 'node:zlib';
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
  const png = parsePng(path, bytes, expected);
  let raw: Buffer;
  try {
    raw = inflateSync(png.idat, { maxOutputLength: png.size });
  } catch (e) {
    return inflateFailed(path, png, e);
  }
  return unfilter(path, png, raw);
}

/** decodePng with the inflate on libuv's thread pool. */
export async function decodePngAsync(path: string, bytes: Uint8Array, expected?: ExpectedImage): Promise<DecodedImage> {
  const png = parsePng(path, bytes, expected);
  const raw = await new Promise<Buffer>((resolve, reject) =>
    inflate(png.idat, { maxOutputLength: png.size } satisfies ZlibOptions, (e, out) => (e ? reject(e) : resolve(out))),
  ).catch((e: unknown) => inflateFailed(path, png, e));
  return unfilter(path, png, raw);
}

interface ParsedPng {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3 | 4;
  /** The IDAT chunks' bytes, concatenated. */
  readonly idat: Buffer;
  /** Bytes of filtered image data: `height * (width * channels + 1)`. */
  readonly size: number;
}

function fail(path: string, problem: string): never {
  throw new ModelError(path, problem);
}

function parsePng(path: string, bytes: Uint8Array, expected?: ExpectedImage): ParsedPng {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) fail(path, 'not a PNG file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  let channels: 1 | 3 | 4 = 1;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (body.length !== length) fail(path, `truncated chunk ${showType(bytes.subarray(at + 4, at + 8))}`);
    if (type === 'IHDR') {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      const [depth, colour, , , interlace] = body.subarray(8, 13);
      const c = CHANNELS[colour];
      if (depth !== 8 || c === undefined || interlace !== 0) {
        fail(path, `unsupported PNG (bit depth ${depth}, colour type ${colour}, interlace ${interlace}); expected 8-bit gray, RGB or RGBA, not interlaced`);
      }
      channels = c;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    at += 12 + length;
  }
  if (width === 0 || height === 0) fail(path, 'no IHDR chunk');
  if (expected !== undefined && (width !== expected.width || height !== expected.height || channels !== expected.channels)) {
    fail(path, `is ${width}x${height}x${channels}; the bundle needs ${expected.width}x${expected.height}x${expected.channels}`);
  }
  if (width * height > MAX_PIXELS) fail(path, `is ${width}x${height}, more than the ${MAX_PIXELS} pixels decoded at most`);
  return { width, height, channels, idat: Buffer.concat(idat), size: height * (width * channels + 1) };
}

function inflateFailed(path: string, png: ParsedPng, e: unknown): never {
  const { width, height, channels, size } = png;
  return fail(
    path,
    (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      ? `image data inflates to more than the ${size} bytes of a ${width}x${height}x${channels} image`
      : `corrupt image data (${(e as Error).message})`,
  );
}

function unfilter(path: string, png: ParsedPng, raw: Buffer): DecodedImage {
  const { width, height, channels, size } = png;
  if (raw.length < size) fail(path, `image data holds ${raw.length} bytes, expected ${size}`);
  const stride = width * channels;
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    if (filter > 4) fail(path, `row ${y} has unknown filter ${filter}`);
    unfilterRow(filter, raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), data, y * stride, y > 0 ? (y - 1) * stride : -1, stride, channels);
  }
  return { width, height, channels, data };
}

/**
 * Undoes one row's PNG filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth) into `out` at `row`, with `prev` the
 * previous row's offset in `out` (-1 for the first row, whose "up" bytes are 0). One loop per filter type: the
 * per-byte work is a few integer operations (a 512x512 RGBA frame is a million bytes, decoded per rendered frame).
 */
function unfilterRow(filter: number, src: Uint8Array, out: Uint8Array, row: number, prev: number, stride: number, bpp: number): void {
  if (filter === 0 || (filter === 2 && prev < 0)) {
    out.set(src, row);
  } else if (filter === 1 || (filter === 4 && prev < 0)) {
    // Paeth with no row above picks the left byte: it is Sub.
    for (let x = 0; x < bpp; x++) out[row + x] = src[x];
    for (let x = bpp; x < stride; x++) out[row + x] = (src[x] + out[row + x - bpp]) & 0xff;
  } else if (filter === 2) {
    for (let x = 0; x < stride; x++) out[row + x] = (src[x] + out[prev + x]) & 0xff;
  } else if (filter === 3) {
    if (prev < 0) {
      for (let x = 0; x < bpp; x++) out[row + x] = src[x];
      for (let x = bpp; x < stride; x++) out[row + x] = (src[x] + (out[row + x - bpp] >> 1)) & 0xff;
    } else {
      for (let x = 0; x < bpp; x++) out[row + x] = (src[x] + (out[prev + x] >> 1)) & 0xff;
      for (let x = bpp; x < stride; x++) out[row + x] = (src[x] + ((out[row + x - bpp] + out[prev + x]) >> 1)) & 0xff;
    }
  } else {
    // Paeth with a row above: the first pixel has no left or upper-left neighbour, so it predicts from above.
    for (let x = 0; x < bpp; x++) out[row + x] = (src[x] + out[prev + x]) & 0xff;
    for (let x = bpp; x < stride; x++) {
      const a = out[row + x - bpp];
      const b = out[prev + x];
      const c = out[prev + x - bpp];
      const pa = Math.abs(b - c);
      const pb = Math.abs(a - c);
      const pc = Math.abs(a + b - 2 * c);
      out[row + x] = (src[x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
    }
  }
}
