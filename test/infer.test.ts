import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import onnxProto from 'onnx-proto';
import { pino } from 'pino';
import { defer, EMPTY, tap, firstValueFrom, from, lastValueFrom, Subject, toArray, type Observable } from 'rxjs';
import type { TestScheduler } from 'rxjs/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.ts';
import {
  audio,
  flush,
  idleTick,
  segmentEnd,
  type AudioChunk,
  type IdleTick,
  type PipelineEvent,
  type VideoFrame,
} from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import { expectedMouthOpening, measureMouthOpening } from '../src/models/demo-face.ts';
import type { FrameRenderer } from '../src/models/frame-renderer.ts';
import { infer, inferElement, inferParams } from '../src/operators/infer.ts';
import type { Caps, PipelineContext } from '../src/pipelines/element.ts';
import { testScheduler } from './helpers/marbles.ts';

// ---------------------------------------------------------------------------------------------
// The operator, with a fake renderer on virtual time: render(input) takes `delays[input.pts]`
// frames of time and returns one 1-byte "picture" per frame, holding input.pts * 100 + k.

const chunk = (pts: number, segment: number, padding?: number) => audio(new Float32Array(1280), 16_000, 1, pts, segment, padding);

const picture = (input: AudioChunk | IdleTick, k: number) => Uint8Array.of(Math.round(input.pts * 100) + k);

const video = (input: AudioChunk | IdleTick, k: number, index: number): VideoFrame => ({
  type: 'video',
  width: 1,
  height: 1,
  data: picture(input, k),
  pts: input.pts + k / 25,
  segment: input.type === 'audio' ? input.segment : null,
  index,
});

type Helpers = Parameters<Parameters<TestScheduler['run']>[0]>[0];

/** Runs `body` on virtual time (flushing at the end) and returns the fake renderer for inspection. */
function harness(body: (helpers: Helpers, fake: FakeRenderer) => void): FakeRenderer {
  const scheduler = testScheduler();
  let fake: FakeRenderer | undefined;
  scheduler.run((helpers) => {
    fake = new FakeRenderer(helpers.cold);
    body(helpers, fake);
  });
  return fake!;
}

class FakeRenderer implements FrameRenderer {
  readonly width = 1;
  readonly height = 1;
  active = 0;
  maxActive = 0;
  unsubscribedEarly = 0;
  delays: Record<number, string> = {};

  constructor(private readonly cold: Helpers['cold']) {}

  render(input: AudioChunk | IdleTick): Observable<Uint8Array[]> {
    const frames = input.type === 'idle' ? 1 : Math.ceil((1280 - (input.padding ?? 0)) / 640);
    const value = Array.from({ length: frames }, (_, k) => picture(input, k));
    return defer(() => {
      this.active++;
      this.maxActive = Math.max(this.maxActive, this.active);
      // counted down before the operator sees the completion (finalize would run after it)
      return this.cold(this.delays[input.pts] ?? '--(f|)', { f: value }).pipe(
        tap({
          complete: () => this.active--,
          error: () => this.active--,
          unsubscribe: () => {
            this.active--;
            this.unsubscribedEarly++;
          },
        }),
      );
    });
  }
}

describe('infer (marbles, fake renderer)', () => {
  it('emits every frame in input order although a later render finishes first', () => {
    harness(({ hot, expectObservable }, fake) => {
      const a = chunk(0, 0);
      const b = chunk(0.08, 0);
      fake.delays = { 0: '-----(f|)', 0.08: '-(f|)' };
      const input = hot('-a-b-----------|', { a, b });
      const expected = '------(wxyz)---|';
      expectObservable(input.pipe(infer(fake))).toBe(expected, {
        w: video(a, 0, 0),
        x: video(a, 1, 1),
        y: video(b, 0, 2),
        z: video(b, 1, 3),
      });
    });
  });

  it('runs at most maxInFlight renders at once; the next starts when one finishes', () => {
    const i = [0, 1, 2].map((n) => idleTick(n, n * 0.04));
    const fake = harness(({ hot, expectObservable }, fake) => {
      fake.delays = { 0: '---(f|)', 0.04: '---(f|)', 0.08: '---(f|)' };
      const input = hot('-abc--------|', { a: i[0], b: i[1], c: i[2] });
      // renders:        a--A
      //                  b--B
      //                    (c waits for a slot) c--C
      const expected = '----AB-C----|';
      expectObservable(input.pipe(infer(fake, { maxInFlight: 2 }))).toBe(expected, {
        A: video(i[0], 0, 0),
        B: video(i[1], 0, 1),
        C: video(i[2], 0, 2),
      });
    });
    expect(fake.maxActive).toBe(2);
  });

  it('forwards segment-end and other events after the frames of the inputs before them', () => {
    const a = chunk(0, 0);
    const i = idleTick(0, 0.08);
    const e = segmentEnd(0, 0.08);
    const v: VideoFrame = { type: 'video', width: 1, height: 1, data: Uint8Array.of(99), pts: 0, segment: 7, index: 0 };
    harness(({ hot, expectObservable }, fake) => {
      fake.delays = { 0: '-----(f|)', 0.08: '--(f|)' };
      const input = hot('-aevi---------|', { a, e, v, i });
      const expected = '------(wxevI)-|';
      expectObservable(input.pipe(infer(fake))).toBe(expected, { w: video(a, 0, 0), x: video(a, 1, 1), e, v, I: video(i, 0, 0) });
    });
  });

  it('forwards flush at once, dropping queued inputs and the results of renders started before it', () => {
    const a = chunk(0, 0);
    const b = chunk(0.08, 0);
    const c = chunk(0.16, 1);
    const F = flush('user interrupted');
    const fake = harness(({ hot, expectObservable }, fake) => {
      fake.delays = { 0: '-----(f|)', 0.08: '-----(f|)' };
      const input = hot('-abFc--------|', { a, b, F, c });
      const expected = '---F--(xy)---|';
      expectObservable(input.pipe(infer(fake))).toBe(expected, { F, x: video(c, 0, 0), y: video(c, 1, 1) });
    });
    expect(fake.unsubscribedEarly).toBe(2);
  });

  it('behaves as the marble diagram in its doc comment says', () => {
    const [a, b, c, d] = [0, 1, 2, 3].map((n) => idleTick(n, n * 0.04));
    const e = segmentEnd(0, 0.04);
    const F = flush('interrupted');
    const fake = harness(({ hot, expectObservable }, fake) => {
      fake.delays = { 0: '---(f|)', 0.04: '---(f|)', 0.08: '---(f|)', 0.12: '---(f|)' };
      const input = hot('-a-b-e-------c-F---d------|', { a, b, c, d, e, F });
      const expected = '----A-(Be)-----F------D---|';
      expectObservable(input.pipe(infer(fake, { maxInFlight: 2 }))).toBe(expected, {
        A: video(a, 0, 0),
        B: video(b, 0, 1),
        e,
        F,
        D: video(d, 0, 0),
      });
    });
    expect(fake.unsubscribedEarly).toBe(1);
  });

  it('completes only after the last render', () => {
    const a = chunk(0, 0);
    harness(({ hot, expectObservable }, fake) => {
      fake.delays = { 0: '---(f|)' };
      expectObservable(hot('-a|', { a }).pipe(infer(fake))).toBe('----(xy|)', { x: video(a, 0, 0), y: video(a, 1, 1) });
    });
  });

  it('forwards a render error', () => {
    const a = chunk(0, 0);
    harness(({ hot, expectObservable }, fake) => {
      fake.delays = { 0: '--#' };
      expectObservable(hot('-a----|', { a }).pipe(infer(fake))).toBe('---#');
    });
  });
});

describe('infer (frame numbering, synchronous renderer)', () => {
  const renderer: FrameRenderer = {
    width: 1,
    height: 1,
    render: (input) => [Array.from({ length: input.type === 'idle' ? 1 : Math.ceil((1280 - (input.padding ?? 0)) / 640) }, (_, k) => picture(input, k))],
  };
  const run = (events: PipelineEvent[]) => lastValueFrom(from(events).pipe(infer(renderer), toArray()));
  const summary = (events: PipelineEvent[]) =>
    events.map((e) => (e.type === 'video' ? `${e.segment ?? 'idle'}#${e.index}@${e.pts.toFixed(2)}` : e.type));

  it('numbers frames per segment and per idle run, with pts = chunk pts + k / fps', async () => {
    const out = await run([
      chunk(0, 0),
      chunk(0.08, 0, 700),
      segmentEnd(0, 0.12),
      idleTick(0, 0.12),
      idleTick(1, 0.16),
      chunk(0.2, 1),
      idleTick(2, 0.28),
      flush('x'),
      idleTick(3, 0.32),
    ]);
    expect(summary(out)).toEqual([
      '0#0@0.00', '0#1@0.04', '0#2@0.08', 'segment-end',
      'idle#0@0.12', 'idle#1@0.16',
      '1#0@0.20', '1#1@0.24',
      'idle#0@0.28', 'flush', 'idle#0@0.32',
    ]);
  });

  it('continues a segment\'s numbering across idle frames in the middle of it', async () => {
    const out = await run([chunk(0, 4), idleTick(0, 0.08), chunk(0.12, 4)]);
    expect(summary(out)).toEqual(['4#0@0.00', '4#1@0.04', 'idle#0@0.08', '4#2@0.12', '4#3@0.16']);
  });

  it('stops the frames of a chunk when a flush arrives while they go out (a synchronous loop)', () => {
    const input = new Subject<PipelineEvent>();
    const seen: PipelineEvent[] = [];
    input.pipe(infer(renderer)).subscribe((e) => {
      seen.push(e);
      if (e.type === 'video' && e.index === 0) input.next(flush('loop'));
    });
    input.next(chunk(0, 0));
    expect(summary(seen)).toEqual(['0#0@0.00', 'flush']);
  });

  it('turns a renderer that throws into an error', async () => {
    const throwing: FrameRenderer = {
      width: 1,
      height: 1,
      render: () => {
        throw new Error('bad chunk');
      },
    };
    await expect(lastValueFrom(from([chunk(0, 0)]).pipe(infer(throwing)))).rejects.toThrow('bad chunk');
  });
});

// ---------------------------------------------------------------------------------------------
// The element, with the real demo model.

function capturingLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

const context = (log = pino({ level: 'silent' })): PipelineContext => ({ fps: 25, budget: new AudioBudget(), sourceEvents: EMPTY, log });

const cpu = inferParams.parse({ providers: ['cpu'] });

/** 1280 samples: two 40 ms frames of a 300 Hz sine at the given mean-power levels, dBFS. */
function speech(db0: number, db1: number): Float32Array {
  return Float32Array.from({ length: 1280 }, (_, i) => Math.sqrt(2 * 10 ** ((i < 640 ? db0 : db1) / 10)) * Math.sin((2 * Math.PI * 300 * i) / 16_000));
}

describe('infer element', () => {
  const audioCaps = (over: Partial<Extract<Caps, { kind: 'audio' }>> = {}): Caps => ({ kind: 'audio', sampleRate: 16_000, channels: 1, chunk: 1280, ...over });

  it('has documented defaults', () => {
    expect(inferParams.parse({})).toEqual({ model: 'demo', providers: ['cuda', 'webgpu', 'cpu'], maxInFlight: 2, intraOpThreads: 1 });
  });

  it('accepts 16 kHz mono chunks of 1280 at 25 fps and outputs 256x256 video', () => {
    expect(inferElement.caps(cpu, audioCaps(), 25)).toEqual({ kind: 'video', width: 256, height: 256 });
  });

  it('names what is wrong with other input caps', () => {
    expect(inferElement.caps(cpu, audioCaps({ sampleRate: 48_000 }), 25)).toBe('needs audio at 16000 Hz; got 48000 Hz (add a resample element)');
    expect(inferElement.caps(cpu, audioCaps({ sampleRate: null }), 25)).toBe('needs audio at 16000 Hz; got an unknown rate (add a resample element)');
    expect(inferElement.caps(cpu, audioCaps({ channels: 2 }), 25)).toBe('needs mono audio; got 2 channels');
    expect(inferElement.caps(cpu, audioCaps({ chunk: null }), 25)).toBe('needs chunks of 1280 samples (80 ms); got any size (add a chunk element)');
    expect(inferElement.caps(cpu, audioCaps({ chunk: 640 }), 25)).toBe('needs chunks of 1280 samples (80 ms); got 640 (add a chunk element)');
    expect(inferElement.caps(cpu, audioCaps(), 30)).toBe('renders 25 fps (640 samples at 16 kHz per frame); the pipeline runs at 30 fps');
    expect(inferElement.caps(cpu, { kind: 'video', width: 256, height: 256 }, 25)).toBe('needs audio input; got video');
  });

  it('renders speech and idle through the real model: mouth openings, numbering, pts, order', async () => {
    const { log, lines } = capturingLogger();
    const levels = [
      [-50, -20],
      [-35, -12],
    ];
    const events: PipelineEvent[] = [
      audio(speech(levels[0][0], levels[0][1]), 16_000, 1, 0, 0),
      audio(speech(levels[1][0], levels[1][1]), 16_000, 1, 0.08, 0, 700),
      segmentEnd(0, 0.12),
      idleTick(0, 0.12),
      idleTick(1, 0.16),
    ];
    const out = await lastValueFrom(from(events).pipe(inferElement.create(cpu, context(log)), toArray()));
    expect(out.map((e) => e.type)).toEqual(['video', 'video', 'video', 'segment-end', 'video', 'video']);
    const frames = out.filter((e): e is VideoFrame => e.type === 'video');
    expect(frames.map((f) => [f.segment, f.index, Number(f.pts.toFixed(3))])).toEqual([
      [0, 0, 0],
      [0, 1, 0.04],
      [0, 2, 0.08],
      [null, 0, 0.12],
      [null, 1, 0.16],
    ]);
    const expected = [levels[0][0], levels[0][1], levels[1][0]].map((db) => expectedMouthOpening(speech(db, db).subarray(0, 640)));
    expected.push(0, 0);
    frames.forEach((f, i) => expect(Math.abs(measureMouthOpening(f) - expected[i]), `frame ${i}`).toBeLessThan(1 / 60));
    // loaded on subscribe, closed on unsubscribe (completion)
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lines.map((l) => l.msg)).toEqual(['using provider cpu', 'model closed']);
  });

  it('drops what is queued when a flush overtakes it, with the real model', async () => {
    const input = new Subject<PipelineEvent>();
    const result = lastValueFrom(input.pipe(inferElement.create(cpu, context()), toArray()));
    input.next(audio(speech(-20, -20), 16_000, 1, 0, 0));
    input.next(audio(speech(-20, -20), 16_000, 1, 0.08, 0));
    input.next(flush('barge-in'));
    input.next(audio(speech(-60, -60), 16_000, 1, 0.16, 1));
    input.complete();
    const out = await result;
    expect(out.map((e) => (e.type === 'video' ? `${e.segment}#${e.index}` : e.type))).toEqual(['flush', '1#0', '1#1']);
  });

  it('errors with a ModelError for a missing model file', async () => {
    const params = inferParams.parse({ model: '/nonexistent/face.onnx', providers: ['cpu'] });
    await expect(firstValueFrom(from([idleTick(0, 0)]).pipe(inferElement.create(params, context())))).rejects.toThrow(
      new ModelError('/nonexistent/face.onnx', 'no such file'),
    );
  });

  describe('with a model that does not follow the demo-face contract', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'infer-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('errors with a ModelError naming the expected inputs', async () => {
      const { onnx } = onnxProto;
      const info = (name: string) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }] } } } });
      const identity = onnx.ModelProto.encode({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: { name: 'identity', node: [{ opType: 'Identity', input: ['x'], output: ['y'] }], input: [info('x')], output: [info('y')] },
      }).finish();
      const path = join(dir, 'identity.onnx');
      writeFileSync(path, identity);
      const params = inferParams.parse({ model: path, providers: ['cpu'] });
      await expect(firstValueFrom(from([idleTick(0, 0)]).pipe(inferElement.create(params, context())))).rejects.toThrow(
        new ModelError(path, 'expected inputs [audio, phase] and output frame (the demo-face contract); has inputs [x], outputs [y]'),
      );
    });
  });
});
