/**
 * A corpus of hostile SyncTalk avatar bundles, each with the one line (naming the file, in ASCII) it must be refused
 * with: a folder without manifest.json, corrupt and out-of-range manifests and tracks (1e999, 1e30), a PNG zip bomb
 * and a PNG claiming a huge size (refused before inflating, memory bounded), garbage chunk types, empty and corrupt
 * graphs. The bundles are built here from a valid 8x8 head-mode bundle, one thing broken in each.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, createDeflate, deflateSync } from 'node:zlib';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.ts';
import { inferParams } from '../src/operators/infer.ts';
import { openRenderer, rendererFormat } from '../src/renderers/kinds.ts';
import { BUNDLE_FORMAT, BUNDLE_VERSION, contract, onnxGraphLoader, SyncTalkBundle, type SyncTalkManifest } from '../src/synctalk/bundle.ts';
import { decodePng, MAX_PIXELS } from '../src/synctalk/png.ts';

const log = pino({ level: 'silent' });
const SIZE = 8;
const FRAMES = 2;

const manifest = (): SyncTalkManifest => {
  const m = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    fps: 25,
    width: SIZE,
    height: SIZE,
    mode: 'head',
    au45: false,
    eye_dim: 7,
    frames: FRAMES,
    samples: 16,
    audio: { sample_rate: 16000, mel_bins: 80, mel_window: 16, mel_hop: 200, attention: { before: 4, after: 3, pad: 'zeros' }, feature_offset: 2 },
    loop: 'pingpong',
    files: [],
    graphs: { audio: { inputs: [], outputs: [] }, audio_att: { inputs: [], outputs: [] }, render: { inputs: [], outputs: [] } },
  } as SyncTalkManifest;
  return { ...m, graphs: contract(m) };
};

const tracks = () => ({
  poses: Array.from({ length: FRAMES }, () => [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0.5, 0, 0, 0, 1]),
  eyes: Array.from({ length: FRAMES }, () => [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
});

/** One PNG chunk: length, type, body, CRC. */
const pngChunk = (type: string | Buffer, body: Buffer): Buffer => {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  (typeof type === 'string' ? Buffer.from(type, 'latin1') : type).copy(head, 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
};
const ihdr = (width: number, height: number, colour = 6): Buffer => {
  const b = Buffer.alloc(13);
  b.writeUInt32BE(width, 0);
  b.writeUInt32BE(height, 4);
  b[8] = 8;
  b[9] = colour;
  return b;
};
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** An 8-bit RGBA PNG of `width` x `height` whose IDAT holds `zlib` (default: the right rows, filter 0). */
const rows = (width: number, height: number): Buffer => {
  const raw = Buffer.alloc(height * (width * 4 + 1), 7);
  for (let y = 0; y < height; y++) raw[y * (width * 4 + 1)] = 0;
  return raw;
};
const png = (width: number, height: number, zlib: Buffer = deflateSync(rows(width, height))): Buffer =>
  Buffer.concat([SIGNATURE, pngChunk('IHDR', ihdr(width, height)), pngChunk('IDAT', zlib), pngChunk('IEND', Buffer.alloc(0))]);

/** A zlib stream of `mib` MiB of zeros, built in 1 MiB pieces (a zip bomb: about 1 KiB per MiB). */
const zeros = async (mib: number): Promise<Buffer> => {
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (b: Buffer) => parts.push(b));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  const piece = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) if (!deflate.write(piece)) await new Promise((r) => deflate.once('drain', r));
  deflate.end();
  await done;
  return Buffer.concat(parts);
};

let root: string;
let valid: string;
let bomb: Buffer;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'hostile-bundles-'));
  valid = join(root, 'valid');
  mkdirSync(join(valid, 'torso_rgba'), { recursive: true });
  writeFileSync(join(valid, 'manifest.json'), JSON.stringify(manifest()));
  writeFileSync(join(valid, 'tracks.json'), JSON.stringify(tracks()));
  for (let i = 0; i < FRAMES; i++) writeFileSync(join(valid, 'torso_rgba', `${String(i).padStart(6, '0')}.png`), png(SIZE, SIZE));
  // graphs that are no ONNX models: each case below fails before they are loaded, except the graph cases
  for (const g of ['audio', 'audio_att', 'render']) writeFileSync(join(valid, `${g}.onnx`), Buffer.from([0x08, 0x07]));
  bomb = await zeros(1024);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the valid bundle with `change` applied to it. */
let serial = 0;
const broken = (change: (dir: string) => void): string => {
  const dir = join(root, `case-${serial++}`);
  cpSync(valid, dir, { recursive: true });
  change(dir);
  return dir;
};
const json = (file: string, value: unknown) => (dir: string) => writeFileSync(join(dir, file), typeof value === 'string' ? value : JSON.stringify(value));
const frame0 = (bytes: Buffer) => (dir: string) => writeFileSync(join(dir, 'torso_rgba', '000000.png'), bytes);

/** The one-line error SyncTalkBundle.open gives for `dir`. */
const openError = async (dir: string): Promise<string> => {
  const e = await SyncTalkBundle.open(dir, onnxGraphLoader({ providers: ['cpu'], log })).then(
    async (b) => {
      await b.close();
      return null;
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ModelError);
  const message = (e as Error).message;
  expect(message).toMatch(/^[\x20-\x7e]+$/);
  return message;
};

describe('hostile bundles: each refused with one ASCII line naming the file', () => {
  const withManifest = (change: Partial<Record<keyof SyncTalkManifest, unknown>>) => json('manifest.json', { ...manifest(), ...change });
  const withTracks = (change: object) => json('tracks.json', { ...tracks(), ...change });
  const pose = (value: string) => json('tracks.json', JSON.stringify(tracks()).replace('0.5', value));

  const cases: Array<[string, (dir: string) => void, string, string]> = [
    ['manifest.json that is not JSON (binary)', json('manifest.json', '\u00ff\u00fe{'), 'manifest.json', 'not valid JSON (Unexpected token \'\\u{ff}\', "\\u{ff}\\u{fe}{" is not valid JSON)'],
    ['manifest.json that is a folder', (d) => (rmSync(join(d, 'manifest.json')), mkdirSync(join(d, 'manifest.json'))), 'manifest.json', 'not a file'],
    ['a 2 MB manifest.json', json('manifest.json', `${JSON.stringify(manifest())}${' '.repeat(2 << 20)}`), 'manifest.json', `${(2 << 20) + JSON.stringify(manifest()).length} bytes, more than the 1048576 a bundle's JSON may take`],
    ['a width of 1e9', withManifest({ width: 1e9 }), 'manifest.json', 'width: Number must be less than or equal to 4096'],
    ['a width of 1e999 (Infinity)', json('manifest.json', JSON.stringify(manifest()).replace(`"width":${SIZE}`, '"width":1e999')), 'manifest.json', 'width: Expected integer, received float'],
    ['1e9 frames', withManifest({ frames: 1e9 }), 'manifest.json', 'frames: Number must be less than or equal to 1000000'],
    ['a mode in non-ASCII', withManifest({ mode: 'h\u00e9ad' }), 'manifest.json', "mode: Invalid enum value. Expected 'head' | 'portrait' | 'torso', received 'h\\u{e9}ad'"],
    ['no tracks.json', (d) => rmSync(join(d, 'tracks.json')), 'tracks.json', 'missing'],
    ['a pose of 1e999 (Infinity)', pose('1e999'), 'tracks.json', 'poses.0.11: Number must be finite (manifest: 2 frames, eye_dim 7, mode head)'],
    ['a pose of -1e999 (-Infinity)', pose('-1e999'), 'tracks.json', 'poses.0.11: Number must be finite (manifest: 2 frames, eye_dim 7, mode head)'],
    ['a pose of 1e30', pose('1e30'), 'tracks.json', 'poses.0.11: Number must be less than or equal to 10000 (manifest: 2 frames, eye_dim 7, mode head)'],
    ['a pose that is a string', pose('"0.5"'), 'tracks.json', 'poses.0.11: Expected number, received string (manifest: 2 frames, eye_dim 7, mode head)'],
    ['eyes of the wrong size', withTracks({ eyes: [[1], [2]] }), 'tracks.json', 'eyes.0: Array must contain exactly 7 element(s) (manifest: 2 frames, eye_dim 7, mode head)'],
    ['too few track frames', withTracks({ poses: [tracks().poses[0]] }), 'tracks.json', 'poses: Array must contain exactly 2 element(s) (manifest: 2 frames, eye_dim 7, mode head)'],
    ['an image folder that is a file', (d) => (rmSync(join(d, 'torso_rgba'), { recursive: true }), writeFileSync(join(d, 'torso_rgba'), 'x')), 'torso_rgba', 'missing 2 of 2 frames (first: 000000.png)'],
    ['a frame that is a folder', (d) => (rmSync(join(d, 'torso_rgba', '000000.png')), mkdirSync(join(d, 'torso_rgba', '000000.png'))), 'torso_rgba/000000.png', 'cannot read (EISDIR)'],
    ['a frame that is not a PNG', frame0(Buffer.from('GIF89a')), 'torso_rgba/000000.png', 'not a PNG file'],
    ['a frame of another size', frame0(png(16, 8)), 'torso_rgba/000000.png', 'is 16x8x4; the bundle needs 8x8x4'],
    ['a frame claiming 100000x100000 pixels', frame0(png(100_000, 100_000, deflateSync(Buffer.alloc(1)))), 'torso_rgba/000000.png', 'is 100000x100000x4; the bundle needs 8x8x4'],
    ['a garbage chunk type', frame0(Buffer.concat([SIGNATURE, pngChunk('IHDR', ihdr(SIZE, SIZE)), Buffer.from([0, 0, 1, 0, 0x00, 0xff, 0x10, 0x80, 1, 2])])), 'torso_rgba/000000.png', 'truncated chunk (bytes 00 ff 10 80)'],
    ['corrupt image data', frame0(png(SIZE, SIZE, Buffer.from('not zlib at all'))), 'torso_rgba/000000.png', 'corrupt image data (incorrect header check)'],
    ['an empty graph', json('audio.onnx', ''), 'audio.onnx', 'empty file (0 bytes), not an ONNX model'],
    ['graphs that are no ONNX models', () => undefined, 'audio.onnx', 'cannot load: Load model from <model> failed:ModelProto does not have a graph.'],
  ];

  it.each(cases)('%s', async (_name, change, file, problem) => {
    const dir = broken(change);
    expect(await openError(dir)).toBe(`${join(dir, file)}: ${problem}`);
  });

  it('a PNG zip bomb (1 GiB of zeros in about 1 MB) is refused without inflating it', async () => {
    const dir = broken(frame0(png(SIZE, SIZE, bomb)));
    expect(bomb.length).toBeLessThan(2 << 20);
    const before = process.memoryUsage().rss;
    expect(await openError(dir)).toBe(`${join(dir, 'torso_rgba', '000000.png')}: image data inflates to more than the 264 bytes of a 8x8x4 image`);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 << 20);
  });

  it('decodePng bounds inflating by the IHDR size too (frames read at render time, images without an expected size)', () => {
    expect(() => decodePng('bomb.png', png(SIZE, SIZE, bomb))).toThrow(new ModelError('bomb.png', 'image data inflates to more than the 264 bytes of a 8x8x4 image'));
    expect(() => decodePng('huge.png', png(8192, 8192, bomb))).toThrow(new ModelError('huge.png', `is 8192x8192, more than the ${MAX_PIXELS} pixels decoded at most`));
    expect(decodePng('ok.png', png(SIZE, SIZE), { width: SIZE, height: SIZE, channels: 4 }).data).toEqual(new Uint8Array(SIZE * SIZE * 4).fill(7));
  });

  it('a folder without manifest.json given as infer.model says so (not "not a file")', async () => {
    const dir = join(root, 'no-manifest');
    mkdirSync(dir);
    const params = inferParams.parse({ model: dir, providers: ['cpu'] });
    expect(() => rendererFormat(params)).toThrow(new ModelError(join(dir, 'manifest.json'), 'missing (not a SyncTalk avatar bundle)'));
    await expect(openRenderer(params, { log })).rejects.toThrow(`${join(dir, 'manifest.json')}: missing (not a SyncTalk avatar bundle)`);
  });
});
