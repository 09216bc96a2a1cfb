/**
 * The scripted agent: the credential-free stand-in for the Gemini conversation. It speaks fixed lines
 * through a local TTS (espeak-ng by default) to the avatar worker over the same data-stream path as the
 * real agent (agents-js DataStreamAudioOutput), one line at a time:
 *
 * ```
 * line:      "Hello."                       "How are you?"
 * stream:    [==s0==|]                      [===s1===|]       (captureFrame..., flush() = |)
 * avatar:    ........playback_finished(s0)  ..........playback_finished(s1)
 * ```
 *
 * - `speakLines` uses a connected room (an agent job's); `runScriptedAgent` joins, speaks, leaves
 *   (`leaveDelayMs` after the last line, default 250 ms).
 * - Each line: every TTS frame captured (as fast as the TTS gives them; the avatar paces playout),
 *   then flush() ends the segment, then it waits for the avatar's lk.playback_finished before the next.
 * - Timeouts (milliseconds): `joinTimeoutMs` (default 30000) for the avatar to join and publish video
 *   before the first frame is accepted; `playoutTimeoutMs` (default 30000) from a line's flush to its
 *   playback_finished. Either expiring rejects with an InputError naming the avatar.
 * - `signal` aborts: the avatar's buffer is cleared (lk.clear_buffer) and the call rejects.
 * - Lines that are empty after trimming are InputErrors, raised before anything is sent.
 */
import type { PlaybackFinishedEvent } from '@livekit/agents';
import { type AudioFrame, Room, TrackKind } from '@livekit/rtc-node';
import { InputError } from '../errors.ts';
import { participantToken } from '../livekit/tokens.ts';
import { avatarAudioOutput } from './avatar-audio-output.ts';
import { espeakFrames } from './espeak.ts';

/** Text to frames; each frame's `data` must own its whole ArrayBuffer. */
export type LineSynthesizer = (text: string) => AsyncIterable<AudioFrame>;

export interface SpeakLinesOptions {
  /** The avatar participant the speech goes to. */
  readonly avatarIdentity: string;
  readonly lines: readonly string[];
  /** Default: espeak-ng with its defaults. */
  readonly synthesize?: LineSynthesizer;
  /** Remote track kind to wait for before speaking (default KIND_VIDEO; null: the participant only). */
  readonly waitRemoteTrack?: TrackKind | null;
  readonly joinTimeoutMs?: number;
  readonly playoutTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface SpokenLine {
  readonly text: string;
  /** Seconds of audio sent. */
  readonly seconds: number;
  /** What the avatar reported (position in seconds, interrupted). */
  readonly playback: PlaybackFinishedEvent;
}

export type ScriptedAgentAuth = { readonly token: string } | { readonly apiKey: string; readonly apiSecret: string };

export type ScriptedAgentOptions = ScriptedAgentAuth &
  SpeakLinesOptions & {
    readonly url: string;
    readonly room: string;
    /** Identity when a token is minted here (default 'synctalk-agent'). */
    readonly identity?: string;
    /**
     * Milliseconds to stay after the last line (default 250), so the reply to the avatar's last
     * lk.playback_finished goes out before the room closes (leaving at once aborts it in rtc-node).
     */
    readonly leaveDelayMs?: number;
  };

/** Speaks the lines in a connected room; resolves with what the avatar reported for each. */
export async function speakLines(room: Room, options: SpeakLinesOptions): Promise<SpokenLine[]> {
  const lines = options.lines.map((l) => l.trim());
  const empty = lines.findIndex((l) => l.length === 0);
  if (empty >= 0) throw new InputError(`scripted agent line ${empty + 1}`, 'empty');
  const synthesize = options.synthesize ?? ((text: string) => espeakFrames(text));
  const joinTimeoutMs = options.joinTimeoutMs ?? 30_000;
  const playoutTimeoutMs = options.playoutTimeoutMs ?? 30_000;
  const output = avatarAudioOutput(room, options.avatarIdentity, { waitRemoteTrack: options.waitRemoteTrack });
  const who = `avatar ${options.avatarIdentity}`;
  const aborted = abortPromise(options.signal, () => output.clearBuffer());

  const spoken: SpokenLine[] = [];
  try {
    for (const text of lines) {
      let seconds = 0;
      for await (const frame of synthesize(text)) {
        const captured = output.captureFrame(frame);
        const first = spoken.length === 0 && seconds === 0;
        await Promise.race([first ? withTimeout(captured, joinTimeoutMs, who, 'did not join and publish its video') : captured, aborted.promise]);
        seconds += frame.samplesPerChannel / frame.sampleRate;
      }
      if (seconds === 0) throw new InputError(`scripted agent line "${text}"`, 'the TTS produced no audio');
      output.flush();
      const playback = await Promise.race([withTimeout(output.waitForPlayout(), playoutTimeoutMs, who, 'sent no lk.playback_finished'), aborted.promise]);
      spoken.push({ text, seconds, playback });
    }
  } finally {
    aborted.dispose();
  }
  return spoken;
}

/** Joins `room` as an agent participant, speaks the lines, leaves. */
export async function runScriptedAgent(options: ScriptedAgentOptions): Promise<SpokenLine[]> {
  const token =
    'token' in options
      ? options.token
      : await participantToken(options, { room: options.room, identity: options.identity ?? 'synctalk-agent', kind: 'agent' });
  const room = new Room();
  await room.connect(options.url, token, { autoSubscribe: false, dynacast: false });
  try {
    return await speakLines(room, options);
  } finally {
    await new Promise((r) => setTimeout(r, options.leaveDelayMs ?? 250));
    await room.disconnect();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, subject: string, problem: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new InputError(subject, `${problem} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** A promise that rejects when `signal` aborts (after calling `onAbort`); `dispose` detaches it. */
function abortPromise(signal: AbortSignal | undefined, onAbort: () => void): { promise: Promise<never>; dispose: () => void } {
  if (!signal) return { promise: new Promise<never>(() => undefined), dispose: () => undefined };
  let listener: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    listener = () => {
      onAbort();
      reject(new InputError('scripted agent', 'aborted'));
    };
    if (signal.aborted) listener();
    else signal.addEventListener('abort', listener, { once: true });
  });
  promise.catch(() => undefined);
  return { promise, dispose: () => listener && signal.removeEventListener('abort', listener) };
}
