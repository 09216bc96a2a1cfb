/**
 * The test client's server (node:http): hands out room tokens and serves the browser page.
 *
 * ```
 * GET /token?room=R&identity=I  -> 200 {"url": <LiveKit URL>, "token": <JWT>}   (Cache-Control: no-store)
 * GET /                          -> public/index.html
 * GET /client.js                 -> public/client.js
 * GET /vendor/livekit-client.esm.mjs -> livekit-client's browser bundle (node_modules/livekit-client/dist)
 * ```
 *
 * - A token grants exactly one room, the one asked for: roomJoin, canPublish, canSubscribe for room R,
 *   identity I, valid `ttlSeconds` (default 3600). No admin, no data publishing, no other room.
 * - room and identity: 1 to 128 characters of [A-Za-z0-9_.:-]; anything else is 400 with the problem.
 * - Tokens are credentials: never logged (requests are logged by path only, no query string).
 * - Listens on 127.0.0.1 by default (port 8080; 0 picks a free one). Only the files above are served.
 *
 * Run: `node --import tsx src/client/token-server.ts` with LIVEKIT_URL, LIVEKIT_API_KEY,
 * LIVEKIT_API_SECRET; TOKEN_SERVER_HOST (default 127.0.0.1), TOKEN_SERVER_PORT (default 8080).
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AccessToken } from 'livekit-server-sdk';
import { InputError, isInputError } from '../errors.ts';
import type { ApiCredentials } from '../livekit/tokens.ts';
import { rootLogger, type Logger } from '../log.ts';

export interface TokenServerOptions {
  /** LiveKit URL the page connects to (ws:// or wss://). */
  readonly livekitUrl: string;
  readonly credentials: ApiCredentials;
  /** Default '127.0.0.1'. */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** Seconds a token is valid (default 3600). */
  readonly ttlSeconds?: number;
  readonly log?: Logger;
}

export interface TokenServer {
  /** http://host:port/ of the page. */
  readonly url: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const publicDir = join(dirname(fileURLToPath(import.meta.url)), 'public');
const livekitClientBundle = (): string => join(dirname(createRequire(import.meta.url).resolve('livekit-client')), 'livekit-client.esm.mjs');

const STATIC: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => join(publicDir, 'index.html'), type: 'text/html; charset=utf-8' },
  '/index.html': { file: () => join(publicDir, 'index.html'), type: 'text/html; charset=utf-8' },
  '/client.js': { file: () => join(publicDir, 'client.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/livekit-client.esm.mjs': { file: livekitClientBundle, type: 'text/javascript; charset=utf-8' },
};

/** The room token for `room` and `identity`; throws InputError for names outside the allowed set. */
export async function roomToken(credentials: ApiCredentials, room: string | null, identity: string | null, ttlSeconds = 3600): Promise<string> {
  for (const [what, value] of [
    ['room', room],
    ['identity', identity],
  ] as const) {
    if (value === null || value.length === 0) throw new InputError(what, 'missing');
    if (!NAME.test(value)) throw new InputError(what, 'must be 1 to 128 characters of A-Z a-z 0-9 _ . : -');
  }
  const token = new AccessToken(credentials.apiKey, credentials.apiSecret, { identity: identity!, ttl: ttlSeconds });
  token.addGrant({ roomJoin: true, room: room!, canPublish: true, canSubscribe: true, canPublishData: false });
  return token.toJwt();
}

export function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const log = (options.log ?? rootLogger).child({ element: 'token-server' });
  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    log.debug({ method: req.method, path: url.pathname }, 'request');
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'only GET');
    if (url.pathname === '/token') {
      try {
        const token = await roomToken(options.credentials, url.searchParams.get('room'), url.searchParams.get('identity'), options.ttlSeconds);
        return send(res, 200, 'application/json', JSON.stringify({ url: options.livekitUrl, token }));
      } catch (e) {
        if (isInputError(e)) return send(res, 400, 'application/json', JSON.stringify({ error: e.message }));
        throw e;
      }
    }
    const entry = STATIC[url.pathname];
    if (entry === undefined) return send(res, 404, 'text/plain', 'not found');
    send(res, 200, entry.type, await readFile(entry.file()));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: e }, 'request failed');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error');
      else res.destroy();
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const host = options.host ?? '127.0.0.1';
      resolve({
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Reads the settings from the environment; a missing one is an InputError naming the variable. */
function optionsFromEnv(env: NodeJS.ProcessEnv): TokenServerOptions {
  const need = (name: string): string => {
    const v = env[name];
    if (v === undefined || v.length === 0) throw new InputError(name, 'not set');
    return v;
  };
  const port = Number(env.TOKEN_SERVER_PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InputError('TOKEN_SERVER_PORT', `not a port number: ${env.TOKEN_SERVER_PORT}`);
  return {
    livekitUrl: need('LIVEKIT_URL'),
    credentials: { apiKey: need('LIVEKIT_API_KEY'), apiSecret: need('LIVEKIT_API_SECRET') },
    host: env.TOKEN_SERVER_HOST ?? '127.0.0.1',
    port,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const server = await startTokenServer(optionsFromEnv(process.env));
    rootLogger.info({ url: server.url }, 'test client: open this page');
    const stop = (): void => void server.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (e) {
    if (!isInputError(e)) throw e;
    process.stderr.write(`token-server: ${e.message}\n`);
    process.exit(2);
  }
}
