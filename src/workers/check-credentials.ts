/**
 * checkServerCredentials: before a worker registers, one request to the LiveKit server with its URL,
 * API key and secret, so that a wrong one is a single line naming it (and a non-zero exit) instead of
 * agents-js retrying "Unexpected server response: 401" forever.
 *
 * - The settings are agents-js's: `--url`, `--api-key`, `--api-secret` on the command line, else
 *   LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET.
 * - The request is RoomService.ListRooms (twirp over HTTP) with a token for the key, signed with the
 *   secret, within `timeoutMs` (default 5000).
 * - Throws an InputError naming what is wrong: a setting missing; the URL not ws(s)/http(s), unreachable
 *   (the network error's code), or not answering as a LiveKit server; the key unknown to the server; the
 *   secret not the key's. The server's reply is never printed (it quotes the token).
 */
import { AccessToken } from 'livekit-server-sdk';
import { InputError } from '../errors.ts';

export interface ServerSettings {
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
}

/** The value of `--flag value` or `--flag=value` in argv. */
function flag(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
  }
  return undefined;
}

/** The server settings as agents-js's CLI reads them (flags first, then the environment). */
export function serverSettings(env: NodeJS.ProcessEnv, argv: readonly string[]): ServerSettings {
  const pick = (flagName: string, envName: string): string => {
    const v = flag(argv, flagName) ?? env[envName];
    if (v === undefined || v === '') throw new InputError(envName, `not set (or ${flagName})`);
    return v;
  };
  return { url: pick('--url', 'LIVEKIT_URL'), apiKey: pick('--api-key', 'LIVEKIT_API_KEY'), apiSecret: pick('--api-secret', 'LIVEKIT_API_SECRET') };
}

/** The HTTP base of a LiveKit URL (ws -> http, wss -> https). */
export function httpBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError('LIVEKIT_URL', `not a URL: ${url}`);
  }
  const protocol = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' }[u.protocol];
  if (protocol === undefined) throw new InputError('LIVEKIT_URL', `${url}: expected ws://, wss://, http:// or https://`);
  u.protocol = protocol;
  return u.origin + u.pathname.replace(/\/+$/, '');
}

/** Resolves when the server at the settings' URL accepts the key and secret; otherwise throws an InputError naming the culprit. */
export async function checkServerCredentials(env: NodeJS.ProcessEnv, argv: readonly string[], timeoutMs = 5000): Promise<void> {
  const { url, apiKey, apiSecret } = serverSettings(env, argv);
  const base = httpBase(url);
  const token = new AccessToken(apiKey, apiSecret, { ttl: 60 });
  token.addGrant({ roomList: true });
  let reply: Response;
  try {
    reply = await fetch(`${base}/twirp/livekit.RoomService/ListRooms`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    const why = (e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? (e as Error).message);
    throw new InputError('LIVEKIT_URL', `the server at ${url} is unreachable (${why})`);
  }
  const body = await reply.text();
  if (reply.ok) return;
  if (reply.status === 401 && body.includes('invalid API key')) throw new InputError('LIVEKIT_API_KEY', `the server at ${url} does not know the key ${apiKey}`);
  if (reply.status === 401) throw new InputError('LIVEKIT_API_SECRET', `the server at ${url} refused it: not the secret of the key ${apiKey}`);
  throw new InputError('LIVEKIT_URL', `${url} does not answer as a LiveKit server (HTTP ${reply.status} to RoomService.ListRooms)`);
}
