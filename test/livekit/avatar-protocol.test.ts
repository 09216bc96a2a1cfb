/**
 * The avatar protocol end to end against a real livekit-server on 127.0.0.1: an agent participant
 * streams speech on lk.audio_stream, the avatar (datastream-audio -> synthetic frames -> pair ->
 * room-publisher) publishes audio and video, a viewer receives them; playback RPCs go back to the agent.
 */
import type { Room } from '@livekit/rtc-node';
import { RpcError } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import type { AudioChunk, VideoFrame } from '../../src/events.ts';
import { AUDIO_STREAM_TOPIC, RPC_CLEAR_BUFFER, RPC_PLAYBACK_FINISHED, RPC_PLAYBACK_STARTED } from '../../src/livekit/protocol.ts';
import { rootLogger } from '../../src/log.ts';
import { subscribeTracks } from '../../src/sources/track-subscriber.ts';
import { liveRooms, sineS16, sleep, startSyntheticAvatar, waitFor } from './helpers.ts';

const log = rootLogger.child({ test: 'avatar-protocol' }, { level: 'warn' });
const RATE = 24_000;

/** The agent's side: playback RPCs received, raw. */
function agentRpcLog(room: Room) {
  const calls: Array<{ at: number; e: { method: string; payload: string; caller: string } }> = [];
  for (const method of [RPC_PLAYBACK_STARTED, RPC_PLAYBACK_FINISHED]) {
    room.localParticipant!.registerRpcMethod(method, async (d) => {
      calls.push({ at: performance.now(), e: { method, payload: d.payload, caller: d.callerIdentity } });
      return 'ok';
    });
  }
  return calls;
}

/** Streams `bytes` as one segment, in chunks of `chunk` bytes (odd, to split samples), and closes it unless `keepOpen`. */
async function speak(room: Room, to: string, bytes: Uint8Array, chunk = 1001, keepOpen = false): Promise<void> {
  const writer = await room.localParticipant!.streamBytes({
    name: `AUDIO_${Math.random().toString(36).slice(2)}`,
    topic: AUDIO_STREAM_TOPIC,
    destinationIdentities: [to],
    attributes: { sample_rate: String(RATE), num_channels: '1' },
  });
  for (let i = 0; i < bytes.length; i += chunk) await writer.write(bytes.slice(i, i + chunk));
  if (!keepOpen) await writer.close();
}

const rms = (chunks: AudioChunk[]): number => {
  let sum = 0;
  let n = 0;
  for (const c of chunks) for (const v of c.samples) (sum += v * v), n++;
  return n === 0 ? 0 : Math.sqrt(sum / n);
};

describe('avatar protocol over a real LiveKit server', () => {
  const { joined } = liveRooms();

  it('plays a segment to a viewer at ~25 fps and answers with a snake_case playback_finished', async () => {
    const agent = await joined('r1', 'agent');
    const avatarRoom = await joined('r1', 'avatar', 'agent');
    const viewer = await joined('r1', 'viewer');
    const rpc = agentRpcLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    const received: Array<AudioChunk | VideoFrame> = [];
    const viewedFrom = performance.now();
    const viewSub = subscribeTracks(viewer, 'avatar').subscribe((e) => received.push(e));

    const spokeAt = performance.now();
    await speak(agent, 'avatar', sineS16(4, RATE));
    const done = await waitFor('playback_finished', () => rpc.find((c) => c.e.method === RPC_PLAYBACK_FINISHED), 15_000);
    const started = rpc.find((c) => c.e.method === RPC_PLAYBACK_STARTED);
    await sleep(300);
    viewSub.unsubscribe();
    await avatar.stop();

    expect(done.e.caller).toBe('avatar');
    expect(done.e.payload).toMatch(/^\{"playback_position":[0-9.]+,"interrupted":false,"synchronized_transcript":null\}$/);
    expect(JSON.parse(done.e.payload).playback_position).toBeCloseTo(4, 1);
    expect(started?.e.payload).toBe('');
    // Played in real time: finished about 4 s after started.
    expect((done.at - started!.at) / 1000).toBeGreaterThan(3.7);

    const segEvents = avatar.sourceEvents.map((t) => t.e.type);
    expect(segEvents.filter((t) => t === 'segment-end')).toHaveLength(1);
    const sourceAudio = avatar.sourceEvents.flatMap((t) => (t.e.type === 'audio' ? [t.e] : []));
    expect(sourceAudio.reduce((s, a) => s + a.samples.length, 0)).toBe(4 * RATE);

    const video = received.filter((e): e is VideoFrame => e.type === 'video');
    // No idle frames in this pipeline: every video frame is speech.
    const span = video.at(-1)!.pts - video[0].pts;
    const fps = (video.length - 1) / span;
    const firstVideoMs = viewedFrom + video[0].pts * 1000 - spokeAt;
    console.log(`viewer: first video ${firstVideoMs.toFixed(0)} ms after the agent spoke; ${video.length} video frames, ${fps.toFixed(1)} fps over ${span.toFixed(2)} s; audio rms ${rms(received.filter((e): e is AudioChunk => e.type === 'audio')).toFixed(3)}`);
    // Tracks are published with the first frame and the viewer subscribes after that, so the first
    // few hundred ms are not seen (1.3 s beside two CPU hogs); the rate of what is seen is the point,
    // over at least a second of the 4 s segment.
    expect(video.length).toBeGreaterThan(25);
    expect(fps).toBeGreaterThan(20);
    expect(fps).toBeLessThan(30);
    expect(rms(received.filter((e): e is AudioChunk => e.type === 'audio'))).toBeGreaterThan(0.05);
    const progress = avatar.published.flatMap((t) => (t.e.type === 'progress' ? [t.e] : []));
    console.log(`publisher: ${JSON.stringify(progress.at(-1))}`);
    expect(progress.at(-1)!.frames).toBe(100);
  });

  it('clear_buffer mid-segment: flush at once, playback_finished interrupted with the position played; the next segment plays', async () => {
    const agent = await joined('r2', 'agent');
    const avatarRoom = await joined('r2', 'avatar', 'agent');
    const rpc = agentRpcLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);

    await speak(agent, 'avatar', sineS16(4, RATE), 4800, true);
    const started = await waitFor('playback_started', () => rpc.find((c) => c.e.method === RPC_PLAYBACK_STARTED));
    await sleep(1000);
    const t = performance.now();
    const answer = await agent.localParticipant!.performRpc({ destinationIdentity: 'avatar', method: RPC_CLEAR_BUFFER, payload: '' });
    const answeredMs = performance.now() - t;
    expect(answer).toBe('ok');
    const flushAt = avatar.sourceEvents.find((x) => x.e.type === 'flush')!.at;
    const finished = await waitFor('interrupted playback_finished', () => rpc.find((c) => c.e.method === RPC_PLAYBACK_FINISHED));
    const payload = JSON.parse(finished.e.payload);
    const firstAudioAt = avatar.sourceEvents.find((x) => x.e.type === 'audio')!.at;
    const startedHere = avatar.published.find((x) => x.e.type === 'playback-started')!.at;
    console.log(`clear_buffer: answered in ${answeredMs.toFixed(0)} ms, flush ${(flushAt - t).toFixed(0)} ms after the call, finished ${(finished.at - t).toFixed(0)} ms after; position ${payload.playback_position} s, ${((flushAt - firstAudioAt) / 1000).toFixed(3)} s after the first audio came in; playback-started ${(startedHere - firstAudioAt).toFixed(0)} ms after that, its RPC at the agent ${(started.at - startedHere).toFixed(0)} ms later`);
    expect(finished.e.payload).toMatch(/^\{"playback_position":[0-9.]+,"interrupted":true,"synchronized_transcript":null\}$/);
    expect(payload.playback_position).toBeGreaterThan(0.7);
    // at most what can have played by the flush: the wall time since the segment's first audio reached the avatar
    // (not since playback_started reached the agent: beside two CPU hogs that RPC's way alone took over 100 ms),
    // plus one 40 ms frame (exact positions, on virtual time: test/av-publisher.test.ts). A loaded machine
    // stretches the 1 s sleep, not this bound.
    expect(payload.playback_position).toBeLessThan((flushAt - firstAudioAt) / 1000 + 0.04);
    expect(flushAt - t).toBeLessThan(answeredMs + 1);

    // The interrupted stream was never closed: the next one must still play.
    await speak(agent, 'avatar', sineS16(0.6, RATE));
    const second = await waitFor('second playback_finished', () => rpc.filter((c) => c.e.method === RPC_PLAYBACK_FINISHED)[1], 10_000);
    expect(JSON.parse(second.e.payload)).toEqual({ playback_position: expect.closeTo(0.6, 1), interrupted: false, synchronized_transcript: null });
    expect(avatar.sourceEvents.filter((x) => x.e.type === 'segment-end').map((x) => (x.e as { segment: number }).segment)).toEqual([1]);
    await avatar.stop();
  });

  it('a stream whose end is lost does not wedge the next one', async () => {
    const agent = await joined('r4', 'agent');
    const avatarRoom = await joined('r4', 'avatar', 'agent');
    const rpc = agentRpcLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    await speak(agent, 'avatar', sineS16(0.5, RATE), 4800, true);
    await speak(agent, 'avatar', sineS16(0.5, RATE));
    const finished = await waitFor('two playback_finished', () => {
      const f = rpc.filter((c) => c.e.method === RPC_PLAYBACK_FINISHED);
      return f.length === 2 ? f : undefined;
    });
    await avatar.stop();
    expect(finished.map((f) => JSON.parse(f.e.payload))).toEqual([
      { playback_position: expect.closeTo(0.5, 1), interrupted: false, synchronized_transcript: null },
      { playback_position: expect.closeTo(0.5, 1), interrupted: false, synchronized_transcript: null },
    ]);
    expect(avatar.sourceEvents.filter((x) => x.e.type === 'segment-end').map((x) => (x.e as { segment: number }).segment)).toEqual([0, 1]);
    // every byte written to the unclosed stream arrived: no audio lost with its end
    const samples = (segment: number) => avatar.sourceEvents.reduce((n, x) => n + (x.e.type === 'audio' && x.e.segment === segment ? x.e.samples.length : 0), 0);
    expect([samples(0), samples(1)]).toEqual([0.5 * RATE, 0.5 * RATE]);
  });

  it('rejects clear_buffer from anyone but the agent, and removes its handlers on teardown', async () => {
    const agent = await joined('r3', 'agent');
    const avatarRoom = await joined('r3', 'avatar', 'agent');
    const stranger = await joined('r3', 'stranger');
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    await sleep(200);
    expect(await stranger.localParticipant!.performRpc({ destinationIdentity: 'avatar', method: RPC_CLEAR_BUFFER, payload: '' })).toBe('reject');
    expect(avatar.sourceEvents.some((x) => x.e.type === 'flush')).toBe(false);
    await avatar.stop();
    const err = await agent.localParticipant!.performRpc({ destinationIdentity: 'avatar', method: RPC_CLEAR_BUFFER, payload: '' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(RpcError.ErrorCode.UNSUPPORTED_METHOD);
    // A second session on the same room registers its own handlers again.
    const again = startSyntheticAvatar(avatarRoom, 'agent', log);
    await sleep(200);
    expect(await agent.localParticipant!.performRpc({ destinationIdentity: 'avatar', method: RPC_CLEAR_BUFFER, payload: '' })).toBe('ok');
    await again.stop();
  });
});
