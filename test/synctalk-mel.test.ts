import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { AudioAttentionWindowing, type AudioLookahead, type FrameAudio } from '../src/synctalk/audio-attention-windows.ts';
import { AVE_WINDOW_FRAMES, AveWindowing, type AveWindow } from '../src/synctalk/ave-windows.ts';
import { IncrementalMel, MEL_BANDS } from '../src/synctalk/mel.ts';

/** What python/tools/dump_synctalk_mel.py writes. */
interface Reference {
  readonly samples: number;
  readonly n_mel: number;
  readonly window_count: number;
  readonly window_starts: number[];
  readonly feature_windows: number[];
  readonly frames: number;
  readonly attention: number[][];
  /** [n_mel][80]. */
  readonly mel: Float64Array;
}

const CHUNK = 1280;
const ODD_CHUNKS = [1, 7, 199, 200, 401, 1283, 3001, 13, 640];
const TOLERANCE = 1e-4;

let dir: string;

/** A 16-bit PCM mono WAV; returns the float32 samples the way librosa.load reads them back (int16 / 32768). */
const writeWav = (path: string, signal: Float64Array): Float32Array => {
  const pcm = Int16Array.from(signal, (x) => Math.max(-32768, Math.min(32767, Math.round(x * 32767))));
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + pcm.byteLength, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(16000, 24);
  header.writeUInt32LE(32000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(pcm.byteLength, 40);
  writeFileSync(path, Buffer.concat([header, Buffer.from(pcm.buffer)]));
  return Float32Array.from(pcm, (s) => s / 32768);
};

const reference = (wav: string, name: string): Reference => {
  const out = join(dir, name);
  execFileSync('/usr/bin/python3', ['python/tools/dump_synctalk_mel.py', wav, out], { stdio: 'pipe' });
  const meta = JSON.parse(readFileSync(join(out, 'ave.json'), 'utf8')) as Omit<Reference, 'mel'>;
  const bytes = readFileSync(join(out, 'mel.f64'));
  return { ...meta, mel: new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
};

/**
 * About 2 s of speech-like audio: a gliding 110-190 Hz voice with 12 harmonics shaped by two moving formants,
 * 4 Hz syllable envelope, noise bursts (fricatives), 150 ms of digital silence, one loud passage; seeded noise.
 */
const speechLike = (length: number): Float64Array => {
  let seed = 12345;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float64Array(length);
  let phase = 0;
  for (let n = 0; n < length; n++) {
    const t = n / 16000;
    const f0 = 150 + 40 * Math.sin(2 * Math.PI * 0.7 * t);
    phase += (2 * Math.PI * f0) / 16000;
    const f1 = 500 + 300 * Math.sin(2 * Math.PI * 1.3 * t);
    const f2 = 1500 + 700 * Math.sin(2 * Math.PI * 0.9 * t + 1);
    let voice = 0;
    for (let h = 1; h <= 12; h++) {
      const fh = h * f0;
      const gain = Math.exp(-(((fh - f1) / 200) ** 2)) + 0.6 * Math.exp(-(((fh - f2) / 300) ** 2)) + 0.05;
      voice += (gain * Math.sin(h * phase)) / h;
    }
    const envelope = 0.5 + 0.5 * Math.sin(2 * Math.PI * 4 * t);
    const fricative = (t % 0.5) > 0.4 ? 0.15 * (2 * random() - 1) : 0;
    const loud = t > 1.6 && t < 1.8 ? 3 : 1;
    const silent = t > 0.9 && t < 1.05;
    out[n] = silent ? 0 : loud * (0.25 * envelope * voice + fricative + 0.003 * (2 * random() - 1));
  }
  return out;
};

/** Feeds `samples` to `mel` in chunks of the given sizes (cycled); returns each chunk's frames, then the end's. */
const streamMel = (mel: IncrementalMel, samples: Float32Array, sizes: readonly number[], minFrames = 0) => {
  const perChunk: Float32Array[][] = [];
  for (let at = 0, c = 0; at < samples.length; c++) {
    const size = sizes[c % sizes.length];
    perChunk.push(mel.push(samples.subarray(at, at + size)));
    at += size;
  }
  return { perChunk, tail: mel.end(minFrames) };
};

const maxDiff = (frames: readonly Float32Array[], ref: Reference): number => {
  let worst = 0;
  frames.forEach((f, k) => f.forEach((v, b) => (worst = Math.max(worst, Math.abs(v - ref.mel[k * MEL_BANDS + b])))));
  return worst;
};

/** When each video frame is released: the index of the chunk after which it came out, or 'end'. */
const releases = (samples: Float32Array, chunk: number, lookahead: AudioLookahead) => {
  const mel = new IncrementalMel();
  const windows = new AveWindowing();
  const attention = new AudioAttentionWindowing<AveWindow>(lookahead);
  const at = new Map<number, number | 'end'>();
  const frames: FrameAudio<AveWindow>[] = [];
  const record = (released: FrameAudio<AveWindow>[], when: number | 'end') => {
    for (const f of released) {
      at.set(f.frame, when);
      frames.push(f);
    }
  };
  const feed = (ws: AveWindow[], when: number | 'end') => {
    for (const w of ws) record(attention.pushFeature(w), when);
  };
  for (let c = 0; c * chunk < samples.length; c++) feed(windows.pushMel(mel.push(samples.subarray(c * chunk, (c + 1) * chunk))), c);
  feed(windows.pushMel(mel.end(AVE_WINDOW_FRAMES)), 'end');
  feed(windows.end(), 'end');
  record(attention.end(), 'end');
  return { at, frames };
};

let samples: Float32Array;
let ref: Reference;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'synctalk-mel-'));
  samples = writeWav(join(dir, 'speech.wav'), speechLike(2 * 16000 + 137));
  ref = reference(join(dir, 'speech.wav'), 'speech');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('IncrementalMel', () => {
  it('matches the Python reference streamed in 1280-sample chunks', () => {
    const { perChunk, tail } = streamMel(new IncrementalMel(), samples, [CHUNK]);
    const frames = [...perChunk.flat(), ...tail];
    expect(frames.length).toBe(ref.n_mel);
    expect(ref.n_mel).toBe(1 + Math.floor(samples.length / 200));
    expect(maxDiff(frames, ref)).toBeLessThanOrEqual(TOLERANCE);
    const lo = Math.min(...frames.map((f) => Math.min(...f)));
    const hi = Math.max(...frames.map((f) => Math.max(...f)));
    expect([lo, hi > 0]).toEqual([-4, true]);
  });

  it('emits frame k as soon as 200k + 400 samples are in, and the same values for any chunking', () => {
    const base = streamMel(new IncrementalMel(), samples, [CHUNK]);
    const odd = streamMel(new IncrementalMel(), samples, ODD_CHUNKS);
    let received = 0;
    let emitted = 0;
    odd.perChunk.forEach((frames, c) => {
      received += ODD_CHUNKS[c % ODD_CHUNKS.length];
      emitted += frames.length;
      expect(emitted).toBe(Math.max(0, Math.floor((Math.min(received, samples.length) - 400) / 200) + 1));
    });
    expect([...odd.perChunk.flat(), ...odd.tail]).toEqual([...base.perChunk.flat(), ...base.tail]);
    expect(maxDiff([...odd.perChunk.flat(), ...odd.tail], ref)).toBeLessThanOrEqual(TOLERANCE);
  });

  it('carries nothing across segments, and pads a short segment with silence up to minFrames', () => {
    const mel = new IncrementalMel();
    const short = samples.subarray(5000, 6000);
    const first = streamMel(mel, short, [333], AVE_WINDOW_FRAMES);
    const again = streamMel(mel, short, [CHUNK], AVE_WINDOW_FRAMES);
    expect([...again.perChunk.flat(), ...again.tail]).toEqual([...first.perChunk.flat(), ...first.tail]);
    const padded = new Float64Array(3000);
    padded.set(short);
    writeWav(join(dir, 'short.wav'), padded);
    const shortRef = reference(join(dir, 'short.wav'), 'short');
    const frames = [...first.perChunk.flat(), ...first.tail];
    expect([frames.length, shortRef.n_mel]).toEqual([AVE_WINDOW_FRAMES, AVE_WINDOW_FRAMES]);
    expect(maxDiff(frames, shortRef)).toBeLessThanOrEqual(TOLERANCE);
    expect(mel.end(AVE_WINDOW_FRAMES)).toEqual([]);
  });

  it('rejects a sample that is not a number with one clear error', () => {
    const mel = new IncrementalMel();
    mel.push(new Float32Array(300));
    expect(() => mel.push(Float32Array.of(0, Number.NaN))).toThrow(new InputError('mel spectrogram', 'sample 301 of the segment is NaN'));
  });

  it('costs well under 1 ms per mel frame (measured per 80 ms chunk)', () => {
    const mel = new IncrementalMel();
    const chunks = Math.floor(samples.length / CHUNK);
    for (let c = 0; c < chunks; c++) mel.push(samples.subarray(c * CHUNK, (c + 1) * CHUNK));
    mel.reset();
    const rounds = 10;
    const start = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (let c = 0; c < chunks; c++) mel.push(samples.subarray(c * CHUNK, (c + 1) * CHUNK));
      mel.reset();
    }
    const perChunk = (performance.now() - start) / (rounds * chunks);
    console.log(`IncrementalMel: ${perChunk.toFixed(3)} ms per 1280-sample chunk (4 mel frames)`);
    expect(perChunk).toBeLessThan(4);
  });
});

describe('AveWindowing', () => {
  it('cuts the windows SyncTalk cuts, end clamp included', () => {
    const mel = new IncrementalMel();
    const windowing = new AveWindowing();
    const { perChunk, tail } = streamMel(mel, samples, ODD_CHUNKS);
    const windows = [...perChunk.flatMap((frames) => windowing.pushMel(frames)), ...windowing.pushMel(tail), ...windowing.end()];
    expect(windows.length).toBe(ref.window_count);
    expect(windows.map((w) => w.index)).toEqual(ref.window_starts.map((_, w) => w));
    expect(windows.map((w) => w.start)).toEqual(ref.window_starts);
    expect(ref.window_starts.at(-1)).toBe(ref.n_mel - AVE_WINDOW_FRAMES);
    let worst = 0;
    for (const w of windows) {
      for (let b = 0; b < MEL_BANDS; b++) {
        for (let t = 0; t < AVE_WINDOW_FRAMES; t++) {
          worst = Math.max(worst, Math.abs(w.mel[b * AVE_WINDOW_FRAMES + t] - ref.mel[(w.start + t) * MEL_BANDS + b]));
        }
      }
    }
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
    expect(windowing.windows).toBe(0);
  });

  it('rejects a segment shorter than one window with one clear error, then starts afresh', () => {
    const windowing = new AveWindowing();
    windowing.pushMel(Array.from({ length: 5 }, () => new Float32Array(MEL_BANDS)));
    expect(() => windowing.end()).toThrow(new InputError('AVE windowing', 'a segment of 5 mel frames is shorter than one 16-frame window'));
    expect([windowing.melFrames, windowing.end()]).toEqual([0, []]);
  });
});

describe('AudioAttentionWindowing', () => {
  it('lines features up as SyncTalk does: alignment padding, 8 slots, one frame per feature', () => {
    const { at, frames } = releases(samples, CHUNK, 'full');
    expect(frames.length).toBe(ref.frames);
    expect(ref.frames).toBe(ref.window_count + 4);
    expect(frames.map((f) => f.frame)).toEqual(ref.attention.map((_, i) => i));
    expect(frames.map((f) => f.slots.map((s) => s?.index ?? -1))).toEqual(
      ref.attention.map((slots) => slots.map((j) => (j < 0 ? -1 : ref.feature_windows[j]))),
    );
    expect([...at.values()].filter((c) => c === 'end').length).toBeGreaterThan(4);
  });

  it('full lookahead: frame i comes out exactly after chunk ceil((640i + 4040) / 1280) - 1 (252.5 ms)', () => {
    const { at } = releases(samples, CHUNK, 'full');
    for (const [i, chunk] of at) {
      const needs = 200 * Math.floor(80 * ((i + 1) / 25)) + 3400;
      expect(needs).toBeLessThanOrEqual(640 * i + 4040);
      if (needs > samples.length) expect(chunk).toBe('end');
      else expect([i, chunk]).toEqual([i, Math.ceil((640 * i + 4040) / CHUNK) - 1]);
    }
    const afterChunk = (c: number) => Math.max(...[...at].filter(([, when]) => when !== 'end' && when <= c).map(([i]) => i), -1);
    for (let c = 3; c < Math.floor(samples.length / CHUNK) - 3; c++) expect(afterChunk(c)).toBe(2 * c - 5);
    expect(afterChunk(2)).toBe(-1);
  });

  it('low-latency lookahead: frame i comes out once samples < 640i + 2120 are in (132.5 ms), repeating feature i', () => {
    const { at, frames } = releases(samples, CHUNK, 'low-latency');
    expect(frames.length).toBe(ref.frames);
    for (const [i, chunk] of at) {
      const needs = 200 * Math.floor(80 * (Math.max(0, i - 2) / 25)) + 3400;
      if (i >= 2) expect(needs).toBeLessThanOrEqual(640 * i + 2120);
      if (needs > samples.length) expect(chunk).toBe('end');
      else expect([i, chunk]).toEqual([i, Math.ceil(needs / CHUNK) - 1]);
    }
    const afterChunk = (c: number) => Math.max(...[...at].filter(([, when]) => when !== 'end' && when <= c).map(([i]) => i), -1);
    for (let c = 2; c < Math.floor(samples.length / CHUNK) - 3; c++) expect(afterChunk(c)).toBe(2 * c - 2);
    expect(afterChunk(1)).toBe(-1);
    for (const f of frames) {
      const own = ref.feature_windows[f.frame];
      expect(f.slots.slice(4).map((s) => s?.index)).toEqual([own, own, own, own]);
      expect(f.slots.slice(0, 4).map((s) => s?.index ?? -1)).toEqual(ref.attention[f.frame].slice(0, 4).map((j) => (j < 0 ? -1 : ref.feature_windows[j])));
    }
  });

  it('starts each segment afresh', () => {
    const attention = new AudioAttentionWindowing<number>();
    const run = () => [...[0, 1, 2].flatMap((w) => attention.pushFeature(w)), ...attention.end()];
    const first = run();
    expect(first.map((f) => f.frame)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(first[6].slots).toEqual([0, 1, 2, 2, 2, null, null, null]);
    expect(first[0].slots).toEqual([null, null, null, null, 0, 0, 0, 1]);
    expect(run()).toEqual(first);
    expect(attention.end()).toEqual([]);
  });
});

describe('python/tools/dump_synctalk_mel.py', () => {
  it('refuses audio that is not 16 kHz mono 16-bit with one line naming the file', () => {
    const wav = join(dir, 'stereo.wav');
    const header = Buffer.alloc(44);
    header.write('RIFF', 0);
    header.writeUInt32LE(36, 4);
    header.write('WAVEfmt ', 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(2, 22);
    header.writeUInt32LE(48000, 24);
    header.writeUInt32LE(192000, 28);
    header.writeUInt16LE(4, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36);
    writeFileSync(wav, header);
    mkdirSync(join(dir, 'stereo'));
    const run = spawnSync('/usr/bin/python3', ['python/tools/dump_synctalk_mel.py', wav, join(dir, 'stereo')], { encoding: 'utf8' });
    expect([run.status, run.stderr.trim()]).toEqual([1, `${wav}: expected 16000 Hz mono 16-bit PCM, got 48000 Hz, 2 channels, 16-bit`]);
  });
});
