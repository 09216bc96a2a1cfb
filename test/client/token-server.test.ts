import { request } from 'node:http';
import { RoomEvent } from '@livekit/rtc-node';
import { TokenVerifier } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTokenServer, type TokenServer } from '../../src/client/token-server.ts';
import { joinLocal } from '../../bench/livekit.ts';
import { join, liveServer, sleep } from '../livekit/helpers.ts';

/** GET `path` with these headers (Host included, which fetch does not let one set); resolves with the status. */
function get(server: TokenServer, path: string, headers: Record<string, string>): Promise<number> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

const credentials = { apiKey: 'APItest', apiSecret: 'a-test-secret-that-is-long-enough-for-hs256' };

describe('token server', () => {
  let server: TokenServer;
  beforeAll(async () => {
    server = await startTokenServer({ livekitUrl: 'ws://127.0.0.1:7880', credentials, port: 0, ttlSeconds: 600 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('grants exactly the room asked for, to the identity asked for', async () => {
    const reply = await fetch(new URL('/token?room=room-a&identity=user-alice', server.url));
    expect(reply.status).toBe(200);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    const body = (await reply.json()) as { url: string; token: string };
    expect(body.url).toBe('ws://127.0.0.1:7880');
    const claims = await new TokenVerifier(credentials.apiKey, credentials.apiSecret).verify(body.token);
    expect(claims.sub).toBe('user-alice');
    expect(claims.video).toEqual({ roomJoin: true, room: 'room-a', canPublish: true, canSubscribe: true, canPublishData: false });
    expect(claims.exp! - claims.nbf!).toBe(600);
  });

  it('answers 400 naming the problem for a missing or bad room or identity', async () => {
    for (const [query, error] of [
      ['identity=user-alice', 'room: missing'],
      ['room=a%2Fb&identity=user-alice', 'room: must be 1 to 128 characters of A-Z a-z 0-9 _ . : -'],
      [`room=${'r'.repeat(129)}&identity=user-alice`, 'room: must be 1 to 128 characters of A-Z a-z 0-9 _ . : -'],
      ['room=a&identity=user-a%2Fb', 'identity: must be 1 to 128 characters of A-Z a-z 0-9 _ . : -'],
    ] as const) {
      const reply = await fetch(new URL(`/token?${query}`, server.url));
      expect(reply.status, query).toBe(400);
      expect(await reply.json()).toEqual({ error: error });
    }
  });

  it('hands out user identities only: the agent\'s and the avatar\'s are refused; without one the server picks it', async () => {
    for (const identity of ['agent', 'agent-avatar', 'agent-AJ_x8Yk2-avatar', 'alice', 'user-', 'User-x']) {
      const reply = await fetch(new URL(`/token?room=a&identity=${identity}`, server.url));
      expect(reply.status, identity).toBe(400);
      expect(await reply.json()).toEqual({ error: 'identity: must start with "user-" and go on after it (agent and avatar identities are not handed out)' });
    }
    const chosen = await Promise.all([1, 2].map(async () => (await (await fetch(new URL('/token?room=a', server.url))).json()) as { token: string; identity: string }));
    for (const c of chosen) {
      expect(c.identity).toMatch(/^user-[0-9a-f]{12}$/);
      expect((await new TokenVerifier(credentials.apiKey, credentials.apiSecret).verify(c.token)).sub).toBe(c.identity);
    }
    expect(chosen[0].identity).not.toBe(chosen[1].identity);
  });

  it('answers only its own Host (421 otherwise), and gives no token to another Origin (403)', async () => {
    const port = new URL(server.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) expect(await get(server, '/token?room=a', { Host: host }), host).toBe(200);
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1:${Number(port) + 1}`]) expect(await get(server, '/token?room=a', { Host: host }), host).toBe(421);
    expect(await get(server, '/', { Host: `attacker.test:${port}` })).toBe(421);
    expect(await get(server, '/token?room=a', { Host: `127.0.0.1:${port}`, Origin: 'http://evil.example' })).toBe(403);
    expect(await get(server, '/token?room=a', { Host: `127.0.0.1:${port}`, Origin: `http://127.0.0.1:${port}` })).toBe(200);
    const proxied = await startTokenServer({ livekitUrl: 'ws://127.0.0.1:7880', credentials, port: 0, origin: 'https://avatar.example.com' });
    try {
      expect(await get(proxied, '/token?room=a', { Host: 'avatar.example.com' })).toBe(200);
      expect(await get(proxied, '/token?room=a', { Host: new URL(proxied.url).host })).toBe(421);
    } finally {
      await proxied.close();
    }
  });

  it('serves the page, its script and the livekit-client bundle, and nothing else', async () => {
    const page = await fetch(server.url);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('<script type="module" src="/client.js">');
    const script = await (await fetch(new URL('/client.js', server.url))).text();
    expect(script).toContain("from '/vendor/livekit-client.esm.mjs'");
    const bundle = await fetch(new URL('/vendor/livekit-client.esm.mjs', server.url));
    expect(bundle.status).toBe(200);
    expect((await bundle.text()).length).toBeGreaterThan(100_000);
    expect((await fetch(new URL('/../package.json', server.url))).status).toBe(404);
    expect((await fetch(new URL('/public/index.html', server.url))).status).toBe(404);
    expect((await fetch(new URL('/token?room=a&identity=user-b', server.url), { method: 'POST' })).status).toBe(405);
  });
});

describe('token server with a real LiveKit server: no token can kick the agent or the avatar', () => {
  const lk = liveServer();

  it('the agent and its avatar stay in the room while users join with every token the server hands out', async () => {
    const tokens = await startTokenServer({ livekitUrl: lk().url, credentials: lk(), port: 0 });
    const agent = await join(lk(), 'kick', 'agent-AJ_test');
    const avatar = await join(lk(), 'kick', 'agent-AJ_test-avatar', 'agent-AJ_test');
    const left: string[] = [];
    for (const r of [agent, avatar]) r.on(RoomEvent.Disconnected, (reason) => left.push(String(reason)));
    try {
      for (const identity of ['agent-AJ_test', 'agent-AJ_test-avatar', 'agent', 'agent-avatar']) {
        expect((await fetch(new URL(`/token?room=kick&identity=${identity}`, tokens.url))).status, identity).toBe(400);
      }
      const granted = (await (await fetch(new URL('/token?room=kick', tokens.url))).json()) as { url: string; token: string; identity: string };
      const user = await joinLocal(granted.url, granted.token);
      await sleep(1000);
      expect([...user.remoteParticipants.keys()].sort()).toEqual(['agent-AJ_test', 'agent-AJ_test-avatar']);
      expect(left).toEqual([]);
      expect(agent.isConnected && avatar.isConnected).toBe(true);
      await user.disconnect();
    } finally {
      await agent.disconnect();
      await avatar.disconnect();
      await tokens.close();
    }
  });
});
