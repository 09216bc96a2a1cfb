/**
 * The package as a user gets it: `npm pack` (prepack builds dist/), the tarball installed into a fresh
 * project whose other dependencies come from the registry only (npm's cache first, --prefer-offline) by
 * deploy/install-package.sh (as the container recipes install the workers), and
 * test/package-consumer/ compiled there with tsc against the shipped declarations, then run with plain Node
 * (no tsx): (a) a pipeline composed in code writing an MP4, checked with ffprobe, (b) marble tests of a custom
 * operator, and the installed bin rendering the demo.
 */
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLocal, recordViewer, waitUntil } from '../bench/livekit.ts';
import { dispatchAvatar } from '../src/agent/avatar-dispatch.ts';
import { participantToken } from '../src/livekit/tokens.ts';
import { probe } from '../src/media/ffprobe.ts';
import { requireServer } from './livekit/helpers.ts';
import { encodeWav } from './helpers/wav-writer.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONSUMER_SOURCES = fileURLToPath(new URL('./package-consumer/', import.meta.url));
const INSTALL = join(ROOT, 'deploy', 'install-package.sh');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const ours = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  allowScripts: Record<string, boolean>;
};

interface Run {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; rejects with its last lines of output when it fails. */
const run = (cmd: string, args: readonly string[], cwd: string, timeoutMs = 300_000): Promise<Run> =>
  new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NODE_ENV: 'production' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(' ')} failed (${error.message}):\n${(stdout + stderr).slice(-3000)}`));
      else resolve({ stdout, stderr });
    });
  });

/** A 1.6 s mono 24 kHz WAV: a 220 Hz tone with a louder second half, so the demo mouth moves. */
function writeTone(path: string): number {
  const rate = 24_000;
  const samples = new Float32Array(Math.round(rate * 1.6)).map((_, i) => (i < rate * 0.8 ? 0.1 : 0.6) * Math.sin((2 * Math.PI * 220 * i) / rate));
  writeFileSync(path, encodeWav(samples, { sampleRate: rate, channels: 1, encoding: 'pcm', bitsPerSample: 16 }));
  return samples.length / rate;
}

const dir = mkdtempSync(join(tmpdir(), 'synctalk-pack-'));
/** The test project: installed by the first block, used by both. */
const project = join(dir, 'consumer');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the packed package, installed in another project', () => {
  let packed: string[] = [];
  let wavSeconds = 0;

  beforeAll(async () => {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], ROOT, 600_000);
    const [info] = JSON.parse(stdout.slice(stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
    packed = info.files.map((f) => f.path);
    // the script the container recipes install the workers with (registry dependencies, the repo's allowScripts)
    await run(INSTALL, [join(dir, info.filename), project, `rxjs@${ours.dependencies.rxjs}`, `@types/node@${ours.devDependencies['@types/node']}`], ROOT, 600_000);
    cpSync(CONSUMER_SOURCES, project, { recursive: true });
    await run(process.execPath, [TSC, '-p', '.'], project);
    wavSeconds = writeTone(join(project, 'tone.wav'));
  }, 1_200_000);


  it('ships the compiled library, its declarations, the demo model, the presets and the Python exporter, and no TypeScript sources', () => {
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/models/onnx-worker.js', 'dist/pipelines/presets/render-demo.json', 'dist/pipelines/presets/live-demo.json', 'models/demo-face.onnx', 'python/synctalk_live/export.py', 'bin/synctalk-live.js']) {
      expect(packed, f).toContain(f);
    }
    expect(packed.filter((f) => f.startsWith('src/') || f.endsWith('.test.ts'))).toEqual([]);
    expect(existsSync(join(project, 'node_modules', 'tsx')), 'tsx is not a dependency of the package').toBe(false);
    // the repo's install-script policy came along: onnxruntime-node's postinstall fetched no CUDA provider
    expect(JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')).allowScripts).toEqual(ours.allowScripts);
    expect(existsSync(join(project, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'))).toBe(false);
  });

  it('compiles the consumer against the declarations (tsc), where a wrong parameter is a type error', () => {
    // beforeAll's tsc run succeeded, which includes pipeline.ts's @ts-expect-error: the declarations are typed
    expect(readdirSync(join(project, 'out')).sort()).toEqual(['gain.js', 'marbles.js', 'pipeline.js']);
  });

  it('runs marble tests of a custom operator written against the public API', async () => {
    const { stdout } = await run(process.execPath, ['out/marbles.js'], project);
    expect(stdout.trim()).toBe('marbles: 2 passed');
  });

  it('runs a pipeline composed in code from the public API, writing an MP4', async () => {
    const { stdout } = await run(process.execPath, ['out/pipeline.js', 'tone.wav', 'composed.mp4'], project, 120_000);
    const progress = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { frames: number; seconds: number };
    const media = await probe(join(project, 'composed.mp4'));
    expect(media.video).toMatchObject({ codec: 'h264', width: 256, height: 256, fps: 25, frames: progress.frames });
    expect(progress.frames).toBe(Math.ceil(wavSeconds * 25));
    expect(media.audio).toMatchObject({ codec: 'aac', sampleRate: 24_000, channels: 1 });
    expect(Math.abs((media.audio?.duration ?? 0) - wavSeconds)).toBeLessThan(0.05);
  });

  it("runs the installed bin (the compiled CLI, no tsx) on the bundled demo pipeline", async () => {
    const { stdout } = await run(join(project, 'node_modules', '.bin', 'synctalk-live'), ['render', '--audio', 'tone.wav', '--out', 'cli.mp4'], project, 120_000);
    expect(stdout).toMatch(/^wrote cli\.mp4: 40 frames/);
    const media = await probe(join(project, 'cli.mp4'));
    expect(media.video).toMatchObject({ codec: 'h264', fps: 25, frames: 40 });
  });
});

describe('the installed avatar worker (what the container recipe runs)', () => {
  it('registers with a real livekit-server from the compiled package, serves a dispatched room and its /metrics', async () => {
    const server = await requireServer();
    const port = 18_000 + Math.floor(Math.random() * 2000);
    const worker = spawn(process.execPath, [join(project, 'node_modules', 'synctalk-live', 'dist', 'workers', 'avatar-worker.js'), 'start'], {
      cwd: project,
      env: { ...process.env, LIVEKIT_URL: server.url, LIVEKIT_API_KEY: server.apiKey, LIVEKIT_API_SECRET: server.apiSecret, SYNCTALK_AVATAR_HTTP_PORT: String(port), SYNCTALK_LOG_LEVEL: 'info', SYNCTALK_AVATAR_IDLE_PROCESSES: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (d: Buffer): void => {
      output = (output + d.toString('utf8')).slice(-100_000);
    };
    worker.stdout?.on('data', keep);
    worker.stderr?.on('data', keep);
    const rooms: Room[] = [];
    try {
      await waitUntil('the installed worker to register', () => output.includes('registered worker'), 60_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${output.slice(-3000)}`);
      });
      const room = 'installed-worker';
      const agent = await joinLocal(server.url, await participantToken(server, { room, identity: 'agent', kind: 'agent' }));
      const viewer = await joinLocal(server.url, await participantToken(server, { room, identity: 'viewer' }));
      rooms.push(agent, viewer);
      await dispatchAvatar({ url: server.url, credentials: server, room, metadata: { agentIdentity: 'agent', avatarIdentity: 'agent-avatar' } });
      const seen = recordViewer(viewer, 'agent-avatar');
      await waitUntil('idle frames from the installed worker', () => seen.video.length >= 25, 60_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${output.slice(-3000)}`);
      });
      seen.stop();
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^synctalk_sessions 1$/m);
    } finally {
      await Promise.all(rooms.map((r) => r.disconnect()));
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGINT');
      const timer = setTimeout(() => worker.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(timer);
      await server.stop();
    }
  }, 180_000);
});

describe('the container recipes (deploy/)', () => {
  const recipes = ['deploy/avatar-worker.Containerfile', 'deploy/agent-worker.Containerfile'];

  it('copy only paths that exist in the build context, and run executable scripts', () => {
    for (const recipe of recipes) {
      const copies = readFileSync(join(ROOT, recipe), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
        .flatMap((l) => l.split(/\s+/).slice(1, -1));
      expect(copies.length, recipe).toBeGreaterThan(5);
      for (const path of copies) expect(existsSync(join(ROOT, path)), `${recipe}: COPY ${path}`).toBe(true);
    }
    for (const script of ['deploy/install-package.sh', 'scripts/install-cuda-provider.sh']) {
      expect(statSync(join(ROOT, script)).mode & 0o111, `${script} is executable`).not.toBe(0);
    }
  });

  it('compose.yaml builds its images from these recipes', () => {
    const compose = readFileSync(join(ROOT, 'deploy', 'compose.yaml'), 'utf8');
    for (const m of compose.matchAll(/dockerfile: (\S+)/g)) expect(recipes).toContain(m[1]);
    expect([...compose.matchAll(/dockerfile: (\S+)/g)].length).toBe(2);
  });
});
