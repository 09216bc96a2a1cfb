import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeWav, type WavEncodeOptions } from './helpers/wav-writer.ts';
import { probe } from '../src/media/ffprobe.ts';

const BIN = fileURLToPath(new URL('../bin/synctalk-live.js', import.meta.url));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const cli = (...args: string[]): Promise<Run> =>
  new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });

/** A voiced, syllable-modulated test signal, the same on every channel. */
function speechLike(seconds: number, sampleRate: number, channels: number): Float32Array {
  const n = Math.round(seconds * sampleRate);
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    const v = 0.25 * (1 - Math.cos(2 * Math.PI * 4 * t)) * (Math.sin(2 * Math.PI * 150 * t) + 0.4 * Math.sin(2 * Math.PI * 450 * t));
    for (let c = 0; c < channels; c++) out[i * channels + c] = v;
  }
  return out;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stl-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, bytes: Uint8Array): string => {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
};

describe('synctalk-live render: every WAV format gives a correct MP4', () => {
  const cases: Array<[string, Omit<WavEncodeOptions, 'sampleRate' | 'channels'>, number, number]> = [
    ['pcm8', { encoding: 'pcm', bitsPerSample: 8 }, 8000, 1],
    ['pcm16', { encoding: 'pcm', bitsPerSample: 16 }, 44_100, 2],
    ['pcm24', { encoding: 'pcm', bitsPerSample: 24 }, 48_000, 2],
    ['pcm32', { encoding: 'pcm', bitsPerSample: 32 }, 22_050, 1],
    ['float32', { encoding: 'float', bitsPerSample: 32 }, 16_000, 1],
    ['float64', { encoding: 'float', bitsPerSample: 64 }, 96_000, 1],
    ['mulaw', { encoding: 'mulaw', bitsPerSample: 8 }, 8000, 1],
    ['alaw', { encoding: 'alaw', bitsPerSample: 8 }, 11_025, 2],
    ['extensible pcm24 6ch', { encoding: 'pcm', bitsPerSample: 24, extensible: true }, 48_000, 6],
  ];
  it.each(cases)('%s', async (name, enc, sampleRate, channels) => {
    const seconds = 1.3;
    const wav = write(`${name.replaceAll(' ', '-')}.wav`, encodeWav(speechLike(seconds, sampleRate, channels), { ...enc, sampleRate, channels }));
    const out = join(dir, `${name.replaceAll(' ', '-')}.mp4`);
    const run = await cli('render', '--audio', wav, '--out', out);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^wrote .*: 33 frames, 1\.32 s/);
    const info = await probe(out);
    expect(info.video?.codec).toBe('h264');
    expect(info.video?.fps).toBe(25);
    expect(info.video?.frames).toBe(33);
    expect(info.audio?.codec).toBe('aac');
    expect(info.audio?.sampleRate).toBe(sampleRate);
    expect(info.audio?.channels).toBe(channels);
    expect(Math.abs(info.video!.duration - seconds)).toBeLessThanOrEqual(0.04);
    expect(Math.abs(info.audio!.duration - seconds)).toBeLessThanOrEqual(0.04);
  });
});

describe('synctalk-live render: bad input gives one clean line and leaves no MP4', () => {
  const good = (): Buffer => encodeWav(speechLike(0.5, 16_000, 1), { sampleRate: 16_000, channels: 1, encoding: 'pcm', bitsPerSample: 16 });
  const withChannels = (b: Buffer, channels: number): Buffer => {
    const copy = Buffer.from(b);
    copy.writeUInt16LE(channels, 22);
    return copy;
  };
  const nan = (): Buffer => {
    const s = speechLike(0.5, 16_000, 1);
    s[100] = Number.NaN;
    s[200] = Number.POSITIVE_INFINITY;
    return encodeWav(s, { sampleRate: 16_000, channels: 1, encoding: 'float', bitsPerSample: 32 });
  };
  const adpcm = (): Buffer => {
    const copy = Buffer.from(good());
    copy.writeUInt16LE(0x0002, 20);
    return copy;
  };
  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['empty file', () => new Uint8Array(0), /empty/],
    ['garbage bytes', () => Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff), /not a RIFF\/WAVE file/],
    ['a header with no data', () => good().subarray(0, 36), /no data chunk/],
    ['truncated data', () => good().subarray(0, 44 + 500), /truncated/],
    ['a data size larger than the file', () => encodeWav(speechLike(0.2, 16_000, 1), { sampleRate: 16_000, channels: 1, encoding: 'pcm', bitsPerSample: 16, dataSizeOverride: 1_000_000_000 }), /data size 1000000000 bytes is larger than the whole file/],
    ['zero channels', () => withChannels(good(), 0), /channels/],
    ['an unsupported format', () => adpcm(), /unsupported format tag 0x0002/],
  ];
  it.each(cases)('%s', async (name, bytes, problem) => {
    const wav = write(`bad-${name.replaceAll(' ', '-')}.wav`, bytes());
    const outDir = mkdtempSync(join(dir, 'out-'));
    const run = await cli('render', '--audio', wav, '--out', join(outDir, 'out.mp4'));
    expect(run.code).toBe(1);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0].startsWith(`synctalk-live: ${wav}: `)).toBe(true);
    expect(lines[0]).toMatch(problem);
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('NaN/Inf samples are replaced with silence, with one warning, and the MP4 is written', async () => {
    const wav = write('nan.wav', nan());
    const out = join(dir, 'nan.mp4');
    const run = await cli('render', '--audio', wav, '--out', out);
    expect(run.code).toBe(0);
    expect(run.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^synctalk-live: warning: .*2 .*(NaN|non-finite).*silence/i)]);
    expect((await probe(out)).video?.frames).toBe(13);
  });

  it('a pipeline spec with a typo names it and lists the valid names', async () => {
    const spec = write('typo.json', new TextEncoder().encode(JSON.stringify({ source: { element: 'wav-file' }, operators: [{ element: 'resampel' }], sink: { element: 'mp4-file' } })));
    const run = await cli('render', '--audio', write('ok.wav', good()), '--out', join(dir, 'typo.mp4'), '--pipeline', spec);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`synctalk-live: ${spec}: operators[0].element: unknown operator "resampel" (valid operators: idle-fill, resample, chunk, infer, scale, pair)\n`);
  });

  it('a missing or corrupt model names the file', async () => {
    const corrupt = write('corrupt.onnx', new TextEncoder().encode('this is not an onnx model'));
    const spec = write(
      'corrupt-model.json',
      new TextEncoder().encode(
        JSON.stringify({ source: { element: 'wav-file' }, operators: [{ element: 'resample' }, { element: 'chunk' }, { element: 'infer', model: corrupt, providers: ['cpu'] }, { element: 'pair' }], sink: { element: 'mp4-file' } }),
      ),
    );
    const outDir = mkdtempSync(join(dir, 'out-'));
    const run = await cli('render', '--audio', write('ok2.wav', good()), '--out', join(outDir, 'x.mp4'), '--pipeline', spec);
    expect(run.code).toBe(1);
    expect(run.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(new RegExp(`^synctalk-live: ${corrupt}: `))]);
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('usage errors say how to call it', async () => {
    const run = await cli('render', '--audio');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^synctalk-live: .*\nusage:/);
  });
});

/** A CLI run that must fail cleanly: its status, one stderr line, the input unchanged, nothing left in `outDir`. */
const cleanFailure = async (run: Run, status: number, outDir: string, input: { path: string; bytes: Buffer }): Promise<string> => {
  expect(run.code).toBe(status);
  expect(run.stdout).toBe('');
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(readFileSync(input.path).equals(input.bytes)).toBe(true);
  expect(readdirSync(outDir).filter((n) => n.endsWith('.partial'))).toEqual([]);
  return lines[0];
};

describe('synctalk-live render: the output path is never anything but a new or regular file', () => {
  const wav = (): { path: string; bytes: Buffer } => {
    const bytes = encodeWav(speechLike(0.5, 16_000, 1), { sampleRate: 16_000, channels: 1, encoding: 'pcm', bitsPerSample: 16 });
    const path = join(mkdtempSync(join(dir, 'in-')), 'in.wav');
    writeFileSync(path, bytes);
    return { path, bytes };
  };

  it('a path under a regular file: one line naming it, no stack trace', async () => {
    const input = wav();
    const out = join(input.path, 'x.mp4');
    const line = await cleanFailure(await cli('render', '--audio', input.path, '--out', out), 1, dirname(input.path), input);
    expect(line).toBe(`synctalk-live: ${out}: cannot be written: a folder on its path is a file (ENOTDIR)`);
  });

  it('--out the same file as --audio (also through a link) is refused and the WAV is untouched', async () => {
    const input = wav();
    const line = await cleanFailure(await cli('render', '--audio', input.path, '--out', input.path), 1, dirname(input.path), input);
    expect(line).toBe(`synctalk-live: ${input.path}: is the input file ${input.path}; refusing to overwrite it`);
    const link = join(dirname(input.path), 'link.mp4');
    symlinkSync(input.path, link);
    expect(await cleanFailure(await cli('render', '--audio', input.path, '--out', link), 1, dirname(input.path), input)).toMatch(/link\.mp4: is the input file/);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it.each([
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p]), 'a FIFO (named pipe)', (p: string) => lstatSync(p).isFIFO()],
    ['a device node', (p: string) => execFileSync('mknod', [p, 'c', '1', '3']), 'a character device', (p: string) => lstatSync(p).isCharacterDevice()],
    ['a directory', (p: string) => mkdirSync(join(p, 'inside'), { recursive: true }), 'a directory', (p: string) => readdirSync(p).length === 1],
  ])('%s as --out is refused before rendering and left as it was', async (_name, make, kind, intact) => {
    const input = wav();
    const out = join(dirname(input.path), 'target');
    make(out);
    const line = await cleanFailure(await cli('render', '--audio', input.path, '--out', out), 1, dirname(input.path), input);
    expect(line).toBe(`synctalk-live: ${out}: is ${kind}, not a regular file; refusing to replace it (give a file path for the output)`);
    expect(intact(out)).toBe(true);
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s during a render stops it, removes the partial file and says so in one line', { timeout: 120_000 }, async (signal, status) => {
    const bytes = encodeWav(speechLike(60, 16_000, 1), { sampleRate: 16_000, channels: 1, encoding: 'pcm', bitsPerSample: 16 });
    const input = { path: join(mkdtempSync(join(dir, 'sig-')), 'long.wav'), bytes };
    writeFileSync(input.path, bytes);
    const outDir = mkdtempSync(join(dir, 'sig-out-'));
    const child = execFile(process.execPath, [BIN, 'render', '--audio', input.path, '--out', join(outDir, 'long.mp4')], { timeout: 110_000 }, () => undefined);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    for (let i = 0; i < 4000 && !readdirSync(outDir).some((n) => n.endsWith('.partial')); i++) await new Promise((r) => setTimeout(r, 20));
    expect({ partial: readdirSync(outDir).some((n) => n.endsWith('.partial')), stderr }).toEqual({ partial: true, stderr: '' });
    child.kill(signal);
    const code = await exited;
    const line = await cleanFailure({ code: code ?? -1, stdout: '', stderr }, status, outDir, input);
    expect(line).toBe(`synctalk-live: interrupted by ${signal}; no output written`);
    expect(readdirSync(outDir)).toEqual([]);
  });
});

describe('synctalk-live render: out-of-range numbers in a WAV header or a spec are one line, before any work', () => {
  const pcm16 = (seconds: number, sampleRate: number, channels: number): Buffer =>
    encodeWav(speechLike(seconds, 16_000, channels).subarray(0, Math.round(seconds * sampleRate) * channels), { sampleRate: 16_000, channels, encoding: 'pcm', bitsPerSample: 16 });
  /** A WAV whose header says `rate` Hz (byte rate to match). */
  const withRate = (b: Buffer, rate: number): Buffer => {
    const copy = Buffer.from(b);
    copy.writeUInt32LE(rate, 24);
    copy.writeUInt32LE((rate * copy.readUInt16LE(32)) % 2 ** 32, 28);
    return copy;
  };
  const cases: Array<[string, () => Buffer, string]> = [
    ['4294967295 Hz', () => withRate(pcm16(0.5, 16_000, 1), 0xffffffff), 'sample rate 4294967295 Hz is out of range (supported: 1000 to 768000 Hz) in the fmt chunk'],
    ['999999937 Hz in a 2 KB file', () => withRate(pcm16(0.06, 16_000, 1), 999_999_937), 'sample rate 999999937 Hz is out of range (supported: 1000 to 768000 Hz) in the fmt chunk'],
    ['7 Hz', () => withRate(pcm16(0.5, 16_000, 1), 7), 'sample rate 7 Hz is out of range (supported: 1000 to 768000 Hz) in the fmt chunk'],
    ['15 Hz stereo', () => withRate(pcm16(0.5, 16_000, 2), 15), 'sample rate 15 Hz is out of range (supported: 1000 to 768000 Hz) in the fmt chunk'],
  ];
  it.each(cases)('a WAV at %s', async (name, bytes, problem) => {
    const input = { path: join(mkdtempSync(join(dir, 'rate-')), `${name.replaceAll(' ', '-')}.wav`), bytes: bytes() };
    writeFileSync(input.path, input.bytes);
    const outDir = mkdtempSync(join(dir, 'rate-out-'));
    const line = await cleanFailure(await cli('render', '--audio', input.path, '--out', join(outDir, 'out.mp4')), 1, outDir, input);
    expect(line).toBe(`synctalk-live: ${input.path}: ${problem}`);
    expect(readdirSync(outDir)).toEqual([]);
  });

  const renderSpec = (extra: object, infer: object = {}): Uint8Array =>
    new TextEncoder().encode(
      JSON.stringify({
        source: { element: 'wav-file' },
        operators: [{ element: 'resample', rate: 16000, channels: 1 }, { element: 'chunk', size: 1280 }, { element: 'infer', model: 'demo', providers: ['cpu'], ...infer }, { element: 'pair' }],
        sink: { element: 'mp4-file' },
        ...extra,
      }),
    );
  const specCases: Array<[string, Uint8Array, RegExp]> = [
    ['a budget smaller than one 80 ms chunk', renderSpec({ budgetSeconds: 0.05 }), /: budgetSeconds: 0\.05 s cannot hold the 0\.162 s of audio .*the pipeline would stall$/],
    ['infer.intraOpThreads 1e4', renderSpec({}, { intraOpThreads: 1e4 }), /: operators\[2\]\.intraOpThreads: at most this machine's \d+ cores \(infer\)$/],
    ['infer.intraOpThreads 1e6', renderSpec({}, { intraOpThreads: 1e6 }), /: operators\[2\]\.intraOpThreads: at most this machine's \d+ cores \(infer\)$/],
    ['infer.providres', renderSpec({}, { providres: ['cpu'] }), /: operators\[2\]\.providres: unknown parameter of infer \(parameters: model, providers, maxInFlight, intraOpThreads, lookahead\)$/],
  ];
  it.each(specCases)('%s', async (name, spec, problem) => {
    const input = { path: join(mkdtempSync(join(dir, 'spec-')), 'in.wav'), bytes: pcm16(0.5, 16_000, 1) };
    writeFileSync(input.path, input.bytes);
    const specPath = join(dirname(input.path), 'spec.json');
    writeFileSync(specPath, spec);
    const outDir = mkdtempSync(join(dir, 'spec-out-'));
    const line = await cleanFailure(await cli('render', '--audio', input.path, '--out', join(outDir, 'out.mp4'), '--pipeline', specPath), 1, outDir, input);
    expect(line.startsWith(`synctalk-live: ${specPath}: `), name).toBe(true);
    expect(line).toMatch(problem);
    expect(readdirSync(outDir)).toEqual([]);
  });

  it.each([
    ['20 ms source chunks', 0.162, {}],
    ['30 ms source chunks', 0.172, { chunkMs: 30 }],
  ])('a budget of exactly what the elements hold renders to the end (%s)', async (_name, budgetSeconds, source) => {
    const input = join(mkdtempSync(join(dir, 'budget-')), 'in.wav');
    writeFileSync(input, pcm16(1.3, 16_000, 1));
    const specPath = join(dirname(input), 'spec.json');
    writeFileSync(specPath, renderSpec({ budgetSeconds, source: { element: 'wav-file', ...source } }));
    const run = await cli('render', '--audio', input, '--out', join(dirname(input), 'out.mp4'), '--pipeline', specPath);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^wrote .*: 33 frames, 1\.32 s/);
  });
});
