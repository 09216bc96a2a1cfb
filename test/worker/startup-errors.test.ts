/**
 * Startup and credential errors against a real livekit-server: the check names what is wrong (URL
 * unreachable, key unknown, secret wrong), and each worker process and the token server print that
 * one line and exit with code 2 instead of retrying forever.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkServerCredentials, httpBase, serverSettings } from '../../src/workers/check-credentials.ts';
import { liveServer } from '../livekit/helpers.ts';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Runs `script` with these LiveKit settings; resolves with its exit code and stderr. */
function run(script: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, 'start'], {
      env: { ...process.env, SYNCTALK_AGENT_HTTP_PORT: '0', SYNCTALK_AVATAR_HTTP_PORT: '0', TOKEN_SERVER_PORT: '0', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('startup and credential errors (real LiveKit server)', () => {
  const server = liveServer();

  it('names the culprit: unreachable URL, unknown key, wrong secret; passes good settings', async () => {
    const s = server();
    await expect(checkServerCredentials({ LIVEKIT_URL: s.url, LIVEKIT_API_KEY: s.apiKey, LIVEKIT_API_SECRET: s.apiSecret }, [])).resolves.toBeUndefined();
    await expect(checkServerCredentials({ LIVEKIT_URL: s.url, LIVEKIT_API_KEY: 'nobody', LIVEKIT_API_SECRET: s.apiSecret }, [])).rejects.toThrow(
      `LIVEKIT_API_KEY: the server at ${s.url} does not know the key nobody`,
    );
    await expect(checkServerCredentials({ LIVEKIT_URL: s.url, LIVEKIT_API_KEY: s.apiKey, LIVEKIT_API_SECRET: 'wrong-secret-wrong-secret-wrong-secret' }, [])).rejects.toThrow(
      `LIVEKIT_API_SECRET: the server at ${s.url} refused it: not the secret of the key ${s.apiKey}`,
    );
    const port = await closedPort();
    await expect(checkServerCredentials({ LIVEKIT_URL: `ws://127.0.0.1:${port}`, LIVEKIT_API_KEY: s.apiKey, LIVEKIT_API_SECRET: s.apiSecret }, [])).rejects.toThrow(
      `LIVEKIT_URL: the server at ws://127.0.0.1:${port} is unreachable (ECONNREFUSED)`,
    );
    // flags win over the environment, as in agents-js's CLI
    await expect(checkServerCredentials({ LIVEKIT_URL: `ws://127.0.0.1:${port}` }, ['start', '--url', s.url, `--api-key=${s.apiKey}`, '--api-secret', s.apiSecret])).resolves.toBeUndefined();
  });

  it('settings: missing or malformed ones are named', () => {
    expect(() => serverSettings({ LIVEKIT_API_KEY: 'k', LIVEKIT_API_SECRET: 's' }, [])).toThrow('LIVEKIT_URL: not set (or --url)');
    expect(() => serverSettings({ LIVEKIT_URL: 'ws://x', LIVEKIT_API_SECRET: 's' }, [])).toThrow('LIVEKIT_API_KEY: not set (or --api-key)');
    expect(() => httpBase('ftp://x')).toThrow('LIVEKIT_URL: ftp://x: expected ws://, wss://, http:// or https://');
    expect(() => httpBase('no url')).toThrow('LIVEKIT_URL: not a URL: no url');
    expect(httpBase('wss://lk.example.com/')).toBe('https://lk.example.com');
  });

  it('the workers and the token server: one line naming the problem, exit code 2', async () => {
    const s = server();
    const port = await closedPort();
    const cases: Array<[string, Record<string, string>, string]> = [
      ['src/workers/avatar-worker.ts', { LIVEKIT_URL: s.url, LIVEKIT_API_KEY: s.apiKey, LIVEKIT_API_SECRET: 'not-the-secret-not-the-secret-not' }, 'avatar-worker: LIVEKIT_API_SECRET: '],
      ['src/workers/agent-worker.ts', { LIVEKIT_URL: `ws://127.0.0.1:${port}`, LIVEKIT_API_KEY: s.apiKey, LIVEKIT_API_SECRET: s.apiSecret }, 'agent-worker: LIVEKIT_URL: '],
      ['src/client/token-server.ts', { LIVEKIT_URL: s.url, LIVEKIT_API_KEY: 'nobody', LIVEKIT_API_SECRET: s.apiSecret }, 'token-server: LIVEKIT_API_KEY: '],
    ];
    const results = await Promise.all(cases.map(([script, env]) => run(script, env)));
    for (const [i, [script, , line]] of cases.entries()) {
      const { code, stderr } = results[i];
      const errorLines = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
      expect(code, `${script}: ${stderr}`).toBe(2);
      expect(errorLines, script).toHaveLength(1);
      expect(errorLines[0]).toContain(line);
    }
  }, 90_000);
});
