/**
 * synctalk-live as a library: `import { ... } from 'synctalk-live'`.
 *
 * ```
 * events      PipelineEvent (audio | segment-end | idle | video | av | flush) and their constructors
 * sources     wavFile, dataStreamAudio (LiveKit lk.audio_stream), idleTicks, subscribeTracks
 * operators   idleFill -> resample -> chunk -> infer -> scale -> pairWithAudio      (RxJS OperatorFunctions)
 * sinks       mp4File, nullSink, publishToRoom (LiveKit)
 * pipelines   pipelineSpecSchema, validatePipeline / loadPipeline against a registry, runPipeline
 * renderers   FrameRenderer: DemoFaceRenderer, SyncTalkRenderer; RENDERER_KINDS (openRenderer picks one from `model`)
 * live        startAvatarSession (one room), dispatchAvatar + its metadata, tokens, protocol names
 * ```
 *
 * Compose in code (examples/compose-in-code.ts) or as JSON specs validated against `registry`; a custom
 * element is a SourceElement / OperatorElement / SinkElement added to a copy of `registry`.
 * Everything not exported here is internal and may change between minor versions.
 */
export {
  audio,
  audioDuration,
  chunkDuration,
  chunkFrames,
  flush,
  idleTick,
  segmentEnd,
  type AudioChunk,
  type AvFrame,
  type Flush,
  type IdleTick,
  type PipelineEvent,
  type SegmentEnd,
  type VideoFrame,
} from './events.ts';
export { InputError, isInputError, ModelError, PipelineSpecError } from './errors.ts';
export { AudioBudget } from './flow/audio-budget.ts';
export { rootLogger, type Logger } from './log.ts';

export { wavFile, wavFileElement, type WavFileOptions } from './sources/wav-file.ts';
export { readWav, type ReadWavOptions, type WavBlock, type WavFormat } from './sources/wav-reader.ts';
export { dataStreamAudio, dataStreamAudioElement, type DataStreamAudioOptions, type DataStreamAudioResource } from './sources/datastream-audio.ts';
export { idleTicks } from './sources/idle-ticks.ts';
export { subscribeTracks, type TrackSubscriberOptions } from './sources/track-subscriber.ts';

export { idleFill, idleFillElement, type IdleFillOptions } from './operators/idle-fill.ts';
export { resample, resampleElement, type ResampleOptions } from './operators/resample.ts';
export { chunk, chunkElement, type ChunkOptions } from './operators/chunk.ts';
export { infer, inferElement, inferParams, type InferOptions, type InferParams } from './operators/infer.ts';
export { scale, scaleElement, type ScaleOptions } from './operators/scale.ts';
export { pairWithAudio, pairElement, type AudioFormat, type PairOptions } from './operators/pair.ts';

export { mp4File } from './sinks/mp4-file.ts';
export { consume, nullSink } from './sinks/null.ts';
export { publishAv, type AvPublisherOptions, type PublisherEvent, type PublisherMetrics } from './sinks/av-publisher.ts';
export { publishToRoom, roomPublisherElement, type RoomPublisherOptions, type RoomPublisherResource } from './sinks/room-publisher.ts';
export type { AudioPiece, AvOutput, AvOutputOpener } from './livekit/av-output.ts';
export { rtcAvOutput, type ResampleQuality, type RtcAvOutputOptions } from './livekit/rtc-av-output.ts';
export { PlaybackTracker, type PlaybackEvent } from './livekit/playback-tracker.ts';

export type { Caps, Element, EventOperator, OperatorElement, PipelineContext, SinkElement, SinkProgress, SourceElement } from './pipelines/element.ts';
export { parseParams } from './pipelines/params.ts';
export { registry } from './registry.ts';
export { loadPipeline, pipelineSpecSchema, validatePipeline, withOverrides, type Bound, type PipelineSpec, type Registry, type TypedPipeline } from './pipelines/spec.ts';
export { runPipeline, type RunOptions } from './pipelines/run.ts';

export { DEMO_FACE, DEMO_FACE_MODEL_PATH, DemoFaceRenderer, measureMouthOpening } from './models/demo-face.ts';
export type { FrameRenderer, OpenedRenderer, RendererFormat } from './models/frame-renderer.ts';
export { openRenderer, RENDERER_KINDS, rendererFormat, rendererKind, type RendererParams } from './renderers/kinds.ts';
export type { OpenOptions, RendererKind, RendererSettings } from './renderers/renderer-kind.ts';
export { SyncTalkRenderer, type SyncTalkRendererOptions } from './synctalk/renderer.ts';
export { SyncTalkBundle, readSyncTalkManifest, type SyncTalkManifest } from './synctalk/bundle.ts';
export { ModelCache, privateModels, processModels, type ModelLease, type ModelSource } from './models/model-cache.ts';
export { DEFAULT_PROVIDERS, type ModelRunner, type Provider, type TensorData, type TensorFeed, type TensorResult } from './models/model-runner.ts';
export { OnnxModel } from './models/onnx-model.ts';

export {
  LIVE_DEMO_PRESET,
  startAvatarSession,
  withInferModel,
  type AvatarSession,
  type AvatarSessionEnd,
  type AvatarSessionEndReason,
  type AvatarSessionOptions,
} from './workers/avatar-session.ts';
export { SessionMetricsRecorder, type SessionMetrics } from './metrics/session-metrics.ts';
export {
  AVATAR_AGENT_NAME,
  defaultAvatarIdentity,
  dispatchAvatar,
  parseAvatarDispatchMetadata,
  type AvatarDispatchMetadata,
  type DispatchAvatarOptions,
} from './agent/avatar-dispatch.ts';
export { avatarToken, participantToken, type ApiCredentials, type AvatarTokenOptions, type ParticipantTokenOptions } from './livekit/tokens.ts';
export * from './livekit/protocol.ts';
