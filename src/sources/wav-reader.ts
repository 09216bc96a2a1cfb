/**
 * readWav: a streaming WAV (RIFF/WAVE) reader. It reads the file in blocks with `FileHandle.read`, never the whole
 * file, and yields interleaved float32 samples in [-1, 1], `blockFrames` frames at a time (the last block may be
 * shorter).
 *
 *   file:   RIFF WAVE | fmt | LIST | data ████████████████████ |
 *   yield:                          [block][block][block][blk]|
 *
 * Formats: PCM 8-bit unsigned, 16/24/32-bit signed; IEEE float 32/64-bit; G.711 mu-law and A-law (8-bit); the same
 * inside WAVE_FORMAT_EXTENSIBLE (0xFFFE, picked by the subformat GUID). Sample rates 1000 to 768000 Hz and 1 to 64
 * channels (dsp/audio-limits.ts); anything else in the header is refused in one line before a buffer is sized from it.
 *
 * Chunks: unknown chunks (LIST, fact, ...) are skipped, odd sizes padded to even. A data size of 0 or 0xFFFFFFFF (as
 * streaming encoders write) means "until the end of the file" (`dataBytes: null`). The RIFF size is not trusted
 * (writers often get it wrong): chunks are walked up to the end of the file. A trailing partial frame (fewer bytes
 * than one block align) is ignored, with a warning.
 *
 * Float samples: NaN and +/-Inf follow `nonFinite`. 'silence' (the usual choice) replaces them with 0 and calls
 * `onWarning` ONCE per file, when reading stops (end of data, error, or the consumer's early `return()`), with the
 * count; 'reject' throws an InputError naming the first one's frame and channel. Finite float samples outside
 * [-1, 1] are clipped, also with one warning per file giving the count.
 *
 * Bad input throws `InputError(path, problem)`; the header is checked before any sample is yielded, including a
 * data size larger than the file. Nothing is allocated from a size the header claims: the read buffer is at most
 * one block and at most what the file holds. An early `return()` of the generator closes the file.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { channelsProblem, sampleRateProblem } from '../dsp/audio-limits.ts';
import { InputError } from '../errors.ts';

export interface WavFormat {
  readonly encoding: 'pcm' | 'float' | 'mulaw' | 'alaw';
  /** Bits per sample in the file (the container size for WAVE_FORMAT_EXTENSIBLE). */
  readonly bitsPerSample: number;
  /** Hz. */
  readonly sampleRate: number;
  readonly channels: number;
  /** Bytes of sample data the data chunk declares; null = until the end of the file. */
  readonly dataBytes: number | null;
}

export interface ReadWavOptions {
  /** Frames (samples per channel) per yielded block, or a function of the format (e.g. for a duration). */
  readonly blockFrames: number | ((format: WavFormat) => number);
  /** What to do with NaN/Inf float samples: 'silence' replaces them with 0 (one warning), 'reject' throws. */
  readonly nonFinite: 'silence' | 'reject';
  readonly onWarning?: (message: string) => void;
  /** Bytes per read from the file (default 65536). Reads need not be aligned to frames. */
  readonly readBytes?: number;
}

export interface WavBlock {
  readonly format: WavFormat;
  /** Interleaved, `frames * channels` long, in [-1, 1]. */
  readonly samples: Float32Array;
}

const DEFAULT_READ_BYTES = 65536;
const STREAMING_SIZES = new Set([0, 0xffffffff]);
const FORMAT_TAGS: Record<number, WavFormat['encoding']> = { 0x0001: 'pcm', 0x0003: 'float', 0x0006: 'alaw', 0x0007: 'mulaw' };
const EXTENSIBLE = 0xfffe;
/** Known tags we do not decode, named in the error message. */
const TAG_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MPEG Layer 3',
  0x0160: 'WMA v1',
  0x0161: 'WMA v2',
  0x1610: 'AAC',
};
const SUPPORTED_BITS: Record<WavFormat['encoding'], readonly number[]> = {
  pcm: [8, 16, 24, 32],
  float: [32, 64],
  mulaw: [8],
  alaw: [8],
};
/** Bytes 4..15 of every KSDATAFORMAT_SUBTYPE_* GUID derived from a format tag. */
const GUID_TAIL = Buffer.from([0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]);

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0').toUpperCase()}`;

/** Yields the file's samples block by block; see the file's doc comment for formats, policies and errors. */
export async function* readWav(path: string, opts: ReadWavOptions): AsyncGenerator<WavBlock, void, undefined> {
  const readBytes = opts.readBytes ?? DEFAULT_READ_BYTES;
  if (!Number.isInteger(readBytes) || readBytes < 1) throw new RangeError(`readWav: readBytes must be a positive integer, got ${readBytes}`);
  const handle = await open(path, 'r').catch((e: unknown) => {
    throw ioError(path, e);
  });
  const counts = { nonFinite: 0, clipped: 0 };
  try {
    const { format, dataStart, fileSize } = await readHeader(path, handle);
    const blockFrames = typeof opts.blockFrames === 'function' ? opts.blockFrames(format) : opts.blockFrames;
    if (!Number.isInteger(blockFrames) || blockFrames < 1) throw new RangeError(`readWav: blockFrames must be a positive integer, got ${blockFrames}`);
    const blockAlign = format.channels * (format.bitsPerSample / 8);
    const available = Math.min(fileSize - dataStart, format.dataBytes ?? Infinity);
    const capacity = Math.min(blockFrames, Math.max(1, Math.ceil(available / blockAlign))) * blockAlign;
    const pending = Buffer.alloc(capacity);
    const decode = decoder(path, format, opts.nonFinite, counts);
    let position = dataStart;
    let remaining = format.dataBytes ?? Infinity;
    let framesDone = 0;
    for (;;) {
      let filled = 0;
      while (filled < capacity && remaining > 0) {
        const want = Math.min(readBytes, capacity - filled, remaining);
        const { bytesRead } = await handle.read(pending, filled, want, position);
        if (bytesRead === 0) break;
        filled += bytesRead;
        position += bytesRead;
        remaining -= bytesRead;
      }
      if (filled < capacity && remaining > 0 && format.dataBytes !== null) {
        throw new InputError(path, truncated(format.dataBytes, format.dataBytes - remaining));
      }
      const frames = Math.floor(filled / blockAlign);
      if (frames > 0) {
        const samples = new Float32Array(frames * format.channels);
        decode(pending, samples, framesDone);
        framesDone += frames;
        yield { format, samples };
      }
      if (filled < capacity) {
        const partial = filled - frames * blockAlign;
        if (partial > 0) opts.onWarning?.(`ignored ${partial} trailing bytes of data (less than one ${blockAlign}-byte frame)`);
        return;
      }
    }
  } catch (e) {
    throw ioError(path, e);
  } finally {
    if (counts.nonFinite > 0) opts.onWarning?.(`${counts.nonFinite} non-finite float samples (NaN or Inf) replaced with silence`);
    if (counts.clipped > 0) opts.onWarning?.(`${counts.clipped} float samples outside [-1, 1] clipped`);
    await handle.close();
  }
}

const truncated = (expected: number, actual: number): string =>
  `truncated data: the data chunk declares ${expected} bytes but the file holds only ${actual}`;

/** An fs error (ENOENT, EISDIR, EACCES, ...) as an InputError; anything else is a bug and passes through. */
function ioError(path: string, e: unknown): unknown {
  if (!(e instanceof Error) || typeof (e as NodeJS.ErrnoException).code !== 'string') return e;
  const code = (e as NodeJS.ErrnoException).code;
  const problems: Record<string, string> = {
    ENOENT: 'no such file',
    EISDIR: 'is a directory, not a WAV file',
    EACCES: 'permission denied',
  };
  return new InputError(path, `cannot read: ${problems[code!] ?? e.message}`);
}

async function readAt(handle: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}

/** A chunk or RIFF id for a message: printable ASCII as is, else hex bytes. */
const showId = (b: Buffer): string =>
  /^[\x20-\x7e]*$/.test(b.toString('latin1')) ? `"${b.toString('latin1')}"` : `bytes ${b.toString('hex').replace(/(..)(?!$)/g, '$1 ')}`;

interface Header {
  readonly format: WavFormat;
  readonly dataStart: number;
  readonly fileSize: number;
}

async function readHeader(path: string, handle: FileHandle): Promise<Header> {
  const fileSize = (await handle.stat()).size;
  if (fileSize === 0) throw new InputError(path, 'empty file');
  const riff = await readAt(handle, 12, 0);
  if (riff.length < 12 || riff.toString('latin1', 0, 4) !== 'RIFF' || riff.toString('latin1', 8, 12) !== 'WAVE') {
    const what = riff.length < 12 ? `only ${riff.length} bytes` : `starts with ${showId(riff.subarray(0, 4))}, form ${showId(riff.subarray(8, 12))}`;
    throw new InputError(path, `not a RIFF/WAVE file (${what})`);
  }
  let position = 12;
  let fmt: Omit<WavFormat, 'dataBytes'> | null = null;
  for (;;) {
    const head = await readAt(handle, 8, position);
    if (head.length < 8) {
      throw new InputError(path, fmt ? 'no data chunk (the file ends after the header)' : 'no fmt chunk');
    }
    const id = head.toString('latin1', 0, 4);
    const size = head.readUInt32LE(4);
    const body = position + 8;
    if (id === 'data') {
      if (!fmt) throw new InputError(path, 'no fmt chunk before the data chunk');
      const held = fileSize - body;
      if (STREAMING_SIZES.has(size)) return { format: { ...fmt, dataBytes: null }, dataStart: body, fileSize };
      if (size > held) {
        throw new InputError(
          path,
          size > fileSize
            ? `data size ${size} bytes is larger than the whole file (${fileSize} bytes)`
            : truncated(size, held),
        );
      }
      return { format: { ...fmt, dataBytes: size }, dataStart: body, fileSize };
    }
    if (id === 'fmt ') fmt = await readFmt(path, handle, body, size);
    if (body + size > fileSize) {
      throw new InputError(path, `the ${showId(head.subarray(0, 4))} chunk declares ${size} bytes but the file ends ${fileSize - body} bytes after its header (no data chunk)`);
    }
    position = body + size + (size & 1);
  }
}

async function readFmt(path: string, handle: FileHandle, body: number, size: number): Promise<Omit<WavFormat, 'dataBytes'>> {
  if (size < 16) throw new InputError(path, `fmt chunk is ${size} bytes, shorter than the 16 bytes of a PCM header`);
  const want = Math.min(size, 40);
  const f = await readAt(handle, want, body);
  if (f.length < want) throw new InputError(path, `truncated fmt chunk (declares ${size} bytes, the file holds ${f.length})`);
  const tag = f.readUInt16LE(0);
  const channels = f.readUInt16LE(2);
  const sampleRate = f.readUInt32LE(4);
  const blockAlign = f.readUInt16LE(12);
  const bitsPerSample = f.readUInt16LE(14);
  const range = channelsProblem(channels) ?? sampleRateProblem(sampleRate);
  if (range !== null) throw new InputError(path, `${range} in the fmt chunk`);
  let effectiveTag = tag;
  let where = '';
  if (tag === EXTENSIBLE) {
    if (size < 40 || f.readUInt16LE(16) < 22) {
      throw new InputError(path, `WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes (extension ${size >= 18 ? f.readUInt16LE(16) : 0}), shorter than 40 (extension 22)`);
    }
    const guid = f.subarray(24, 40);
    if (guid.readUInt16LE(2) !== 0 || !guid.subarray(4).equals(GUID_TAIL)) {
      throw new InputError(path, `unsupported WAVE_FORMAT_EXTENSIBLE subformat ${formatGuid(guid)}`);
    }
    const validBits = f.readUInt16LE(18);
    if (validBits > bitsPerSample) {
      throw new InputError(path, `WAVE_FORMAT_EXTENSIBLE valid bits per sample (${validBits}) exceed the container size (${bitsPerSample})`);
    }
    effectiveTag = guid.readUInt16LE(0);
    where = ' in WAVE_FORMAT_EXTENSIBLE';
  }
  const encoding = FORMAT_TAGS[effectiveTag];
  if (!encoding) {
    const name = TAG_NAMES[effectiveTag];
    throw new InputError(path, `unsupported format tag ${hex4(effectiveTag)}${name ? ` (${name})` : ''}${where}; supported: PCM, IEEE float, mu-law, A-law`);
  }
  const bits = SUPPORTED_BITS[encoding];
  if (!bits.includes(bitsPerSample)) {
    throw new InputError(path, `unsupported ${bitsPerSample}-bit ${encoding}${where}; supported bits per sample: ${bits.join(', ')}`);
  }
  const expected = channels * (bitsPerSample / 8);
  if (blockAlign !== expected) {
    throw new InputError(path, `block align ${blockAlign} is inconsistent with ${channels} channels of ${bitsPerSample} bits (expected ${expected})`);
  }
  return { encoding, bitsPerSample, sampleRate, channels };
}

const formatGuid = (g: Buffer): string => {
  const h = (b: Buffer): string => b.toString('hex');
  const le = (b: Buffer): string => h(Buffer.from(b).reverse());
  return `{${le(g.subarray(0, 4))}-${le(g.subarray(4, 6))}-${le(g.subarray(6, 8))}-${h(g.subarray(8, 10))}-${h(g.subarray(10, 16))}}`;
};

/** G.711 mu-law byte -> 16-bit linear (ITU-T G.711, as in the classic Sun g711.c). */
const MULAW = new Float32Array(256).map((_, i) => {
  const u = ~i & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return ((u & 0x80 ? 0x84 - t : t - 0x84) / 32768);
});

/** G.711 A-law byte -> 16-bit linear. */
const ALAW = new Float32Array(256).map((_, i) => {
  const a = i ^ 0x55;
  const seg = (a & 0x70) >> 4;
  let t = (a & 0x0f) << 4;
  t = seg === 0 ? t + 8 : (t + 0x108) << (seg - 1);
  return (a & 0x80 ? t : -t) / 32768;
});

type Decode = (bytes: Buffer, out: Float32Array, firstFrame: number) => void;

function decoder(path: string, format: WavFormat, nonFinite: ReadWavOptions['nonFinite'], counts: { nonFinite: number; clipped: number }): Decode {
  const viewOf = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const float = (read: (v: DataView, offset: number) => number, size: number): Decode => (bytes, out, firstFrame) => {
    const v = viewOf(bytes);
    for (let i = 0; i < out.length; i++) {
      const x = read(v, i * size);
      if (Number.isFinite(x)) {
        if (x > 1 || x < -1) counts.clipped++;
        out[i] = x > 1 ? 1 : x < -1 ? -1 : x;
      } else if (nonFinite === 'reject') {
        const frame = firstFrame + Math.floor(i / format.channels);
        throw new InputError(path, `non-finite float sample (${x}) at frame ${frame}, channel ${i % format.channels}`);
      } else {
        counts.nonFinite++;
        out[i] = 0;
      }
    }
  };
  const table = (t: Float32Array): Decode => (bytes, out) => {
    for (let i = 0; i < out.length; i++) out[i] = t[bytes[i]];
  };
  const pcm: Record<number, Decode> = {
    8: (bytes, out) => {
      for (let i = 0; i < out.length; i++) out[i] = (bytes[i] - 128) / 128;
    },
    16: (bytes, out) => {
      const v = viewOf(bytes);
      for (let i = 0; i < out.length; i++) out[i] = v.getInt16(i * 2, true) / 32768;
    },
    24: (bytes, out) => {
      for (let i = 0, o = 0; i < out.length; i++, o += 3) out[i] = (((bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16)) << 8) >> 8) / 8388608;
    },
    32: (bytes, out) => {
      const v = viewOf(bytes);
      for (let i = 0; i < out.length; i++) out[i] = v.getInt32(i * 4, true) / 2147483648;
    },
  };
  switch (format.encoding) {
    case 'pcm':
      return pcm[format.bitsPerSample];
    case 'float':
      return format.bitsPerSample === 32 ? float((v, o) => v.getFloat32(o, true), 4) : float((v, o) => v.getFloat64(o, true), 8);
    case 'mulaw':
      return table(MULAW);
    case 'alaw':
      return table(ALAW);
  }
}
