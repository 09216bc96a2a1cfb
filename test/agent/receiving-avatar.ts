/**
 * A minimal avatar participant for the agent tests: publishes a small video track (the agent waits for
 * the avatar's video), reads each lk.audio_stream to its end, then answers lk.playback_finished with the
 * stream's duration. It records each stream's attributes and size.
 */
import { type ByteStreamReader, LocalVideoTrack, type Room, TrackPublishOptions, TrackSource, VideoBufferType, VideoFrame, VideoSource } from '@livekit/rtc-node';
import { AUDIO_STREAM_TOPIC, RPC_PLAYBACK_FINISHED, playbackFinishedPayload } from '../../src/livekit/protocol.ts';

export interface Received {
  readonly attributes: Record<string, string>;
  readonly bytes: number;
}

/** Starts the avatar on a connected room; `stop` ends its video. */
export async function receivingAvatar(room: Room): Promise<{ streams: Received[]; stop: () => Promise<void> }> {
  const streams: Received[] = [];
  const source = new VideoSource(16, 16);
  const track = LocalVideoTrack.createVideoTrack('avatar_video', source);
  await room.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA }));
  const timer = setInterval(() => source.captureFrame(new VideoFrame(new Uint8Array(16 * 16 * 4), 16, 16, VideoBufferType.RGBA)), 40);
  room.registerByteStreamHandler(AUDIO_STREAM_TOPIC, (reader: ByteStreamReader, from: { identity: string }) => {
    void (async () => {
      let bytes = 0;
      for await (const chunk of reader) bytes += chunk.byteLength;
      const attributes = reader.info.attributes ?? {};
      streams.push({ attributes, bytes });
      const seconds = bytes / 2 / Number(attributes.num_channels) / Number(attributes.sample_rate);
      await room.localParticipant!.performRpc({ destinationIdentity: from.identity, method: RPC_PLAYBACK_FINISHED, payload: playbackFinishedPayload(seconds, false) });
    })();
  });
  return {
    streams,
    stop: async () => {
      clearInterval(timer);
      await source.close();
    },
  };
}
