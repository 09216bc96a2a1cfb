/**
 * The element contract (src/pipelines/element.ts, docs/add-an-element.md), checked over every registered element:
 * the pipeline registry and a live session's room-bound source and sink.
 *
 * - Parameters are strict (an unknown key is an error naming it) and every one is described; a default is stated
 *   in its description, with its value.
 * - Operators pass events they do not know through, forward a flush at once, and emit nothing from before a flush
 *   after it (only idle ticks, which stand for time, may follow).
 * - Unsubscribing an operator's or a sink's output unsubscribes every input (the input and the source's events).
 *
 * Each operator and sink is driven with a sample of what it takes (SAMPLES); an element without one fails the test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Room } from '@livekit/rtc-node';
import { Subject, type Observable } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PipelineSpecError } from '../src/errors.ts';
import { audio, flush, segmentEnd, type PipelineEvent, type VideoFrame } from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import { PlaybackAnswers } from '../src/livekit/playback-answers.ts';
import { PlaybackNotifier } from '../src/livekit/playback-notifier.ts';
import { rootLogger } from '../src/log.ts';
import { SessionMetricsRecorder } from '../src/metrics/session-metrics.ts';
import type { Element, PipelineContext } from '../src/pipelines/element.ts';
import { parseParams } from '../src/pipelines/params.ts';
import { sessionRegistry } from '../src/workers/avatar-session.ts';

const log = rootLogger.child({ test: 'element-contract' }, { level: 'error' });
const room = new Room();
const notifier = new PlaybackNotifier(room, 'agent', log);
const answers = new PlaybackAnswers(() => undefined, log);
/** Every element a pipeline can name: the registry's, and a session's livekit-audio and livekit-room. */
const elements: readonly Element[] = sessionRegistry(room, 'agent', new SessionMetricsRecorder({ budget: new AudioBudget(2) }), notifier, answers);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'element-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mono16k = (samples: number, pts: number): PipelineEvent => audio(new Float32Array(samples).fill(0.1), 16_000, 1, pts, 0);
const video = (index: number): VideoFrame => ({ type: 'video', width: 4, height: 4, data: new Uint8Array(64).fill(200), pts: index / 25, segment: 0, index });

interface Sample {
  /** Parameters besides the defaults. */
  readonly params: Record<string, unknown>;
  /** The start of a speech segment in the format the element takes, sent before a flush. */
  readonly before: readonly PipelineEvent[];
  /** The source's own events before them (what `pair` takes its audio from). */
  readonly source?: readonly PipelineEvent[];
  /** Milliseconds for work started before the flush to show, if it were not dropped (a model loads and renders). */
  readonly settleMs?: number;
}

/** What each operator and sink is driven with; a source (no input) needs none. */
const SAMPLES: Readonly<Record<string, Sample>> = {
  'idle-fill': { params: {}, before: [mono16k(640, 0)] },
  resample: { params: { rate: 16_000 }, before: [audio(new Float32Array(960).fill(0.1), 48_000, 1, 0, 0)] },
  chunk: { params: {}, before: [mono16k(1000, 0), mono16k(1000, 1000 / 16_000)] },
  infer: { params: { providers: ['cpu'] }, before: [mono16k(1280, 0), mono16k(1280, 0.08)], settleMs: 3000 },
  scale: { params: { width: 8, height: 8 }, before: [video(0), segmentEnd(0, 0.04)] },
  pair: { params: {}, before: [video(0), video(1)], source: [mono16k(320, 0)] },
  'mp4-file': { params: { path: join(dir, 'out.mp4') }, before: [] },
  null: { params: {}, before: [] },
  'livekit-room': { params: {}, before: [] },
};

const sampleOf = (e: Element): Sample => {
  const sample = SAMPLES[e.name];
  if (sample === undefined) throw new Error(`element ${e.name}: add a sample of its input to SAMPLES`);
  return sample;
};

const context = (sourceEvents: Observable<PipelineEvent>): PipelineContext => ({ fps: 25, budget: new AudioBudget(10), sourceEvents, log });

/** The text a description should hold for a default value: scalars as they are, arrays joined by ', '. */
const spelled = (value: unknown): string => (Array.isArray(value) ? value.join(', ') : String(value));

describe.each(elements.map((e) => [e.name, e] as const))('element %s', (_name, element) => {
  const shape = (element.params as z.AnyZodObject).shape as Record<string, z.ZodTypeAny>;

  it('has strict parameters: an unknown key is an error naming it and the parameters', () => {
    const raw = { ...(element.role === 'source' ? {} : sampleOf(element).params), providres: ['cpu'] };
    expect(() => parseParams(element.name, element.params, raw)).toThrow(PipelineSpecError);
    expect(() => parseParams(element.name, element.params, raw)).toThrow(new RegExp(`providres: unknown parameter of ${element.name}`));
  });

  it('describes every parameter, and states each default with its value', () => {
    const undocumented = Object.entries(shape).flatMap(([key, field]) => {
      const text = field.description ?? '';
      if (text === '') return [`${key}: no description`];
      if (field instanceof z.ZodDefault) {
        const value = spelled(field._def.defaultValue());
        return /default/i.test(text) && text.includes(value) ? [] : [`${key}: default ${value} not stated`];
      }
      return field instanceof z.ZodOptional && !/default/i.test(text) ? [`${key}: what its absence means not stated`] : [];
    });
    expect(undocumented).toEqual([]);
  });

  if (element.role === 'operator') {
    const sample = sampleOf(element);
    const run = () => {
      const input = new Subject<PipelineEvent>();
      const sourceEvents = new Subject<PipelineEvent>();
      const out: PipelineEvent[] = [];
      const errors: unknown[] = [];
      const params = parseParams(element.name, element.params, sample.params);
      const sub = element.create(params, context(sourceEvents))(input).subscribe({ next: (e) => out.push(e), error: (e: unknown) => errors.push(e) });
      return { input, sourceEvents, out, errors, sub };
    };

    it('passes an event it does not know through', () => {
      const { input, out, errors, sub } = run();
      const unknown = { type: 'x-unknown' } as unknown as PipelineEvent;
      input.next(unknown);
      sub.unsubscribe();
      expect(errors).toEqual([]);
      expect(out.filter((e) => e.type !== 'idle')).toEqual([unknown]);
    });

    it('forwards a flush at once, and emits nothing from before it after it', async () => {
      const { input, sourceEvents, out, errors, sub } = run();
      for (const e of sample.source ?? []) sourceEvents.next(e);
      for (const e of sample.before) input.next(e);
      const stop = flush('contract', 1);
      sourceEvents.next(stop);
      input.next(stop);
      const at = out.indexOf(stop);
      expect(at).toBeGreaterThanOrEqual(0);
      await sleep(sample.settleMs ?? 100);
      sub.unsubscribe();
      expect(errors).toEqual([]);
      expect(out.slice(at + 1).filter((e) => e.type !== 'idle')).toEqual([]);
    });

    it('unsubscribing its output unsubscribes every input', () => {
      const { input, sourceEvents, sub } = run();
      expect(input.observed).toBe(true);
      sub.unsubscribe();
      expect(input.observed).toBe(false);
      expect(sourceEvents.observed).toBe(false);
    });
  }

  if (element.role === 'sink') {
    it('unsubscribing its output unsubscribes every input', () => {
      const sample = sampleOf(element);
      const input = new Subject<PipelineEvent>();
      const sourceEvents = new Subject<PipelineEvent>();
      const sub = element.create(parseParams(element.name, element.params, sample.params), context(sourceEvents))(input).subscribe({ error: () => undefined });
      expect(input.observed).toBe(true);
      sub.unsubscribe();
      expect(input.observed).toBe(false);
      expect(sourceEvents.observed).toBe(false);
    });
  }
});
