/**
 * WAV fuzzing, in-process and reproducible: 400 mutations of valid WAV files of every supported format (bit flips,
 * header fields set to edge values, truncation, junk appended, bogus chunks inserted), each read through readWav and,
 * when accepted, resampled to 16 kHz. Every file must either read, with samples finite in [-1, 1] and no more of
 * them than the file has bytes, or be rejected with an InputError; nothing else (no RangeError, no hang, no
 * allocation sized from the header). A failure names the case number and the seed to replay it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { designFilter, StreamResampler } from '../src/dsp/resampler.ts';
import { isInputError } from '../src/errors.ts';
import { readWav } from '../src/sources/wav-reader.ts';
import { encodeWav, type WavEncodeOptions } from './helpers/wav-writer.ts';

const SEED = 0x5eed_0011;
const CASES = 400;

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const tone = (frames: number, channels: number): Float32Array => Float32Array.from({ length: frames * channels }, (_, i) => 0.6 * Math.sin(i / 7));

/** Valid files of every format the reader takes, 10 to 60 ms long. */
const bases: ReadonlyArray<[string, WavEncodeOptions, number]> = [
  ['pcm8', { sampleRate: 8000, channels: 1, encoding: 'pcm', bitsPerSample: 8 }, 400],
  ['pcm16 stereo', { sampleRate: 16000, channels: 2, encoding: 'pcm', bitsPerSample: 16 }, 320],
  ['pcm24', { sampleRate: 48000, channels: 1, encoding: 'pcm', bitsPerSample: 24 }, 960],
  ['pcm32', { sampleRate: 22050, channels: 1, encoding: 'pcm', bitsPerSample: 32 }, 441],
  ['float32', { sampleRate: 44100, channels: 2, encoding: 'float', bitsPerSample: 32 }, 441],
  ['float64', { sampleRate: 96000, channels: 1, encoding: 'float', bitsPerSample: 64 }, 960],
  ['mulaw', { sampleRate: 8000, channels: 1, encoding: 'mulaw', bitsPerSample: 8 }, 200],
  ['alaw', { sampleRate: 11025, channels: 2, encoding: 'alaw', bitsPerSample: 8 }, 220],
  ['extensible pcm24 6ch', { sampleRate: 48000, channels: 6, encoding: 'pcm', bitsPerSample: 24, extensible: true }, 480],
  ['streaming size, LIST chunk', { sampleRate: 16000, channels: 1, encoding: 'pcm', bitsPerSample: 16, dataSizeOverride: 0xffffffff, chunksBeforeData: [{ id: 'LIST', data: Buffer.from('INFOISFT\x05\0\0\0test\0') }] }, 160],
];

/** Values that break naive readers, for 16- and 32-bit header fields. */
const EDGES_16 = [0, 1, 2, 3, 7, 0xff, 0x7fff, 0x8000, 0xfffe, 0xffff];
const EDGES_32 = [0, 1, 7, 15, 999, 1000, 768_000, 768_001, 999_999_937, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];

/** One random mutation of `b` (a copy), named for the failure message. */
function mutate(b: Buffer, rnd: () => number): [string, Buffer] {
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T,>(xs: readonly T[]): T => xs[int(xs.length)];
  const out = Buffer.from(b);
  switch (int(8)) {
    case 0: {
      const flips = 1 + int(8);
      for (let i = 0; i < flips; i++) out[int(Math.min(out.length, 64))] ^= 1 << int(8);
      return [`${flips} bit flips in the header`, out];
    }
    case 1: {
      const at = pick([4, 16, 24, 28, 40]);
      const v = rnd() < 0.7 ? pick(EDGES_32) : int(2 ** 32);
      if (at + 4 <= out.length) out.writeUInt32LE(v, at);
      return [`u32 at ${at} = ${v}`, out];
    }
    case 2: {
      const at = pick([20, 22, 32, 34, 36, 38]);
      const v = rnd() < 0.7 ? pick(EDGES_16) : int(2 ** 16);
      if (at + 2 <= out.length) out.writeUInt16LE(v, at);
      return [`u16 at ${at} = ${v}`, out];
    }
    case 3: {
      const n = int(out.length);
      return [`truncated to ${n} bytes`, out.subarray(0, n)];
    }
    case 4: {
      const junk = Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256)));
      return [`${junk.length} junk bytes appended`, Buffer.concat([out, junk])];
    }
    case 5: {
      const size = rnd() < 0.5 ? pick(EDGES_32) : int(64);
      const head = Buffer.alloc(8);
      head.write(pick(['LIST', 'fmt ', 'data', 'fact', 'JUNK', '\0\0\0\0']), 0, 'latin1');
      head.writeUInt32LE(size, 4);
      const body = Buffer.alloc(Math.min(size, 64), 0x41);
      return [`chunk "${head.toString('latin1', 0, 4)}" of size ${size} inserted after the RIFF header`, Buffer.concat([out.subarray(0, 12), head, body, out.subarray(12)])];
    }
    case 6: {
      const n = 1 + int(16);
      for (let i = 0; i < n; i++) out[int(out.length)] = int(256);
      return [`${n} random bytes anywhere`, out];
    }
    default: {
      const n = 2 + int(3);
      for (let k = 0; k < n; k++) {
        const [, next] = mutate(out, rnd);
        next.copy(out, 0, 0, Math.min(next.length, out.length));
      }
      return [`${n} stacked mutations`, out];
    }
  }
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wav-fuzz-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readWav under fuzzing', () => {
  it(`${CASES} mutated WAVs: each read (finite samples in [-1, 1], bounded) or rejected with an InputError, in under 30 s`, { timeout: 30_000 }, async () => {
    const rnd = prng(SEED);
    const started = performance.now();
    const outcomes = { read: 0, rejected: 0 };
    for (let n = 0; n < CASES; n++) {
      const [baseName, options, frames] = bases[Math.floor(rnd() * bases.length)];
      const [mutation, bytes] = mutate(encodeWav(tone(frames, options.channels), options), rnd);
      const label = `case ${n} (seed ${SEED}): ${baseName}, ${mutation}`;
      const path = join(dir, `case-${n}.wav`);
      writeFileSync(path, bytes);
      const blockFrames = rnd() < 0.5 ? 1 + Math.floor(rnd() * 4096) : (f: { sampleRate: number }) => Math.max(1, Math.round(f.sampleRate / 50));
      const readBytes = 1 + Math.floor(rnd() * 70_000);
      const nonFinite = rnd() < 0.5 ? ('silence' as const) : ('reject' as const);
      let samplesRead = 0;
      try {
        let resampler: StreamResampler | null = null;
        for await (const { format, samples } of readWav(path, { blockFrames, nonFinite, readBytes })) {
          samplesRead += samples.length;
          for (const s of samples) if (!(s >= -1 && s <= 1)) throw new Error(`${label}: sample ${s} outside [-1, 1]`);
          resampler ??= new StreamResampler(designFilter(format.sampleRate, 16000), format.channels, 1);
          resampler.push(samples);
        }
        resampler?.finish();
        outcomes.read++;
      } catch (e) {
        if (!isInputError(e)) throw new Error(`${label}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        expect(e.message, label).not.toContain('\n');
        outcomes.rejected++;
      }
      expect(samplesRead, label).toBeLessThanOrEqual(bytes.length);
    }
    const seconds = (performance.now() - started) / 1000;
    expect(outcomes.read + outcomes.rejected).toBe(CASES);
    // both outcomes are exercised, so the corpus tests the reader's acceptance and its refusals
    expect(outcomes.read).toBeGreaterThan(CASES / 10);
    expect(outcomes.rejected).toBeGreaterThan(CASES / 10);
    expect(seconds).toBeLessThan(30);
  });
});
