/**
 * encodeWav: builds a WAV file in memory, for tests (round trips, CLI inputs, malformed headers).
 *
 * Samples are interleaved float32; integer encodings clip to [-1, 1] and scale by 2^(bits-1) (8-bit is unsigned,
 * offset 128), rounding to nearest. mu-law and A-law use this file's own G.711 encoders (16-bit linear in).
 * Layout: RIFF/WAVE, fmt (16 bytes for PCM, 18 with cbSize 0 for the others, 40 when `extensible`), a `fact` chunk
 * for non-PCM formats, then `chunksBeforeData` (each padded to even), then data (padded to even).
 */

export interface WavEncodeOptions {
  /** Hz. */
  readonly sampleRate: number;
  readonly channels: number;
  readonly encoding: 'pcm' | 'float' | 'mulaw' | 'alaw';
  /** pcm: 8, 16, 24, 32; float: 32, 64; mulaw, alaw: 8. */
  readonly bitsPerSample: number;
  /** Write WAVE_FORMAT_EXTENSIBLE (0xFFFE) with the subformat GUID for `encoding`. */
  readonly extensible?: boolean;
  /** Value written as the data chunk size instead of the real one (e.g. 0 or 0xFFFFFFFF for "until EOF"). */
  readonly dataSizeOverride?: number;
  /** Value written as the RIFF size instead of the real one. */
  readonly riffSizeOverride?: number;
  /** Extra chunks written between fmt/fact and data, e.g. `{ id: 'LIST', data: ... }`; id is 4 ASCII characters. */
  readonly chunksBeforeData?: ReadonlyArray<{ readonly id: string; readonly data: Uint8Array }>;
}

const TAGS = { pcm: 0x0001, float: 0x0003, alaw: 0x0006, mulaw: 0x0007 } as const;
const GUID_TAIL = [0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

const clip = (x: number): number => (x > 1 ? 1 : x < -1 ? -1 : x);
const toInt = (x: number, bits: number): number => {
  const scale = 2 ** (bits - 1);
  return Math.max(-scale, Math.min(scale - 1, Math.round(clip(x) * scale)));
};

/** 16-bit linear -> G.711 mu-law byte (Sun g711.c linear2ulaw). */
export function linearToMulaw(pcm16: number): number {
  let v = pcm16 >> 2;
  let mask = 0xff;
  if (v < 0) {
    v = -v;
    mask = 0x7f;
  }
  v = Math.min(v, 8159) + 0x21;
  const seg = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff].findIndex((end) => v <= end);
  if (seg < 0) return 0x7f ^ mask;
  return ((seg << 4) | ((v >> (seg + 1)) & 0x0f)) ^ mask;
}

/** 16-bit linear -> G.711 A-law byte (Sun g711.c linear2alaw). */
export function linearToAlaw(pcm16: number): number {
  let v = pcm16 >> 3;
  let mask = 0xd5;
  if (v < 0) {
    mask = 0x55;
    v = -v - 1;
  }
  const seg = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff].findIndex((end) => v <= end);
  if (seg < 0) return 0x7f ^ mask;
  const quant = seg < 2 ? (v >> 1) & 0x0f : (v >> seg) & 0x0f;
  return ((seg << 4) | quant) ^ mask;
}

function encodeData(samples: Float32Array, encoding: WavEncodeOptions['encoding'], bits: number): Buffer {
  const bytes = bits / 8;
  const out = Buffer.alloc(samples.length * bytes);
  samples.forEach((x, i) => {
    const o = i * bytes;
    if (encoding === 'float') {
      if (bits === 32) out.writeFloatLE(x, o);
      else out.writeDoubleLE(x, o);
    } else if (encoding === 'mulaw') out[o] = linearToMulaw(toInt(x, 16));
    else if (encoding === 'alaw') out[o] = linearToAlaw(toInt(x, 16));
    else if (bits === 8) out[o] = toInt(x, 8) + 128;
    else out.writeIntLE(toInt(x, bits), o, bytes);
  });
  return out;
}

const chunk = (id: string, data: Uint8Array, declaredSize = data.length): Buffer => {
  const head = Buffer.alloc(8);
  head.write(id, 0, 4, 'latin1');
  head.writeUInt32LE(declaredSize, 4);
  return Buffer.concat([head, data, Buffer.alloc(data.length & 1)]);
};

export function encodeWav(samples: Float32Array, opts: WavEncodeOptions): Buffer {
  const { sampleRate, channels, encoding, bitsPerSample: bits } = opts;
  const blockAlign = channels * (bits / 8);
  const fmt = Buffer.alloc(opts.extensible ? 40 : encoding === 'pcm' ? 16 : 18);
  fmt.writeUInt16LE(opts.extensible ? 0xfffe : TAGS[encoding], 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(sampleRate, 4);
  fmt.writeUInt32LE(sampleRate * blockAlign, 8);
  fmt.writeUInt16LE(blockAlign, 12);
  fmt.writeUInt16LE(bits, 14);
  if (opts.extensible) {
    fmt.writeUInt16LE(22, 16);
    fmt.writeUInt16LE(bits, 18);
    fmt.writeUInt32LE(channels <= 18 ? 2 ** channels - 1 : 0, 20);
    fmt.writeUInt32LE(TAGS[encoding], 24);
    Buffer.from(GUID_TAIL).copy(fmt, 28);
  }
  const data = encodeData(samples, encoding, bits);
  const frames = samples.length / channels;
  const factData = Buffer.alloc(4);
  factData.writeUInt32LE(frames);
  const fact = encoding === 'pcm' ? [] : [chunk('fact', factData)];
  const extra = (opts.chunksBeforeData ?? []).map((c) => chunk(c.id, c.data));
  const body = Buffer.concat([
    Buffer.from('WAVE', 'latin1'),
    chunk('fmt ', fmt),
    ...fact,
    ...extra,
    chunk('data', data, opts.dataSizeOverride ?? data.length),
  ]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 4, 'latin1');
  riff.writeUInt32LE(opts.riffSizeOverride ?? body.length, 4);
  return Buffer.concat([riff, body]);
}
