/**
 * Interop with the Python sender: a Python agent (test/python/avatar_agent.py, PyPI livekit-agents in the
 * venv of scripts/make-python-venv.sh) speaks through livekit-agents' own DataStreamAudioOutput to the real
 * avatar session (live preset, demo face) over a real livekit-server, mono 24 kHz and stereo 48 kHz espeak-ng
 * speech, one segment cut with clear_buffer(). Every wait_for_playout() must return with the avatar's answer
 * (the output's 2 s clear fallback must not be what ends the cut one), and a viewer receives the avatar.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordViewer, SPEECH_OPENING, type ViewerRecord } from '../../bench/livekit.ts';
import type { DevServer } from '../../src/livekit/dev-server.ts';
import { rootLogger } from '../../src/log.ts';
import { type AvatarSession, startAvatarSession } from '../../src/workers/avatar-session.ts';
import { join, requireServer, waitFor } from './helpers.ts';

const log = rootLogger.child({ test: 'python-agent' }, { level: 'warn' });
const VENV = resolve(process.env.SYNCTALK_AGENTS_VENV ?? '.venv-agents');
const PYTHON = resolve(VENV, 'bin', 'python');
const AGENT_SCRIPT = resolve('test/python/avatar_agent.py');
/** Seconds the agent waits for the avatar to come, and for each wait_for_playout. */
const AGENT_TIMEOUT_S = 60;

/** One JSON line of the agent (see avatar_agent.py's docstring). */
type AgentEvent =
  | { event: 'start'; livekit_agents: string }
  | { event: 'started'; segment: number; at_s: number }
  | {
      event: 'segment';
      name: string;
      sample_rate: number;
      channels: number;
      seconds: number;
      cleared_after_s: number | null;
      playback_position: number;
      interrupted: boolean;
      wait_s: number;
    }
  | { event: 'log'; level: string; logger: string; message: string }
  | { event: 'done'; answers: number }
  | { event: 'error'; message: string };

/** Runs the Python agent to its end; resolves with its exit code, JSON lines and stderr. */
function runPythonAgent(server: DevServer, room: string): Promise<{ code: number | null; events: AgentEvent[]; stderr: string }> {
  const child = spawn(PYTHON, [AGENT_SCRIPT, '--room', room, '--identity', 'agent', '--avatar', 'agent-avatar', '--timeout', String(AGENT_TIMEOUT_S)], {
    env: { ...process.env, LIVEKIT_URL: server.url, LIVEKIT_API_KEY: server.apiKey, LIVEKIT_API_SECRET: server.apiSecret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: AgentEvent[] = [];
  let stderr = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    process.stdout.write(`python agent: ${line}\n`);
    events.push(JSON.parse(line) as AgentEvent);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => done({ code, events, stderr }));
  });
}

/** Root mean square of a received audio chunk. */
const rms = (samples: Float32Array): number => Math.sqrt(samples.reduce((s, x) => s + x * x, 0) / Math.max(1, samples.length));

describe('Python livekit-agents DataStreamAudioOutput -> our avatar session', () => {
  let server: DevServer;
  const rooms: Room[] = [];
  let session: AvatarSession | undefined;
  let seen: ViewerRecord | undefined;

  beforeAll(async () => {
    if (!existsSync(PYTHON)) throw new Error(`the Python agents venv is missing (${PYTHON} not found): run scripts/make-python-venv.sh (scripts/setup.sh does)`);
    server = await requireServer();
    const avatarRoom = await join(server, 'python-agent', 'agent-avatar', 'agent');
    const viewer = await join(server, 'python-agent', 'viewer');
    rooms.push(avatarRoom, viewer);
    session = await startAvatarSession({ room: avatarRoom, agentIdentity: 'agent', log });
    seen = recordViewer(viewer, 'agent-avatar');
  }, 60_000);
  afterAll(async () => {
    seen?.stop();
    await session?.close();
    await Promise.all(rooms.map((r) => r.disconnect()));
    await server?.stop();
  });

  it('mono 24 kHz and stereo 48 kHz segments play with their positions; the cleared one reports interrupted; the viewer gets video and audio', async () => {
    await waitFor('idle video at the viewer', () => ((seen?.video.length ?? 0) >= 10 ? true : undefined), 30_000);
    const { code, events, stderr } = await runPythonAgent(server, 'python-agent');
    const errors = events.filter((e) => e.event === 'error');
    expect(errors, `the Python agent failed (exit ${code}); stderr: ${stderr.slice(-2000)}`).toEqual([]);
    expect(code, stderr.slice(-2000)).toBe(0);

    const start = events.find((e) => e.event === 'start');
    process.stdout.write(`python agent: livekit-agents ${start?.event === 'start' ? start.livekit_agents : '?'}\n`);
    const segments = events.flatMap((e) => (e.event === 'segment' ? [e] : []));
    expect(segments.map((s) => [s.sample_rate, s.channels, s.cleared_after_s !== null])).toEqual([
      [24_000, 1, false],
      [48_000, 2, false],
      [24_000, 1, true],
      [48_000, 2, false],
    ]);
    for (const s of segments.filter((s) => s.cleared_after_s === null)) {
      expect(s.interrupted, s.name).toBe(false);
      expect(s.playback_position, s.name).toBeCloseTo(s.seconds, 2);
    }
    // Cut 0.8 s after its playback_started: the position is what played by the clear, at most the time from
    // playback_started reaching the agent to its clear_buffer() (measured: a loaded machine stretches the 0.8 s)
    // plus playback_started's own way to the agent.
    const cut = segments[2]!;
    expect(cut.seconds).toBeGreaterThan(3);
    expect(cut.interrupted).toBe(true);
    expect(cut.playback_position).toBeGreaterThan(0.3);
    expect(cut.playback_position).toBeLessThan((cut.cleared_after_s ?? 0) + 0.4);

    // Every wait ended on the avatar's lk.playback_finished, not on the output's clear_buffer fallback.
    const done = events.find((e) => e.event === 'done');
    expect(done).toEqual({ event: 'done', answers: 4 });
    const warnings = events.flatMap((e) => (e.event === 'log' ? [e.message] : []));
    expect(warnings.filter((m) => m.includes('playback finished'))).toEqual([]);
    // wait_playback_start: the avatar's lk.playback_started reached the Python output for each segment.
    expect([...new Set(events.flatMap((e) => (e.event === 'started' ? [e.segment] : [])))]).toEqual([0, 1, 2, 3]);

    const video = seen!.video;
    const audio = seen!.audio;
    const speaking = video.filter((f) => f.opening > SPEECH_OPENING).length;
    const loud = audio.filter((a) => rms(a.samples) > 0.01).length;
    process.stdout.write(
      `python agent: positions ${segments.map((s) => `${s.name} ${s.playback_position.toFixed(3)}/${s.seconds.toFixed(3)} s${s.interrupted ? ` (interrupted, cleared ${s.cleared_after_s} s after playback_started)` : ''}`).join(', ')}; ` +
        `viewer: ${video.length} frames (${speaking} speaking), ${audio.length} audio chunks (${loud} loud)\n`,
    );
    expect(speaking).toBeGreaterThan(25);
    expect(loud).toBeGreaterThan(100);
    expect(await session!.ended).toEqual({ reason: 'agent left' });
  }, 240_000);
});
