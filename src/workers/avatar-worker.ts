/**
 * The avatar worker: an agents-js worker registered as 'synctalk-avatar' (explicit dispatch only, so
 * LiveKit spreads avatar jobs over every worker machine running it). Each job is one room:
 *
 * ```
 * agent worker: dispatch 'synctalk-avatar' {agentIdentity, avatarIdentity}
 * this worker:  accept as avatarIdentity (kind agent, lk.publish_on_behalf = agentIdentity)
 *               -> connect (subscribes to nothing) -> startAvatarSession -> ... -> agent leaves -> shutdown
 * ```
 *
 * - The job request is accepted with the identities of the dispatch metadata (agent/avatar-dispatch.ts);
 *   a request without valid metadata is rejected (logged).
 * - The session is avatar-session.ts: the live pipeline, playback RPCs to the agent, metrics. The job
 *   shuts down when the session ends (the agent left, the room closed, the pipeline failed), and the
 *   session is closed when the job shuts down.
 * - Models: agents-js runs each job in a child process of its own, so the worker's main process runs the
 *   model server (models/model-server.ts) on a Unix socket, and every job process renders through it
 *   (models/remote-models.ts): all rooms of the worker share one loaded copy of each graph, and the
 *   frames they ask for at the same time go into one model run (up to SYNCTALK_AVATAR_MAX_BATCH).
 * - rtc-node gets no ICE servers: media goes only to the LiveKit server's own candidates.
 *
 * Run: `node --import tsx src/workers/avatar-worker.ts start` (or `dev`).
 * Environment:
 * - LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET: the server (read by agents-js's CLI).
 * - SYNCTALK_PIPELINE: a pipeline spec file (default: src/pipelines/presets/live-demo.json).
 * - SYNCTALK_BUNDLE: a SyncTalk avatar bundle folder (docs/synctalk-bundle.md) to render with instead of the
 *   spec's model (every `infer` operator's `model`).
 * - SYNCTALK_AVATAR_HTTP_PORT: the worker's health endpoint on 127.0.0.1 (default 8082; 0: any free port);
 *   `GET /metrics` there is Prometheus text (docs/metrics.md).
 * - SYNCTALK_AVATAR_IDLE_PROCESSES: job processes kept warm, at least 1 (default: agents-js's, 0 in dev, up to 4 in start).
 * - SYNCTALK_AVATAR_MAX_JOBS: sessions this worker serves at once (default 4). The worker counts its own
 *   live sessions (workers/live-sessions.ts) and reports live / this × the server's target load, so the
 *   server keeps dispatching to it until exactly this many are live; a dispatch that comes while it is
 *   full is rejected (the server tries another worker). The machine's CPU use plays no part.
 * - SYNCTALK_SERVER_TARGET_LOAD: livekit-server's `agents.target_load` (default 0.7, the server's default).
 * - SYNCTALK_AVATAR_MAX_BATCH: frames per model run at most, from all rooms together (default 16; 1: no
 *   batching). Applies to graphs that can batch: the demo face and SyncTalk bundles (format 2).
 * - SYNCTALK_METRICS_SOCKET: set by the worker for its job processes (metrics/metrics-relay.ts): their figures
 *   reach `GET /metrics` on the health port (Prometheus text, names in docs/metrics.md).
 * - SYNCTALK_MODEL_SOCKET: set by the worker for its job processes (the model server's socket); a job
 *   process without it loads its models itself.
 * - SYNCTALK_LOG_LEVEL: log level (default info).
 * - SYNCTALK_INFERENCE_NICE: nice value of the inference threads (default 0; models/onnx-model.ts).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AutoSubscribe, cli, defineAgent, type JobContext, type JobRequest, ServerOptions } from '@livekit/agents';
import { ContinualGatheringPolicy, IceTransportType } from '@livekit/rtc-node';
import { AVATAR_AGENT_NAME, parseAvatarDispatchMetadata } from '../agent/avatar-dispatch.ts';
import { InputError, isInputError, PipelineSpecError } from '../errors.ts';
import { ATTRIBUTE_PUBLISH_ON_BEHALF } from '../livekit/protocol.ts';
import { rootLogger } from '../log.ts';
import { ModelCache, type ModelSource, processModels } from '../models/model-cache.ts';
import { serveModels } from '../models/model-server.ts';
import { privateSocketPath } from '../net/private-socket.ts';
import { RemoteModels } from '../models/remote-models.ts';
import { recordModelRun, type WorkerMetricSet } from '../metrics/prometheus.ts';
import { jobMetrics, serveWorkerMetrics } from '../metrics/worker-metrics.ts';
import { LIVE_DEMO_PRESET, startAvatarSession, withInferModel } from './avatar-session.ts';
import { checkServerCredentials } from './check-credentials.ts';
import { holdSession, type LiveSessions, maxJobsFromEnv, serveLiveSessions, SESSION_SOCKET_ENV, targetLoadFromEnv } from './live-sessions.ts';
import { shutdownDeadline } from './shutdown-deadline.ts';

const log = rootLogger.child({ element: 'avatar-worker' });

/** The environment variable that tells job processes where the worker's model server listens. */
const MODEL_SOCKET_ENV = 'SYNCTALK_MODEL_SOCKET';

/** This job process's models: the worker's model server (one connection per process), else its own cache. */
let jobModels: ModelSource | undefined;
const modelsOfThisProcess = (): ModelSource => {
  const socket = process.env[MODEL_SOCKET_ENV];
  jobModels ??= socket ? new RemoteModels(socket) : processModels;
  return jobModels;
};

/** The main process's count of its live sessions (set before the worker starts). */
let sessions: LiveSessions | undefined;

/** The main process's Prometheus metrics (set before the worker starts). */
let metrics: WorkerMetricSet | undefined;

/** Accepts a dispatch as the avatar it names, speaking for the agent it names, unless the worker is full. */
async function requestFunc(req: JobRequest): Promise<void> {
  if (sessions?.full()) {
    log.info({ job: req.id, room: req.room?.name, live: sessions.live }, 'job rejected: the worker is full (SYNCTALK_AVATAR_MAX_JOBS)');
    metrics?.jobs.inc({ outcome: 'rejected_full' });
    await req.reject();
    return;
  }
  let meta;
  try {
    meta = parseAvatarDispatchMetadata(req.job.metadata);
  } catch (e) {
    log.error({ job: req.id, room: req.room?.name }, `job rejected: ${(e as Error).message}`);
    metrics?.jobs.inc({ outcome: 'rejected_metadata' });
    await req.reject();
    return;
  }
  // counted from now: req.accept() resolves only once the job process has started
  sessions?.accepted(req.id);
  metrics?.jobs.inc({ outcome: 'accepted' });
  await req.accept('avatar', meta.avatarIdentity, '', { [ATTRIBUTE_PUBLISH_ON_BEHALF]: meta.agentIdentity });
}

async function entry(ctx: JobContext): Promise<void> {
  const release = await holdSession(ctx.job.id);
  ctx.addShutdownCallback(async () => release());
  const meta = parseAvatarDispatchMetadata(ctx.job.metadata);
  await ctx.connect(undefined, AutoSubscribe.SUBSCRIBE_NONE, {
    iceTransportType: IceTransportType.TRANSPORT_ALL,
    continualGatheringPolicy: ContinualGatheringPolicy.GATHER_CONTINUALLY,
    iceServers: [],
  });
  const specPath = process.env.SYNCTALK_PIPELINE || LIVE_DEMO_PRESET;
  const bundle = process.env.SYNCTALK_BUNDLE;
  const prometheus = await jobMetrics(log);
  ctx.addShutdownCallback(() => prometheus.close());
  const session = await startAvatarSession({
    room: ctx.room,
    agentIdentity: meta.agentIdentity,
    pipeline: bundle ? (withInferModel(await readSpec(specPath), bundle) as object) : specPath,
    log: rootLogger.child({ job: ctx.job.id }),
    models: modelsOfThisProcess(),
    onRender: prometheus.render,
  });
  prometheus.follow(session.metrics, ctx.room.name ?? ctx.job.room?.name ?? '');
  ctx.addShutdownCallback(async () => {
    await session.close();
  });
  const end = await session.ended;
  prometheus.ended(end.reason);
  release();
  ctx.shutdown(`avatar session ended: ${end.reason}`);
}

export default defineAgent({ entry });

/** A spec file's JSON (errors as the spec loader words them). */
async function readSpec(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new PipelineSpecError(path, `cannot read pipeline spec (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PipelineSpecError(path, `not valid JSON (${(e as Error).message})`);
  }
}

/** An integer environment variable of at least `min`, or undefined when unset or empty. */
function positiveCount(name: string, min: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new InputError(name, `not a whole number of at least ${min}: ${raw}`);
  return n;
}

/** Sessions per avatar worker when SYNCTALK_AVATAR_MAX_JOBS is unset. */
export const DEFAULT_AVATAR_MAX_JOBS = 4;

/**
 * Milliseconds a job process may take to start (agents-js's default is 10 s). Starting one loads the
 * worker module through tsx; on a busy machine (load 10 on 2 cores) that took longer than 10 s, and
 * the job was lost ("runner initialization timed out").
 */
const JOB_PROCESS_START_TIMEOUT_MS = 60_000;

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const port = Number(process.env.SYNCTALK_AVATAR_HTTP_PORT ?? 8082);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InputError('SYNCTALK_AVATAR_HTTP_PORT', `not a port number: ${process.env.SYNCTALK_AVATAR_HTTP_PORT}`);
    const maxJobs = maxJobsFromEnv(process.env, 'SYNCTALK_AVATAR_MAX_JOBS', DEFAULT_AVATAR_MAX_JOBS);
    const targetLoad = targetLoadFromEnv(process.env);
    const numIdleProcesses = positiveCount('SYNCTALK_AVATAR_IDLE_PROCESSES', 1);
    const maxBatch = positiveCount('SYNCTALK_AVATAR_MAX_BATCH', 1);
    await checkServerCredentials(process.env, process.argv);
    const sessionSocket = privateSocketPath('synctalk-sessions-', 'sessions.sock');
    const live = await serveLiveSessions({ path: sessionSocket, maxJobs, targetLoad, log });
    sessions = live;
    process.env[SESSION_SOCKET_ENV] = sessionSocket;
    const prometheus = await serveWorkerMetrics({ host: '127.0.0.1', port, maxJobs, liveSessions: () => live.live, log });
    metrics = prometheus;
    const socket = privateSocketPath('synctalk-models-', 'models.sock');
    await serveModels({ path: socket, models: new ModelCache({ ...(maxBatch === undefined ? {} : { maxBatch }), onRun: (path, run) => recordModelRun(prometheus, path, run) }), log });
    process.env[MODEL_SOCKET_ENV] = socket;
    log.info({ agentName: AVATAR_AGENT_NAME, pipeline: process.env.SYNCTALK_PIPELINE || LIVE_DEMO_PRESET, maxJobs, targetLoad }, 'avatar worker');
    shutdownDeadline({ liveSessions: () => live.live, log });
    cli.runApp(
      new ServerOptions({
        agent: fileURLToPath(import.meta.url),
        agentName: AVATAR_AGENT_NAME,
        requestFunc,
        host: '127.0.0.1',
        port,
        ...(numIdleProcesses !== undefined ? { numIdleProcesses } : {}),
        loadFunc: async () => live.load(),
        loadThreshold: targetLoad,
        initializeProcessTimeout: JOB_PROCESS_START_TIMEOUT_MS,
      }),
    );
  } catch (e) {
    if (!isInputError(e)) throw e;
    process.stderr.write(`avatar-worker: ${e.message}\n`);
    process.exit(2);
  }
}
