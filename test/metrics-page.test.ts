/**
 * The test page's live figures and transcript, in headless Debian Chromium on a real livekit-server: the
 * avatar session (live preset, demo face) for the room and an agent that streams its transcript on
 * `lk.transcription` the way agents-js's RoomIO does (one delta stream for its reply, then a non-delta
 * user segment in two streams, interim then final). The page shows:
 *
 * - the frame rate it presents (about 25 fps), the first-frame latency after Join, and the avatar's A/V
 *   offset, read from the avatar participant's `synctalk.av_offset_ms` attribute;
 * - one transcript entry per segment, the agent's text as it streams, the user's replaced by its final text.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { AV_OFFSET_ATTRIBUTE } from '../src/metrics/room-figures.ts';
import { AGENT, pageWorld } from './client/page-world.ts';
import { sleep, waitFor } from './livekit/helpers.ts';

const ROOM = 'page-figures';
const VIEWER = 'user-viewer';

/** Each figure's data-value (null until shown). */
const figures = (page: Page) =>
  page.evaluate(() => {
    const value = (id: string): number | null => {
      const v = document.getElementById(id)?.dataset.value;
      return v === undefined ? null : Number(v);
    };
    return { fps: value('fps'), avOffset: value('av-offset'), firstFrame: value('first-frame') };
  });

/** The transcript list: one entry per segment. */
const transcript = (page: Page) =>
  page.evaluate(() =>
    Array.from(document.querySelectorAll('#transcript li')).map((li) => ({
      segment: (li as HTMLElement).dataset.segment,
      participant: (li as HTMLElement).dataset.participant,
      final: (li as HTMLElement).dataset.final,
      text: li.querySelector('.text')?.textContent,
    })),
  );

describe('test page: live figures and transcript', () => {
  const world = pageWorld(ROOM);

  it('shows fps, first-frame latency, the A/V offset from the room, and the transcript by segment', async () => {
    const { tokens, avatarRoom, agentRoom, context } = world();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${tokens.url}?room=${ROOM}&identity=${VIEWER}&autojoin=1&mic=0`);

    await page.waitForFunction(() => document.getElementById('first-frame')?.dataset.value !== undefined, undefined, { timeout: 30_000 });
    await sleep(2500);
    const shown = await figures(page);
    const attribute = Number(await waitFor('the avatar to publish its A/V offset', () => avatarRoom.localParticipant?.attributes[AV_OFFSET_ATTRIBUTE]));
    await page.waitForFunction(() => document.getElementById('av-offset')?.dataset.value !== undefined, undefined, { timeout: 10_000 });
    const withOffset = await figures(page);
    process.stdout.write(`test page: ${shown.fps} fps, first frame ${shown.firstFrame} ms after Join, A/V offset ${withOffset.avOffset} ms (attribute ${attribute})\n`);
    expect(shown.fps).toBeGreaterThanOrEqual(20);
    expect(shown.fps).toBeLessThanOrEqual(30);
    expect(shown.firstFrame).toBeGreaterThan(0);
    expect(shown.firstFrame).toBeLessThan(15_000);
    expect(Number.isFinite(withOffset.avOffset)).toBe(true);
    expect(Math.abs(withOffset.avOffset ?? Infinity)).toBeLessThan(200);

    // the agent's reply: one delta stream, written as the speech goes
    const local = agentRoom.localParticipant!;
    const reply = await local.streamText({ topic: 'lk.transcription', attributes: { 'lk.transcription_final': 'false', 'lk.segment_id': 'SG_agent1' } });
    await reply.write('Hello, ');
    await page.waitForFunction(() => document.querySelector('#transcript li .text')?.textContent === 'Hello, ', undefined, { timeout: 10_000 });
    await reply.write('I am the avatar.');
    await reply.close();
    // the user's words as recognised: non-delta streams sent by the agent on the user's behalf, interim then final
    for (const [text, final] of [
      ['what can', 'false'],
      ['What can you do?', 'true'],
    ]) {
      const w = await local.streamText({ topic: 'lk.transcription', senderIdentity: VIEWER, attributes: { 'lk.transcription_final': final, 'lk.segment_id': 'SG_user1' } });
      await w.write(text);
      await w.close();
    }
    await page.waitForFunction(() => document.querySelectorAll('#transcript li').length === 2 && document.querySelectorAll('#transcript li')[1].getAttribute('data-final') === 'true', undefined, {
      timeout: 10_000,
    });
    expect(await transcript(page)).toEqual([
      { segment: 'SG_agent1', participant: AGENT, final: 'false', text: 'Hello, I am the avatar.' },
      { segment: 'SG_user1', participant: VIEWER, final: 'true', text: 'What can you do?' },
    ]);
    expect(problems).toEqual([]);
  }, 90_000);
});
