/**
 * Gemini speech-to-text, language model and text-to-speech for the agent worker, from
 * @livekit/agents-plugin-google 1.9.0 (`beta.GeminiSTT`, `LLM`, `beta.TTS`), configured from the
 * environment:
 *
 * | variable | meaning |
 * |---|---|
 * | GOOGLE_APPLICATION_CREDENTIALS | service-account JSON file: use Vertex AI (wins over an API key) |
 * | VERTEX_PROJECT_ID (or GOOGLE_CLOUD_PROJECT) | Vertex project; required with Vertex |
 * | VERTEX_LOCATION (or GOOGLE_CLOUD_LOCATION) | Vertex region (default us-central1) |
 * | GOOGLE_API_KEY | Gemini API key: use the Gemini Developer API |
 * | SYNCTALK_GEMINI_LLM_MODEL | default gemini-2.5-flash |
 * | SYNCTALK_GEMINI_STT_MODEL, SYNCTALK_GEMINI_TTS_MODEL | default: the plugin's (gemini-3.5-transcribe-live, gemini-3.1-flash-tts-preview) |
 * | SYNCTALK_GEMINI_VOICE | TTS voice (default: the plugin's, Kore) |
 * | SYNCTALK_GEMINI_LANGUAGE | STT language (default en-US) |
 *
 * With neither credentials file nor API key, `geminiSettingsFromEnv` returns null: the worker runs
 * the scripted agent instead. The models talk to Google only once the session uses them.
 */
import { existsSync } from 'node:fs';
import * as google from '@livekit/agents-plugin-google';
import { InputError } from '../errors.ts';

export type GeminiAuth =
  | { readonly kind: 'vertex'; readonly credentialsPath: string; readonly project: string; readonly location: string }
  | { readonly kind: 'api-key'; readonly apiKey: string };

export interface GeminiSettings {
  readonly auth: GeminiAuth;
  readonly llmModel: string;
  readonly sttModel?: string;
  readonly ttsModel?: string;
  readonly voice?: string;
  readonly language: string;
}

export const DEFAULT_GEMINI_LLM_MODEL = 'gemini-2.5-flash';

/** The settings the environment gives, or null when it has no Google credentials at all. */
export function geminiSettingsFromEnv(env: NodeJS.ProcessEnv): GeminiSettings | null {
  const value = (name: string): string | undefined => (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const credentialsPath = value('GOOGLE_APPLICATION_CREDENTIALS');
  const apiKey = value('GOOGLE_API_KEY');
  let auth: GeminiAuth;
  if (credentialsPath !== undefined) {
    if (!existsSync(credentialsPath)) throw new InputError('GOOGLE_APPLICATION_CREDENTIALS', `no such file: ${credentialsPath}`);
    const project = value('VERTEX_PROJECT_ID') ?? value('GOOGLE_CLOUD_PROJECT');
    if (project === undefined) throw new InputError('VERTEX_PROJECT_ID', 'not set (Vertex AI needs the project id; GOOGLE_CLOUD_PROJECT works too)');
    auth = { kind: 'vertex', credentialsPath, project, location: value('VERTEX_LOCATION') ?? value('GOOGLE_CLOUD_LOCATION') ?? 'us-central1' };
  } else if (apiKey !== undefined) {
    auth = { kind: 'api-key', apiKey };
  } else {
    return null;
  }
  const sttModel = value('SYNCTALK_GEMINI_STT_MODEL');
  const ttsModel = value('SYNCTALK_GEMINI_TTS_MODEL');
  const voice = value('SYNCTALK_GEMINI_VOICE');
  return {
    auth,
    llmModel: value('SYNCTALK_GEMINI_LLM_MODEL') ?? DEFAULT_GEMINI_LLM_MODEL,
    ...(sttModel !== undefined ? { sttModel } : {}),
    ...(ttsModel !== undefined ? { ttsModel } : {}),
    ...(voice !== undefined ? { voice } : {}),
    language: value('SYNCTALK_GEMINI_LANGUAGE') ?? 'en-US',
  };
}

export interface GeminiModels {
  readonly stt: google.beta.GeminiSTT;
  readonly llm: google.LLM;
  readonly tts: google.beta.TTS;
}

/** The three Gemini models for an AgentSession. */
export function geminiModels(settings: GeminiSettings): GeminiModels {
  const { auth } = settings;
  const access =
    auth.kind === 'vertex' ? { vertexai: true, project: auth.project, location: auth.location } : { vertexai: false, apiKey: auth.apiKey };
  return {
    stt: new google.beta.GeminiSTT({
      ...access,
      ...(auth.kind === 'vertex' ? { credentialsPath: auth.credentialsPath } : {}),
      ...(settings.sttModel !== undefined ? { model: settings.sttModel } : {}),
      language: settings.language,
    }),
    llm: new google.LLM({ ...access, model: settings.llmModel }),
    tts: new google.beta.TTS({
      ...access,
      ...(settings.ttsModel !== undefined ? { model: settings.ttsModel } : {}),
      ...(settings.voice !== undefined ? { voiceName: settings.voice } : {}),
    }),
  };
}
