/**
 * Gemini configuration from the environment, and the three plugin models built from it. Building the
 * models opens no connection (they connect when a session first uses them), so no credentials are
 * needed here: the API key and the credentials file are dummies.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as google from '@livekit/agents-plugin-google';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_GEMINI_LLM_MODEL, geminiModels, geminiSettingsFromEnv } from '../../src/agent/gemini.ts';
import { ensureAgentsLogger } from '../../src/agent/avatar-audio-output.ts';
import { DEFAULT_SCRIPTED_LINES, scriptedLinesFromEnv } from '../../src/workers/agent-worker.ts';

describe('geminiSettingsFromEnv', () => {
  let dir: string;
  let keyFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'synctalk-gemini-'));
    keyFile = join(dir, 'service-account.json');
    await writeFile(keyFile, '{}');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is null without credentials: the worker runs the scripted agent', () => {
    expect(geminiSettingsFromEnv({})).toBeNull();
    expect(geminiSettingsFromEnv({ GOOGLE_API_KEY: '', GOOGLE_APPLICATION_CREDENTIALS: '' })).toBeNull();
  });

  it('uses an API key with the defaults', () => {
    expect(geminiSettingsFromEnv({ GOOGLE_API_KEY: 'k' })).toEqual({ auth: { kind: 'api-key', apiKey: 'k' }, llmModel: DEFAULT_GEMINI_LLM_MODEL, language: 'en-US' });
  });

  it('prefers Vertex AI with a credentials file, project and location', () => {
    const env = { GOOGLE_API_KEY: 'k', GOOGLE_APPLICATION_CREDENTIALS: keyFile, VERTEX_PROJECT_ID: 'proj', VERTEX_LOCATION: 'europe-west4', SYNCTALK_GEMINI_VOICE: 'Puck' };
    expect(geminiSettingsFromEnv(env)).toEqual({
      auth: { kind: 'vertex', credentialsPath: keyFile, project: 'proj', location: 'europe-west4' },
      llmModel: DEFAULT_GEMINI_LLM_MODEL,
      voice: 'Puck',
      language: 'en-US',
    });
    expect(geminiSettingsFromEnv({ GOOGLE_APPLICATION_CREDENTIALS: keyFile, GOOGLE_CLOUD_PROJECT: 'p2' })?.auth).toEqual({
      kind: 'vertex',
      credentialsPath: keyFile,
      project: 'p2',
      location: 'us-central1',
    });
  });

  it('names the variable when Vertex settings are incomplete', () => {
    expect(() => geminiSettingsFromEnv({ GOOGLE_APPLICATION_CREDENTIALS: keyFile })).toThrow(
      'VERTEX_PROJECT_ID: not set (Vertex AI needs the project id; GOOGLE_CLOUD_PROJECT works too)',
    );
    expect(() => geminiSettingsFromEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'missing.json'), VERTEX_PROJECT_ID: 'p' })).toThrow(
      `GOOGLE_APPLICATION_CREDENTIALS: no such file: ${join(dir, 'missing.json')}`,
    );
  });

  it('builds the plugin STT, LLM and TTS with the chosen models', () => {
    ensureAgentsLogger();
    const settings = geminiSettingsFromEnv({ GOOGLE_API_KEY: 'dummy', SYNCTALK_GEMINI_TTS_MODEL: 'gemini-2.5-flash-tts', SYNCTALK_GEMINI_VOICE: 'Charon' })!;
    const models = geminiModels(settings);
    expect(models.stt).toBeInstanceOf(google.beta.GeminiSTT);
    expect(models.llm).toBeInstanceOf(google.LLM);
    expect(models.tts).toBeInstanceOf(google.beta.TTS);
    expect(models.llm.model).toBe(DEFAULT_GEMINI_LLM_MODEL);
    expect(models.tts.opts).toMatchObject({ model: 'gemini-2.5-flash-tts', voiceName: 'Charon', vertexai: false });
    expect(models.stt.capabilities.streaming).toBe(true);
  });
});

describe('scriptedLinesFromEnv', () => {
  it("splits SYNCTALK_AGENT_LINES on '|' and defaults to the demo lines", () => {
    expect(scriptedLinesFromEnv({})).toEqual(DEFAULT_SCRIPTED_LINES);
    expect(scriptedLinesFromEnv({ SYNCTALK_AGENT_LINES: ' One. | Two. ' })).toEqual(['One.', 'Two.']);
    expect(() => scriptedLinesFromEnv({ SYNCTALK_AGENT_LINES: 'One.||Two.' })).toThrow("SYNCTALK_AGENT_LINES: an empty line (two '|' in a row, or one at an end)");
  });
});
