/**
 * Names of LiveKit's avatar protocol (agents' DataStreamAudioOutput on one side, the avatar worker
 * on the other). Wire facts, shared by the receiver, the publisher and the notifier.
 */

/** Byte-stream topic of the agent's speech: one stream per segment, s16le interleaved PCM. */
export const AUDIO_STREAM_TOPIC = 'lk.audio_stream';
/** RPC agent -> avatar: drop what is queued (an interruption). Answered "ok". */
export const RPC_CLEAR_BUFFER = 'lk.clear_buffer';
/** RPC avatar -> agent: the first audio of a segment is playing. Payload "". */
export const RPC_PLAYBACK_STARTED = 'lk.playback_started';
/** RPC avatar -> agent: a segment finished or was interrupted. Payload: see `playbackFinishedPayload`. */
export const RPC_PLAYBACK_FINISHED = 'lk.playback_finished';
/** Participant attribute of the avatar: the identity of the agent it speaks for. */
export const ATTRIBUTE_PUBLISH_ON_BEHALF = 'lk.publish_on_behalf';
/** Track names the avatar publishes. */
export const AVATAR_AUDIO_TRACK = 'avatar_audio';
export const AVATAR_VIDEO_TRACK = 'avatar_video';

/**
 * The `lk.playback_finished` payload, exactly as the Python AvatarRunner sends it (snake_case keys,
 * `synchronized_transcript` null). `position`: seconds of the segment played.
 */
export const playbackFinishedPayload = (position: number, interrupted: boolean): string =>
  JSON.stringify({ playback_position: position, interrupted, synchronized_transcript: null });
