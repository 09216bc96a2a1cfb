/**
 * The test page in headless Debian Chromium (playwright-core) against a real livekit-server on
 * 127.0.0.1: a publisher participant (rtc-node VideoSource + AudioSource, a moving bar and a tone) is in
 * the room; the page joins through the token server, its <video> plays the publisher's video
 * (videoWidth > 0, currentTime advancing), and the page publishes its (fake) microphone.
 * A screenshot goes to a temp dir and to out/client-browser.png.
 * Loopback only: no ICE servers on either side, Chromium's background networking and QUIC off.
 */
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AudioFrame,
  AudioSource,
  LocalAudioTrack,
  LocalVideoTrack,
  type Room,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame,
  VideoSource,
} from '@livekit/rtc-node';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTokenServer, type TokenServer } from '../../src/client/token-server.ts';
import { type DevServer, livekitServerBinary, startDevServer } from '../../src/livekit/dev-server.ts';
import { join as joinRoom, waitFor } from '../livekit/helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const W = 320;
const H = 180;
const RATE = 48_000;

/** Publishes a moving bar at 25 fps and a 440 Hz tone until stopped. */
async function publishSynthetic(room: Room): Promise<() => Promise<void>> {
  const video = new VideoSource(W, H);
  const sound = new AudioSource(RATE, 1, 100);
  const lp = room.localParticipant!;
  await lp.publishTrack(LocalVideoTrack.createVideoTrack('avatar_video', video), new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA }));
  await lp.publishTrack(LocalAudioTrack.createAudioTrack('avatar_audio', sound), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
  let frame = 0;
  const timer = setInterval(() => {
    const data = new Uint8Array(W * H * 4);
    const x0 = (frame * 8) % W;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = (y * W + x) * 4;
        const bar = x >= x0 && x < x0 + 40;
        data.set(bar ? [250, 200, 40, 255] : [30, 60, 120, 255], i);
      }
    }
    video.captureFrame(new VideoFrame(data, W, H, VideoBufferType.RGBA), BigInt(frame * 40_000));
    frame++;
  }, 40);
  let running = true;
  const audioLoop = (async () => {
    const n = RATE / 50;
    for (let k = 0; running; k++) {
      const pcm = new Int16Array(n);
      for (let i = 0; i < n; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * (k * n + i)) / RATE));
      await sound.captureFrame(new AudioFrame(pcm, RATE, 1, n));
    }
  })();
  return async () => {
    running = false;
    clearInterval(timer);
    await audioLoop;
    await video.close();
    await sound.close();
  };
}

describe.skipIf(!existsSync(livekitServerBinary()) || !existsSync(CHROMIUM))('test client in Chromium', () => {
  let server: DevServer;
  let tokens: TokenServer;
  let publisher: Room;
  let stopPublishing: () => Promise<void>;
  let context: BrowserContext;
  let profile: string;
  let shots: string;

  beforeAll(async () => {
    server = await startDevServer();
    tokens = await startTokenServer({ livekitUrl: server.url, credentials: server, port: 0 });
    publisher = await joinRoom(server, 'browser-room', 'avatar');
    stopPublishing = await publishSynthetic(publisher);
    profile = await mkdtemp(join(tmpdir(), 'synctalk-chromium-'));
    shots = await mkdtemp(join(tmpdir(), 'synctalk-shots-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
      ],
    });
  });
  afterAll(async () => {
    await context?.close();
    await stopPublishing?.();
    await publisher?.disconnect();
    await tokens?.close();
    await server?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it('plays the avatar video and publishes the microphone', async () => {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${tokens.url}?room=browser-room&identity=viewer&autojoin=1`);

    await page.waitForFunction(() => (document.getElementById('avatar') as HTMLVideoElement).videoWidth > 0, undefined, { timeout: 30_000 });
    const t0 = await page.evaluate(() => (document.getElementById('avatar') as HTMLVideoElement).currentTime);
    await page.waitForTimeout(1500);
    const played = await page.evaluate(() => {
      const v = document.getElementById('avatar') as HTMLVideoElement;
      return { width: v.videoWidth, height: v.videoHeight, time: v.currentTime, paused: v.paused, status: document.getElementById('status')!.textContent };
    });
    expect(played.width).toBe(W);
    expect(played.height).toBe(H);
    expect(played.paused).toBe(false);
    expect(played.time - t0).toBeGreaterThan(1);
    expect(played.status).toBe('connected: showing avatar');

    const mic = await waitFor('the page to publish its microphone', () => {
      const viewer = publisher.remoteParticipants.get('viewer');
      return [...(viewer?.trackPublications.values() ?? [])].find((p) => p.kind === TrackKind.KIND_AUDIO);
    });
    expect(mic.source).toBe(TrackSource.SOURCE_MICROPHONE);

    const shot = join(shots, 'client-browser.png');
    await page.screenshot({ path: shot });
    expect((await stat(shot)).size).toBeGreaterThan(1000);
    await mkdir('out', { recursive: true });
    await copyFile(shot, join('out', 'client-browser.png'));
    expect(problems).toEqual([]);
  });
});
