import { from, lastValueFrom, map, toArray } from 'rxjs';
import { describe as suite, expect, it } from 'vitest';
import { InputError, PipelineSpecError } from '../src/errors.ts';
import { audio, chunkFrames, flush, idleTick, segmentEnd, type AudioChunk, type PipelineEvent } from '../src/events.ts';
import { resample, resampleElement, type ResampleOptions } from '../src/operators/resample.ts';
import { testScheduler } from './helpers/marbles.ts';

const run = (events: PipelineEvent[], options: ResampleOptions = {}): Promise<PipelineEvent[]> =>
  lastValueFrom(from(events).pipe(resample(options), toArray()));

const audioOf = (events: PipelineEvent[]): AudioChunk[] => events.filter((e): e is AudioChunk => e.type === 'audio');

/** The samples of all audio events, concatenated. */
function joined(events: PipelineEvent[]): Float32Array {
  const chunks = audioOf(events);
  const out = new Float32Array(chunks.reduce((n, a) => n + a.samples.length, 0));
  let at = 0;
  for (const a of chunks) {
    out.set(a.samples, at);
    at += a.samples.length;
  }
  return out;
}

const sine = (f: number, rate: number, frames: number, channels = 1): Float32Array => {
  const x = new Float32Array(frames * channels);
  for (let i = 0; i < frames; i++) for (let c = 0; c < channels; c++) x[i * channels + c] = Math.sin((2 * Math.PI * f * i) / rate);
  return x;
};

/** Splits `samples` (interleaved) into chunks of the given sizes in frames, cycling, with contiguous pts. */
function chunked(samples: Float32Array, rate: number, channels: number, sizes: number[], pts = 0, segment = 0): AudioChunk[] {
  const out: AudioChunk[] = [];
  const frames = samples.length / channels;
  for (let at = 0, k = 0; at < frames; k++) {
    const n = Math.min(sizes[k % sizes.length], frames - at);
    out.push(audio(samples.slice(at * channels, (at + n) * channels), rate, channels, pts + at / rate, segment));
    at += n;
  }
  return out;
}

/**
 * Least-squares fit of y[n] ~ A sin(2 pi f n / rate) + B cos(2 pi f n / rate) over the middle 80 %
 * (away from the segment's edges). Returns the gain (dB, re amplitude 1), the phase (rad) and the
 * residual power (dB re the power of a full-scale sine): aliases, images and noise.
 */
function fit(y: Float32Array, f: number, rate: number): { gainDb: number; phase: number; residualDb: number } {
  const lo = Math.floor(y.length * 0.1);
  const hi = Math.floor(y.length * 0.9);
  let ss = 0;
  let cc = 0;
  let sc = 0;
  let sy = 0;
  let cy = 0;
  for (let i = lo; i < hi; i++) {
    const s = Math.sin((2 * Math.PI * f * i) / rate);
    const c = Math.cos((2 * Math.PI * f * i) / rate);
    ss += s * s;
    cc += c * c;
    sc += s * c;
    sy += s * y[i];
    cy += c * y[i];
  }
  const det = ss * cc - sc * sc;
  const a = (sy * cc - cy * sc) / det;
  const b = (cy * ss - sy * sc) / det;
  let residual = 0;
  for (let i = lo; i < hi; i++) {
    const e = y[i] - a * Math.sin((2 * Math.PI * f * i) / rate) - b * Math.cos((2 * Math.PI * f * i) / rate);
    residual += e * e;
  }
  return { gainDb: 20 * Math.log10(Math.hypot(a, b)), phase: Math.atan2(b, a), residualDb: 10 * Math.log10(residual / (hi - lo) / 0.5) };
}

/** Level of `y` in dB re a full-scale sine, over the middle 80 %. */
function levelDb(y: Float32Array): number {
  const lo = Math.floor(y.length * 0.1);
  const hi = Math.floor(y.length * 0.9);
  let p = 0;
  for (let i = lo; i < hi; i++) p += y[i] * y[i];
  return 10 * Math.log10(p / (hi - lo) / 0.5);
}

/** One segment of a sine through resample (in 20 ms chunks), output samples joined. */
async function convert(f: number, inRate: number, rate = 16000, seconds = 0.25): Promise<Float32Array> {
  const frames = Math.round(inRate * seconds);
  return joined(await run([...chunked(sine(f, inRate, frames), inRate, 1, [inRate / 50]), segmentEnd(0, seconds)], { rate }));
}

/** Marble values: audio events become `frames@first-sample-index` at the output rate. */
const label = (e: PipelineEvent): string => (e.type === 'audio' ? `${chunkFrames(e)}@${Math.round(e.pts * e.sampleRate)}` : e.type);

suite('resample: signal', () => {
  for (const inRate of [44100, 48000, 22050]) {
    it(`is flat within 0.1 dB to 7 kHz from ${inRate} Hz, with no delay and no aliases`, async () => {
      for (const f of [100, 440, 1000, 2000, 3000, 4000, 5000, 6000, 6500, 7000]) {
        const m = fit(await convert(f, inRate), f, 16000);
        expect(Math.abs(m.gainDb), `${f} Hz gain ${m.gainDb} dB`).toBeLessThan(0.1);
        expect(Math.abs(m.phase), `${f} Hz phase ${m.phase} rad`).toBeLessThan(1e-3);
        expect(m.residualDb, `${f} Hz residual`).toBeLessThan(-80);
      }
    });
  }

  it('attenuates what would alias by at least 60 dB (44.1 and 48 kHz in)', async () => {
    for (const inRate of [44100, 48000]) {
      for (const f of [9000, 10000, 12000, 15000, 20000]) {
        expect(levelDb(await convert(f, inRate)), `${f} Hz at ${inRate} Hz`).toBeLessThan(-60);
      }
    }
  });

  it('upsamples 8 and 11.025 kHz flat through 87.5 % of their band, without images', async () => {
    for (const [inRate, top] of [
      [8000, 3500],
      [11025, 4800],
    ]) {
      for (const f of [100, 1000, 2000, 3000, top]) {
        const m = fit(await convert(f, inRate), f, 16000);
        expect(Math.abs(m.gainDb), `${f} Hz from ${inRate} Hz`).toBeLessThan(0.1);
        expect(Math.abs(m.phase)).toBeLessThan(1e-3);
        expect(m.residualDb, `${f} Hz from ${inRate} Hz: images`).toBeLessThan(-70);
      }
    }
  });

  it('converts 96 kHz and ratios too fine to table exactly (8001 Hz in)', async () => {
    for (const [inRate, f] of [
      [96000, 7000],
      [96000, 30000],
      [8001, 1000],
      [8001, 3400],
    ]) {
      const y = await convert(f, inRate);
      if (f < 8000) {
        const m = fit(y, f, 16000);
        expect(Math.abs(m.gainDb), `${f} Hz from ${inRate} Hz`).toBeLessThan(0.1);
        expect(m.residualDb).toBeLessThan(-70);
      } else expect(levelDb(y)).toBeLessThan(-60);
    }
  });

  it('gives round(inFrames * rate / inRate) samples per segment', async () => {
    for (const inRate of [44100, 48000, 22050, 8000, 11025, 96000, 8001]) {
      for (const frames of [1, 2, 7, 441, 1000, 4801]) {
        const out = await run([audio(sine(300, inRate, frames), inRate, 1, 0, 0), segmentEnd(0, 1)]);
        expect(joined(out).length, `${frames} frames at ${inRate} Hz`).toBe(Math.round((frames * 16000) / inRate));
      }
    }
  });

  it('streams in odd-size chunks exactly as in one piece (stereo downmix included)', async () => {
    const noise = (frames: number, channels: number): Float32Array => {
      let seed = 12345;
      const x = new Float32Array(frames * channels);
      for (let i = 0; i < x.length; i++) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        x[i] = seed / 1073741824 - 1;
      }
      return x;
    };
    for (const [inRate, channels] of [
      [44100, 2],
      [48000, 1],
      [22050, 1],
      [8000, 2],
      [8001, 1],
    ]) {
      const x = noise(Math.round(inRate * 0.3) + 17, channels);
      const whole = joined(await run([audio(x, inRate, channels, 0, 0), segmentEnd(0, 1)]));
      const pieces = joined(await run([...chunked(x, inRate, channels, [1, 7, 333, 2, 1021, 64, 5]), segmentEnd(0, 1)]));
      expect(pieces, `${inRate} Hz x${channels}`).toEqual(whole);
    }
  });

  it('averages the channels to mono by default, and keeps them with channels = 2', async () => {
    const frames = 4800;
    const x = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      x[2 * i] = Math.sin((2 * Math.PI * 1000 * i) / 48000);
      x[2 * i + 1] = 0.5 * Math.sin((2 * Math.PI * 3000 * i) / 48000);
    }
    const stereo = audioOf(await run([audio(x, 48000, 2, 0, 0), segmentEnd(0, 0.1)], { channels: 2 }));
    expect(stereo.every((a) => a.channels === 2 && a.sampleRate === 16000)).toBe(true);
    const both = joined(stereo);
    const left = both.filter((_, i) => i % 2 === 0);
    const right = both.filter((_, i) => i % 2 === 1);
    expect(fit(left, 1000, 16000).gainDb).toBeCloseTo(0, 2);
    expect(fit(right, 3000, 16000).gainDb).toBeCloseTo(20 * Math.log10(0.5), 2);

    const mono = joined(await run([audio(x, 48000, 2, 0, 0), segmentEnd(0, 0.1)]));
    expect(fit(mono, 1000, 16000).gainDb).toBeCloseTo(20 * Math.log10(0.5), 2);
    expect(mono.length).toBe(1600);
  });

  it('passes audio already at the rate through untouched', async () => {
    const a = audio(sine(440, 16000, 320), 16000, 1, 1.5, 3);
    const out = await run([a, segmentEnd(3, 1.52)]);
    expect(out[0]).toBe(a);
    const stereo = audio(Float32Array.from([0.5, -0.5, 1, 0]), 16000, 2, 0, 0, 1);
    expect((await run([stereo]))[0]).toEqual(audio(Float32Array.from([0, 0.5]), 16000, 1, 0, 0, 1));
  });
});

suite('resample: stream', () => {
  it('sends the tail before the segment-end it belongs to', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      // 441 samples = 10 ms at 44.1 kHz = 160 samples at 16 kHz; the filter looks 56 samples ahead.
      const input = cold('-a-b-i-S---|', {
        a: audio(new Float32Array(441), 44100, 1, 0, 0),
        b: audio(new Float32Array(441), 44100, 1, 0.01, 0),
        i: idleTick(0, 0.02),
        S: segmentEnd(0, 0.02),
      });
      expectObservable(input.pipe(resample(), map(label))).toBe('-a-b-i-(tS)|', {
        a: '140@0',
        b: '160@140',
        i: 'idle',
        t: '20@300',
        S: 'segment-end',
      });
    });
  });

  it('drops its state on flush, forwards the flush at once, and starts afresh', () => {
    testScheduler().run(({ hot, expectObservable }) => {
      const input = hot('-a-F-b-S---|', {
        a: audio(new Float32Array(480), 48000, 1, 0, 0),
        F: flush('barge-in'),
        b: audio(new Float32Array(480), 48000, 1, 2, 1),
        S: segmentEnd(1, 2.01),
      });
      expectObservable(input.pipe(resample(), map(label))).toBe('-a-F-b-(tS)|', {
        a: '140@0',
        F: 'flush',
        b: '140@32000',
        t: '20@32140',
        S: 'segment-end',
      });
    });
  });

  it('stamps each chunk with the time of its first sample, from the segment start', async () => {
    const chunks = chunked(sine(500, 44100, 4410), 44100, 1, [441, 1000, 37], 7.25, 2);
    const out = audioOf(await run([...chunks, segmentEnd(2, 7.35)]));
    let n = 0;
    for (const a of out) {
      expect(a.pts).toBeCloseTo(7.25 + n / 16000, 12);
      expect(a.segment).toBe(2);
      n += chunkFrames(a);
    }
    expect(n).toBe(1600);
  });

  it('ends the stream in progress (tail first) at another segment or rate, and at completion', async () => {
    const out = await run([
      audio(new Float32Array(480), 48000, 1, 0, 0),
      audio(new Float32Array(480), 48000, 1, 0.01, 1),
      audio(new Float32Array(441), 44100, 1, 0.02, 1),
    ]);
    expect(out.map(label)).toEqual(['140@0', '20@140', '140@160', '20@300', '140@320', '20@460']);
  });

  it('keeps upstream padding at its place in time', async () => {
    const out = audioOf(
      await run([audio(new Float32Array(4800), 48000, 1, 0, 0), audio(new Float32Array(4800), 48000, 1, 0.1, 0, 2400), segmentEnd(0, 0.2)]),
    );
    expect(out.map((a) => a.padding ?? 0)).toEqual([0, 780, 20]);
    expect(out.reduce((n, a) => n + chunkFrames(a), 0)).toBe(3200);
  });

  it('fails with one clear error on audio it cannot convert', async () => {
    await expect(run([audio(new Float32Array(10), 44100.5, 1, 0, 0)])).rejects.toThrow(new InputError('resample', 'input sample rate 44100.5 Hz is out of range (supported: 1000 to 768000 Hz)'));
    await expect(run([audio(new Float32Array(12), 48000, 3, 0, 0)], { channels: 2 })).rejects.toThrow(/^resample: cannot make 2 channels of 3-channel audio/);
    expect(() => resample({ rate: -1 })).toThrow(PipelineSpecError);
  });

  it('documents its parameters and checks caps', () => {
    expect(resampleElement.params.parse({})).toEqual({ rate: 16000, channels: 1 });
    expect(resampleElement.params.shape.rate.description).toMatch(/Hz.*16000/);
    const wav = { kind: 'audio', sampleRate: 44100, channels: 2, chunk: 4410 } as const;
    expect(resampleElement.caps({ rate: 16000, channels: 1 }, wav, 25)).toEqual({ kind: 'audio', sampleRate: 16000, channels: 1, chunk: null });
    expect(resampleElement.caps({ rate: 44100, channels: 2 }, wav, 25)).toEqual(wav);
    expect(resampleElement.caps({ rate: 16000, channels: 3 }, wav, 25)).toMatch(/cannot make 3 channels of 2-channel audio/);
    expect(resampleElement.caps({ rate: 16000, channels: 1 }, { kind: 'video', width: 2, height: 2 }, 25)).toBe('resample takes audio, got video');
  });
});
