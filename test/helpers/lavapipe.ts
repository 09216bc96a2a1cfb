/**
 * Mesa's lavapipe (Vulkan on the CPU, scripts/install-lavapipe.sh) for the WebGPU tests, and a runner for
 * test/helpers/webgpu-child.ts in a child process that uses it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = process.env.SYNCTALK_LAVAPIPE_DIR ?? join(homedir(), '.cache', 'synctalk-live', 'lavapipe');

/** The environment variables of DIR/env.sh; throws the install hint when lavapipe is not installed. */
export function lavapipeEnv(): Record<string, string> {
  const envFile = join(DIR, 'env.sh');
  if (!existsSync(envFile)) {
    throw new Error(`lavapipe (Mesa's Vulkan on the CPU) is not installed in ${DIR}: run scripts/install-lavapipe.sh (scripts/setup.sh does)`);
  }
  const env: Record<string, string> = {};
  for (const [, name, value] of readFileSync(envFile, 'utf8').matchAll(/^export (\w+)="([^"]*)"/gm)) {
    env[name] = value.replace(/\$\{LD_LIBRARY_PATH:\+:\$LD_LIBRARY_PATH\}/, process.env.LD_LIBRARY_PATH ? `:${process.env.LD_LIBRARY_PATH}` : '');
  }
  return env;
}

/** Runs webgpu-child.ts with `args` on lavapipe: exit code, its JSON line (null if none) and stderr. */
export function webgpuChild(args: string[]): Promise<{ code: number | null; signal: string | null; result: unknown; stderr: string }> {
  const env = { ...process.env, ...lavapipeEnv() };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'webgpu-child.ts'), ...args],
      { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 256 << 20 },
      (error, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        let result: unknown = null;
        try {
          result = JSON.parse(line);
        } catch {
          result = null;
        }
        const failed = error as (Error & { code?: number; signal?: string }) | null;
        resolve({ code: failed ? (failed.code ?? null) : 0, signal: failed?.signal ?? null, result, stderr });
      },
    );
  });
}
