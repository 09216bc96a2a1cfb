/**
 * A pipeline composed in code instead of JSON: the same elements, as RxJS operators.
 *
 *   node --import tsx examples/compose-in-code.ts in.wav out.mp4
 *
 * The WAV source is multicast so that `pairWithAudio` gets the original audio while the model works on
 * its 16 kHz copy; it is connected once everything downstream has subscribed.
 */
import { Subject, connectable, lastValueFrom } from 'rxjs';
import { pino } from 'pino';
import type { PipelineEvent } from '../src/events.ts';
import { AudioBudget } from '../src/flow/audio-budget.ts';
import { infer } from '../src/operators/infer.ts';
import { chunk } from '../src/operators/chunk.ts';
import { pairWithAudio } from '../src/operators/pair.ts';
import { resample } from '../src/operators/resample.ts';
import { openRenderer } from '../src/renderers/kinds.ts';
import { mp4File } from '../src/sinks/mp4-file.ts';
import { wavFile } from '../src/sources/wav-file.ts';

const [input = 'examples/assets/hello.wav', output = 'out/composed.mp4'] = process.argv.slice(2);
const log = pino({ level: 'warn' });
const budget = new AudioBudget(2);
const fps = 25;

const { renderer, close } = await openRenderer({ model: 'demo', providers: ['cpu'], intraOpThreads: 1 }, { log });
try {
  const source = connectable(wavFile(input, { budget, log }), { connector: () => new Subject<PipelineEvent>() });
  const frames = source.pipe(resample({ rate: 16_000, channels: 1 }), chunk({ size: 1280 }), infer(renderer, { maxInFlight: 2, fps }), pairWithAudio(source, { fps }));
  const write = mp4File.create(mp4File.params.parse({ path: output }), { fps, budget, log, sourceEvents: source });
  const done = lastValueFrom(write(frames));
  source.connect();
  const { frames: n, seconds } = await done;
  console.log(`wrote ${output}: ${n} frames, ${seconds.toFixed(2)} s`);
} finally {
  await close();
}
