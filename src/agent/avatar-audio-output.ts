/**
 * avatarAudioOutput: the agent's speech output that goes to the avatar worker instead of the room,
 * agents-js's DataStreamAudioOutput (one lk.audio_stream byte stream per segment, closed by flush();
 * the avatar answers lk.playback_finished).
 *
 * - Waits, before the first frame goes out, for the avatar participant and (default) its video track,
 *   so no speech is sent before the avatar can show it.
 * - agents-js registers the lk.playback_finished RPC handler once per PROCESS (a static flag), on the
 *   first room it sees. A second room in the same process (a second scripted agent in one test run)
 *   would then never hear playback_finished and wait forever; the flag is cleared here so every
 *   output registers on its own room. Handlers are keyed by avatar identity: use a distinct avatar
 *   identity per concurrent room in one process.
 * - The room must be connected first: the handler is registered on its local participant.
 */
import { initializeLogger, loggerOptions, voice } from '@livekit/agents';
import { type Room, TrackKind } from '@livekit/rtc-node';
import { rootLogger } from '../log.ts';

export interface AvatarAudioOutputOptions {
  /** Remote track kind to wait for before sending (default KIND_VIDEO; null: only wait for the participant). */
  readonly waitRemoteTrack?: TrackKind | null;
  /** Hz the session's audio is resampled to (default: as the TTS produces it). */
  readonly sampleRate?: number;
}

export function avatarAudioOutput(room: Room, avatarIdentity: string, options: AvatarAudioOutputOptions = {}): voice.DataStreamAudioOutput {
  ensureAgentsLogger();
  voice.DataStreamAudioOutput._playbackFinishedRpcRegistered = false;
  const waitRemoteTrack = options.waitRemoteTrack === undefined ? TrackKind.KIND_VIDEO : options.waitRemoteTrack;
  return new voice.DataStreamAudioOutput({
    room,
    destinationIdentity: avatarIdentity,
    ...(options.sampleRate !== undefined ? { sampleRate: options.sampleRate } : {}),
    ...(waitRemoteTrack !== null ? { waitRemoteTrack } : {}),
  });
}

/**
 * agents-js classes log through a process-wide logger that a job process sets up; outside a job, set it up once,
 * at the project's own level (SYNCTALK_LOG_LEVEL, as src/log.ts).
 */
export function ensureAgentsLogger(): void {
  if (loggerOptions() === undefined) initializeLogger({ pretty: false, level: rootLogger.level });
}
