/**
 * The avatar's AvOutput in a LiveKit room: an rtc-node AudioSource and VideoSource published as `avatar_audio`
 * (SOURCE_MICROPHONE) and `avatar_video` (SOURCE_CAMERA) by the room's local participant.
 *
 * - The audio track has one fixed layout, `sampleRate` Hz (default 48000) with `channels` channels (default 1),
 *   whatever the agent sends: each frame's audio is mixed to the track's channels (`mixChannels`: mono fans out,
 *   extra channels are averaged), then audio at another rate goes through rtc-node's AudioResampler
 *   (`resampleQuality`, default 'low': it holds back about 1 ms of audio, where soxr's 'medium' holds back 10 to
 *   45 ms and lets the video run ahead of it); a change of rate flushes the resampler's tail first.
 * - The AudioSource queue holds `audioQueueMs` (default 100); its real-time playout makes `captureFrame` wait.
 * - Video is capped at `fps` (default 25) and `videoMaxBitrate` (default 1 Mb/s): without an explicit encoding the
 *   SDK picks a preset by resolution, capping small frames at 15 fps.
 * - `close` unpublishes the tracks and closes the sources.
 */
import {
  AudioFrame as RtcAudioFrame,
  AudioResampler,
  AudioResamplerQuality,
  AudioSource,
  LocalAudioTrack,
  LocalVideoTrack,
  type Room,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame as RtcVideoFrame,
  VideoSource,
} from '@livekit/rtc-node';
import { floatToS16, mixChannels } from '../dsp/pcm.ts';
import { InputError } from '../errors.ts';
import { chunkFrames, type AudioChunk, type VideoFrame } from '../events.ts';
import type { AudioPiece, AvOutput, AvOutputOpener } from './av-output.ts';
import { AVATAR_AUDIO_TRACK, AVATAR_VIDEO_TRACK } from './protocol.ts';

/** rtc-node AudioResampler qualities (soxr's); higher ones hold more audio back. */
export const RESAMPLE_QUALITIES = { quick: AudioResamplerQuality.QUICK, low: AudioResamplerQuality.LOW, medium: AudioResamplerQuality.MEDIUM, high: AudioResamplerQuality.HIGH, 'very-high': AudioResamplerQuality.VERY_HIGH } as const;
export type ResampleQuality = keyof typeof RESAMPLE_QUALITIES;

/** The audio track's layout when not told: 48 kHz mono. */
export const DEFAULT_TRACK_RATE = 48_000;
export const DEFAULT_TRACK_CHANNELS = 1;

export interface RtcAvOutputOptions {
  /** AudioSource queue, milliseconds (default 100). */
  readonly audioQueueMs?: number;
  /** Published audio rate, Hz (default 48000). */
  readonly sampleRate?: number;
  /** Published audio channels (default 1). */
  readonly channels?: number;
  /** Quality of the AudioResampler for audio at another rate (default 'low', about 1 ms of delay). */
  readonly resampleQuality?: ResampleQuality;
  /** Video frames per second, the encoder's cap (default 25). */
  readonly fps?: number;
  /** Video encoder's bitrate cap, bits per second (default 1000000). */
  readonly videoMaxBitrate?: number;
}

/** Publishes the two tracks of a connected room at the first frame. */
export const rtcAvOutput =
  (room: Room, options: RtcAvOutputOptions = {}): AvOutputOpener =>
  (frame) =>
    RtcAvOutput.open(room, frame, options);

class RtcAvOutput implements AvOutput {
  private resampler: AudioResampler | null = null;

  private constructor(
    private readonly room: Room,
    private readonly source: AudioSource,
    private readonly videoSource: VideoSource,
    private readonly tracks: ReadonlyArray<LocalAudioTrack | LocalVideoTrack>,
    private readonly quality: AudioResamplerQuality,
  ) {}

  static async open(room: Room, frame: { readonly width: number; readonly height: number }, options: RtcAvOutputOptions): Promise<RtcAvOutput> {
    const audioSource = new AudioSource(options.sampleRate ?? DEFAULT_TRACK_RATE, options.channels ?? DEFAULT_TRACK_CHANNELS, options.audioQueueMs ?? 100);
    const videoSource = new VideoSource(frame.width, frame.height);
    const audioTrack = LocalAudioTrack.createAudioTrack(AVATAR_AUDIO_TRACK, audioSource);
    const videoTrack = LocalVideoTrack.createVideoTrack(AVATAR_VIDEO_TRACK, videoSource);
    const local = room.localParticipant;
    if (local === undefined) throw new InputError('livekit-room', 'the room is not connected');
    await local.publishTrack(audioTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    const videoEncoding = { maxFramerate: options.fps ?? 25, maxBitrate: BigInt(options.videoMaxBitrate ?? 1_000_000) };
    await local.publishTrack(videoTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, videoEncoding }));
    return new RtcAvOutput(room, audioSource, videoSource, [audioTrack, videoTrack], RESAMPLE_QUALITIES[options.resampleQuality ?? 'low']);
  }

  audio(a: AudioChunk): readonly AudioPiece[] {
    return this.toTrackLayout(a).map((f) => ({ seconds: f.samplesPerChannel / f.sampleRate, capture: () => this.source.captureFrame(f) }));
  }

  get queuedMs(): number {
    return this.source.queuedDuration;
  }

  clearQueue(): void {
    this.source.clearQueue();
  }

  reset(): void {
    this.source.clearQueue();
    this.resampler?.close();
    this.resampler = null;
  }

  video(frame: VideoFrame, timestampUs: number): void {
    this.videoSource.captureFrame(new RtcVideoFrame(frame.data, frame.width, frame.height, VideoBufferType.RGBA), BigInt(timestampUs));
  }

  playedOut(): Promise<void> {
    return this.source.waitForPlayout();
  }

  async close(): Promise<void> {
    for (const t of this.tracks) if (t.sid !== undefined) await this.room.localParticipant?.unpublishTrack(t.sid).catch(() => undefined);
    this.resampler?.close();
    await this.source.close();
    await this.videoSource.close();
  }

  /** The chunk's audio as rtc-node frames in the track's layout (its rate and channel count). */
  private toTrackLayout(a: AudioChunk): RtcAudioFrame[] {
    const { numChannels, sampleRate } = this.source;
    const frame = new RtcAudioFrame(floatToS16(mixChannels(a.samples, a.channels, numChannels)), a.sampleRate, numChannels, chunkFrames(a));
    if (this.resampler !== null && this.resampler.inputRate === a.sampleRate) return this.resampler.push(frame);
    // another rate than the resampler's (or none): its tail first, then the audio as it is or through a new one
    const tail = this.resampler?.flush() ?? [];
    this.resampler?.close();
    this.resampler = a.sampleRate === sampleRate ? null : new AudioResampler(a.sampleRate, sampleRate, numChannels, this.quality);
    return [...tail, ...(this.resampler === null ? [frame] : this.resampler.push(frame))];
  }
}
