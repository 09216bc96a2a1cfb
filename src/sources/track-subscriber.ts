/**
 * subscribeTracks: a remote participant's audio and video tracks as pipeline events, timed by arrival.
 * For tests and measurements (what a viewer of the avatar receives).
 *
 * ```
 * remote tracks: audio ~~~~~~~~  video [] [] [] []
 * output:        -a-v-a-a-v-a-v-a-v-a-a-v-       (a: AudioChunk, v: VideoFrame, interleaved by arrival)
 * ```
 *
 * - Audio: rtc-node AudioStream frames (default 48 kHz mono, 10 ms each) as float32 AudioChunks,
 *   `segment` 0, `pts` = arrival, seconds since subscription.
 * - Video: rtc-node VideoStream frames converted to RGBA VideoFrames, `segment` null, `index` counting
 *   from 0, `pts` = arrival. Conversion costs about a millisecond per frame at 640x360.
 * - Tracks already subscribed when this is subscribed are taken too. Unsubscribing cancels the streams.
 * - No buffer of its own: rtc-node's streams queue frames until they are read (read as they come).
 */
import { AudioStream, type RemoteTrack, type Room, RoomEvent, TrackKind, VideoBufferType, VideoStream } from '@livekit/rtc-node';
import { Observable } from 'rxjs';
import { audio, type AudioChunk, type VideoFrame } from '../events.ts';

export interface TrackSubscriberOptions {
  /** Audio is resampled to this rate, Hz (default 48000). */
  readonly sampleRate?: number;
  /** Audio channels (default 1). */
  readonly channels?: number;
  /** Which kinds to take (default both). */
  readonly kinds?: ReadonlyArray<'audio' | 'video'>;
}

export function subscribeTracks(room: Room, identity: string, options: TrackSubscriberOptions = {}): Observable<AudioChunk | VideoFrame> {
  const sampleRate = options.sampleRate ?? 48_000;
  const channels = options.channels ?? 1;
  const kinds = options.kinds ?? ['audio', 'video'];

  return new Observable<AudioChunk | VideoFrame>((subscriber) => {
    const t0 = performance.now();
    const since = (): number => (performance.now() - t0) / 1000;
    const readers: Array<ReadableStreamDefaultReader<unknown>> = [];
    const taken = new Set<string>();
    let stopped = false;

    const pumpAudio = async (track: RemoteTrack): Promise<void> => {
      const reader = new AudioStream(track, { sampleRate, numChannels: channels }).getReader();
      readers.push(reader);
      for (let r = await reader.read(); !r.done && !stopped; r = await reader.read()) {
        const f = r.value;
        const samples = new Float32Array(f.data.length);
        for (let i = 0; i < samples.length; i++) samples[i] = f.data[i] / 32768;
        subscriber.next(audio(samples, f.sampleRate, f.channels, since(), 0));
      }
    };

    const pumpVideo = async (track: RemoteTrack): Promise<void> => {
      const reader = new VideoStream(track).getReader();
      readers.push(reader);
      let index = 0;
      for (let r = await reader.read(); !r.done && !stopped; r = await reader.read()) {
        const pts = since();
        const rgba = r.value.frame.type === VideoBufferType.RGBA ? r.value.frame : r.value.frame.convert(VideoBufferType.RGBA);
        subscriber.next({ type: 'video', width: rgba.width, height: rgba.height, data: rgba.data, pts, segment: null, index: index++ });
      }
    };

    const take = (track: RemoteTrack, participant: string): void => {
      if (participant !== identity || track.sid === undefined || taken.has(track.sid) || stopped) return;
      const kind = track.kind === TrackKind.KIND_AUDIO ? 'audio' : track.kind === TrackKind.KIND_VIDEO ? 'video' : null;
      if (kind === null || !kinds.includes(kind)) return;
      taken.add(track.sid);
      (kind === 'audio' ? pumpAudio(track) : pumpVideo(track)).catch((err: unknown) => {
        if (!stopped) subscriber.error(err);
      });
    };

    const onSubscribed = (track: RemoteTrack, _pub: unknown, participant: { identity: string }): void => take(track, participant.identity);
    room.on(RoomEvent.TrackSubscribed, onSubscribed);
    for (const p of room.remoteParticipants.values()) {
      for (const pub of p.trackPublications.values()) if (pub.track !== undefined) take(pub.track as RemoteTrack, p.identity);
    }

    return () => {
      stopped = true;
      room.off(RoomEvent.TrackSubscribed, onSubscribed);
      for (const r of readers) void r.cancel().catch(() => undefined);
    };
  });
}
