/**
 * startAvatarSession: the avatar side of one LiveKit room. Runs the avatar pipeline (by default the
 * live preset, pipelines/presets/live-demo.json) with its source and sink bound to the room, sends the
 * playback RPCs to the agent, and keeps metrics. Usable without agents-js (tests, single-room use);
 * the avatar worker runs one per job.
 *
 * ```
 * agent:     lk.audio_stream [==s0==|]        lk.clear_buffer X
 * pipeline:  livekit-audio -> idle-fill -> resample -> chunk -> infer -> pair -> livekit-room
 * room:      avatar_video  i i i s s s s s i i i s s i i i       (i: idle frame, s: speech frame)
 * agent:                     playback_finished(s0)   playback_finished(interrupted)
 * ended:                                                         ----agent left---> (teardown)
 * ```
 *
 * - The room must be connected. Its local participant publishes the tracks; when the avatar joined
 *   with the attribute lk.publish_on_behalf = agent (see livekit/tokens.ts), viewers see it as the agent's.
 * - `pipeline`: a spec object or a path to a spec file; its source must be `livekit-audio` and its sink
 *   `livekit-room` to talk to the room (the session registry adds those two, bound to this room). Its `infer`
 *   takes its graphs from `models` (default: the process-wide cache) through the pipeline context.
 * - The session ends (everything torn down: pipeline, RPC handlers, byte-stream handler, tracks, model
 *   lease) when the agent leaves the room, the room disconnects, the pipeline fails, or `close()` is
 *   called. `ended` resolves with why; it never rejects. Playback RPCs still in flight are waited for,
 *   except when the agent left or the room closed (they can only time out then).
 * - Viewers see the A/V offset as the avatar's attribute synctalk.av_offset_ms (metrics/room-figures.ts).
 * - Logs: "connected to room", "tracks published" (each track), "model loaded (provider X)" (the cache),
 *   "session metrics" every `metricsIntervalMs` (default 5000), "session ended".
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type LocalTrackPublication, type RemoteParticipant, type Room, RoomEvent } from '@livekit/rtc-node';
import type { Observable, Subscription } from 'rxjs';
import { InputError } from '../errors.ts';
import { AudioBudget } from '../flow/audio-budget.ts';
import { PlaybackAnswers } from '../livekit/playback-answers.ts';
import { PlaybackNotifier } from '../livekit/playback-notifier.ts';
import { rootLogger, type Logger } from '../log.ts';
import { publishRoomFigures } from '../metrics/room-figures.ts';
import { logSessionMetrics, SessionMetricsRecorder, type SessionMetrics } from '../metrics/session-metrics.ts';
import { type ModelSource, processModels } from '../models/model-cache.ts';
import { runPipeline } from '../pipelines/run.ts';
import { loadPipeline, validatePipeline, type Registry, type TypedPipeline } from '../pipelines/spec.ts';
import { registry } from '../registry.ts';
import { roomPublisherElement } from '../sinks/room-publisher.ts';
import { dataStreamAudioElement } from '../sources/datastream-audio.ts';

/** The live preset: the demo avatar in a LiveKit room. */
export const LIVE_DEMO_PRESET = fileURLToPath(new URL('../pipelines/presets/live-demo.json', import.meta.url));

export interface AvatarSessionOptions {
  /** A connected room. */
  readonly room: Room;
  /** The agent whose speech the avatar shows (its lk.audio_stream and lk.clear_buffer are accepted). */
  readonly agentIdentity: string;
  /** A pipeline spec (object), or a path to a spec file (default: the live-demo preset). */
  readonly pipeline?: string | object;
  /** Default: the root logger. The session adds `room` and `session` fields. */
  readonly log?: Logger;
  /** Where models come from (default: the process-wide cache, shared by all sessions). */
  readonly models?: ModelSource;
  /** Milliseconds between "session metrics" log lines (default 5000). */
  readonly metricsIntervalMs?: number;
  /** Told of every render: its wall time in ms (the model round trip) and the frames it made (Prometheus' histogram). */
  readonly onRender?: (ms: number, frames: number) => void;
}

export type AvatarSessionEndReason = 'closed' | 'agent left' | 'room disconnected' | 'pipeline ended' | 'pipeline failed';

export interface AvatarSessionEnd {
  readonly reason: AvatarSessionEndReason;
  /** The pipeline's error, when it failed. */
  readonly error?: unknown;
}

export interface AvatarSession {
  /** Metrics after every update (about 25 per second while publishing); completes when the session ends. */
  readonly metrics: Observable<SessionMetrics>;
  /** The metrics now. */
  snapshot(): SessionMetrics;
  /** Resolves when the session has ended and is torn down. */
  readonly ended: Promise<AvatarSessionEnd>;
  /** Ends the session (reason 'closed' unless it had ended already); resolves once torn down. */
  close(): Promise<AvatarSessionEnd>;
}

/**
 * A pipeline spec (parsed JSON) with every `infer` operator's model replaced, e.g. by a SyncTalk bundle
 * folder (SYNCTALK_BUNDLE). Anything that is not a spec object is returned as it is, for validation to report.
 */
export function withInferModel(spec: unknown, model: string): unknown {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return spec;
  const operators = (spec as { operators?: unknown }).operators;
  if (!Array.isArray(operators)) return spec;
  return {
    ...spec,
    operators: operators.map((op: unknown) =>
      typeof op === 'object' && op !== null && (op as { element?: unknown }).element === 'infer' ? { ...op, model } : op,
    ),
  };
}

/**
 * The registry of one session: the pipeline elements, plus the room-bound source and sink. Every stream the source
 * numbers is answered through `answers` (once, in order); `notifier` sends lk.playback_started.
 */
export function sessionRegistry(
  room: Room,
  agentIdentity: string,
  recorder: Pick<SessionMetricsRecorder, 'publisher' | 'playback'>,
  notifier: Pick<PlaybackNotifier, 'started'>,
  answers: Pick<PlaybackAnswers, 'opened' | 'answer'>,
): Registry {
  return [
    ...registry,
    dataStreamAudioElement({ room, senderIdentity: agentIdentity, answers }),
    roomPublisherElement({
      room,
      onPlayback: (e) => {
        recorder.playback(e);
        if (e.type === 'playback-started') notifier.started();
        else answers.answer(e.segment, e.position, e.interrupted);
      },
      onMetrics: (m) => recorder.publisher(m),
    }),
  ];
}

export async function startAvatarSession(options: AvatarSessionOptions): Promise<AvatarSession> {
  const { room, agentIdentity } = options;
  const local = room.localParticipant;
  if (!room.isConnected || local === undefined) throw new InputError('avatar session', 'the room is not connected');
  const log = (options.log ?? rootLogger).child({ room: room.name, session: randomBytes(3).toString('hex') });
  log.info({ identity: local.identity, agent: agentIdentity }, `connected to room ${room.name ?? ''}`);

  const notifier = new PlaybackNotifier(room, agentIdentity, log);
  const answers = new PlaybackAnswers((position, interrupted) => notifier.finished(position, interrupted), log);
  // The recorder needs the budget, and the budget the validated spec: bind them through this forwarder.
  let recorder: SessionMetricsRecorder | null = null;
  const forward: Pick<SessionMetricsRecorder, 'render' | 'publisher' | 'playback'> = {
    render: (ms, frames) => {
      recorder?.render(ms, frames);
      options.onRender?.(ms, frames);
    },
    publisher: (m) => recorder?.publisher(m),
    playback: (e) => recorder?.playback(e),
  };
  const reg = sessionRegistry(room, agentIdentity, forward, notifier, answers);
  let spec: TypedPipeline;
  try {
    spec =
      typeof options.pipeline === 'object'
        ? validatePipeline(options.pipeline, reg, 'pipeline')
        : await loadPipeline(options.pipeline ?? LIVE_DEMO_PRESET, reg);
  } catch (e) {
    await notifier.close();
    throw e;
  }
  const budget = new AudioBudget(spec.budgetSeconds);
  const metrics = new SessionMetricsRecorder({ budget });
  recorder = metrics;

  let resolveEnded: (end: AvatarSessionEnd) => void = () => undefined;
  const ended = new Promise<AvatarSessionEnd>((resolve) => (resolveEnded = resolve));
  let ending: Promise<AvatarSessionEnd> | null = null;
  const subs: Subscription[] = [];

  const onTrackPublished = (pub: LocalTrackPublication): void => log.info({ track: pub.name, sid: pub.sid }, `tracks published: ${pub.name}`);
  const onParticipantLeft = (p: RemoteParticipant): void => {
    if (p.identity === agentIdentity) void end({ reason: 'agent left' });
  };
  const onDisconnected = (): void => void end({ reason: 'room disconnected' });

  const end = (why: AvatarSessionEnd): Promise<AvatarSessionEnd> => {
    ending ??= (async () => {
      room.off(RoomEvent.LocalTrackPublished, onTrackPublished);
      room.off(RoomEvent.ParticipantDisconnected, onParticipantLeft);
      room.off(RoomEvent.Disconnected, onDisconnected);
      subs.forEach((s) => s.unsubscribe());
      // An agent still in the room may be waiting for streams the session will never play.
      if (why.reason !== 'agent left' && why.reason !== 'room disconnected') answers.answerOutstanding();
      // A call still in flight to an agent that has gone can only time out (up to 3 x 5 s): not waited for.
      const closing = notifier.close();
      if (why.reason !== 'agent left' && why.reason !== 'room disconnected') await closing;
      const last = metrics.snapshot();
      metrics.complete();
      if (why.reason === 'pipeline failed') log.error({ err: why.error, metrics: last }, 'session ended: the pipeline failed');
      else log.info({ reason: why.reason, metrics: last }, `session ended: ${why.reason}`);
      resolveEnded(why);
      return why;
    })();
    return ending;
  };

  room.on(RoomEvent.LocalTrackPublished, onTrackPublished);
  room.on(RoomEvent.ParticipantDisconnected, onParticipantLeft);
  room.on(RoomEvent.Disconnected, onDisconnected);
  subs.push(logSessionMetrics(metrics, log, options.metricsIntervalMs ?? 5000).subscribe());
  subs.push(publishRoomFigures(local, metrics.changes, { log }).subscribe());
  subs.push(
    runPipeline(spec, { log, budget, models: options.models ?? processModels, onRender: forward.render }).subscribe({
      error: (error: unknown) => void end({ reason: 'pipeline failed', error }),
      complete: () => void end({ reason: room.isConnected ? 'pipeline ended' : 'room disconnected' }),
    }),
  );

  return {
    metrics: metrics.changes,
    snapshot: () => metrics.snapshot(),
    ended,
    close: () => end({ reason: 'closed' }),
  };
}
