/**
 * The `synctalk-live` command.
 *
 *   synctalk-live render --audio in.wav --out out.mp4 [--pipeline spec.json] [--verbose]
 *   synctalk-live export --data DIR --workspace DIR --ave PATH --out BUNDLE [--portrait|--torso] [--au45] [--ckpt PATH] [--samples S]
 *
 * Bad input ends with exit status 1 and one line naming the file and the problem (no stack trace);
 * an unexpected failure ends with status 70 (stack with --verbose). Warnings are plain lines on stderr.
 * `render` writes only to an absent path or a regular file other than its input (checked before rendering);
 * SIGINT or SIGTERM during a render stops it, removes the partial file and exits with 128 + the signal
 * number after one line. Whatever the way out, no partial file is left behind.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Observable, type Subscription } from 'rxjs';
import { pino, type Logger } from 'pino';
import { isInputError } from './errors.ts';
import { probe } from './media/ffprobe.ts';
import { Mp4Encoder } from './media/mp4-encoder.ts';
import { checkOutputPath } from './media/output-path.ts';
import type { SinkProgress } from './pipelines/element.ts';
import { loadPipeline } from './pipelines/spec.ts';
import { registry } from './registry.ts';
import { runPipeline } from './pipelines/run.ts';
import { readWav } from './sources/wav-reader.ts';

const PROG = 'synctalk-live';
export const DEFAULT_RENDER_PIPELINE = fileURLToPath(new URL('./pipelines/presets/render-demo.json', import.meta.url));

const USAGE = `usage:
  ${PROG} render --audio <in.wav> --out <out.mp4> [--pipeline <spec.json>] [--verbose]
      Render a talking-avatar MP4 from a WAV file through a pipeline declared as JSON
      (default: the bundled demo avatar, ${basename(DEFAULT_RENDER_PIPELINE)}).
  ${PROG} export --data <dir> --workspace <dir> --ave <audio_visual_encoder.pth> --out <bundle>
                 [--portrait | --torso] [--au45] [--ckpt <file.pth>] [--samples <n>] [--verbose]
      Export a trained SyncTalk ('ave') model and its data folder to an avatar bundle (docs/synctalk-bundle.md),
      with the Python exporter (python/synctalk_live; needs torch: $SYNCTALK_PYTHON, else /usr/bin/python3).`;

class UsageError extends Error {}

/** Log lines as `synctalk-live: <level>: <msg>` on stderr, readable on a terminal. */
function cliLogger(verbose: boolean): Logger {
  return pino(
    { level: verbose ? 'debug' : 'warn', base: null, timestamp: false },
    {
      write(line: string): void {
        const { level, msg, ...rest } = JSON.parse(line) as { level: number; msg: string } & Record<string, unknown>;
        const name = level >= 50 ? 'error' : level >= 40 ? 'warning' : 'info';
        const extra = Object.entries(rest)
          .filter(([k]) => k !== 'element' || verbose)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        process.stderr.write(`${PROG}: ${name}: ${msg}${extra === '' ? '' : ` (${extra})`}\n`);
      },
    },
  );
}

/** Seconds of audio in a WAV file, from its header (null when the header does not say: streamed WAVs). */
async function wavSeconds(path: string): Promise<number | null> {
  for await (const { format } of readWav(path, { blockFrames: 1, nonFinite: 'silence' })) {
    return format.dataBytes === null ? null : format.dataBytes / ((format.bitsPerSample / 8) * format.channels) / format.sampleRate;
  }
  return null;
}

function progressBar(total: number | null): (seconds: number) => void {
  let last = 0;
  return (seconds) => {
    const now = Date.now();
    if (now - last < 100) return;
    last = now;
    const width = 30;
    const line =
      total === null
        ? `rendering ${seconds.toFixed(1)} s`
        : `[${'#'.repeat(Math.min(width, Math.round((seconds / total) * width))).padEnd(width, '.')}] ${seconds.toFixed(1)}/${total.toFixed(1)} s`;
    process.stderr.write(`\r${line}`);
  };
}

/** A render stopped by a signal. */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}; no output written`);
  }
}

/**
 * Runs a render to its end and resolves with its last progress. SIGINT, SIGTERM, or an error thrown outside the
 * pipeline's own error channel (an uncaught exception or rejection) unsubscribes it first, which kills ffmpeg and
 * removes the partial file; it then rejects once every ffmpeg is gone. A failed render also waits for that.
 */
function runToEnd(progress: Observable<SinkProgress>, onProgress: (p: SinkProgress) => void): Promise<SinkProgress> {
  return new Promise((resolve, reject) => {
    let last: SinkProgress = { frames: 0, seconds: 0 };
    let sub: Subscription | undefined;
    const settle = (outcome: () => void): void => {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal).off('uncaughtException', onCrash).off('unhandledRejection', onCrash);
      sub?.unsubscribe();
      void Mp4Encoder.settled().then(outcome);
    };
    const onSignal = (signal: NodeJS.Signals): void => settle(() => reject(new Interrupted(signal)));
    const onCrash = (e: unknown): void => settle(() => reject(e));
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal).on('uncaughtException', onCrash).on('unhandledRejection', onCrash);
    sub = progress.subscribe({
      next: (p) => {
        last = p;
        onProgress(p);
      },
      error: (e: unknown) => settle(() => reject(e)),
      complete: () => settle(() => resolve(last)),
    });
  });
}

/** python/, where the synctalk_live package lives. */
const PYTHON_DIR = fileURLToPath(new URL('../python', import.meta.url));

/** The Python that runs the exporter: $SYNCTALK_PYTHON if set, else /usr/bin/python3. */
export const exporterPython = (): string => process.env.SYNCTALK_PYTHON ?? '/usr/bin/python3';

/** The exporter failed: its one-line error, printed as is. */
class ExportError extends Error {}

async function exportBundle(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' },
      workspace: { type: 'string' },
      ave: { type: 'string' },
      out: { type: 'string' },
      portrait: { type: 'boolean', default: false },
      torso: { type: 'boolean', default: false },
      au45: { type: 'boolean', default: false },
      ckpt: { type: 'string' },
      samples: { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const { data, workspace, ave, out } = values;
  if (data === undefined || workspace === undefined || ave === undefined || out === undefined) {
    throw new UsageError('export needs --data, --workspace, --ave and --out');
  }
  if (values.portrait && values.torso) throw new UsageError('--portrait and --torso exclude each other');
  if (values.samples !== undefined && !/^[1-9]\d*$/.test(values.samples)) throw new UsageError(`--samples must be a positive integer; got "${values.samples}"`);
  const python = exporterPython();
  if (python.includes('/') && !existsSync(python)) throw new ExportError(`${python}: no such Python (set SYNCTALK_PYTHON to a python3 with torch and onnx)`);
  const flags = [
    ...['data', 'workspace', 'ave', 'out'].flatMap((k) => [`--${k}`, values[k as 'data']!]),
    ...(['portrait', 'torso', 'au45'] as const).filter((k) => values[k]).map((k) => `--${k}`),
    ...(values.ckpt === undefined ? [] : ['--ckpt', values.ckpt]),
    ...(values.samples === undefined ? [] : ['--samples', values.samples]),
  ];
  const pythonPath = [PYTHON_DIR, process.env.PYTHONPATH].filter((p) => p !== undefined && p !== '').join(':');
  const child = spawn(python, ['-m', 'synctalk_live.export', ...flags], { env: { ...process.env, PYTHONPATH: pythonPath }, stdio: ['ignore', 'inherit', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (values.verbose) process.stderr.write(d);
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => reject(new ExportError(`${python}: cannot run (${e.code ?? e.message})`)));
    child.once('close', (c, signal) => resolve(c ?? (signal === null ? 1 : 128)));
  });
  if (code !== 0) {
    const lines = stderr.trim().split('\n').filter((l) => l.trim() !== '');
    const last = lines.at(-1) ?? `exited with status ${code}`;
    throw new ExportError(code === 2 ? last : `exporter failed (${python}, status ${code}): ${last}`);
  }
  process.stdout.write(`wrote ${join(out, 'manifest.json')} and the bundle's graphs and images\n`);
}

async function render(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      audio: { type: 'string' },
      out: { type: 'string' },
      pipeline: { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.audio === undefined || values.out === undefined) throw new UsageError('render needs --audio and --out');
  const log = cliLogger(values.verbose === true);
  const pipeline = await loadPipeline(values.pipeline ?? DEFAULT_RENDER_PIPELINE, registry, {
    source: { path: values.audio },
    sink: { path: values.out },
  });
  checkOutputPath(values.out, [values.audio]);
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  const show = tty ? progressBar(await wavSeconds(values.audio).catch(() => null)) : () => undefined;
  const done = await runToEnd(runPipeline(pipeline, { log }), (p) => show(p.seconds));
  if (tty) process.stderr.write('\r\x1b[K');
  const wall = (performance.now() - started) / 1000;
  const info = await probe(values.out).catch(() => undefined);
  const streams = [
    info?.video ? `${info.video.codec} ${info.video.width}x${info.video.height} ${info.video.fps} fps` : undefined,
    info?.audio ? `${info.audio.codec} ${info.audio.sampleRate} Hz ${info.audio.channels} ch` : undefined,
  ]
    .filter((s) => s !== undefined)
    .join(', ');
  process.stdout.write(
    `wrote ${values.out}: ${done.frames} frames, ${done.seconds.toFixed(2)} s${streams === '' ? '' : ` (${streams})`} in ${wall.toFixed(1)} s (${(done.seconds / wall).toFixed(1)}x real time)\n`,
  );
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const verbose = rest.includes('--verbose');
  try {
    if (command === 'render') await render(rest);
    else if (command === 'export') await exportBundle(rest);
    else if (command === undefined || command === '--help' || command === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    } else throw new UsageError(`unknown command "${command}"`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`${PROG}: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof Interrupted) {
      process.stderr.write(`${process.stderr.isTTY === true ? '\r\x1b[K' : ''}${PROG}: ${e.message}\n`);
      return 128 + constants.signals[e.signal];
    }
    if (isInputError(e) || e instanceof ExportError) {
      process.stderr.write(`${PROG}: ${e.message}\n`);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`${PROG}: internal error: ${err.message}\n${verbose ? `${err.stack ?? ''}\n` : ''}`);
    return 70;
  }
}
