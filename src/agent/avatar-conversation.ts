/**
 * startAvatarConversation: an agents-js AgentSession (speech-to-text -> language model -> text-to-speech)
 * whose voice goes to the avatar worker instead of the room: its audio output is the avatar's
 * DataStreamAudioOutput (see avatar-audio-output.ts) and RoomIO publishes no audio of its own. The
 * avatar worker publishes the voice, in sync with the face.
 *
 * ```
 * user mic --(room)--> STT -> LLM -> TTS --lk.audio_stream--> avatar worker --(room)--> audio + video
 *                                      <--lk.playback_finished--
 * ```
 *
 * - The models are parameters: Gemini in the agent worker (gemini.ts), any agents-js STT/LLM/TTS elsewhere.
 * - `vad` left out: AgentSession provisions its bundled local Silero VAD; null: none.
 * - Pause is not supported by the data-stream output, so resuming after a false interruption is off
 *   (otherwise agents-js warns and ignores it).
 * - Transcriptions still go to the room (lk.transcription text streams) for clients that show them.
 * - The room must be connected. `session.close()` ends it.
 */
import { type llm, type stt, type tts, type VAD, voice } from '@livekit/agents';
import type { Room, TrackKind } from '@livekit/rtc-node';
import { avatarAudioOutput, ensureAgentsLogger } from './avatar-audio-output.ts';

export interface AvatarConversationOptions {
  /** A connected room. */
  readonly room: Room;
  readonly avatarIdentity: string;
  /** The agent's system instructions. */
  readonly instructions: string;
  readonly stt?: stt.STT;
  readonly llm?: llm.LLM;
  readonly tts: tts.TTS;
  readonly vad?: VAD | null;
  /** Remote track kind of the avatar to wait for before speaking (default KIND_VIDEO). */
  readonly waitRemoteTrack?: TrackKind | null;
}

export async function startAvatarConversation(options: AvatarConversationOptions): Promise<voice.AgentSession> {
  ensureAgentsLogger();
  const session = new voice.AgentSession({
    ...(options.stt !== undefined ? { stt: options.stt } : {}),
    ...(options.llm !== undefined ? { llm: options.llm } : {}),
    ...(options.vad !== undefined ? { vad: options.vad } : {}),
    tts: options.tts,
    turnHandling: { interruption: { resumeFalseInterruption: false } },
  });
  session.output.audio = avatarAudioOutput(options.room, options.avatarIdentity, { waitRemoteTrack: options.waitRemoteTrack });
  await session.start({
    agent: new voice.Agent({ instructions: options.instructions }),
    room: options.room,
    outputOptions: { audioEnabled: false },
  });
  return session;
}
