/**
 * The live preset validates against a session's registry (livekit-audio source, the one infer element,
 * livekit-room sink), and SYNCTALK_BUNDLE's override replaces the model of every infer operator only.
 */
import { readFileSync } from 'node:fs';
import { Room } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { PlaybackAnswers } from '../../src/livekit/playback-answers.ts';
import { PlaybackNotifier } from '../../src/livekit/playback-notifier.ts';
import { rootLogger } from '../../src/log.ts';
import { SessionMetricsRecorder } from '../../src/metrics/session-metrics.ts';
import { AudioBudget } from '../../src/flow/audio-budget.ts';
import { inferElement } from '../../src/operators/infer.ts';
import { validatePipeline } from '../../src/pipelines/spec.ts';
import { LIVE_DEMO_PRESET, sessionRegistry, withInferModel } from '../../src/workers/avatar-session.ts';

const log = rootLogger.child({ test: 'live-preset' }, { level: 'warn' });

describe('the live preset', () => {
  const room = new Room();
  const notifier = new PlaybackNotifier(room, 'agent', log);
  const answers = new PlaybackAnswers((position, interrupted) => notifier.finished(position, interrupted), log);
  const registry = sessionRegistry(room, 'agent', new SessionMetricsRecorder({ budget: new AudioBudget(2) }), notifier, answers);
  const json: unknown = JSON.parse(readFileSync(LIVE_DEMO_PRESET, 'utf8'));

  it('validates: livekit-audio -> idle-fill -> resample -> chunk -> infer -> pair -> livekit-room, av 256x256 into the sink', () => {
    const p = validatePipeline(json, registry, LIVE_DEMO_PRESET);
    expect([p.source.element.name, ...p.operators.map((o) => o.element.name), p.sink.element.name]).toEqual([
      'livekit-audio',
      'idle-fill',
      'resample',
      'chunk',
      'infer',
      'pair',
      'livekit-room',
    ]);
    expect(p.sink.caps).toEqual({ kind: 'av', width: 256, height: 256 });
    expect(p.sink.params).toMatchObject({ sampleRate: 48_000, channels: 1, audioQueueMs: 100, videoDelayMs: 20, resampleQuality: 'low' });
    // the registry's own infer: a session's shared models reach it through the pipeline context
    expect(p.operators[3].element).toBe(inferElement);
  });

  it('withInferModel replaces the model of the infer operators and nothing else', () => {
    const out = withInferModel(json, '/avatars/may') as { operators: Array<Record<string, unknown>> };
    expect(out.operators.map((o) => o.model)).toEqual([undefined, undefined, undefined, '/avatars/may', undefined]);
    expect(out.operators[3]).toMatchObject({ element: 'infer', providers: ['cuda', 'webgpu', 'cpu'] });
    expect(withInferModel('not a spec', 'x')).toBe('not a spec');
  });
});
