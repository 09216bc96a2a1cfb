/**
 * Helpers for the LiveKit tests: a real livekit-server on 127.0.0.1, rtc-node participants with no ICE
 * servers, a synthetic renderer standing in for the model, and small waiting utilities.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { ContinualGatheringPolicy, IceTransportType, Room } from '@livekit/rtc-node';
import { Observable, share, type OperatorFunction, type Subscription } from 'rxjs';
import type { PipelineEvent, VideoFrame } from '../../src/events.ts';
import { AudioBudget } from '../../src/flow/audio-budget.ts';
import { type DevServer, livekitServerBinary, startDevServer } from '../../src/livekit/dev-server.ts';
import { PlaybackAnswers } from '../../src/livekit/playback-answers.ts';
import { PlaybackNotifier } from '../../src/livekit/playback-notifier.ts';
import { avatarToken, participantToken } from '../../src/livekit/tokens.ts';
import type { Logger } from '../../src/log.ts';
import { pairWithAudio } from '../../src/operators/pair.ts';
import type { PublisherEvent } from '../../src/sinks/av-publisher.ts';
import { publishToRoom, type RoomPublisherOptions } from '../../src/sinks/room-publisher.ts';
import { dataStreamAudio, type DataStreamAudioOptions } from '../../src/sources/datastream-audio.ts';

/** Starts the server, or fails (never skips) with how to install it. */
export async function requireServer(): Promise<DevServer> {
  const bin = livekitServerBinary();
  if (!existsSync(bin)) throw new Error(`livekit-server not found at ${bin}: run scripts/install-livekit-server.sh first`);
  return startDevServer();
}

/** Joins `room` as `identity`, with no ICE servers (nothing leaves 127.0.0.1). `avatarFor`: join as that agent's avatar. */
export async function join(server: DevServer, room: string, identity: string, avatarFor?: string): Promise<Room> {
  const token =
    avatarFor === undefined ? await participantToken(server, { room, identity }) : await avatarToken(server, { room, identity, agentIdentity: avatarFor });
  const r = new Room();
  await r.connect(server.url, token, {
    autoSubscribe: true,
    dynacast: false,
    rtcConfig: { iceTransportType: IceTransportType.TRANSPORT_ALL, continualGatheringPolicy: ContinualGatheringPolicy.GATHER_CONTINUALLY, iceServers: [] },
  });
  return r;
}

/** A real server for the enclosing describe block (started before its tests, stopped after); the result reads it. */
export function liveServer(): () => DevServer {
  let server: DevServer | undefined;
  beforeAll(async () => {
    server = await requireServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error('liveServer: the server has not started');
    return server;
  };
}

/**
 * A real server for the enclosing describe block (liveServer) and `joined`, which joins like `join`
 * and disconnects the room when the block ends.
 */
export function liveRooms(): { joined: (room: string, identity: string, avatarFor?: string) => Promise<Room> } {
  const server = liveServer();
  const rooms: Room[] = [];
  // registered after liveServer's: vitest runs afterAll hooks last-first, so rooms leave before the server stops
  afterAll(async () => {
    await Promise.all(rooms.map((r) => r.disconnect()));
  });
  return {
    joined: async (room, identity, avatarFor) => {
      const r = await join(server(), room, identity, avatarFor);
      rooms.push(r);
      return r;
    },
  };
}

/** A sine tone as s16le bytes: `seconds` at `rate` Hz, mono, amplitude 0.5. */
export function sineS16(seconds: number, rate: number, hz = 440): Uint8Array {
  const n = Math.round(seconds * rate);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(0.5 * 32767 * Math.sin((2 * Math.PI * hz * i) / rate));
  return new Uint8Array(out.buffer);
}

/**
 * A stand-in for the model: one solid-colour RGBA frame per 1/fps s of each segment's audio (the last
 * frame covers the remainder), then the segment-end; flushes reset it and pass at once.
 */
export function syntheticFrames(fps: number, width: number, height: number): OperatorFunction<PipelineEvent, PipelineEvent> {
  return (input) =>
    new Observable<PipelineEvent>((subscriber) => {
      const received = new Map<number, { samples: number; rate: number; frames: number; pts: number }>();
      const frame = (segment: number, index: number, pts: number): VideoFrame => {
        const data = new Uint8Array(width * height * 4);
        for (let i = 0; i < data.length; i += 4) data.set([(segment * 80) & 255, (index * 9) & 255, 128, 255], i);
        return { type: 'video', width, height, data, pts, segment, index };
      };
      return input.subscribe({
        next: (e) => {
          if (e.type === 'audio') {
            const st = received.get(e.segment) ?? { samples: 0, rate: e.sampleRate, frames: 0, pts: e.pts };
            received.set(e.segment, st);
            st.samples += e.samples.length / e.channels;
            while (Math.round(((st.frames + 1) * st.rate) / fps) <= st.samples) {
              subscriber.next(frame(e.segment, st.frames, st.pts + st.frames / fps));
              st.frames++;
            }
          } else if (e.type === 'segment-end') {
            const st = received.get(e.segment);
            if (st !== undefined && Math.round((st.frames * st.rate) / fps) < st.samples) subscriber.next(frame(e.segment, st.frames, st.pts + st.frames / fps));
            received.delete(e.segment);
            subscriber.next(e);
          } else if (e.type === 'flush') {
            received.clear();
            subscriber.next(e);
          }
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
    });
}

/** Resolves when `check` returns a value other than undefined, polling every 20 ms; rejects after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Timed<T> {
  readonly at: number;
  readonly e: T;
}

export interface SyntheticAvatarOptions {
  /** Video frames per second (default 25). */
  readonly fps?: number;
  /** Source options beyond the room, the sender and the answers. */
  readonly source?: Omit<DataStreamAudioOptions, 'room' | 'senderIdentity' | 'answers'>;
  /** Publisher options beyond the room, budget, log and source events. */
  readonly publisher?: Omit<RoomPublisherOptions, 'room' | 'budget' | 'log' | 'sourceEvents'>;
}

/**
 * The avatar's side of one session with the synthetic renderer (datastream-audio -> synthetic frames
 * -> pair -> room-publisher), its playback events answered as the session does (PlaybackAnswers,
 * PlaybackNotifier), everything recorded with performance.now() times.
 */
export function startSyntheticAvatar(room: Room, agent: string, log: Logger, options: SyntheticAvatarOptions = {}) {
  const fps = options.fps ?? 25;
  const budget = new AudioBudget(2);
  const notifier = new PlaybackNotifier(room, agent, log);
  const answers = new PlaybackAnswers((position, interrupted) => notifier.finished(position, interrupted), log);
  const source = dataStreamAudio({ room, senderIdentity: agent, answers, ...options.source }, { budget, log }).pipe(share());
  const sourceEvents: Array<Timed<PipelineEvent>> = [];
  const published: Array<Timed<PublisherEvent>> = [];
  let failure: unknown;
  const subs: Subscription[] = [source.subscribe((e) => sourceEvents.push({ at: performance.now(), e }))];
  subs.push(
    source
      .pipe(syntheticFrames(fps, 160, 96), pairWithAudio(source, { fps }), publishToRoom({ room, budget, log, sourceEvents: source, fps, ...options.publisher }))
      .subscribe({
        next: (e) => {
          published.push({ at: performance.now(), e });
          if (e.type === 'playback-started') notifier.started();
          else if (e.type === 'playback-finished') answers.answer(e.segment, e.position, e.interrupted);
        },
        error: (err: unknown) => {
          failure = err;
          log.error({ err }, 'publisher failed');
        },
      }),
  );
  return {
    sourceEvents,
    published,
    answers,
    /** The pipeline's error, if it failed. */
    failure: () => failure,
    stop: async () => {
      subs.forEach((s) => s.unsubscribe());
      await notifier.close();
    },
  };
}
