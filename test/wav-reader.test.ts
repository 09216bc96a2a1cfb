import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { readWav, type ReadWavOptions, type WavFormat } from '../src/sources/wav-reader.ts';
import { isOpenHere } from './helpers/open-files.ts';
import { encodeWav, linearToAlaw, linearToMulaw, type WavEncodeOptions } from './helpers/wav-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'wav-reader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
const writeTemp = (bytes: Uint8Array, name = `f${fileNo++}.wav`): string => {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
};

/** A deterministic test signal in [-0.95, 0.95]: a sine per channel plus pseudo-random noise. */
function signal(frames: number, channels: number): Float32Array {
  const out = new Float32Array(frames * channels);
  let seed = 12345;
  for (let i = 0; i < out.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const ch = i % channels;
    const noise = (seed / 2 ** 32) * 2 - 1;
    out[i] = 0.6 * Math.sin((Math.floor(i / channels) * (ch + 1)) / 7) + 0.35 * noise;
  }
  return out;
}

const baseOpts: ReadWavOptions = { blockFrames: 256, nonFinite: 'silence' };

async function readAll(path: string, opts: Partial<ReadWavOptions> = {}) {
  const blocks: Float32Array[] = [];
  let format: WavFormat | null = null;
  for await (const b of readWav(path, { ...baseOpts, ...opts })) {
    format = b.format;
    blocks.push(b.samples);
  }
  const samples = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
  blocks.reduce((o, b) => (samples.set(b, o), o + b.length), 0);
  return { format, blocks, samples };
}

const maxError = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

async function expectInputError(path: string, problem: RegExp, opts: Partial<ReadWavOptions> = {}): Promise<InputError> {
  const error = await readAll(path, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  const e = error as InputError;
  expect(e.subject).toBe(path);
  expect(e.message.startsWith(`${path}: `)).toBe(true);
  expect(e.problem).toMatch(problem);
  expect(isOpenHere(path)).toBe(false);
  return e;
}

type Enc = Pick<WavEncodeOptions, 'encoding' | 'bitsPerSample'>;
const ENCODINGS: ReadonlyArray<Enc & { tol: number }> = [
  { encoding: 'pcm', bitsPerSample: 8, tol: 0.5 / 128 + 1e-6 },
  { encoding: 'pcm', bitsPerSample: 16, tol: 0.5 / 32768 + 1e-7 },
  { encoding: 'pcm', bitsPerSample: 24, tol: 0.5 / 8388608 + 1e-7 },
  { encoding: 'pcm', bitsPerSample: 32, tol: 1e-7 },
  { encoding: 'float', bitsPerSample: 32, tol: 0 },
  { encoding: 'float', bitsPerSample: 64, tol: 0 },
  // G.711: half of the largest quantisation step (1024 / 32768), plus the 16-bit rounding on the way in.
  { encoding: 'mulaw', bitsPerSample: 8, tol: 1 / 64 + 1 / 4096 },
  { encoding: 'alaw', bitsPerSample: 8, tol: 1 / 64 + 1 / 4096 },
];
const RATES = [8000, 22050, 44100, 48000, 96000];
const CHANNELS = [1, 2, 6];
const CASES = ENCODINGS.flatMap((e) =>
  [false, true].flatMap((extensible) => RATES.flatMap((sampleRate) => CHANNELS.map((channels) => ({ ...e, extensible, sampleRate, channels })))),
);

describe('readWav round trip', () => {
  it.each(CASES)('$encoding $bitsPerSample-bit, extensible $extensible, $sampleRate Hz x$channels', async (c) => {
    const frames = Math.round(c.sampleRate * 0.03) + 13;
    const input = signal(frames, c.channels);
    const path = writeTemp(encodeWav(input, c));
    // 97-frame blocks and 1001-byte reads: neither divides the data, so reads split frames and the last block is short.
    const { format, blocks, samples } = await readAll(path, { blockFrames: 97, readBytes: 1001 });
    const blockAlign = (c.channels * c.bitsPerSample) / 8;
    expect(format).toEqual({ encoding: c.encoding, bitsPerSample: c.bitsPerSample, sampleRate: c.sampleRate, channels: c.channels, dataBytes: frames * blockAlign });
    expect(blocks.slice(0, -1).every((b) => b.length === 97 * c.channels)).toBe(true);
    expect(blocks.at(-1)!.length).toBe((frames % 97 || 97) * c.channels);
    expect(samples.length).toBe(input.length);
    expect(maxError(samples, input)).toBeLessThanOrEqual(c.tol);
  });

  it('decodes full scale and the integer extremes exactly', async () => {
    const input = Float32Array.from([-1, 0, 0.5, -0.5]);
    for (const bitsPerSample of [8, 16, 24, 32]) {
      const path = writeTemp(encodeWav(input, { sampleRate: 8000, channels: 1, encoding: 'pcm', bitsPerSample }));
      expect(Array.from((await readAll(path)).samples)).toEqual([-1, 0, 0.5, -0.5]);
    }
  });

  it('decodes G.711 codes to the standard linear values', async () => {
    // ITU-T G.711 reference points: mu-law 0xFF/0x7F are +/-0, 0x80/0x00 are +/-32124; A-law 0xD5/0x55 are +/-8, 0xAA/0x2A are +/-32256.
    const wav = (encoding: 'mulaw' | 'alaw', codes: number[]) => {
      const bytes = encodeWav(new Float32Array(codes.length), { sampleRate: 8000, channels: 1, encoding, bitsPerSample: 8 });
      Buffer.from(codes).copy(bytes, bytes.length - codes.length);
      return writeTemp(bytes);
    };
    const mu = await readAll(wav('mulaw', [0xff, 0x7f, 0x80, 0x00]));
    expect(Array.from(mu.samples, (x) => x * 32768)).toEqual([0, 0, 32124, -32124]);
    const a = await readAll(wav('alaw', [0xd5, 0x55, 0xaa, 0x2a]));
    expect(Array.from(a.samples, (x) => x * 32768)).toEqual([8, -8, 32256, -32256]);
    expect([linearToMulaw(0), linearToMulaw(32767), linearToMulaw(-32768)]).toEqual([0xff, 0x80, 0x00]);
    expect([linearToAlaw(8), linearToAlaw(32767), linearToAlaw(-32768)]).toEqual([0xd5, 0xaa, 0x2a]);
  });

  it('skips unknown chunks, odd sizes padded to even', async () => {
    const input = signal(101, 2);
    const path = writeTemp(
      encodeWav(input, {
        sampleRate: 16000,
        channels: 2,
        encoding: 'pcm',
        bitsPerSample: 16,
        chunksBeforeData: [
          { id: 'LIST', data: Buffer.from('INFOodd') },
          { id: 'junk', data: Buffer.alloc(3, 0xaa) },
          { id: 'bext', data: Buffer.alloc(0) },
        ],
      }),
    );
    const { format, samples } = await readAll(path);
    expect(format?.channels).toBe(2);
    expect(maxError(samples, input)).toBeLessThanOrEqual(0.5 / 32768);
  });

  it.each([
    { data: 0, riff: undefined },
    { data: 0xffffffff, riff: undefined },
    { data: 0, riff: 0 },
    { data: 0xffffffff, riff: 0xffffffff },
  ])('reads to the end of the file when the data size is $data (RIFF size $riff)', async ({ data, riff }) => {
    const input = signal(1234, 1);
    const path = writeTemp(encodeWav(input, { sampleRate: 24000, channels: 1, encoding: 'float', bitsPerSample: 32, dataSizeOverride: data, riffSizeOverride: riff }));
    const { format, samples } = await readAll(path, { blockFrames: 100, readBytes: 333 });
    expect(format?.dataBytes).toBeNull();
    expect(samples).toEqual(input);
  });

  it('ignores a RIFF size that disagrees with the file', async () => {
    const input = signal(50, 1);
    const path = writeTemp(encodeWav(input, { sampleRate: 8000, channels: 1, encoding: 'pcm', bitsPerSample: 16, riffSizeOverride: 7 }));
    expect((await readAll(path)).samples.length).toBe(50);
  });

  it('ignores a trailing partial frame at the end of a streamed file, with a warning', async () => {
    const input = signal(10, 2);
    const wav = encodeWav(input, { sampleRate: 8000, channels: 2, encoding: 'pcm', bitsPerSample: 24, dataSizeOverride: 0xffffffff });
    const path = writeTemp(Buffer.concat([wav, Buffer.from([1, 2, 3])]));
    const warnings: string[] = [];
    const { samples } = await readAll(path, { onWarning: (m) => warnings.push(m) });
    expect(samples.length).toBe(20);
    expect(warnings).toEqual(['ignored 3 trailing bytes of data (less than one 6-byte frame)']);
  });

  it('yields nothing for a valid file with no samples', async () => {
    const path = writeTemp(encodeWav(new Float32Array(0), { sampleRate: 8000, channels: 1, encoding: 'pcm', bitsPerSample: 16 }));
    expect((await readAll(path)).blocks).toEqual([]);
  });

  it('takes the block size from the format when given a function', async () => {
    const path = writeTemp(encodeWav(signal(1000, 1), { sampleRate: 16000, channels: 1, encoding: 'pcm', bitsPerSample: 16 }));
    const { blocks } = await readAll(path, { blockFrames: (f) => (f.sampleRate * 20) / 1000 });
    expect(blocks.map((b) => b.length)).toEqual([320, 320, 320, 40]);
  });
});

describe('readWav non-finite float samples', () => {
  const withSpecials = (): Float32Array => {
    const s = signal(64, 2);
    s[5] = NaN;
    s[40] = Infinity;
    s[77] = -Infinity;
    return s;
  };

  it.each([32, 64])("'silence' replaces NaN/Inf (float%i) with 0 and warns once with the count", async (bitsPerSample) => {
    const input = withSpecials();
    const path = writeTemp(encodeWav(input, { sampleRate: 8000, channels: 2, encoding: 'float', bitsPerSample }));
    const warnings: string[] = [];
    const { samples } = await readAll(path, { blockFrames: 8, onWarning: (m) => warnings.push(m) });
    expect([samples[5], samples[40], samples[77]]).toEqual([0, 0, 0]);
    const finite = input.map((x) => (Number.isFinite(x) ? x : 0));
    expect(samples).toEqual(finite);
    expect(warnings).toEqual(['3 non-finite float samples (NaN or Inf) replaced with silence']);
  });

  it("'reject' throws an InputError naming the first bad sample", async () => {
    const path = writeTemp(encodeWav(withSpecials(), { sampleRate: 8000, channels: 2, encoding: 'float', bitsPerSample: 32 }));
    await expectInputError(path, /^non-finite float sample \(NaN\) at frame 2, channel 1$/, { nonFinite: 'reject' });
  });

  it('clips finite floats outside [-1, 1], with one warning', async () => {
    const path = writeTemp(encodeWav(Float32Array.from([1.5, -2, 0.25]), { sampleRate: 8000, channels: 1, encoding: 'float', bitsPerSample: 32 }));
    const warnings: string[] = [];
    expect(Array.from((await readAll(path, { onWarning: (m) => warnings.push(m) })).samples)).toEqual([1, -1, 0.25]);
    expect(warnings).toEqual(['2 float samples outside [-1, 1] clipped']);
  });
});

describe('readWav bad input', () => {
  const pcm16 = (frames = 100, extra: Partial<WavEncodeOptions> = {}): Buffer =>
    encodeWav(signal(frames, 1), { sampleRate: 16000, channels: 1, encoding: 'pcm', bitsPerSample: 16, ...extra });
  /** A 16-bit mono PCM file with one fmt field (offset from the file start) overwritten. */
  const patched = (offset: number, value: number, size: 2 | 4 = 2, base = pcm16()): Buffer => {
    const b = Buffer.from(base);
    if (size === 2) b.writeUInt16LE(value, offset);
    else b.writeUInt32LE(value, offset);
    return b;
  };
  const riffWave = (...chunks: Buffer[]): Buffer => {
    const body = Buffer.concat([Buffer.from('WAVE'), ...chunks]);
    const head = Buffer.from('RIFF\0\0\0\0');
    head.writeUInt32LE(body.length, 4);
    return Buffer.concat([head, body]);
  };
  const rawChunk = (id: string, data: Buffer, size = data.length): Buffer => {
    const h = Buffer.from(`${id}\0\0\0\0`, 'latin1');
    h.writeUInt32LE(size, 4);
    return Buffer.concat([h, data]);
  };
  // 16-bit mono PCM layout: fmt body at 20 (tag 20, channels 22, rate 24, block align 32, bits 34); data size at 40.
  const ext = encodeWav(signal(10, 1), { sampleRate: 16000, channels: 1, encoding: 'pcm', bitsPerSample: 16, extensible: true });
  // Extensible layout: subformat GUID at 44..59 (its tag at 44).

  const cases: Array<[string, () => Buffer, RegExp]> = [
    ['an empty file', () => Buffer.alloc(0), /^empty file$/],
    ['garbage bytes', () => Buffer.from('hello, this is certainly not audio at all'), /^not a RIFF\/WAVE file \(starts with "hell", form "his "\)$/],
    ['binary garbage', () => Buffer.from([0, 1, 2, 255, 4, 5, 6, 7, 8, 9, 10, 11, 12]), /^not a RIFF\/WAVE file \(starts with bytes 00 01 02 ff/],
    ['a file shorter than a RIFF header', () => Buffer.from('RIFF'), /^not a RIFF\/WAVE file \(only 4 bytes\)$/],
    ['a RIFF file that is not WAVE', () => Buffer.concat([Buffer.from('RIFF\x04\0\0\0AVI '), Buffer.alloc(8)]), /form "AVI "/],
    ['no chunks at all', () => riffWave(), /^no fmt chunk$/],
    ['no fmt chunk, only LIST', () => riffWave(rawChunk('LIST', Buffer.from('INFO'))), /^no fmt chunk$/],
    ['a data chunk before any fmt chunk', () => riffWave(rawChunk('data', Buffer.alloc(4))), /^no fmt chunk before the data chunk$/],
    ['a header with no data chunk', () => pcm16().subarray(0, 36), /^no data chunk/],
    ['a chunk claiming more than the file before the data', () => riffWave(pcm16().subarray(12, 36), rawChunk('LIST', Buffer.alloc(10), 5000)), /^the "LIST" chunk declares 5000 bytes but the file ends 10 bytes after its header/],
    ['truncated data', () => pcm16(100).subarray(0, 44 + 190), /^truncated data: the data chunk declares 200 bytes but the file holds only 190$/],
    ['a data size larger than the file', () => pcm16(10, { dataSizeOverride: 0x7ffffff0 }), /^data size 2147483632 bytes is larger than the whole file \(64 bytes\)$/],
    ['zero channels', () => patched(22, 0), /^0 channels is out of range \(supported: 1 to 64\) in the fmt chunk$/],
    ['65 channels', () => patched(22, 65), /^65 channels is out of range \(supported: 1 to 64\) in the fmt chunk$/],
    ['zero sample rate', () => patched(24, 0, 4), /^sample rate 0 Hz is out of range \(supported: 1000 to 768000 Hz\) in the fmt chunk$/],
    ['a 7 Hz sample rate', () => patched(24, 7, 4), /^sample rate 7 Hz is out of range/],
    ['a 999 Hz sample rate', () => patched(24, 999, 4), /^sample rate 999 Hz is out of range/],
    ['a 768001 Hz sample rate', () => patched(24, 768_001, 4), /^sample rate 768001 Hz is out of range/],
    ['a 999999937 Hz sample rate', () => patched(24, 999_999_937, 4), /^sample rate 999999937 Hz is out of range/],
    ['a 4294967295 Hz sample rate', () => patched(24, 0xffffffff, 4), /^sample rate 4294967295 Hz is out of range/],
    ['12-bit PCM', () => patched(34, 12), /^unsupported 12-bit pcm; supported bits per sample: 8, 16, 24, 32$/],
    ['16-bit float', () => patched(20, 3), /^unsupported 16-bit float; supported bits per sample: 32, 64$/],
    ['Microsoft ADPCM (0x0002)', () => patched(20, 2), /^unsupported format tag 0x0002 \(Microsoft ADPCM\); supported: PCM, IEEE float, mu-law, A-law$/],
    ['an unknown format tag', () => patched(20, 0x1234), /^unsupported format tag 0x1234;/],
    ['ADPCM inside WAVE_FORMAT_EXTENSIBLE', () => patched(44, 2, 2, ext), /^unsupported format tag 0x0002 \(Microsoft ADPCM\) in WAVE_FORMAT_EXTENSIBLE/],
    ['an unknown extensible subformat GUID', () => patched(50, 0x0721, 2, ext), /^unsupported WAVE_FORMAT_EXTENSIBLE subformat \{00000001-0000-0721-8000-00aa00389b71\}$/],
    ['a short extensible fmt chunk', () => riffWave(rawChunk('fmt ', ext.subarray(20, 38)), rawChunk('data', Buffer.alloc(2))), /^WAVE_FORMAT_EXTENSIBLE fmt chunk is 18 bytes/],
    ['extensible valid bits above the container', () => patched(38, 24, 2, ext), /valid bits per sample \(24\) exceed the container size \(16\)/],
    ['an inconsistent block align', () => patched(32, 3), /^block align 3 is inconsistent with 1 channels of 16 bits \(expected 2\)$/],
    ['a fmt chunk shorter than 16 bytes', () => riffWave(rawChunk('fmt ', Buffer.alloc(12)), rawChunk('data', Buffer.alloc(2))), /^fmt chunk is 12 bytes, shorter than the 16 bytes of a PCM header$/],
    ['a truncated fmt chunk', () => pcm16().subarray(0, 30), /^truncated fmt chunk \(declares 16 bytes, the file holds 10\)$/],
  ];

  it.each(cases)('rejects %s with an InputError naming the file and the problem', async (_name, bytes, problem) => {
    await expectInputError(writeTemp(bytes()), problem);
  });

  it('rejects a missing file and a directory', async () => {
    await expectInputError(join(dir, 'does-not-exist.wav'), /^cannot read: no such file$/);
    const sub = join(dir, 'a-directory.wav');
    mkdirSync(sub);
    await expectInputError(sub, /^cannot read: is a directory, not a WAV file$/);
  });

  it('does not allocate a huge size that the header claims', async () => {
    const before = process.memoryUsage().arrayBuffers;
    await expectInputError(writeTemp(pcm16(10, { dataSizeOverride: 0xfffffff0 })), /larger than the whole file/);
    // 64 channels of float64 is a 512-byte frame: a 1e6-frame block would be 512 MB; the file holds 2 frames.
    const wide = signal(2, 64);
    const path = writeTemp(encodeWav(wide, { sampleRate: 8000, channels: 64, encoding: 'float', bitsPerSample: 64, dataSizeOverride: 0xffffffff }));
    const { samples } = await readAll(path, { blockFrames: 1_000_000 });
    expect(samples).toEqual(wide);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 2 ** 20);
  });
});

describe('readWav file handle', () => {
  it('closes the file when the consumer returns early, and still reports the warning', async () => {
    const input = signal(1000, 1);
    input[3] = NaN;
    const path = writeTemp(encodeWav(input, { sampleRate: 8000, channels: 1, encoding: 'float', bitsPerSample: 32 }));
    const warnings: string[] = [];
    const gen = readWav(path, { blockFrames: 10, nonFinite: 'silence', onWarning: (m) => warnings.push(m) });
    expect((await gen.next()).done).toBe(false);
    expect(isOpenHere(path)).toBe(true);
    await gen.return();
    expect(isOpenHere(path)).toBe(false);
    expect(warnings).toEqual(['1 non-finite float samples (NaN or Inf) replaced with silence']);
  });
});


describe('readWav against ffmpeg', () => {
  const ffmpegFloats = (path: string): Float32Array => {
    const raw = execFileSync('ffmpeg', ['-v', 'error', '-i', path, '-f', 'f32le', '-c:a', 'pcm_f32le', '-'], { maxBuffer: 64 * 2 ** 20 });
    return new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  };
  const CODECS: Array<[string, Enc]> = [
    ['pcm_u8', { encoding: 'pcm', bitsPerSample: 8 }],
    ['pcm_s16le', { encoding: 'pcm', bitsPerSample: 16 }],
    ['pcm_s24le', { encoding: 'pcm', bitsPerSample: 24 }],
    ['pcm_s32le', { encoding: 'pcm', bitsPerSample: 32 }],
    ['pcm_f32le', { encoding: 'float', bitsPerSample: 32 }],
    ['pcm_f64le', { encoding: 'float', bitsPerSample: 64 }],
    ['pcm_mulaw', { encoding: 'mulaw', bitsPerSample: 8 }],
    ['pcm_alaw', { encoding: 'alaw', bitsPerSample: 8 }],
  ];

  it.each(CODECS)('reads what ffmpeg writes as %s (streamed: sizes 0xFFFFFFFF, LIST chunk) as ffmpeg decodes it', async (codec, enc) => {
    const path = join(dir, `ffmpeg-${codec}.wav`);
    const wav = execFileSync('ffmpeg', [
      ...['-v', 'error', '-f', 'lavfi', '-i', 'aevalsrc=0.8*sin(2*PI*440*t)|0.5*sin(2*PI*1000*t)+0.3*sin(2*PI*3000*t):s=11025:d=0.2'],
      ...['-c:a', codec, '-f', 'wav', '-'],
    ]);
    writeFileSync(path, wav);
    const { format, samples } = await readAll(path, { blockFrames: 100, readBytes: 777 });
    expect(format).toMatchObject({ ...enc, sampleRate: 11025, channels: 2, dataBytes: null });
    expect(maxError(samples, ffmpegFloats(path))).toBeLessThanOrEqual(1e-7);
  });

  it.each(CODECS)('ffmpeg decodes what encodeWav writes as %s (extensible too) as readWav does', async (codec, enc) => {
    for (const extensible of [false, true]) {
      const path = writeTemp(encodeWav(signal(500, 3), { ...enc, sampleRate: 44100, channels: 3, extensible }), `writer-${codec}-${extensible}.wav`);
      expect(maxError((await readAll(path)).samples, ffmpegFloats(path))).toBeLessThanOrEqual(1e-7);
    }
  });
});
