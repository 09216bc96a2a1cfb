/**
 * The test page's world for a describe block: a real livekit-server on 127.0.0.1, the token server, the avatar
 * session (live preset, demo face) of `room` for the agent `agent-avatar`, the agent `agent` joined as an agent
 * participant, and headless Debian Chromium (playwright-core, a persistent profile in a temp dir; loopback only:
 * no ICE servers, QUIC and background networking off; `fakeMedia`: a fake microphone and camera, granted).
 * Started before the block's tests, torn down after them; the result reads it.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Room } from '@livekit/rtc-node';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { joinLocal } from '../../bench/livekit.ts';
import { startTokenServer, type TokenServer } from '../../src/client/token-server.ts';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { participantToken } from '../../src/livekit/tokens.ts';
import { rootLogger } from '../../src/log.ts';
import { type AvatarSession, startAvatarSession } from '../../src/workers/avatar-session.ts';
import { join as joinRoom, requireServer } from '../livekit/helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
export const AGENT = 'agent';
export const AVATAR = 'agent-avatar';

export interface PageWorld {
  readonly server: DevServer;
  readonly tokens: TokenServer;
  readonly avatarRoom: Room;
  readonly agentRoom: Room;
  readonly session: AvatarSession;
  readonly context: BrowserContext;
}

export function pageWorld(room: string, options: { readonly fakeMedia?: boolean } = {}): () => PageWorld {
  const world: { -readonly [K in keyof PageWorld]?: PageWorld[K] } = {};
  let profile: string | undefined;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: run scripts/setup.sh (apt-get install chromium)`);
    const server = (world.server = await requireServer());
    world.tokens = await startTokenServer({ livekitUrl: server.url, credentials: server, port: 0 });
    world.avatarRoom = await joinRoom(server, room, AVATAR, AGENT);
    world.agentRoom = await joinLocal(server.url, await participantToken(server, { room, identity: AGENT, kind: 'agent' }));
    world.session = await startAvatarSession({ room: world.avatarRoom, agentIdentity: AGENT, log: rootLogger.child({ test: room }, { level: 'warn' }) });
    profile = await mkdtemp(join(tmpdir(), 'synctalk-chromium-'));
    const media = options.fakeMedia ? ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'] : [];
    world.context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...media],
    });
  }, 60_000);
  afterAll(async () => {
    await world.context?.close();
    await world.agentRoom?.disconnect();
    await world.session?.close();
    await world.avatarRoom?.disconnect();
    await world.tokens?.close();
    await world.server?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });
  return () => {
    const { server, tokens, avatarRoom, agentRoom, session, context } = world;
    if (!server || !tokens || !avatarRoom || !agentRoom || !session || !context) throw new Error('pageWorld: not started');
    return { server, tokens, avatarRoom, agentRoom, session, context };
  };
}
