/**
 * The avatar session end to end on a real livekit-server (127.0.0.1): the scripted agent speaks, the
 * session (live preset, demo face) publishes, a viewer receives audio and video. Measures the A/V
 * offset and the latency a viewer sees (printed; also `npm run bench`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { measureLiveAvatar } from '../../bench/livekit.ts';
import { requireServer } from '../livekit/helpers.ts';

describe('avatar session on a real LiveKit server', () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await requireServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('speaks a line: idle and speech at ~25 fps, playback_finished, A/V offset and latency measured', async () => {
    const f = await measureLiveAvatar({ server, room: 'speak' });
    process.stdout.write(
      `live avatar: A/V offset ${f.avOffsetMs} ms (r = ${f.avCorrelation.toFixed(3)}; target |offset| <= 40), ` +
        `latency ${f.latencyMs.toFixed(0)} ms (target < 150), idle ${f.idleFps.toFixed(1)} fps, speech ${f.speechFps.toFixed(1)} fps, ` +
        `idle mouth max ${f.idleOpeningMax.toFixed(3)}, ${f.framesReceived} frames; metrics ${JSON.stringify(f.metrics)}\n`,
    );
    expect(f.lines).toHaveLength(1);
    expect(f.lines[0].playback.interrupted).toBe(false);
    expect(f.lines[0].playback.playbackPosition).toBeCloseTo(f.lines[0].seconds, 1);
    expect(f.idleFps).toBeGreaterThan(20);
    expect(f.idleFps).toBeLessThan(30);
    expect(f.speechFps).toBeGreaterThan(20);
    expect(f.speechFps).toBeLessThan(30);
    expect(f.idleOpeningMax).toBeLessThan(0.05);
    expect(f.avCorrelation).toBeGreaterThan(0.6);
    expect(f.ended?.reason).toBe('agent left');
  }, 60_000);
});
