/**
 * The real system in headless Debian Chromium (playwright-core): a real livekit-server on 127.0.0.1, the
 * avatar session (live preset, demo face) for the room, and the scripted agent speaking one line with
 * espeak-ng through agents-js's DataStreamAudioOutput. The test page joins through the token server and
 *
 * - plays the avatar's video (<video> 256 x 256, currentTime advancing), its mouth closed while nobody
 *   speaks and open while the agent speaks (read back from the page's own frames with measureMouthOpening);
 * - plays the avatar's audio (<audio>; its level, read with a Web Audio analyser, rises while the agent speaks);
 * - publishes its (fake) microphone, which the avatar's room sees.
 *
 * A screenshot taken while the agent speaks goes to a temp dir and to out/client-avatar.png.
 * Loopback only: no ICE servers on any side, Chromium's background networking and QUIC off.
 */
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrackKind, TrackSource } from '@livekit/rtc-node';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPEECH_OPENING } from '../../bench/livekit.ts';
import { speakLines } from '../../src/agent/scripted-agent.ts';
import { DEMO_FACE, measureMouthOpening } from '../../src/models/demo-face.ts';
import { sleep, waitFor } from '../livekit/helpers.ts';
import { AVATAR, pageWorld } from './page-world.ts';

const ROOM = 'browser-avatar';
const VIEWER = 'user-viewer';
const LINE = 'Hello! I am the synctalk live avatar, talking to you in a browser.';
/** Idle frames have a closed mouth (opening ~0). */
const IDLE_OPENING = 0.05;

/** The frame the page's <video> shows now, as RGBA, read back through a canvas. */
async function shownFrame(page: Page): Promise<{ width: number; height: number; data: Uint8Array }> {
  const { width, height, base64 } = await page.evaluate(() => {
    const v = document.getElementById('avatar') as HTMLVideoElement;
    const canvas = document.createElement('canvas');
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    ctx.drawImage(v, 0, 0);
    const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let text = '';
    for (let i = 0; i < rgba.length; i += 0x8000) text += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
    return { width: canvas.width, height: canvas.height, base64: btoa(text) };
  });
  return { width, height, data: new Uint8Array(Buffer.from(base64, 'base64')) };
}

/**
 * Starts a Web Audio analyser on the <audio> element's stream; `window.__audioPeak()` then returns the
 * highest RMS (full scale 1) of the 20 ms windows since the last call, and resets it.
 */
async function listen(page: Page): Promise<void> {
  await page.evaluate(async () => {
    const audio = document.getElementById('avatar-audio') as HTMLAudioElement;
    const context = new AudioContext();
    await context.resume();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(audio.srcObject as MediaStream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let peak = 0;
    setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      peak = Math.max(peak, Math.sqrt(samples.reduce((s, x) => s + x * x, 0) / samples.length));
    }, 20);
    (window as unknown as { __audioPeak: () => number }).__audioPeak = () => {
      const p = peak;
      peak = 0;
      return p;
    };
  });
}

const audioPeak = (page: Page): Promise<number> => page.evaluate(() => (window as unknown as { __audioPeak: () => number }).__audioPeak());

describe('test client in Chromium, showing the real avatar', () => {
  const world = pageWorld(ROOM, { fakeMedia: true });
  let shots: string;
  beforeAll(async () => {
    shots = await mkdtemp(join(tmpdir(), 'synctalk-shots-'));
  });
  afterAll(async () => {
    if (shots) await rm(shots, { recursive: true, force: true });
  });

  it('shows the avatar idle, then speaking the agent line with its audio, and publishes the microphone', async () => {
    const { tokens, avatarRoom, agentRoom, session, context } = world();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${tokens.url}?room=${ROOM}&identity=${VIEWER}&autojoin=1`);

    // The avatar's video and audio, playing.
    await page.waitForFunction(
      (avatar) => {
        const v = document.getElementById('avatar') as HTMLVideoElement;
        const a = document.getElementById('avatar-audio') as HTMLAudioElement;
        return v.dataset.participant === avatar && v.videoWidth > 0 && a.dataset.participant === avatar && a.srcObject !== null;
      },
      AVATAR,
      { timeout: 30_000 },
    );
    const elements = () =>
      page.evaluate(() => {
        const v = document.getElementById('avatar') as HTMLVideoElement;
        const a = document.getElementById('avatar-audio') as HTMLAudioElement;
        return {
          video: { width: v.videoWidth, height: v.videoHeight, time: v.currentTime, paused: v.paused },
          audio: { time: a.currentTime, paused: a.paused, tracks: (a.srcObject as MediaStream).getAudioTracks().map((t) => t.readyState) },
          status: document.getElementById('status')!.textContent,
        };
      });
    const before = await elements();
    await listen(page);
    await sleep(1500);
    const idle = await elements();
    expect(idle.video).toMatchObject({ width: DEMO_FACE.size, height: DEMO_FACE.size, paused: false });
    expect(idle.video.time - before.video.time).toBeGreaterThan(1);
    expect(idle.audio.paused).toBe(false);
    expect(idle.audio.tracks).toEqual(['live']);
    expect(idle.audio.time - before.audio.time).toBeGreaterThan(1);
    expect(idle.status).toBe(`connected: showing ${AVATAR}`);
    const idleOpening = measureMouthOpening(await shownFrame(page));
    const idlePeak = await audioPeak(page);
    expect(idleOpening).toBeLessThan(IDLE_OPENING);

    // The page's microphone, as the avatar's room sees it.
    await page.waitForFunction(() => document.getElementById('status')!.dataset.mic === 'published', undefined, { timeout: 10_000 });
    const mic = await waitFor('the page to publish its microphone', () => {
      const viewer = avatarRoom.remoteParticipants.get(VIEWER);
      return [...(viewer?.trackPublications.values() ?? [])].find((p) => p.kind === TrackKind.KIND_AUDIO);
    });
    expect(mic.source).toBe(TrackSource.SOURCE_MICROPHONE);

    // The agent speaks; the page's frames and audio follow it. One screenshot of an open mouth.
    let speaking = true;
    const spoken = speakLines(agentRoom, { avatarIdentity: AVATAR, lines: [LINE] }).finally(() => (speaking = false));
    const shot = join(shots, 'client-avatar.png');
    const openings: number[] = [];
    let shotOpening = Number.NaN;
    let speechPeak = 0;
    while (speaking) {
      const opening = measureMouthOpening(await shownFrame(page));
      openings.push(opening);
      speechPeak = Math.max(speechPeak, await audioPeak(page));
      if (Number.isNaN(shotOpening) && opening > SPEECH_OPENING) {
        await page.screenshot({ path: shot });
        shotOpening = opening;
      }
      await sleep(50);
    }
    const [line] = await spoken;
    process.stdout.write(
      `browser avatar: line ${line.seconds.toFixed(2)} s, ${openings.length} frames read from the page, mouth opening idle ${idleOpening.toFixed(3)}, ` +
        `speech max ${Math.max(...openings).toFixed(3)}, screenshot at ${shotOpening.toFixed(3)}; audio RMS idle ${idlePeak.toFixed(4)}, speech ${speechPeak.toFixed(4)}\n`,
    );
    expect(line.playback.interrupted).toBe(false);
    expect(line.playback.playbackPosition).toBeCloseTo(line.seconds, 1);
    expect(openings.filter((o) => o > SPEECH_OPENING).length).toBeGreaterThan(3);
    expect(shotOpening).toBeGreaterThan(SPEECH_OPENING);
    expect(speechPeak).toBeGreaterThan(0.02);
    expect(speechPeak).toBeGreaterThan(10 * idlePeak);
    expect((await stat(shot)).size).toBeGreaterThan(1000);
    await mkdir('out', { recursive: true });
    await copyFile(shot, join('out', 'client-avatar.png'));

    // The agent leaves: the session ends; the avatar leaves: the page lets go of its tracks.
    await sleep(250);
    await agentRoom.disconnect();
    expect((await session.ended).reason).toBe('agent left');
    await avatarRoom.disconnect();
    await page.waitForFunction(
      () => document.getElementById('avatar')!.dataset.participant === undefined && document.getElementById('avatar-audio')!.dataset.participant === undefined,
      undefined,
      { timeout: 10_000 },
    );
    expect(problems).toEqual([]);
  }, 90_000);
});
