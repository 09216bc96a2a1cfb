import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, EMPTY, lastValueFrom, Observable, of, Subject, take, tap, throwError, toArray } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { flush, type PipelineEvent } from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import { rootLogger } from '../src/log.ts';
import { probe } from '../src/media/ffprobe.ts';
import type { PipelineContext, SinkProgress } from '../src/pipelines/element.ts';
import { mp4File } from '../src/sinks/mp4-file.ts';
import { avFrame, syntheticAv } from './synthetic-av.ts';

const context = (budget = new AudioBudget()): PipelineContext => ({
  fps: 25,
  budget,
  sourceEvents: EMPTY,
  log: rootLogger.child({ element: 'mp4-file' }, { level: 'warn' }),
});

const sink = (path: string, ctx: PipelineContext) => mp4File.create(mp4File.params.parse({ path }), ctx);

/** Waits until `dir` is empty (ffmpeg may still be dying), failing after `ms`. */
const emptied = async (dir: string, ms = 3000): Promise<string[]> => {
  const until = Date.now() + ms;
  while (readdirSync(dir).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return readdirSync(dir);
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mp4-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('mp4-file element', () => {
  it('documents defaults: crf 20, preset veryfast, 256k AAC', () => {
    expect(mp4File.params.parse({ path: 'a.mp4' })).toEqual({ path: 'a.mp4', crf: 20, preset: 'veryfast', audioBitrate: '256k' });
    expect(mp4File.params.safeParse({ path: 'a.mp4', crf: 60 }).success).toBe(false);
    expect(mp4File.params.safeParse({ path: 'a.mp4', audioBitrate: 'loud' }).success).toBe(false);
  });

  it('accepts av only, naming what it got otherwise', () => {
    const p = mp4File.params.parse({ path: 'a.mp4' });
    expect(mp4File.accepts(p, { kind: 'av', width: 256, height: 256 })).toBeNull();
    expect(mp4File.accepts(p, { kind: 'video', width: 256, height: 256 })).toMatch(/got video alone \(256x256\)/);
    expect(mp4File.accepts(p, { kind: 'audio', sampleRate: 16000, channels: 1, chunk: null })).toMatch(/got audio alone \(16000 Hz, 1 channels\)/);
  });
});

describe('mp4-file writing', () => {
  it.each([
    [44100, 2, 3],
    [16000, 1, 2],
    [48000, 1, 2],
  ])('%i Hz x%i, %i s of 256x256 -> h264 25 fps + aac at the source rate, durations = frames / 25', async (sampleRate, channels, seconds) => {
    const path = join(dir, 'out.mp4');
    const budget = new AudioBudget();
    const progress = await lastValueFrom(sink(path, context(budget))(syntheticAv({ seconds, sampleRate, channels, budget })).pipe(toArray()));
    const frames = seconds * 25;
    expect(progress.at(-1)).toEqual({ frames, seconds });
    expect(progress.map((p) => p.frames)).toEqual(Array.from({ length: frames }, (_, i) => i + 1));
    expect(budget.queued).toBe(0);
    expect(readdirSync(dir)).toEqual(['out.mp4']);

    const { video, audio } = await probe(path);
    expect(video).toMatchObject({ codec: 'h264', width: 256, height: 256, fps: 25, frames });
    expect(audio).toMatchObject({ codec: 'aac', sampleRate, channels });
    expect(Math.abs(video!.duration - seconds)).toBeLessThanOrEqual(0.04);
    expect(Math.abs(audio!.duration - seconds)).toBeLessThanOrEqual(0.04);
  });

  it('does not deadlock on a 60 s stream fed one frame at a time (budget of one frame)', { timeout: 120_000 }, async () => {
    const path = join(dir, 'long.mp4');
    const budget = new AudioBudget(1 / 25);
    const last = await lastValueFrom(sink(path, context(budget))(syntheticAv({ seconds: 60, sampleRate: 48000, channels: 2, budget })));
    expect(last).toEqual({ frames: 1500, seconds: 60 });
    expect(budget.queued).toBe(0);
    const { video, audio } = await probe(path);
    expect(video?.frames).toBe(1500);
    expect(Math.abs(audio!.duration - 60)).toBeLessThanOrEqual(0.04);
  });

  it('keeps writing through a flush; frames from before it no longer count against the budget', async () => {
    const path = join(dir, 'flushed.mp4');
    const budget = new AudioBudget(10);
    const spec = { fps: 25, width: 64, height: 64, sampleRate: 16000, channels: 1 };
    const picture = [new Uint8Array(64 * 64 * 4)];
    const input = new Subject<PipelineEvent>();
    const queuedAt: number[] = [];
    const done = lastValueFrom(
      sink(path, context(budget))(input).pipe(
        tap((p) => queuedAt.push(budget.queued)),
        toArray(),
      ),
    );
    await budget.reserve(10 / 25);
    for (let i = 0; i < 10; i++) input.next(avFrame(i, spec, picture));
    input.next(flush('barge-in'));
    await budget.reserve(5 / 25);
    for (let i = 10; i < 15; i++) input.next(avFrame(i, spec, picture));
    input.complete();
    const progress = await done;
    expect(progress.at(-1)).toEqual({ frames: 15, seconds: 15 / 25 });
    // The 10 frames from before the flush were written without touching the 5 frames reserved after it.
    expect(queuedAt[9]).toBeCloseTo(5 / 25, 9);
    expect(budget.queued).toBeCloseTo(0, 9);
    expect((await probe(path)).video?.frames).toBe(15);
  });
});

describe('mp4-file leaves no file behind', () => {
  it('when unsubscribed mid-way', async () => {
    const path = join(dir, 'cut.mp4');
    const budget = new AudioBudget();
    const reached = await new Promise<number>((resolve, reject) => {
      const s = sink(path, context(budget))(syntheticAv({ seconds: 10, sampleRate: 44100, channels: 2, budget })).subscribe({
        next: (p: SinkProgress) => {
          if (p.frames === 20) {
            s.unsubscribe();
            resolve(p.frames);
          }
        },
        error: reject,
      });
    });
    expect(reached).toBe(20);
    expect(await emptied(dir)).toEqual([]);
  });

  it('when the input errors', async () => {
    const path = join(dir, 'broken.mp4');
    const input = concat(syntheticAv({ seconds: 1, sampleRate: 16000, channels: 1 }).pipe(take(12)), throwError(() => new Error('decoder blew up')));
    await expect(lastValueFrom(sink(path, context())(input))).rejects.toThrow('decoder blew up');
    expect(await emptied(dir)).toEqual([]);
  });

  it('when the input has no frames', async () => {
    const path = join(dir, 'empty.mp4');
    await expect(lastValueFrom(sink(path, context())(EMPTY))).rejects.toThrow(`${path}: the input ended before any av frame; no file written`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('when a frame does not match the first', async () => {
    const path = join(dir, 'mixed.mp4');
    const spec = { fps: 25, sampleRate: 16000, channels: 1 };
    const big = avFrame(0, { ...spec, width: 64, height: 64 }, [new Uint8Array(64 * 64 * 4)]);
    const small = avFrame(1, { ...spec, width: 32, height: 32 }, [new Uint8Array(32 * 32 * 4)]);
    await expect(lastValueFrom(sink(path, context())(of(big, small)))).rejects.toThrow(
      'mp4-file: frame 1 is 32x32, but the stream started at 64x64',
    );
    expect(await emptied(dir)).toEqual([]);
  });

  it('when ffmpeg fails, with its last stderr line in one error line', async () => {
    const path = join(dir, 'odd.mp4');
    const spec = { fps: 25, width: 33, height: 33, sampleRate: 16000, channels: 1 };
    const frames = Array.from({ length: 5 }, (_, i) => avFrame(i, spec, [new Uint8Array(33 * 33 * 4)]));
    const error = await lastValueFrom(sink(path, context())(of(...frames))).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(new RegExp(`^${path}: ffmpeg exited with code \\d+: .*`));
    expect((error as Error).message).not.toContain('\n');
    expect(await emptied(dir)).toEqual([]);
  });

  it('creates a missing folder for the file', async () => {
    const path = join(dir, 'new-folder', 'out.mp4');
    await lastValueFrom(sink(path, context())(syntheticAv({ seconds: 0.2, sampleRate: 16000, channels: 1 })));
    expect(readdirSync(join(dir, 'new-folder'))).toEqual(['out.mp4']);
  });

  it('never replaces a directory or a FIFO, and a path under a file is one error, not a crash', async () => {
    const input = () => syntheticAv({ seconds: 0.2, sampleRate: 16000, channels: 1 });
    mkdirSync(join(dir, 'folder'));
    await expect(lastValueFrom(sink(join(dir, 'folder'), context())(input()))).rejects.toThrow(`${join(dir, 'folder')}: is a directory, not a regular file; refusing to replace it`);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await expect(lastValueFrom(sink(join(dir, 'fifo'), context())(input()))).rejects.toThrow(/fifo: is a FIFO \(named pipe\), not a regular file/);
    expect(lstatSync(join(dir, 'fifo')).isFIFO()).toBe(true);
    writeFileSync(join(dir, 'file'), 'x');
    await expect(lastValueFrom(sink(join(dir, 'file', 'x.mp4'), context())(input()))).rejects.toThrow(`${join(dir, 'file', 'x.mp4')}: cannot be written: a folder on its path is a file (ENOTDIR)`);
    expect((await emptied(dir)).sort()).toEqual(['fifo', 'file', 'folder']);
    expect(readdirSync(join(dir, 'folder'))).toEqual([]);
  });

  it('when ffmpeg is not installed', async () => {
    const path = join(dir, 'out.mp4');
    const saved = process.env.PATH;
    process.env.PATH = join(dir, 'no-bin');
    const result = new Observable<SinkProgress>((s) => sink(path, context())(syntheticAv({ seconds: 0.2, sampleRate: 16000, channels: 1 })).subscribe(s));
    try {
      await expect(lastValueFrom(result)).rejects.toThrow('mp4-file: ffmpeg not found on PATH; apt-get install ffmpeg');
    } finally {
      process.env.PATH = saved;
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('probe', () => {
  it('names the file and quotes ffprobe when it cannot read it', async () => {
    const path = join(dir, 'nothing.mp4');
    await expect(probe(path)).rejects.toThrow(`${path}: ffprobe failed: ${path}: No such file or directory`);
  });
});
