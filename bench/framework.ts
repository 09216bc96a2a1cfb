/**
 * The framework's own cost per frame: a whole render pipeline (WAV -> resample -> chunk -> infer ->
 * pair -> null sink) on a synthetic 48 kHz stereo WAV, measuring the MAIN thread's busy time
 * (performance.eventLoopUtilization) per output frame. The model runs in its worker thread, so its
 * run is not counted; everything else (reading, resampling, chunking, messaging the worker, pairing,
 * the sink) is. The figure is the main thread's own CPU time (Linux /proc/self/task/<pid>/stat,
 * which other processes on a shared machine do not inflate), cross-checked with its event-loop
 * utilisation (wall-clock busy time, which they do).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { lastValueFrom } from 'rxjs';
import { pino } from 'pino';
import { validatePipeline } from '../src/pipelines/spec.ts';
import { registry } from '../src/registry.ts';
import { runPipeline } from '../src/pipelines/run.ts';
import { encodeWav } from '../test/helpers/wav-writer.ts';

export interface FrameworkCost {
  readonly frames: number;
  /** Main-thread CPU ms per 40 ms frame. */
  readonly cpuMsPerFrame: number;
  /** Main-thread event-loop busy ms per 40 ms frame (wall clock). */
  readonly busyMsPerFrame: number;
  /** Wall-clock seconds of media rendered per second. */
  readonly realtimeFactor: number;
}

/** CPU ms used so far by this process's main thread (utime + stime of its task; ticks of 10 ms). */
function mainThreadCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Speech-like test signal: a 180 Hz harmonic tone with a 3 Hz syllable envelope, stereo. */
function speechLike(seconds: number, sampleRate: number): Float32Array {
  const n = Math.round(seconds * sampleRate);
  const out = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    const env = 0.5 * (1 - Math.cos(2 * Math.PI * 3 * t));
    const v = env * 0.3 * (Math.sin(2 * Math.PI * 180 * t) + 0.5 * Math.sin(2 * Math.PI * 360 * t) + 0.25 * Math.sin(2 * Math.PI * 720 * t));
    out[2 * i] = v;
    out[2 * i + 1] = v;
  }
  return out;
}

export async function frameworkCost(seconds = 30): Promise<FrameworkCost> {
  const dir = await mkdtemp(join(tmpdir(), 'stl-bench-'));
  try {
    const wav = join(dir, 'in.wav');
    await writeFile(wav, encodeWav(speechLike(seconds, 48_000), { sampleRate: 48_000, channels: 2, encoding: 'pcm', bitsPerSample: 16 }));
    const pipeline = validatePipeline(
      {
        source: { element: 'wav-file', path: wav },
        operators: [{ element: 'resample' }, { element: 'chunk' }, { element: 'infer', model: 'demo', providers: ['cpu'] }, { element: 'pair' }],
        sink: { element: 'null' },
      },
      registry,
      'bench',
    );
    const log = pino({ level: 'warn' });
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    const done = await lastValueFrom(runPipeline(pipeline, { log }));
    const wall = (performance.now() - t0) / 1000;
    const cpu = mainThreadCpuMs() - cpu0;
    const elu = performance.eventLoopUtilization(elu0);
    return { frames: done.frames, cpuMsPerFrame: cpu / done.frames, busyMsPerFrame: elu.active / done.frames, realtimeFactor: done.seconds / wall };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
