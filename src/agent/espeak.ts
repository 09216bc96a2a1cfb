/**
 * espeakFrames: text to speech with Debian's espeak-ng, as rtc-node AudioFrames. A local, credential-free
 * voice for the scripted agent, demos and tests; `EspeakTTS` wraps it as an agents-js TTS.
 *
 * ```
 * text:   "Hello there."
 * output: [f][f][f][f][f][f]...[f]|     (f: 20 ms s16 mono frame at espeak's rate, 22050 Hz; | done)
 * ```
 *
 * - One `espeak-ng -w <tmp>.wav --stdin` process per call; the text goes in on stdin (never parsed as
 *   options). The WAV is read with `readWav` and removed when the generator ends, however it ends.
 * - Defaults: voice 'en', 175 words per minute, 20 ms frames. The last frame may be shorter.
 * - Every frame's `data` owns its whole ArrayBuffer (agents' DataStreamAudioOutput sends `data.buffer`).
 * - Bad input: empty text, a missing binary or a failing synthesis throw `InputError('espeak-ng', ...)`.
 * - Returning early from the generator kills a still-running espeak-ng.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AudioFrame } from '@livekit/rtc-node';
import { tts, type APIConnectOptions } from '@livekit/agents';
import { InputError } from '../errors.ts';
import { floatToS16 } from '../dsp/pcm.ts';
import { readWav } from '../sources/wav-reader.ts';

export interface EspeakOptions {
  /** espeak-ng voice name (default 'en'). */
  readonly voice?: string;
  /** Speaking rate, words per minute (default 175). */
  readonly wordsPerMinute?: number;
  /** Frame length, milliseconds (default 20). */
  readonly frameMs?: number;
  /** The program (default 'espeak-ng' on PATH). */
  readonly binary?: string;
}

/** espeak-ng's output rate, Hz (fixed by its voices). */
export const ESPEAK_SAMPLE_RATE = 22050;

export async function* espeakFrames(text: string, options: EspeakOptions = {}): AsyncGenerator<AudioFrame, void, undefined> {
  if (text.trim().length === 0) throw new InputError('espeak-ng', 'nothing to say: the text is empty');
  const frameMs = options.frameMs ?? 20;
  if (!(frameMs > 0)) throw new InputError('espeak-ng', `frameMs must be positive, got ${frameMs}`);
  const dir = await mkdtemp(join(tmpdir(), 'synctalk-espeak-'));
  const wav = join(dir, 'speech.wav');
  const abort = new AbortController();
  try {
    await synthesize(text, wav, options, abort.signal);
    const blocks = readWav(wav, { blockFrames: (f) => Math.max(1, Math.round((f.sampleRate * frameMs) / 1000)), nonFinite: 'silence' });
    for await (const { format, samples } of blocks) {
      yield new AudioFrame(floatToS16(samples), format.sampleRate, format.channels, samples.length / format.channels);
    }
  } finally {
    abort.abort();
    await rm(dir, { recursive: true, force: true });
  }
}

function synthesize(text: string, wav: string, options: EspeakOptions, signal: AbortSignal): Promise<void> {
  const binary = options.binary ?? 'espeak-ng';
  const args = ['-v', options.voice ?? 'en', '-s', String(options.wordsPerMinute ?? 175), '-w', wav, '--stdin'];
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'ignore', 'pipe'], signal });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-500);
    });
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? new InputError('espeak-ng', `${binary} not found (apt-get install espeak-ng)`) : e);
    });
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new InputError('espeak-ng', `exited with code ${code}${stderr ? `: ${stderr.trim()}` : ''}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(text, 'utf8');
  });
}

/**
 * espeak-ng as an agents-js TTS (non-streaming: one synthesis per text; AgentSession wraps it in its
 * sentence-splitting stream adapter). Mono, 22050 Hz.
 */
export class EspeakTTS extends tts.TTS {
  label = 'synctalk.espeak.TTS';

  constructor(readonly options: EspeakOptions = {}) {
    super(ESPEAK_SAMPLE_RATE, 1, { streaming: false });
  }

  override get model(): string {
    return `espeak-ng:${this.options.voice ?? 'en'}`;
  }

  override get provider(): string {
    return 'espeak-ng';
  }

  synthesize(text: string, connOptions?: APIConnectOptions, abortSignal?: AbortSignal): tts.ChunkedStream {
    return new EspeakChunkedStream(text, this, connOptions, abortSignal);
  }

  stream(): tts.SynthesizeStream {
    throw new InputError(this.label, 'streaming synthesis is not supported; AgentSession adapts it');
  }
}

class EspeakChunkedStream extends tts.ChunkedStream {
  label = 'synctalk.espeak.ChunkedStream';

  constructor(
    text: string,
    private readonly engine: EspeakTTS,
    connOptions?: APIConnectOptions,
    abortSignal?: AbortSignal,
  ) {
    super(text, engine, connOptions, abortSignal);
  }

  protected async run(): Promise<void> {
    const requestId = `espeak-${Date.now().toString(36)}`;
    let previous: AudioFrame | undefined;
    for await (const frame of espeakFrames(this.inputText, this.engine.options)) {
      if (this.abortSignal.aborted) return;
      if (previous) this.queue.put({ requestId, segmentId: requestId, frame: previous, final: false });
      previous = frame;
    }
    if (previous) this.queue.put({ requestId, segmentId: requestId, frame: previous, final: true });
  }
}
