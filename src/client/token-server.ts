/**
 * The test client's server (node:http): hands out room tokens and serves the browser page.
 *
 * ```
 * GET /token?room=R&identity=I  -> 200 {"url": <LiveKit URL>, "token": <JWT>, "identity": I}   (Cache-Control: no-store)
 * GET /token?room=R             -> 200 ... with an identity the server chose: user-<12 hex digits>
 * GET /                          -> public/index.html
 * GET /client.js                 -> public/client.js
 * GET /vendor/livekit-client.esm.mjs -> livekit-client's browser bundle (node_modules/livekit-client/dist)
 * ```
 *
 * - A token grants exactly one room, the one asked for: roomJoin, canPublish, canSubscribe for room R,
 *   identity I, valid `ttlSeconds` (default 3600). No admin, no data publishing, no other room.
 * - room and identity: 1 to 128 characters of [A-Za-z0-9_.:-]; anything else is 400 with the problem.
 * - Identities are users' only: one asked for must start with `identityPrefix` (default "user-"), so
 *   that no token can name the agent ("agent-<job>") or its avatar ("<agent>-avatar"): a participant
 *   joining with an identity already in the room takes its place (DUPLICATE_IDENTITY), which would end
 *   the session. Without one, the server picks `<prefix><12 hex digits>`.
 * - Host check (DNS rebinding): the Host header must be the configured `origin`'s host (default the
 *   address it listens on; on a loopback address also localhost, 127.0.0.1 and [::1] at that port),
 *   else 421. A /token request carrying an Origin header other than `origin` is 403.
 * - Tokens are credentials: never logged (requests are logged by path only, no query string).
 * - Listens on 127.0.0.1 by default (port 8080; 0 picks a free one). Only the files above are served.
 *
 * Run: `node --import tsx src/client/token-server.ts` with LIVEKIT_URL, LIVEKIT_API_KEY,
 * LIVEKIT_API_SECRET; TOKEN_SERVER_HOST (default 127.0.0.1), TOKEN_SERVER_PORT (default 8080),
 * TOKEN_SERVER_ORIGIN (the page's origin as browsers see it, e.g. https://avatar.example.com behind a
 * proxy; default http://<host>:<port>), TOKEN_SERVER_IDENTITY_PREFIX (default "user-"). It checks the
 * URL, key and secret with one request at startup: a wrong one is one line naming it, exit code 2.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AccessToken } from 'livekit-server-sdk';
import { InputError, isInputError } from '../errors.ts';
import type { ApiCredentials } from '../livekit/tokens.ts';
import { rootLogger, type Logger } from '../log.ts';
import { checkServerCredentials } from '../workers/check-credentials.ts';

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
  /** The page's origin as browsers reach it (default http://host:port, the address listened on). */
  readonly origin?: string;
  /** What every identity starts with (default 'user-'). */
  readonly identityPrefix?: string;
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

/** What user identities start with by default: never the agent's ("agent-...") nor its avatar's. */
export const USER_IDENTITY_PREFIX = 'user-';

/**
 * The room token for `room` and `identity` (null or '': one the server chooses, `prefix` + 12 hex
 * digits); throws InputError for names outside the allowed set and for identities without `prefix`.
 */
export async function roomToken(
  credentials: ApiCredentials,
  room: string | null,
  identity: string | null,
  ttlSeconds = 3600,
  prefix = USER_IDENTITY_PREFIX,
): Promise<{ token: string; identity: string }> {
  if (room === null || room.length === 0) throw new InputError('room', 'missing');
  const who = identity === null || identity === '' ? `${prefix}${randomBytes(6).toString('hex')}` : identity;
  for (const [what, value] of [
    ['room', room],
    ['identity', who],
  ] as const) {
    if (!NAME.test(value)) throw new InputError(what, 'must be 1 to 128 characters of A-Z a-z 0-9 _ . : -');
  }
  if (!who.startsWith(prefix) || who.length === prefix.length) {
    throw new InputError('identity', `must start with "${prefix}" and go on after it (agent and avatar identities are not handed out)`);
  }
  const token = new AccessToken(credentials.apiKey, credentials.apiSecret, { identity: who, ttl: ttlSeconds });
  token.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: false });
  return { token: await token.toJwt(), identity: who };
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** The Host header values the server answers: the origin's host, and on loopback the usual loopback names at its port. */
export function allowedHosts(origin: string): Set<string> {
  const u = new URL(origin);
  const hosts = new Set([u.host.toLowerCase()]);
  if (LOOPBACK.has(u.hostname)) {
    const port = u.port === '' ? '' : `:${u.port}`;
    for (const name of ['127.0.0.1', 'localhost', '[::1]']) hosts.add(`${name}${port}`);
  }
  return hosts;
}

export function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const log = (options.log ?? rootLogger).child({ element: 'token-server' });
  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    res.end(body);
  };

  /** Set once listening (the port may be chosen then). */
  let origin = '';
  let hosts = new Set<string>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    log.debug({ method: req.method, path: url.pathname }, 'request');
    if (!hosts.has((req.headers.host ?? '').toLowerCase())) {
      log.warn({ host: req.headers.host?.slice(0, 100) }, 'request refused: Host is not this server');
      return send(res, 421, 'text/plain', `Host must be ${[...hosts].join(' or ')}`);
    }
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'only GET');
    if (url.pathname === '/token') {
      const from = req.headers.origin;
      if (from !== undefined && from !== origin) return send(res, 403, 'application/json', JSON.stringify({ error: `Origin ${from.slice(0, 100)} may not ask for tokens` }));
      try {
        const granted = await roomToken(options.credentials, url.searchParams.get('room'), url.searchParams.get('identity'), options.ttlSeconds, options.identityPrefix);
        return send(res, 200, 'application/json', JSON.stringify({ url: options.livekitUrl, ...granted }));
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
      const listening = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      try {
        origin = new URL(options.origin ?? listening).origin;
        hosts = allowedHosts(origin);
      } catch {
        server.close();
        reject(new InputError('TOKEN_SERVER_ORIGIN', `not a URL: ${options.origin}`));
        return;
      }
      resolve({
        url: `${listening}/`,
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
    ...(env.TOKEN_SERVER_ORIGIN ? { origin: env.TOKEN_SERVER_ORIGIN } : {}),
    ...(env.TOKEN_SERVER_IDENTITY_PREFIX ? { identityPrefix: env.TOKEN_SERVER_IDENTITY_PREFIX } : {}),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const options = optionsFromEnv(process.env);
    await checkServerCredentials(process.env, []);
    const server = await startTokenServer(options);
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
