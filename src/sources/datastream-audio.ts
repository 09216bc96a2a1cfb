/**
 * dataStreamAudio: the avatar side of LiveKit's avatar audio protocol, as a source of pipeline events.
 * Wire-compatible with agents' DataStreamAudioOutput (Python and JS).
 *
 * ```
 * lk.audio_stream:  [==s0==|]    [==s1=====          (one byte stream per speech segment, | its end)
 * lk.clear_buffer:                        X          (RPC from the agent, answered "ok")
 * output:           -a-a-a-S-----a-a-a-a--F----      (a: audio of the segment, S: segment-end, F: flush)
 * ```
 *
 * - Only streams from `senderIdentity` are read; others are closed unread (with a warning) and not
 *   answered (the answer goes to the agent only).
 * - Each stream from the sender is one segment, numbered 0, 1, 2, ... in order of arrival, and gets
 *   exactly one `lk.playback_finished` through `answers` (see livekit/playback-answers.ts): the
 *   publisher answers what it played; this source answers, with position 0 and interrupted, every
 *   stream of which nothing was emitted (skipped, dropped, cleared, empty, timed out or failed).
 * - Attributes `sample_rate` and `num_channels` give its format (`parseStreamFormat`): `sample_rate`
 *   a plain decimal integer from `minSampleRate` to `maxSampleRate` (default 8000 to 192000),
 *   `num_channels` 1 to 8. Anything else: one warning naming the attribute, the stream is answered and
 *   skipped, and the session goes on. The payload is s16le interleaved PCM, converted to float32 at
 *   that rate and channel count; each segment may have its own format. Chunk boundaries may split a
 *   sample: the odd bytes carry over.
 * - Streams are read one at a time, in order. Before emitting a chunk the source reserves its
 *   duration in `ctx.budget` (strategy: wait), so at most `budget.capacity` seconds are in flight
 *   downstream; the rest waits in rtc-node's stream buffer (the protocol has no backpressure).
 * - pts: a segment starts at max(end of the previous audio, seconds since subscription) and runs on
 *   by its sample count; segment-end carries the end of its audio.
 * - `lk.clear_buffer` from the sender emits a flush at once (it overtakes queued audio), drops the rest
 *   of the current stream and every stream that arrived before it, and answers those (after the flush,
 *   so that the publisher's answer, with the position played, comes first where audio was emitted).
 *   No segment-end follows a cleared segment: the flush ends it. Other callers get "reject".
 * - A stream whose end never comes cannot wedge the ones after it: once a newer stream has arrived,
 *   the old one ends as soon as it has no data for `supersedeGraceMs` (default 250 ms); a stream with
 *   no data for `idleTimeoutMs` (default 10 s) ends too. Both warn and emit the segment-end. Time (these
 *   timeouts and pts) comes from `ctx.scheduler` (default RxJS's asyncScheduler).
 * - Pending streams are bounded by `maxPendingStreams` (default 8; strategy: drop the newest, answered,
 *   with a warning). The agent sends one segment at a time, so more than one or two pending means trouble.
 * - The byte-stream handler and the RPC method are registered on this room's local participant when
 *   subscribed and removed on unsubscribe, so every room (job) in a process has its own.
 * - Completes when the room disconnects.
 */
import { type ByteStreamReader, type Room, RoomEvent } from '@livekit/rtc-node';
import { asyncScheduler, Observable, type Subscription } from 'rxjs';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { audio, flush, segmentEnd, type PipelineEvent } from '../events.ts';
import type { PipelineContext, SourceElement } from '../pipelines/element.ts';
import type { PlaybackAnswers } from '../livekit/playback-answers.ts';
import { AUDIO_STREAM_TOPIC, RPC_CLEAR_BUFFER } from '../livekit/protocol.ts';

export interface DataStreamAudioOptions {
  /** A connected room. */
  readonly room: Room;
  /** The agent identity whose streams and clear_buffer calls are accepted. */
  readonly senderIdentity: string;
  /** Where each stream is numbered and, when nothing of it was emitted, answered. */
  readonly answers: Pick<PlaybackAnswers, 'opened' | 'answer'>;
  /** Lowest `sample_rate` accepted, Hz (default 8000). */
  readonly minSampleRate?: number;
  /** Highest `sample_rate` accepted, Hz (default 192000). */
  readonly maxSampleRate?: number;
  /** Milliseconds without data after which a stream is ended (default 10000). */
  readonly idleTimeoutMs?: number;
  /** Milliseconds without data after which a stream that a newer one followed is ended (default 250). */
  readonly supersedeGraceMs?: number;
  /** Streams waiting to be read, at most (default 8). */
  readonly maxPendingStreams?: number;
}

/** Bounds of the `sample_rate` attribute, Hz. */
export const MIN_SAMPLE_RATE = 8000;
export const MAX_SAMPLE_RATE = 192_000;
/** Most channels a stream may have. */
export const MAX_CHANNELS = 8;

/** A stream's audio format, from its attributes. */
export interface StreamFormat {
  readonly sampleRate: number;
  readonly channels: number;
}

/** Plain decimal digits, no sign, space, exponent or leading zero. */
const DECIMAL = /^[1-9][0-9]*$/;

/**
 * The format of a stream from its attributes, or the problem (naming the attribute) when `sample_rate`
 * is not a plain decimal integer in [minRate, maxRate] or `num_channels` not one in [1, 8].
 */
export function parseStreamFormat(attributes: Record<string, string>, minRate = MIN_SAMPLE_RATE, maxRate = MAX_SAMPLE_RATE): StreamFormat | string {
  const rate = attributes.sample_rate;
  const channels = attributes.num_channels;
  if (rate === undefined) return 'attribute sample_rate is missing';
  if (!DECIMAL.test(rate) || Number(rate) < minRate || Number(rate) > maxRate) {
    return `attribute sample_rate=${JSON.stringify(rate.slice(0, 40))} is not a plain decimal integer from ${minRate} to ${maxRate}`;
  }
  if (channels === undefined) return 'attribute num_channels is missing';
  if (!DECIMAL.test(channels) || Number(channels) > MAX_CHANNELS) {
    return `attribute num_channels=${JSON.stringify(channels.slice(0, 40))} is not a plain decimal integer from 1 to ${MAX_CHANNELS}`;
  }
  return { sampleRate: Number(rate), channels: Number(channels) };
}

/** One incoming byte stream, i.e. one segment. */
interface Stream {
  readonly reader: ByteStreamReader;
  readonly segment: number;
  readonly format: StreamFormat;
  /** A newer stream from the sender has arrived. */
  superseded: boolean;
  /** Dropped by clear_buffer or teardown: read no more, emit nothing more. */
  cancelled: boolean;
  /** Wakes a read that is waiting for data, to re-check the flags above. */
  wake?: () => void;
}

type Read = { kind: 'data'; bytes: Uint8Array } | { kind: 'done' } | { kind: 'cancelled' } | { kind: 'timeout'; superseded: boolean } | { kind: 'error'; error: unknown };

export function dataStreamAudio(options: DataStreamAudioOptions, ctx: Pick<PipelineContext, 'budget' | 'log' | 'scheduler'>): Observable<PipelineEvent> {
  const { room, senderIdentity, answers } = options;
  const minRate = options.minSampleRate ?? MIN_SAMPLE_RATE;
  const maxRate = options.maxSampleRate ?? MAX_SAMPLE_RATE;
  const idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
  const graceMs = options.supersedeGraceMs ?? 250;
  const maxPending = options.maxPendingStreams ?? 8;
  const log = ctx.log;

  return new Observable<PipelineEvent>((subscriber) => {
    const local = room.localParticipant;
    if (!room.isConnected || local === undefined) {
      subscriber.error(new InputError('datastream-audio', 'the room is not connected'));
      return;
    }
    const scheduler = ctx.scheduler ?? asyncScheduler;
    const t0 = scheduler.now();
    /** pts (s) where the audio emitted so far ends. */
    let cursor = 0;
    let nextSegment = 0;
    /** Flushes emitted (their ids: 1, 2, 3, ...). */
    let flushes = 0;
    let stopped = false;
    let current: Stream | null = null;
    const pending: Stream[] = [];

    const cancel = (s: Stream): void => {
      s.cancelled = true;
      s.wake?.();
      void s.reader.close();
    };

    const readNext = (s: Stream, it: AsyncIterator<Uint8Array>): Promise<Read> =>
      new Promise<Read>((resolve) => {
        let timer: Subscription | undefined;
        const settle = (r: Read): void => {
          timer?.unsubscribe();
          s.wake = undefined;
          resolve(r);
        };
        const arm = (): void => {
          if (s.cancelled) return settle({ kind: 'cancelled' });
          timer?.unsubscribe();
          const superseded = s.superseded;
          timer = scheduler.schedule(() => settle({ kind: 'timeout', superseded }), superseded ? graceMs : idleTimeoutMs);
        };
        s.wake = arm;
        arm();
        it.next().then(
          (r) => settle(s.cancelled ? { kind: 'cancelled' } : r.done ? { kind: 'done' } : { kind: 'data', bytes: r.value }),
          (error: unknown) => settle(s.cancelled ? { kind: 'cancelled' } : { kind: 'error', error }),
        );
      });

    /** Position 0, interrupted: the answer for a stream of which nothing was emitted. */
    const unplayed = (segment: number): void => answers.answer(segment, 0, true);

    const readStream = async (s: Stream): Promise<void> => {
      const { sampleRate, channels } = s.format;
      const frameBytes = 2 * channels;
      const it = s.reader[Symbol.asyncIterator]();
      let carry = new Uint8Array(0);
      let emitted = false;
      for (;;) {
        const r = await readNext(s, it);
        if (r.kind === 'cancelled') return;
        if (r.kind !== 'data') {
          if (r.kind === 'timeout') {
            const why = r.superseded ? `a newer stream arrived and this one has had no data for ${graceMs} ms (its end was lost)` : `no data for ${idleTimeoutMs} ms`;
            log.warn({ segment: s.segment }, `${AUDIO_STREAM_TOPIC}: ending segment: ${why}`);
            void s.reader.close();
          } else if (r.kind === 'error') {
            log.warn({ segment: s.segment, err: r.error }, `${AUDIO_STREAM_TOPIC}: stream failed; ending segment`);
          }
          if (carry.length > 0) log.warn({ segment: s.segment, bytes: carry.length }, `${AUDIO_STREAM_TOPIC}: stream ended inside a sample frame; trailing bytes dropped`);
          if (emitted) subscriber.next(segmentEnd(s.segment, cursor));
          else unplayed(s.segment);
          return;
        }
        const bytes = carry.length === 0 ? r.bytes : concat(carry, r.bytes);
        const usable = bytes.length - (bytes.length % frameBytes);
        carry = bytes.slice(usable);
        if (usable === 0) continue;
        const samples = s16leToFloat32(bytes.subarray(0, usable));
        const seconds = usable / frameBytes / sampleRate;
        await ctx.budget.reserve(seconds);
        if (s.cancelled || stopped) {
          ctx.budget.release(seconds);
          return;
        }
        if (!emitted) {
          cursor = Math.max(cursor, (scheduler.now() - t0) / 1000);
          emitted = true;
        }
        subscriber.next(audio(samples, sampleRate, channels, cursor, s.segment));
        cursor += seconds;
      }
    };

    const pump = (): void => {
      if (current !== null || stopped) return;
      const next = pending.shift();
      if (next === undefined) return;
      current = next;
      readStream(next)
        .catch((err: unknown) => log.error({ err, segment: next.segment }, `${AUDIO_STREAM_TOPIC}: reading failed`))
        .finally(() => {
          current = null;
          pump();
        });
    };

    const onStream = (reader: ByteStreamReader, from: { identity: string }): void => {
      if (from.identity !== senderIdentity || stopped) {
        if (!stopped) log.warn({ from: from.identity }, `${AUDIO_STREAM_TOPIC}: stream from a participant other than the sender; ignored`);
        void reader.close();
        return;
      }
      const segment = nextSegment++;
      answers.opened(segment);
      const format = parseStreamFormat(reader.info.attributes ?? {}, minRate, maxRate);
      if (typeof format === 'string') {
        log.warn({ segment }, new InputError(`${AUDIO_STREAM_TOPIC} stream ${reader.info.streamId}`, `${format}; stream answered and skipped`).message);
        unplayed(segment);
        void reader.close();
        return;
      }
      if (pending.length >= maxPending) {
        log.warn({ segment, pending: pending.length }, `${AUDIO_STREAM_TOPIC}: too many streams waiting; newest answered and dropped`);
        unplayed(segment);
        void reader.close();
        return;
      }
      for (const s of current === null ? pending : [current, ...pending]) {
        s.superseded = true;
        s.wake?.();
      }
      pending.push({ reader, segment, format, superseded: false, cancelled: false });
      pump();
    };

    try {
      room.registerByteStreamHandler(AUDIO_STREAM_TOPIC, onStream);
    } catch {
      subscriber.error(new InputError('datastream-audio', `the room already has a ${AUDIO_STREAM_TOPIC} handler; one receiver per room`));
      return;
    }
    local.registerRpcMethod(RPC_CLEAR_BUFFER, async (data) => {
      if (data.callerIdentity !== senderIdentity) {
        log.warn({ caller: data.callerIdentity }, `${RPC_CLEAR_BUFFER} from a participant other than the sender; rejected`);
        return 'reject';
      }
      const dropped = current === null ? pending.splice(0) : [current, ...pending.splice(0)];
      dropped.forEach(cancel);
      subscriber.next(flush(RPC_CLEAR_BUFFER, ++flushes));
      for (const s of dropped) unplayed(s.segment);
      return 'ok';
    });
    const onDisconnected = (): void => subscriber.complete();
    room.on(RoomEvent.Disconnected, onDisconnected);

    return () => {
      stopped = true;
      room.off(RoomEvent.Disconnected, onDisconnected);
      room.unregisterByteStreamHandler(AUDIO_STREAM_TOPIC);
      local.unregisterRpcMethod(RPC_CLEAR_BUFFER);
      if (current !== null) cancel(current);
      pending.splice(0).forEach(cancel);
    };
  });
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
};

/** s16le bytes (even length) to float32 in [-1, 1). */
export function s16leToFloat32(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) / 32768;
  return out;
}

const dataStreamAudioParams = z
  .object({
    idleTimeoutMs: z.number().int().min(100).default(10_000).describe('milliseconds without data after which a stream ends (default 10000)'),
    supersedeGraceMs: z.number().int().min(10).default(250).describe('milliseconds without data after which a stream followed by a newer one ends (default 250)'),
    minSampleRate: z.number().int().min(1).default(MIN_SAMPLE_RATE).describe('lowest sample_rate attribute accepted, Hz (default 8000)'),
    maxSampleRate: z.number().int().min(1).max(768_000).default(MAX_SAMPLE_RATE).describe('highest sample_rate attribute accepted, Hz (default 192000)'),
  })
  .strict();

/** What the worker gives the `livekit-audio` source: the session's room, the agent it listens to, and where streams are answered. */
export interface DataStreamAudioResource {
  readonly room: Room;
  readonly senderIdentity: string;
  readonly answers: Pick<PlaybackAnswers, 'opened' | 'answer'>;
}

/** The `livekit-audio` source, bound to one session's room (the worker builds one per session). */
export function dataStreamAudioElement(resource: DataStreamAudioResource): SourceElement<typeof dataStreamAudioParams> {
  return {
    role: 'source',
    name: 'livekit-audio',
    summary: "the agent's speech from LiveKit's avatar protocol (lk.audio_stream byte streams, lk.clear_buffer)",
    params: dataStreamAudioParams,
    caps: () => ({ kind: 'audio', sampleRate: null, channels: null, chunk: null }),
    create: (p, ctx) => {
      if (p.minSampleRate > p.maxSampleRate) throw new InputError('livekit-audio', `minSampleRate ${p.minSampleRate} is above maxSampleRate ${p.maxSampleRate}`);
      return dataStreamAudio({ ...resource, ...p }, ctx);
    },
  };
}
