import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { EMPTY, lastValueFrom, take, toArray } from 'rxjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { InputError } from '../src/errors.ts';
import { type AudioChunk, type PipelineEvent } from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import type { PipelineContext } from '../src/pipelines/element.ts';
import { wavFile, wavFileElement } from '../src/sources/wav-file.ts';
import { isOpenHere } from './helpers/open-files.ts';
import { encodeWav } from './helpers/wav-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'wav-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A logger that keeps its JSON lines, so tests can read the warnings. */
function capturingLog() {
  const lines: Array<{ level: number; msg: string; path?: string }> = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

/** 16 kHz mono 16-bit PCM, `frames` long, written to `name`; returns the path and the samples as decoded. */
function writePcm(name: string, frames: number): { path: string; samples: Float32Array } {
  const samples = new Float32Array(frames).map((_, i) => Math.round(Math.sin(i / 5) * 16000) / 32768);
  const path = join(dir, name);
  writeFileSync(path, encodeWav(samples, { sampleRate: 16000, channels: 1, encoding: 'pcm', bitsPerSample: 16 }));
  return { path, samples };
}

const audioOf = (events: PipelineEvent[]): AudioChunk[] => events.filter((e): e is AudioChunk => e.type === 'audio');

describe('wavFile', () => {
  it('emits the file as 20 ms audio chunks of segment 0, then segment-end, then completes', async () => {
    const { path, samples } = writePcm('speech.wav', 1650);
    const { log } = capturingLog();
    const events = await lastValueFrom(wavFile(path, { budget: new AudioBudget(100), log }).pipe(toArray()));
    const chunks = audioOf(events);
    expect(events.map((e) => e.type)).toEqual([...Array(6).fill('audio'), 'segment-end']);
    expect(chunks.map((c) => c.samples.length)).toEqual([320, 320, 320, 320, 320, 50]);
    expect(chunks.map((c) => c.pts)).toEqual([0, 0.02, 0.04, 0.06, 0.08, 0.1]);
    expect(chunks.every((c) => c.sampleRate === 16000 && c.channels === 1 && c.segment === 0)).toBe(true);
    expect(Float32Array.from(chunks.flatMap((c) => Array.from(c.samples)))).toEqual(samples);
    expect(events.at(-1)).toEqual({ type: 'segment-end', segment: 0, pts: 1650 / 16000 });
    expect(isOpenHere(path)).toBe(false);
  });

  it('cuts chunkMs at the file rate and keeps the channels interleaved', async () => {
    const input = new Float32Array(2 * 1000).map((_, i) => (i % 2 ? -0.25 : 0.5));
    const path = join(dir, 'stereo.wav');
    writeFileSync(path, encodeWav(input, { sampleRate: 22050, channels: 2, encoding: 'float', bitsPerSample: 32 }));
    const events = await lastValueFrom(wavFile(path, { chunkMs: 10, budget: new AudioBudget(100), log: capturingLog().log }).pipe(toArray()));
    const chunks = audioOf(events);
    expect(chunks.map((c) => c.samples.length / 2)).toEqual([221, 221, 221, 221, 116]);
    expect(chunks[1].pts).toBe(221 / 22050);
    expect(Array.from(chunks[0].samples.subarray(0, 4))).toEqual([0.5, -0.25, 0.5, -0.25]);
    expect(events.at(-1)).toEqual({ type: 'segment-end', segment: 0, pts: 1000 / 22050 });
  });

  it('reserves each chunk in the budget and waits while it is full', async () => {
    const { path } = writePcm('paced.wav', 16000);
    const budget = new AudioBudget(0.05);
    const events: PipelineEvent[] = [];
    const sub = wavFile(path, { budget, log: capturingLog().log }).subscribe((e) => events.push(e));
    await vi.waitFor(() => expect(events).toHaveLength(2));
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toHaveLength(2);
    expect(budget.queued).toBeCloseTo(0.04, 9);
    budget.release(0.02);
    await vi.waitFor(() => expect(events).toHaveLength(3));
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toHaveLength(3);

    sub.unsubscribe();
    await vi.waitFor(() => expect(isOpenHere(path)).toBe(false));
    // The reservation still waiting is granted by this release and handed back, not emitted.
    budget.release(0.04);
    await vi.waitFor(() => expect(budget.queued).toBe(0));
    expect(events).toHaveLength(3);
  });

  it('closes the file when the subscriber stops early', async () => {
    const { path } = writePcm('early.wav', 16000);
    const events = await lastValueFrom(wavFile(path, { budget: new AudioBudget(100), log: capturingLog().log }).pipe(take(3), toArray()));
    expect(events).toHaveLength(3);
    await vi.waitFor(() => expect(isOpenHere(path)).toBe(false));
  });

  it('sends bad input to the error channel as an InputError naming the file', async () => {
    const path = join(dir, 'not-a.wav');
    writeFileSync(path, 'just some text');
    const events: PipelineEvent[] = [];
    const error = await new Promise((resolve) =>
      wavFile(path, { budget: new AudioBudget(), log: capturingLog().log }).subscribe({ next: (e) => events.push(e), error: resolve }),
    );
    expect(events).toEqual([]);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`${path}: not a RIFF/WAVE file (starts with "just", form "e te")`);
  });

  it('logs replaced NaN/Inf samples once as a warning, or errors with nonFinite reject', async () => {
    const input = new Float32Array(800).fill(0.1);
    input[10] = NaN;
    input[500] = Infinity;
    const path = join(dir, 'nan.wav');
    writeFileSync(path, encodeWav(input, { sampleRate: 8000, channels: 1, encoding: 'float', bitsPerSample: 32 }));
    const { log, lines } = capturingLog();
    const events = await lastValueFrom(wavFile(path, { budget: new AudioBudget(100), log }).pipe(toArray()));
    expect(audioOf(events)[0].samples[10]).toBe(0);
    expect(lines).toEqual([expect.objectContaining({ level: 40, path, msg: '2 non-finite float samples (NaN or Inf) replaced with silence' })]);

    const rejected = await lastValueFrom(wavFile(path, { nonFinite: 'reject', budget: new AudioBudget(100), log }).pipe(toArray())).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(InputError);
    expect((rejected as InputError).problem).toBe('non-finite float sample (NaN) at frame 10, channel 0');
  });
});

describe('wav-file element', () => {
  const ctx = (budget: AudioBudget): PipelineContext => ({ fps: 25, budget, sourceEvents: EMPTY, log: capturingLog().log });

  it('documents its defaults and caps', () => {
    expect(wavFileElement.name).toBe('wav-file');
    expect(wavFileElement.role).toBe('source');
    const params = wavFileElement.params.parse({ path: 'a.wav' });
    expect(params).toEqual({ path: 'a.wav', chunkMs: 20, nonFinite: 'silence' });
    expect(wavFileElement.caps(params)).toEqual({ kind: 'audio', sampleRate: null, channels: null, chunk: null });
    expect(wavFileElement.params.safeParse({ path: 'a.wav', chunkMs: 0 }).success).toBe(false);
    expect(wavFileElement.params.safeParse({ path: 'a.wav', chunkMS: 10 }).success).toBe(false);
  });

  it('creates the source from its params and the context budget', async () => {
    const { path } = writePcm('element.wav', 1000);
    const budget = new AudioBudget(100);
    const params = wavFileElement.params.parse({ path, chunkMs: 25 });
    const events = await lastValueFrom(wavFileElement.create(params, ctx(budget)).pipe(toArray()));
    expect(audioOf(events).map((c) => c.samples.length)).toEqual([400, 400, 200]);
    expect(budget.queued).toBeCloseTo(1000 / 16000, 9);
  });
});
