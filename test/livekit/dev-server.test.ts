/** The private livekit-server: ports below the ephemeral range, a fresh start when a port is taken, a clean stop. */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { livekitServerBinary, startDevServer } from '../../src/livekit/dev-server.ts';

const status = (url: string): Promise<number> =>
  new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });

const healthUrl = (wsUrl: string): string => wsUrl.replace('ws://', 'http://') + '/';

describe('startDevServer', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'synctalk-devserver-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('listens on a loopback port below the ephemeral range and is gone after stop', async () => {
    const server = await startDevServer();
    const port = Number(new URL(server.url).port);
    expect(port).toBeGreaterThanOrEqual(20_000);
    expect(port).toBeLessThan(32_768);
    expect(await status(healthUrl(server.url))).toBe(200);
    await server.stop();
    expect(await status(healthUrl(server.url))).toBe(0);
  });

  it('starts again on new ports when the first attempt finds a port taken', async () => {
    const marker = join(dir, 'first-attempt-done');
    const wrapper = join(dir, 'server-that-clashes-once.sh');
    await writeFile(
      wrapper,
      `#!/bin/sh\nif [ ! -e '${marker}' ]; then touch '${marker}'; echo 'listen tcp :1: bind: address already in use' >&2; exit 1; fi\nexec '${livekitServerBinary()}' "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    const server = await startDevServer({ binary: wrapper });
    try {
      expect(await status(healthUrl(server.url))).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('reports any other failure at once, with the server log', async () => {
    const broken = join(dir, 'server-that-fails.sh');
    await writeFile(broken, `#!/bin/sh\necho 'config: unknown field' >&2\nexit 3\n`);
    await chmod(broken, 0o755);
    await expect(startDevServer({ binary: broken })).rejects.toThrow(/livekit-server did not start: exited with code 3\nconfig: unknown field/);
  });
});
