/**
 * The `synctalk-live` command.
 *
 *   synctalk-live render --audio in.wav --out out.mp4 [--pipeline spec.json] [--verbose]
 *
 * Bad input ends with exit status 1 and one line naming the file and the problem (no stack trace);
 * an unexpected failure ends with status 70 (stack with --verbose). Warnings are plain lines on stderr.
 */
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { lastValueFrom, tap } from 'rxjs';
import { pino, type Logger } from 'pino';
import { isInputError } from './errors.ts';
import { probe } from './media/ffprobe.ts';
import { loadPipeline } from './pipelines/spec.ts';
import { registry } from './pipelines/registry.ts';
import { runPipeline } from './pipelines/run.ts';
import { readWav } from './sources/wav-reader.ts';

const PROG = 'synctalk-live';
export const DEFAULT_RENDER_PIPELINE = fileURLToPath(new URL('./pipelines/presets/render-demo.json', import.meta.url));

const USAGE = `usage:
  ${PROG} render --audio <in.wav> --out <out.mp4> [--pipeline <spec.json>] [--verbose]
      Render a talking-avatar MP4 from a WAV file through a pipeline declared as JSON
      (default: the bundled demo avatar, ${basename(DEFAULT_RENDER_PIPELINE)}).`;

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
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  const show = tty ? progressBar(await wavSeconds(values.audio).catch(() => null)) : () => undefined;
  const done = await lastValueFrom(runPipeline(pipeline, { log }).pipe(tap((p) => show(p.seconds))), { defaultValue: { frames: 0, seconds: 0 } });
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
    if (isInputError(e)) {
      process.stderr.write(`${PROG}: ${e.message}\n`);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`${PROG}: internal error: ${err.message}\n${verbose ? `${err.stack ?? ''}\n` : ''}`);
    return 70;
  }
}
