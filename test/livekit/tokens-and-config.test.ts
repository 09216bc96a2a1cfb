/** Offline checks: tokens' claims, the dev server's config stays on loopback, the wire payloads. */
import { TokenVerifier } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { devServerConfig } from '../../src/livekit/dev-server.ts';
import { playbackFinishedPayload } from '../../src/livekit/protocol.ts';
import { avatarToken, participantToken } from '../../src/livekit/tokens.ts';
import { s16leToFloat32 } from '../../src/sources/datastream-audio.ts';

const creds = { apiKey: 'APIkey', apiSecret: 'a-secret-of-at-least-thirty-two-characters' };

describe('tokens', () => {
  it('an avatar token is kind agent and publishes on behalf of the agent', async () => {
    const claims = await new TokenVerifier(creds.apiKey, creds.apiSecret).verify(await avatarToken(creds, { room: 'r', identity: 'avatar', agentIdentity: 'agent-1' }));
    expect(claims.sub).toBe('avatar');
    expect(claims.kind).toBe('agent');
    expect(claims.attributes).toEqual({ 'lk.publish_on_behalf': 'agent-1' });
    expect(claims.video).toMatchObject({ roomJoin: true, room: 'r', canPublish: true, canSubscribe: true, canPublishData: true });
  });

  it('a participant token joins the named room', async () => {
    const claims = await new TokenVerifier(creds.apiKey, creds.apiSecret).verify(await participantToken(creds, { room: 'r2', identity: 'viewer', canPublish: false }));
    expect(claims.sub).toBe('viewer');
    expect(claims.video).toMatchObject({ room: 'r2', canPublish: false });
  });
});

describe('dev server config', () => {
  it('binds, advertises and points STUN at 127.0.0.1 only', () => {
    const cfg = JSON.parse(devServerConfig({ signal: 1, rtcTcp: 2, rtcUdp: 3, stun: 4 }, { k: 's' }));
    expect(cfg.bind_addresses).toEqual(['127.0.0.1']);
    expect(cfg.rtc).toMatchObject({ use_external_ip: false, node_ip: '127.0.0.1', stun_servers: ['127.0.0.1:4'], ips: { includes: ['127.0.0.1/32'] } });
    expect(cfg.turn.enabled).toBe(false);
    const hosts = JSON.stringify(cfg).match(/\d+\.\d+\.\d+\.\d+/g);
    expect(new Set(hosts)).toEqual(new Set(['127.0.0.1']));
  });
});

describe('wire formats', () => {
  it('playback_finished is snake_case with a null transcript', () => {
    expect(playbackFinishedPayload(1.5, true)).toBe('{"playback_position":1.5,"interrupted":true,"synchronized_transcript":null}');
  });

  it('s16le decodes from any byte offset', () => {
    const bytes = new Uint8Array([0, 0x00, 0x40, 0x00, 0xc0, 0xff, 0x7f]).subarray(1);
    expect([...s16leToFloat32(bytes)]).toEqual([0.5, -0.5, 32767 / 32768]);
  });
});
