/**
 * The live avatar measured as a viewer in the room sees it, on a private livekit-server (127.0.0.1):
 * the scripted agent (espeak-ng over agents-js DataStreamAudioOutput) speaks to an avatar session
 * running the live preset with the demo face, and a viewer subscribes to the avatar's tracks.
 *
 * `measureLiveAvatar()` returns (all times in ms, performance.now() clock of this process):
 * - `avOffsetMs`: A/V offset at the viewer, from the mouth opening read from each received frame
 *   against the received audio's 40 ms energy (see src/metrics/av-sync.ts); positive = audio late.
 *   Target |offset| <= 40 ms.
 * - `latencyMs`: from the agent's first audio byte (its first captureFrame done) to the first speech
 *   frame the viewer receives (mouth opening above `SPEECH_OPENING`). Target < 150 ms.
 * - `idleFps`, `speechFps`: frame rate received while nobody speaks / during speech. Target 25.
 * - `idleOpeningMax`: the widest mouth of the idle frames (closed: ~0).
 * - the spoken lines, the session's last metrics, and why the session ended (the agent leaving).
 * Used by test/worker/avatar-session.test.ts (with assertions) and bench/index.ts.
 */
import { ContinualGatheringPolicy, IceTransportType, Room } from '@livekit/rtc-node';
import { type LineSynthesizer, speakLines, type SpokenLine } from '../src/agent/scripted-agent.ts';
import { espeakFrames } from '../src/agent/espeak.ts';
import { type DevServer, startDevServer } from '../src/livekit/dev-server.ts';
import { avatarToken, participantToken } from '../src/livekit/tokens.ts';
import { rootLogger, type Logger } from '../src/log.ts';
import { estimateAvOffset, frameRate, type TimedAudio, type TimedOpening } from '../src/metrics/av-sync.ts';
import type { SessionMetrics } from '../src/metrics/session-metrics.ts';
import { measureMouthOpening } from '../src/models/demo-face.ts';
import { subscribeTracks } from '../src/sources/track-subscriber.ts';
import { type AvatarSessionEnd, startAvatarSession } from '../src/workers/avatar-session.ts';

/** A received frame with a mouth opening above this counts as speech. */
export const SPEECH_OPENING = 0.15;

export const DEFAULT_LINES = ['Hello there! I am the synctalk live avatar, and this sentence tests lip sync.'];

export interface LiveAvatarFigures {
  readonly avOffsetMs: number;
  /** Correlation of mouth and audio at that offset. */
  readonly avCorrelation: number;
  readonly latencyMs: number;
  readonly idleFps: number;
  readonly speechFps: number;
  readonly idleOpeningMax: number;
  /** Video frames the viewer received in all. */
  readonly framesReceived: number;
  readonly lines: readonly SpokenLine[];
  readonly metrics: SessionMetrics;
  /** Why the session ended after the agent left (null: it had not ended 5 s later). */
  readonly ended: AvatarSessionEnd | null;
}

export interface LiveAvatarOptions {
  /** A running server (default: one started for the measurement and stopped after). */
  readonly server?: DevServer;
  readonly lines?: readonly string[];
  readonly room?: string;
  /** Milliseconds of idle video measured before the agent speaks (default 1500). */
  readonly idleMs?: number;
  /** The session's pipeline spec (default: the live-demo preset). */
  readonly pipeline?: object;
  readonly log?: Logger;
}

/** The viewer's record: frames with their mouth opening, audio chunks, all with arrival times. */
export interface ViewerRecord {
  readonly video: TimedOpening[];
  readonly audio: TimedAudio[];
  stop(): void;
}

/** Joins with no ICE servers: nothing leaves 127.0.0.1. */
export async function joinLocal(url: string, token: string): Promise<Room> {
  const room = new Room();
  await room.connect(url, token, {
    autoSubscribe: true,
    dynacast: false,
    rtcConfig: { iceTransportType: IceTransportType.TRANSPORT_ALL, continualGatheringPolicy: ContinualGatheringPolicy.GATHER_CONTINUALLY, iceServers: [] },
  });
  return room;
}

/** Records what `viewer` receives from `identity`: mouth openings of the frames, and the audio. */
export function recordViewer(viewer: Room, identity: string): ViewerRecord {
  const video: TimedOpening[] = [];
  const audio: TimedAudio[] = [];
  const sub = subscribeTracks(viewer, identity).subscribe((e) => {
    const at = performance.now();
    if (e.type === 'video') video.push({ at, opening: measureMouthOpening(e) });
    else audio.push({ at, samples: e.samples, sampleRate: e.sampleRate, channels: e.channels });
  });
  return { video, audio, stop: () => sub.unsubscribe() };
}

export async function waitUntil(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function measureLiveAvatar(options: LiveAvatarOptions = {}): Promise<LiveAvatarFigures> {
  const server = options.server ?? (await startDevServer());
  const log = options.log ?? rootLogger.child({ bench: 'livekit' }, { level: 'warn' });
  const roomName = options.room ?? 'bench-live-avatar';
  const agentIdentity = 'bench-agent';
  const avatarIdentity = 'bench-agent-avatar';
  const rooms: Room[] = [];
  try {
    const avatarRoom = await joinLocal(server.url, await avatarToken(server, { room: roomName, identity: avatarIdentity, agentIdentity }));
    rooms.push(avatarRoom);
    const viewer = await joinLocal(server.url, await participantToken(server, { room: roomName, identity: 'bench-viewer' }));
    rooms.push(viewer);
    const agentRoom = await joinLocal(server.url, await participantToken(server, { room: roomName, identity: agentIdentity, kind: 'agent' }));
    rooms.push(agentRoom);

    const session = await startAvatarSession({ room: avatarRoom, agentIdentity, log, ...(options.pipeline !== undefined ? { pipeline: options.pipeline } : {}) });
    const seen = recordViewer(viewer, avatarIdentity);
    await waitUntil('idle frames at the viewer', () => seen.video.length >= 10);
    const idleFrom = performance.now();
    await new Promise((r) => setTimeout(r, options.idleMs ?? 1500));
    const idleTo = performance.now();

    let firstSent: number | null = null;
    const timed: LineSynthesizer = async function* (text) {
      for await (const frame of espeakFrames(text)) {
        yield frame;
        firstSent ??= performance.now();
      }
    };
    const lines = await speakLines(agentRoom, { avatarIdentity, lines: options.lines ?? DEFAULT_LINES, synthesize: timed });
    await new Promise((r) => setTimeout(r, 400));
    seen.stop();
    const metrics = session.snapshot();
    await agentRoom.disconnect();
    const ended = await Promise.race([session.ended, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    await session.close();

    const sent = firstSent ?? Number.NaN;
    const idle = seen.video.filter((f) => f.at >= idleFrom && f.at < idleTo);
    const speech = seen.video.filter((f) => f.at >= sent && f.opening > SPEECH_OPENING);
    const firstSpeech = speech[0]?.at ?? Number.NaN;
    const lastSpeech = speech[speech.length - 1]?.at ?? Number.NaN;
    const around = seen.video.filter((f) => f.at >= sent - 300);
    const av = estimateAvOffset(around, seen.audio);
    return {
      avOffsetMs: av.offsetMs,
      avCorrelation: av.correlation,
      latencyMs: firstSpeech - sent,
      idleFps: frameRate(
        idle.map((f) => f.at),
        idleFrom,
        idleTo,
      ),
      speechFps: frameRate(
        seen.video.map((f) => f.at),
        firstSpeech,
        lastSpeech,
      ),
      idleOpeningMax: Math.max(...idle.map((f) => f.opening)),
      framesReceived: seen.video.length,
      lines,
      metrics,
      ended,
    };
  } finally {
    await Promise.all(rooms.map((r) => r.disconnect()));
    if (options.server === undefined) await server.stop();
  }
}
