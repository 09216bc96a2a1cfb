/**
 * The agent worker: an agents-js worker that joins every new room (automatic dispatch), asks for an
 * avatar (explicit dispatch of 'synctalk-avatar', see agent/avatar-dispatch.ts) and talks through it.
 *
 * ```
 * room created -> job -> connect -> dispatch avatar {agentIdentity, avatarIdentity}
 *   Gemini credentials:  AgentSession (Gemini STT -> LLM -> TTS) -> lk.audio_stream -> avatar
 *   none:                scripted lines (espeak-ng)               -> lk.audio_stream -> avatar
 * ```
 *
 * Run: `node --import tsx src/workers/agent-worker.ts start` (job processes inherit the tsx loader).
 * Environment:
 * - LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET: the server (read by agents-js's CLI).
 * - Gemini: see agent/gemini.ts (GOOGLE_APPLICATION_CREDENTIALS + VERTEX_PROJECT_ID [+ VERTEX_LOCATION],
 *   or GOOGLE_API_KEY). Without either, the scripted agent speaks instead.
 * - SYNCTALK_AGENT_INSTRUCTIONS: the model's instructions (default: a short-answers voice assistant).
 * - SYNCTALK_AGENT_LINES: the scripted agent's lines, separated by '|' (default: two demo lines).
 * - SYNCTALK_AGENT_HTTP_PORT: the worker's health endpoint on 127.0.0.1 (default 8081; 0: any free port; the avatar
 *   worker needs a different one); `GET /metrics` there is Prometheus text (docs/metrics.md).
 * - SYNCTALK_AGENT_MAX_JOBS: rooms served at once (default 8). The worker counts its own live jobs
 *   (workers/live-sessions.ts) and reports live / this × the server's target load, not the machine's CPU
 *   use (agents-js's default): a conversation costs this worker little CPU, and on a busy machine the
 *   CPU measure made the server skip the worker (the user's room then never got an agent; seen on a
 *   2-core machine: "no servers available"). A job that comes while it is full is rejected.
 * - SYNCTALK_SERVER_TARGET_LOAD: livekit-server's `agents.target_load` (default 0.7, the server's default).
 * Before registering, the worker checks the URL, key and secret with one request: a wrong one is one
 * line naming it, and exit code 2.
 * A job ends when the last user (non-agent participant) leaves. SIGINT/SIGTERM: agents-js drains
 * running jobs first; a second SIGINT exits at once.
 */
import { pathToFileURL, fileURLToPath } from 'node:url';
import { cli, defineAgent, type JobContext, type JobRequest, ServerOptions } from '@livekit/agents';
import { ParticipantKind, RoomEvent } from '@livekit/rtc-node';
import { defaultAvatarIdentity, dispatchAvatar } from '../agent/avatar-dispatch.ts';
import { startAvatarConversation } from '../agent/avatar-conversation.ts';
import { geminiModels, geminiSettingsFromEnv } from '../agent/gemini.ts';
import { speakLines } from '../agent/scripted-agent.ts';
import { InputError, isInputError } from '../errors.ts';
import { rootLogger } from '../log.ts';
import type { WorkerMetricSet } from '../metrics/prometheus.ts';
import { privateSocketPath } from '../net/private-socket.ts';
import { serveWorkerMetrics } from '../metrics/worker-metrics.ts';
import { checkServerCredentials } from './check-credentials.ts';
import { holdSession, type LiveSessions, maxJobsFromEnv, serveLiveSessions, SESSION_SOCKET_ENV, targetLoadFromEnv } from './live-sessions.ts';
import { shutdownDeadline } from './shutdown-deadline.ts';

export const DEFAULT_INSTRUCTIONS =
  'You are a friendly assistant that the user sees as a talking face. Answer in one to three short spoken sentences, ' +
  'in plain words: no lists, markdown, emoji or URLs.';

export const DEFAULT_SCRIPTED_LINES = [
  'Hello! I am the synctalk live demo avatar.',
  'No language model is configured, so I can only read these lines. Set your Gemini credentials to talk with me.',
];

/** Rooms per agent worker when SYNCTALK_AGENT_MAX_JOBS is unset. */
export const DEFAULT_AGENT_MAX_JOBS = 8;

/**
 * Milliseconds a job process may take to start (agents-js's default is 10 s). Starting one loads the
 * worker module through tsx; on a busy machine (load 10 on 2 cores) that took longer than 10 s, and
 * the job was lost ("runner initialization timed out").
 */
const JOB_PROCESS_START_TIMEOUT_MS = 60_000;

const GREETING = 'Greet the user in one short sentence and ask how you can help.';

/** The scripted lines from SYNCTALK_AGENT_LINES ('|'-separated), or the defaults. */
export function scriptedLinesFromEnv(env: NodeJS.ProcessEnv): string[] {
  const raw = env.SYNCTALK_AGENT_LINES;
  if (raw === undefined || raw.trim() === '') return DEFAULT_SCRIPTED_LINES;
  const lines = raw.split('|').map((l) => l.trim());
  if (lines.some((l) => l === '')) throw new InputError('SYNCTALK_AGENT_LINES', "an empty line (two '|' in a row, or one at an end)");
  return lines;
}

/** The main process's count of its live jobs (set before the worker starts). */
let sessions: LiveSessions | undefined;

/** The main process's Prometheus metrics (set before the worker starts). */
let metrics: WorkerMetricSet | undefined;

/** Takes every room (as agents-js's default does) unless the worker is full. */
async function requestFunc(req: JobRequest): Promise<void> {
  if (sessions?.full()) {
    rootLogger.info({ job: req.id, room: req.room?.name, live: sessions.live }, 'job rejected: the worker is full (SYNCTALK_AGENT_MAX_JOBS)');
    metrics?.jobs.inc({ outcome: 'rejected_full' });
    await req.reject();
    return;
  }
  sessions?.accepted(req.id);
  metrics?.jobs.inc({ outcome: 'accepted' });
  await req.accept();
}

async function entry(ctx: JobContext): Promise<void> {
  const release = await holdSession(ctx.job.id);
  ctx.addShutdownCallback(async () => release());
  const gemini = geminiSettingsFromEnv(process.env);
  const lines = scriptedLinesFromEnv(process.env);
  await ctx.connect();
  const room = ctx.room;
  const roomName = ctx.job.room?.name ?? room.name;
  const agentIdentity = room.localParticipant?.identity;
  if (roomName === undefined || agentIdentity === undefined) throw new Error('agent job: connected, but the room has no name or local participant');
  const apiKey = ctx.info.apiKey ?? process.env.LIVEKIT_API_KEY;
  const apiSecret = ctx.info.apiSecret ?? process.env.LIVEKIT_API_SECRET;
  if (apiKey === undefined || apiSecret === undefined) throw new InputError('LIVEKIT_API_KEY/LIVEKIT_API_SECRET', 'needed to dispatch the avatar');
  const avatarIdentity = defaultAvatarIdentity(agentIdentity);
  const log = rootLogger.child({ element: 'agent-worker', room: roomName });

  endWhenUsersLeave(ctx, log);
  const dispatchId = await dispatchAvatar({ url: ctx.info.url, credentials: { apiKey, apiSecret }, room: roomName, metadata: { agentIdentity, avatarIdentity } });
  log.info({ dispatchId, avatarIdentity, mode: gemini ? `gemini/${gemini.auth.kind}` : 'scripted' }, 'avatar dispatched');

  if (gemini !== null) {
    const session = await startAvatarConversation({
      room,
      avatarIdentity,
      instructions: process.env.SYNCTALK_AGENT_INSTRUCTIONS || DEFAULT_INSTRUCTIONS,
      ...geminiModels(gemini),
    });
    ctx.addShutdownCallback(() => session.close());
    session.generateReply({ instructions: GREETING });
    return;
  }
  const user = await ctx.waitForParticipant();
  log.info({ user: user.identity }, 'scripted agent: speaking');
  const spoken = await speakLines(room, { avatarIdentity, lines });
  log.info({ lines: spoken.length, seconds: spoken.reduce((s, l) => s + l.playback.playbackPosition, 0) }, 'scripted agent: done');
}

/** Ends the job once no participant other than agents (this one, the avatar) is left in the room. */
function endWhenUsersLeave(ctx: JobContext, log: typeof rootLogger): void {
  const onLeft = (): void => {
    const users = [...ctx.room.remoteParticipants.values()].filter((p) => p.info.kind !== ParticipantKind.AGENT);
    if (users.length > 0) return;
    log.info('every user left: ending the job');
    ctx.room.off(RoomEvent.ParticipantDisconnected, onLeft);
    ctx.shutdown('every user left');
  };
  ctx.room.on(RoomEvent.ParticipantDisconnected, onLeft);
}

export default defineAgent({ entry });

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const gemini = geminiSettingsFromEnv(process.env);
    scriptedLinesFromEnv(process.env);
    const port = Number(process.env.SYNCTALK_AGENT_HTTP_PORT ?? 8081);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InputError('SYNCTALK_AGENT_HTTP_PORT', `not a port number: ${process.env.SYNCTALK_AGENT_HTTP_PORT}`);
    rootLogger.info({ mode: gemini ? `gemini/${gemini.auth.kind}` : 'scripted (no Gemini credentials)' }, 'agent worker');
    const maxJobs = maxJobsFromEnv(process.env, 'SYNCTALK_AGENT_MAX_JOBS', DEFAULT_AGENT_MAX_JOBS);
    const targetLoad = targetLoadFromEnv(process.env);
    await checkServerCredentials(process.env, process.argv);
    const sessionSocket = privateSocketPath('synctalk-agent-sessions-', 'sessions.sock');
    const live = await serveLiveSessions({ path: sessionSocket, maxJobs, targetLoad, log: rootLogger.child({ element: 'agent-worker' }) });
    sessions = live;
    process.env[SESSION_SOCKET_ENV] = sessionSocket;
    metrics = await serveWorkerMetrics({ host: '127.0.0.1', port, maxJobs, liveSessions: () => live.live, log: rootLogger.child({ element: 'agent-worker' }) });
    shutdownDeadline({ liveSessions: () => live.live, log: rootLogger.child({ element: 'agent-worker' }) });
    cli.runApp(
      new ServerOptions({
        agent: fileURLToPath(import.meta.url),
        requestFunc,
        host: '127.0.0.1',
        port,
        loadFunc: async () => live.load(),
        loadThreshold: targetLoad,
        initializeProcessTimeout: JOB_PROCESS_START_TIMEOUT_MS,
      }),
    );
  } catch (e) {
    if (!isInputError(e)) throw e;
    process.stderr.write(`agent-worker: ${e.message}\n`);
    process.exit(2);
  }
}
