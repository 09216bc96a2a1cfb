/**
 * check-mp4: checks an MP4 that `render` wrote against the WAV it was rendered from, as CI does after
 * `npm start`: H.264 video at the expected frame rate, AAC audio, and both streams as long as the WAV
 * within a tolerance. One line per check; exit 1 when any fails.
 *
 * usage: node --import tsx scripts/check-mp4.ts <out.mp4> <in.wav> [--fps 25] [--tolerance-ms 40]
 */
import { parseArgs } from 'node:util';
import { probe } from '../src/media/ffprobe.ts';
import { readWav } from '../src/sources/wav-reader.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { fps: { type: 'string', default: '25' }, 'tolerance-ms': { type: 'string', default: '40' } },
});
const [mp4, wav] = positionals;
if (mp4 === undefined || wav === undefined) {
  console.error('usage: check-mp4.ts <out.mp4> <in.wav> [--fps 25] [--tolerance-ms 40]');
  process.exit(2);
}
const fps = Number(values.fps);
const toleranceS = Number(values['tolerance-ms']) / 1000;

let frames = 0;
let rate = 0;
for await (const block of readWav(wav, { blockFrames: 65536, nonFinite: 'silence' })) {
  rate = block.format.sampleRate;
  frames += block.samples.length / block.format.channels;
}
const wavS = frames / rate;
const { video, audio } = await probe(mp4);

const checks: Array<[string, boolean]> = [
  [`video codec ${video?.codec} (h264)`, video?.codec === 'h264'],
  [`video ${video?.fps} fps (${fps})`, video?.fps === fps],
  [`audio codec ${audio?.codec} (aac)`, audio?.codec === 'aac'],
  [`video ${video?.duration.toFixed(3)} s vs WAV ${wavS.toFixed(3)} s (±${toleranceS} s)`, video !== undefined && Math.abs(video.duration - wavS) <= toleranceS],
  [`audio ${audio?.duration.toFixed(3)} s vs WAV ${wavS.toFixed(3)} s (±${toleranceS} s)`, audio !== undefined && Math.abs(audio.duration - wavS) <= toleranceS],
];
for (const [what, ok] of checks) console.log(`${ok ? 'ok  ' : 'FAIL'} ${mp4}: ${what}`);
process.exit(checks.every(([, ok]) => ok) ? 0 : 1);
