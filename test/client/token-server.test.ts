import { TokenVerifier } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTokenServer, type TokenServer } from '../../src/client/token-server.ts';

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
    const reply = await fetch(new URL('/token?room=room-a&identity=alice', server.url));
    expect(reply.status).toBe(200);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    const body = (await reply.json()) as { url: string; token: string };
    expect(body.url).toBe('ws://127.0.0.1:7880');
    const claims = await new TokenVerifier(credentials.apiKey, credentials.apiSecret).verify(body.token);
    expect(claims.sub).toBe('alice');
    expect(claims.video).toEqual({ roomJoin: true, room: 'room-a', canPublish: true, canSubscribe: true, canPublishData: false });
    expect(claims.exp! - claims.nbf!).toBe(600);
  });

  it('answers 400 naming the problem for a missing or bad room or identity', async () => {
    for (const [query, error] of [
      ['identity=alice', 'room: missing'],
      ['room=a&identity=', 'identity: missing'],
      ['room=a%2Fb&identity=alice', 'room: must be 1 to 128 characters of A-Z a-z 0-9 _ . : -'],
      [`room=${'r'.repeat(129)}&identity=alice`, 'room: must be 1 to 128 characters of A-Z a-z 0-9 _ . : -'],
    ] as const) {
      const reply = await fetch(new URL(`/token?${query}`, server.url));
      expect(reply.status, query).toBe(400);
      expect(await reply.json()).toEqual({ error: error });
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
    expect((await fetch(new URL('/token?room=a&identity=b', server.url), { method: 'POST' })).status).toBe(405);
  });
});
