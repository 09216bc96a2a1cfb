/**
 * Nothing an agent sends takes the avatar down, against a real livekit-server on 127.0.0.1: segments
 * of any layout play on the one 48 kHz mono track, and every lk.audio_stream from the agent is
 * answered with exactly one lk.playback_finished: played ones, skipped ones (bad attributes), dropped
 * ones (too many waiting), and ones cleared at any moment of their life.
 */
import { type ByteStreamWriter, type Room, TrackKind } from '@livekit/rtc-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AudioChunk } from '../../src/events.ts';
import { AUDIO_STREAM_TOPIC, RPC_CLEAR_BUFFER, RPC_PLAYBACK_FINISHED } from '../../src/livekit/protocol.ts';
import { subscribeTracks } from '../../src/sources/track-subscriber.ts';
import { liveRooms, sleep, startSyntheticAvatar, waitFor } from './helpers.ts';

/** A logger that keeps its warnings (JSON lines) in `lines`. */
function recordingLog() {
  const lines: Array<{ msg: string }> = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) });
  return { log, lines };
}

/** Every lk.playback_finished the agent receives, parsed. */
function finishedLog(agent: Room) {
  const got: Array<{ playback_position: number; interrupted: boolean; synchronized_transcript: null }> = [];
  agent.localParticipant!.registerRpcMethod(RPC_PLAYBACK_FINISHED, async (d) => {
    got.push(JSON.parse(d.payload));
    return 'ok';
  });
  return got;
}

/** Interleaved s16le: a `hz` sine on every channel (channel c at hz·(c+1)), amplitude 0.4. */
function tone(seconds: number, rate: number, channels: number, hz = 300): Uint8Array {
  const n = Math.round(seconds * rate);
  const out = new Int16Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) out[i * channels + c] = Math.round(0.4 * 32767 * Math.sin((2 * Math.PI * hz * (c + 1) * i) / rate));
  return new Uint8Array(out.buffer);
}

const open = (agent: Room, attributes: Record<string, string>): Promise<ByteStreamWriter> =>
  agent.localParticipant!.streamBytes({ name: `AUDIO_${Math.random().toString(36).slice(2)}`, topic: AUDIO_STREAM_TOPIC, destinationIdentities: ['avatar'], attributes });

async function speak(agent: Room, bytes: Uint8Array, rate: number, channels: number, chunk = 4001): Promise<void> {
  const w = await open(agent, { sample_rate: String(rate), num_channels: String(channels) });
  for (let i = 0; i < bytes.length; i += chunk) await w.write(bytes.slice(i, i + chunk));
  await w.close();
}

const clear = (agent: Room): Promise<string> => agent.localParticipant!.performRpc({ destinationIdentity: 'avatar', method: RPC_CLEAR_BUFFER, payload: '' });

describe('any audio layout, an answer for every stream (real LiveKit server)', () => {
  const { joined } = liveRooms();

  it('stereo 48 kHz, then mono 24 kHz, then stereo 16 kHz: all play on the 48 kHz mono track, positions exact', async () => {
    const agent = await joined('layouts', 'agent');
    const avatarRoom = await joined('layouts', 'avatar', 'agent');
    const viewer = await joined('layouts', 'viewer');
    const { log } = recordingLog();
    const finished = finishedLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    const heard: AudioChunk[] = [];
    const viewSub = subscribeTracks(viewer, 'avatar').subscribe((e) => {
      if (e.type === 'audio') heard.push(e);
    });
    const segments: Array<[number, number, number]> = [
      [0.8, 48_000, 2],
      [0.6, 24_000, 1],
      [0.7, 16_000, 2],
    ];
    for (const [i, [seconds, rate, channels]] of segments.entries()) {
      await speak(agent, tone(seconds, rate, channels), rate, channels);
      await waitFor(`playback_finished of ${rate} Hz x${channels}`, () => (finished.length > i ? true : undefined), 15_000);
    }
    await sleep(300);
    viewSub.unsubscribe();
    const failure = avatar.failure();
    await avatar.stop();
    expect(failure).toBeUndefined();
    expect(finished).toEqual(segments.map(([seconds]) => ({ playback_position: expect.closeTo(seconds, 3), interrupted: false, synchronized_transcript: null })));
    const track = [...avatarRoom.localParticipant!.trackPublications.values()].find((p) => p.kind === TrackKind.KIND_AUDIO);
    expect(track?.name).toBe('avatar_audio');
    expect(heard.length).toBeGreaterThan(0);
    const loud = heard.filter((a) => Math.max(...a.samples.map(Math.abs)) > 0.1);
    console.log(`viewer: ${heard.length} audio chunks (${heard[0].sampleRate} Hz x${heard[0].channels}), ${loud.length} with speech`);
    expect(loud.length).toBeGreaterThan(10);
  });

  it('50 streams at once: each answered exactly once (played, or dropped with position 0)', async () => {
    const agent = await joined('fifty', 'agent');
    const avatarRoom = await joined('fifty', 'avatar', 'agent');
    const { log, lines } = recordingLog();
    const finished = finishedLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    await sleep(200);
    const writers = await Promise.all(Array.from({ length: 50 }, () => open(agent, { sample_rate: '24000', num_channels: '1' })));
    await Promise.all(writers.map(async (w) => {
      await w.write(tone(0.1, 24_000, 1));
      await w.close();
    }));
    await waitFor('50 answers', () => (finished.length >= 50 ? true : undefined), 30_000);
    await sleep(500);
    await avatar.stop();
    expect(finished).toHaveLength(50);
    const played = finished.filter((f) => !f.interrupted);
    console.log(`50 streams: ${played.length} played, ${finished.length - played.length} dropped (answered 0, interrupted)`);
    expect(played.length).toBeGreaterThanOrEqual(1);
    for (const f of played) expect(f.playback_position).toBeCloseTo(0.1, 3);
    for (const f of finished.filter((x) => x.interrupted)) expect(f.playback_position).toBe(0);
    expect(lines.filter((l) => l.msg.includes('newest answered and dropped')).length).toBe(finished.length - played.length);
  });

  it('a clear_buffer at any moment of a segment is answered once: before its first byte, 2 ms after it, mid-play, after its end', async () => {
    const agent = await joined('clears', 'agent');
    const avatarRoom = await joined('clears', 'avatar', 'agent');
    const { log } = recordingLog();
    const finished = finishedLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    await sleep(200);
    const answered = async (n: number, what: string) => {
      await waitFor(what, () => (finished.length >= n ? true : undefined), 10_000);
      await sleep(300);
      expect(finished, what).toHaveLength(n);
    };

    const before = await open(agent, { sample_rate: '24000', num_channels: '1' });
    await sleep(50);
    expect(await clear(agent)).toBe('ok');
    await answered(1, 'the answer to a stream cleared before its first byte');
    await before.close();

    for (let run = 0; run < 4; run++) {
      const w = await open(agent, { sample_rate: '24000', num_channels: '1' });
      await w.write(tone(0.5, 24_000, 1));
      await sleep(2);
      expect(await clear(agent)).toBe('ok');
      await answered(2 + run, `the answer to a stream cleared 2 ms after its first byte (run ${run + 1})`);
      await w.close();
    }

    const mid = await open(agent, { sample_rate: '24000', num_channels: '1' });
    await mid.write(tone(2, 24_000, 1));
    await sleep(700);
    await clear(agent);
    await answered(6, 'the answer to a stream cleared mid-play');

    await speak(agent, tone(1, 24_000, 1), 24_000, 1);
    await sleep(200);
    await clear(agent);
    await answered(7, 'the answer to a stream cleared after its end, while its tail plays');

    await speak(agent, tone(0.3, 24_000, 1), 24_000, 1);
    await answered(8, 'the next segment, played in full');
    await avatar.stop();
    expect(finished.slice(0, 5).map((f) => [f.playback_position, f.interrupted])).toEqual(finished.slice(0, 5).map((f) => [f.playback_position, true]));
    expect(finished[5].interrupted).toBe(true);
    expect(finished[5].playback_position).toBeGreaterThan(0.3);
    expect(finished[5].playback_position).toBeLessThan(1.2);
    expect(finished[6].interrupted).toBe(true);
    expect(finished[6].playback_position).toBeLessThan(1);
    expect(finished[7]).toEqual({ playback_position: expect.closeTo(0.3, 3), interrupted: false, synchronized_transcript: null });
  });

  it('bad attributes: one warning naming the attribute, the stream answered (0, interrupted), the session unharmed', async () => {
    const agent = await joined('bad-attributes', 'agent');
    const avatarRoom = await joined('bad-attributes', 'avatar', 'agent');
    const { log, lines } = recordingLog();
    const finished = finishedLog(agent);
    const avatar = startSyntheticAvatar(avatarRoom, 'agent', log);
    await sleep(200);
    const bad: Array<[Record<string, string>, string]> = [
      [{ sample_rate: '1e4', num_channels: '1' }, 'sample_rate'],
      [{ sample_rate: ' 24000 ', num_channels: '1' }, 'sample_rate'],
      [{ sample_rate: '0x1', num_channels: '1' }, 'sample_rate'],
      [{ sample_rate: '1000000000', num_channels: '1' }, 'sample_rate'],
      [{ sample_rate: '1', num_channels: '1' }, 'sample_rate'],
      [{ sample_rate: '24000', num_channels: '300' }, 'num_channels'],
      [{ sample_rate: '24000', num_channels: '0' }, 'num_channels'],
      [{ num_channels: '1' }, 'sample_rate'],
    ];
    for (const [attributes] of bad) {
      const w = await open(agent, attributes);
      await w.write(tone(0.2, 24_000, 1));
      await w.close();
    }
    await waitFor('an answer per bad stream', () => (finished.length >= bad.length ? true : undefined), 10_000);
    await speak(agent, tone(0.4, 24_000, 1), 24_000, 1);
    await waitFor('the good stream after them', () => (finished.length > bad.length ? true : undefined), 10_000);
    const failure = avatar.failure();
    await avatar.stop();
    expect(failure).toBeUndefined();
    expect(finished.slice(0, bad.length)).toEqual(bad.map(() => ({ playback_position: 0, interrupted: true, synchronized_transcript: null })));
    expect(finished[bad.length]).toEqual({ playback_position: expect.closeTo(0.4, 3), interrupted: false, synchronized_transcript: null });
    const warnings = lines.filter((l) => l.msg.includes('stream answered and skipped'));
    expect(warnings).toHaveLength(bad.length);
    bad.forEach(([, attribute], i) => expect(warnings[i].msg).toContain(`attribute ${attribute}`));
  });
});
