/**
 * The pieces that keep an agent's audio from ending a session, without a server: one answer per
 * stream in stream order (PlaybackAnswers), the sample_rate / num_channels rules (parseStreamFormat),
 * and the channel mixing into the track's layout (mixChannels).
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PlaybackAnswers } from '../../src/livekit/playback-answers.ts';
import { mixChannels } from '../../src/dsp/pcm.ts';
import { parseStreamFormat } from '../../src/sources/datastream-audio.ts';

const quiet = pino({ level: 'silent' });

describe('PlaybackAnswers', () => {
  it('sends one answer per segment, in segment order, the first answer winning', () => {
    const sent: Array<[number, boolean]> = [];
    const answers = new PlaybackAnswers((p, i) => sent.push([p, i]), quiet);
    for (let s = 0; s < 4; s++) answers.opened(s);
    answers.answer(2, 0, true);
    answers.answer(1, 0.5, false);
    expect(sent).toEqual([]);
    answers.answer(0, 1.25, true);
    answers.answer(0, 0, true);
    answers.answer(1, 9, true);
    expect(sent).toEqual([
      [1.25, true],
      [0.5, false],
      [0, true],
    ]);
    expect(answers.outstanding).toBe(1);
    answers.answerOutstanding();
    answers.answer(3, 2, false);
    expect(sent.at(-1)).toEqual([0, true]);
    expect(sent).toHaveLength(4);
    answers.answer(7, 1, false);
    expect(sent).toHaveLength(4);
  });

  it('beyond maxOutstanding, a new segment is answered at once and skipped in order later', () => {
    const sent: Array<[number, boolean]> = [];
    const answers = new PlaybackAnswers((p, i) => sent.push([p, i]), quiet, { maxOutstanding: 2 });
    answers.opened(0);
    answers.opened(1);
    answers.opened(2);
    expect(sent).toEqual([[0, true]]);
    answers.answer(2, 5, false);
    answers.answer(0, 1, false);
    answers.answer(1, 2, false);
    expect(sent).toEqual([
      [0, true],
      [1, false],
      [2, false],
    ]);
    expect(answers.outstanding).toBe(0);
  });
});

describe('parseStreamFormat', () => {
  it('takes plain decimal integers: sample_rate 8000..192000, num_channels 1..8', () => {
    expect(parseStreamFormat({ sample_rate: '24000', num_channels: '2' })).toEqual({ sampleRate: 24_000, channels: 2 });
    expect(parseStreamFormat({ sample_rate: '8000', num_channels: '8' })).toEqual({ sampleRate: 8000, channels: 8 });
    expect(parseStreamFormat({ sample_rate: '192000', num_channels: '1' })).toEqual({ sampleRate: 192_000, channels: 1 });
    expect(parseStreamFormat({ sample_rate: '4000', num_channels: '1' }, 4000, 8000)).toEqual({ sampleRate: 4000, channels: 1 });
  });

  it('names the attribute at fault for anything else', () => {
    for (const rate of ['1e4', ' 24000 ', '0x1', '1000000000', '1', '7999', '192001', '-24000', '24000.0', '024000', '', '+24000']) {
      expect(parseStreamFormat({ sample_rate: rate, num_channels: '1' }), rate).toMatch(/^attribute sample_rate=".*" is not a plain decimal integer from 8000 to 192000$/);
    }
    for (const ch of ['0', '9', '300', '1.0', ' 2', 'two']) {
      expect(parseStreamFormat({ sample_rate: '24000', num_channels: ch }), ch).toMatch(/^attribute num_channels=".*" is not a plain decimal integer from 1 to 8$/);
    }
    expect(parseStreamFormat({ num_channels: '1' })).toBe('attribute sample_rate is missing');
    expect(parseStreamFormat({ sample_rate: '24000' })).toBe('attribute num_channels is missing');
    expect(parseStreamFormat({ sample_rate: '9'.repeat(500), num_channels: '1' })!.toString().length).toBeLessThan(120);
  });
});

describe('mixChannels', () => {
  it('fans mono out, averages extra channels, repeats fewer, passes the same count', () => {
    expect([...mixChannels(new Float32Array([0.5, -0.5]), 1, 2)]).toEqual([0.5, 0.5, -0.5, -0.5]);
    expect([...mixChannels(new Float32Array([0.5, 0.25, -1, 0]), 2, 1)]).toEqual([0.375, -0.5]);
    expect([...mixChannels(new Float32Array([1, 2, 3, 4, 5, 6]), 6, 2)]).toEqual([3, 4]);
    expect([...mixChannels(new Float32Array([1, 2, 3]), 3, 2)]).toEqual([2, 2]);
    expect([...mixChannels(new Float32Array([1, 2]), 2, 4)]).toEqual([1, 2, 1, 2]);
    const same = new Float32Array([1, 2]);
    expect(mixChannels(same, 2, 2)).toBe(same);
  });
});
