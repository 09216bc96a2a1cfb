/**
 * A local livekit-server for demos, as a process: `node --import tsx src/client/local-server.ts <env-file>`
 * starts the installed server on 127.0.0.1 (startDevServer: free loopback ports, random keys, no STUN or
 * TURN off the machine), writes (atomically) `LIVEKIT_URL`, `LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET` as shell
 * assignments to <env-file> (mode 0600: it holds the secret), and runs until SIGINT or SIGTERM, which
 * stop the server and remove the file. scripts/start.sh uses it when LIVEKIT_URL is not given.
 * No server installed: exits 2 with how to install it.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import { InputError, isInputError } from '../errors.ts';
import { startDevServer } from '../livekit/dev-server.ts';

const quote = (v: string): string => `'${v.replaceAll("'", `'\\''`)}'`;

try {
  const envFile = process.argv[2];
  if (envFile === undefined) throw new InputError('local-server', 'usage: local-server.ts <env-file>');
  const server = await startDevServer();
  const stop = async (): Promise<void> => {
    await rm(envFile, { force: true });
    await server.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  const lines = [`LIVEKIT_URL=${quote(server.url)}`, `LIVEKIT_API_KEY=${quote(server.apiKey)}`, `LIVEKIT_API_SECRET=${quote(server.apiSecret)}`];
  await writeFile(`${envFile}.tmp`, `${lines.join('\n')}\n`, { mode: 0o600 });
  await rename(`${envFile}.tmp`, envFile);
  process.stderr.write(`local-server: livekit-server on ${server.url}\n`);
} catch (e) {
  if (!isInputError(e)) throw e;
  process.stderr.write(`local-server: ${e.message}\n`);
  process.exit(2);
}
