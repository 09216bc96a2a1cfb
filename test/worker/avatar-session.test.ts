/**
 * The avatar session end to end on a real livekit-server (127.0.0.1): the scripted agent speaks, the
 * session (live preset, demo face) publishes, a viewer receives audio and video. Measures the A/V
 * offset and the latency a viewer sees (printed; also `npm run bench`).
 */
import type { Room } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { ESPEAK_SAMPLE_RATE, espeakFrames } from '../../src/agent/espeak.ts';
import { AUDIO_STREAM_TOPIC, RPC_CLEAR_BUFFER, RPC_PLAYBACK_FINISHED, RPC_PLAYBACK_STARTED } from '../../src/livekit/protocol.ts';
import { rootLogger } from '../../src/log.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { type AvatarSession, startAvatarSession } from '../../src/workers/avatar-session.ts';
import { measureLiveAvatar, recordViewer, SPEECH_OPENING, type ViewerRecord, waitUntil } from '../../bench/livekit.ts';
import { liveRooms, liveServer, sleep } from '../livekit/helpers.ts';

describe('avatar session on a real LiveKit server', () => {
  const server = liveServer();

  it('speaks a line: idle and speech at ~25 fps, playback_finished, A/V offset and latency measured', async () => {
    const f = await measureLiveAvatar({ server: server(), room: 'speak' });
    process.stdout.write(
      `live avatar: A/V offset ${f.avOffsetMs} ms (r = ${f.avCorrelation.toFixed(3)}; target |offset| <= 40), ` +
        `latency ${f.latencyMs.toFixed(0)} ms (target < 150), idle ${f.idleFps.toFixed(1)} fps, speech ${f.speechFps.toFixed(1)} fps, ` +
        `idle mouth max ${f.idleOpeningMax.toFixed(3)}, ${f.framesReceived} frames; metrics ${JSON.stringify(f.metrics)}\n`,
    );
    expect(f.lines).toHaveLength(1);
    expect(f.lines[0].playback.interrupted).toBe(false);
    expect(f.lines[0].playback.playbackPosition).toBeCloseTo(f.lines[0].seconds, 1);
    // The promise: one frame published per 40 ms of audio. What a viewer on this machine receives also
    // depends on how busy the machine is (its decoder and the viewer's event loop); `npm run bench` measures it.
    expect(f.metrics.framesPublished / f.metrics.audioSeconds).toBeCloseTo(25, 0);
    expect(f.idleFps).toBeGreaterThan(15);
    expect(f.idleFps).toBeLessThan(30);
    expect(f.speechFps).toBeGreaterThan(15);
    expect(f.speechFps).toBeLessThan(30);
    expect(f.idleOpeningMax).toBeLessThan(0.05);
    // Targets: |offset| <= 40 ms, latency < 150 ms. On this shared 2-core machine the viewer's audio
    // jitter buffer, the renders and video decoding wander from run to run. With this preset (idle
    // preemption, 'low' resampler, 20 ms video delay), 20 runs, some with CPU hogs or other LiveKit
    // tests running at once, gave offsets of -20..+15 ms and latencies of 63..137 ms (median ~110).
    // The previous preset saw offsets up to 105 ms and latencies up to 199 ms under heavier load; the
    // assertions leave room for that.
    expect(f.avCorrelation).toBeGreaterThan(0.6);
    expect(Math.abs(f.avOffsetMs)).toBeLessThanOrEqual(80);
    expect(f.latencyMs).toBeGreaterThan(0);
    // The 150 ms target is the bench's (`npm run bench`, quiet machine). Here the bound is what no load excuses:
    // a pipeline that queues audio instead of playing it would show seconds (beside two CPU hogs: ~350 ms).
    expect(f.latencyMs).toBeLessThan(600);
    expect(f.ended?.reason).toBe('agent left');
  }, 60_000);
});

/** espeak-ng speech as s16le bytes at ESPEAK_SAMPLE_RATE, mono. */
async function speechBytes(text: string): Promise<Uint8Array> {
  const parts: Int16Array[] = [];
  for await (const f of espeakFrames(text)) parts.push(f.data);
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return new Uint8Array(out.buffer);
}

/** Opens one lk.audio_stream segment to `to` and writes `bytes` in 4 KiB pieces; closes it unless `keepOpen`. */
async function stream(agent: Room, to: string, bytes: Uint8Array, keepOpen: boolean) {
  const writer = await agent.localParticipant!.streamBytes({
    name: `AUDIO_${Math.random().toString(36).slice(2)}`,
    topic: AUDIO_STREAM_TOPIC,
    destinationIdentities: [to],
    attributes: { sample_rate: String(ESPEAK_SAMPLE_RATE), num_channels: '1' },
  });
  for (let i = 0; i < bytes.length; i += 4096) await writer.write(bytes.slice(i, i + 4096));
  if (!keepOpen) await writer.close();
  return writer;
}

/** The agent's side of the playback RPCs, raw payloads with arrival times. */
function rpcLog(agent: Room) {
  const calls: Array<{ at: number; method: string; payload: string }> = [];
  for (const method of [RPC_PLAYBACK_STARTED, RPC_PLAYBACK_FINISHED]) {
    agent.localParticipant!.registerRpcMethod(method, async (d) => {
      calls.push({ at: performance.now(), method, payload: d.payload });
      return 'ok';
    });
  }
  return calls;
}

const log = rootLogger.child({ test: 'avatar-session' }, { level: 'warn' });
const IDLE = 0.05;

describe('avatar session: interruption and sharing', () => {
  const { joined } = liveRooms();

  it('clear_buffer mid-segment: interrupted with the position played, idle frames within 2 frames; streams never closed do not wedge the next', async () => {
    const agent = await joined('clear', 'agent');
    const avatarRoom = await joined('clear', 'agent-avatar', 'agent');
    const viewer = await joined('clear', 'viewer');
    const rpc = rpcLog(agent);
    const session = await startAvatarSession({ room: avatarRoom, agentIdentity: 'agent', log });
    const seen = recordViewer(viewer, 'agent-avatar');
    await waitUntil('idle frames', () => seen.video.length >= 10);

    const long = await speechBytes('This is a long sentence that the agent will not be allowed to finish, because the user interrupts it.');
    const sent = performance.now();
    await stream(agent, 'agent-avatar', long, true);
    const speaking = () => seen.video.filter((f) => f.opening > SPEECH_OPENING);
    await waitUntil('a second of speech at the viewer', () => speaking().length >= 20);
    const firstSpeech = speaking()[0].at;
    await agent.localParticipant!.performRpc({ destinationIdentity: 'agent-avatar', method: RPC_CLEAR_BUFFER, payload: '' });
    const returned = performance.now();

    const finished = await (async () => {
      await waitUntil('playback_finished', () => rpc.some((c) => c.method === RPC_PLAYBACK_FINISHED));
      return rpc.find((c) => c.method === RPC_PLAYBACK_FINISHED)!;
    })();
    expect(finished.payload).toMatch(/^\{"playback_position":[0-9.]+,"interrupted":true,"synchronized_transcript":null\}$/);
    const position = JSON.parse(finished.payload).playback_position as number;
    const seenPlaying = (returned - firstSpeech) / 1000;
    process.stdout.write(`clear_buffer: position ${position.toFixed(3)} s reported, speech seen for ${seenPlaying.toFixed(3)} s; playback_finished ${(finished.at - returned).toFixed(0)} ms after the RPC returned\n`);
    expect(position).toBeLessThan(long.length / 2 / ESPEAK_SAMPLE_RATE - 0.5);
    // The position played: at least what the viewer saw playing (it sees each frame after it was played, so on
    // a loaded machine it sees less; 0.25 s for the RPC's way back), at most the time since the bytes were sent.
    expect(position).toBeGreaterThan(seenPlaying - 0.25);
    expect(position).toBeLessThan((returned - sent) / 1000);

    await sleep(800);
    const after = seen.video.filter((f) => f.at > returned);
    const speechFramesAfter = after.findIndex((f) => f.opening < IDLE);
    process.stdout.write(`clear_buffer: ${speechFramesAfter} speech frame(s) reached the viewer after the RPC returned\n`);
    expect(speechFramesAfter).toBeGreaterThanOrEqual(0);
    // The flush stops speech within 2 frames at the publisher; the viewer also gets the frames published before it
    // that were still on their way, at most as many as the speech's own way took (bytes sent -> first speech frame
    // seen). A flush that did not clear the queue would show the rest of the sentence: dozens of frames.
    expect(speechFramesAfter).toBeLessThanOrEqual(2 + Math.ceil((firstSpeech - sent) / 40));
    // The promise: at most 2 speech frames after the RPC returned, then idle only (when they arrive is the
    // network's and the machine's; the bench measures it), and frames keep coming.
    expect(after.slice(speechFramesAfter).every((f) => f.opening < IDLE)).toBe(true);
    expect(after.length).toBeGreaterThan(12);

    // The first stream is still open (its end never came); the next segment plays in full.
    const short = await speechBytes('Sorry, go ahead.');
    const shortSeconds = short.length / 2 / ESPEAK_SAMPLE_RATE;
    await stream(agent, 'agent-avatar', short, false);
    await waitUntil('the second playback_finished', () => rpc.filter((c) => c.method === RPC_PLAYBACK_FINISHED).length >= 2);
    const second = rpc.filter((c) => c.method === RPC_PLAYBACK_FINISHED)[1];
    expect(JSON.parse(second.payload)).toEqual({ playback_position: expect.closeTo(shortSeconds, 1), interrupted: false, synchronized_transcript: null });

    // A segment whose end never comes, without a clear_buffer: the next one supersedes it, and both play.
    const finishedCalls = () => rpc.filter((c) => c.method === RPC_PLAYBACK_FINISHED);
    await stream(agent, 'agent-avatar', short, true);
    await stream(agent, 'agent-avatar', short, false);
    await waitUntil('both playback_finished', () => finishedCalls().length >= 4, 20_000);
    const [unclosed, next] = finishedCalls().slice(2).map((c) => JSON.parse(c.payload) as { playback_position: number; interrupted: boolean });
    // Every byte of the unclosed stream arrived and played: its end was lost, none of its audio.
    expect(unclosed).toEqual({ playback_position: expect.closeTo(shortSeconds, 1), interrupted: false, synchronized_transcript: null });
    expect(next).toEqual({ playback_position: expect.closeTo(shortSeconds, 1), interrupted: false, synchronized_transcript: null });
    expect(session.snapshot().segmentsInterrupted).toBe(1);
    expect(session.snapshot().segmentsFinished).toBe(3);
    expect(session.snapshot().droppedFrames).toBe(0);

    seen.stop();
    await agent.disconnect();
    expect((await session.ended).reason).toBe('agent left');
  }, 60_000);

  it('segments of any layout through the live pipeline: stereo 48 kHz, mono 24 kHz, stereo 16 kHz, each played in full', async () => {
    const agent = await joined('layouts', 'agent');
    const avatarRoom = await joined('layouts', 'agent-avatar', 'agent');
    const viewer = await joined('layouts', 'viewer');
    const rpc = rpcLog(agent);
    const session = await startAvatarSession({ room: avatarRoom, agentIdentity: 'agent', log });
    const seen = recordViewer(viewer, 'agent-avatar');
    await waitUntil('idle frames', () => seen.video.length >= 10);
    const finished = () => rpc.filter((c) => c.method === RPC_PLAYBACK_FINISHED).map((c) => JSON.parse(c.payload) as { playback_position: number; interrupted: boolean });
    const segments: Array<[number, number, number]> = [
      [1, 48_000, 2],
      [0.8, 24_000, 1],
      [0.9, 16_000, 2],
    ];
    for (const [i, [seconds, rate, channels]] of segments.entries()) {
      const n = Math.round(seconds * rate);
      const pcm = new Int16Array(n * channels);
      for (let k = 0; k < n; k++) for (let c = 0; c < channels; c++) pcm[k * channels + c] = Math.round(0.5 * 32767 * Math.sin((2 * Math.PI * 220 * (c + 1) * k) / rate));
      const writer = await agent.localParticipant!.streamBytes({
        name: `AUDIO_${i}`,
        topic: AUDIO_STREAM_TOPIC,
        destinationIdentities: ['agent-avatar'],
        attributes: { sample_rate: String(rate), num_channels: String(channels) },
      });
      const bytes = new Uint8Array(pcm.buffer);
      for (let at = 0; at < bytes.length; at += 4096) await writer.write(bytes.slice(at, at + 4096));
      await writer.close();
      await waitUntil(`playback_finished of ${rate} Hz x${channels}`, () => finished().length > i, 15_000);
    }
    seen.stop();
    expect(finished()).toEqual(segments.map(([seconds]) => ({ playback_position: expect.closeTo(seconds, 3), interrupted: false, synchronized_transcript: null })));
    expect(seen.video.filter((f) => f.opening > SPEECH_OPENING).length).toBeGreaterThan(25);
    expect(session.snapshot().segmentsFinished).toBe(3);
    await agent.disconnect();
    expect((await session.ended).reason).toBe('agent left');
  }, 60_000);

  it('two sessions in one process: one shared model, their own RPC handlers, the model closed after the last', async () => {
    const models = new ModelCache();
    const sessions: AvatarSession[] = [];
    const views: ViewerRecord[] = [];
    const agents: Room[] = [];
    for (const name of ['one', 'two']) {
      const agent = await joined(name, `agent-${name}`);
      const avatarRoom = await joined(name, `avatar-${name}`, `agent-${name}`);
      const viewer = await joined(name, `viewer-${name}`);
      agents.push(agent);
      sessions.push(await startAvatarSession({ room: avatarRoom, agentIdentity: `agent-${name}`, log, models }));
      views.push(recordViewer(viewer, `avatar-${name}`));
    }
    await waitUntil('idle frames in both rooms', () => views.every((v) => v.video.length >= 10));
    expect(models.size).toBe(1);
    for (const [i, name] of ['one', 'two'].entries()) {
      const answer = await agents[i].localParticipant!.performRpc({ destinationIdentity: `avatar-${name}`, method: RPC_CLEAR_BUFFER, payload: '' });
      expect(answer).toBe('ok');
    }

    await sessions[0].close();
    const before = views[1].video.length;
    await waitUntil('room two still playing after room one closed', () => views[1].video.length > before + 5, 3000);
    expect(models.size).toBe(1);

    await sessions[1].close();
    await waitUntil('the model closed', () => models.size === 0, 5000);
    views.forEach((v) => v.stop());
    expect((await sessions[0].ended).reason).toBe('closed');
  }, 60_000);
});
