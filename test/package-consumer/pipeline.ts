/**
 * A pipeline composed in code from the installed package: WAV -> resample -> chunk -> gain (this
 * project's own operator) -> infer (the bundled demo face) -> pair -> MP4.
 *
 *   node out/pipeline.js in.wav out.mp4     prints one JSON line: {"frames": n, "seconds": s}
 */
import { connectable, lastValueFrom, Subject } from 'rxjs';
import {
  AudioBudget,
  chunk,
  infer,
  inferParams,
  mp4File,
  openRenderer,
  pairWithAudio,
  resample,
  rootLogger,
  wavFile,
  type InferParams,
  type PipelineEvent,
  type SinkProgress,
} from 'synctalk-live';
import { gain } from './gain.js';

const [input, output] = process.argv.slice(2);
if (input === undefined || output === undefined) throw new Error('usage: node out/pipeline.js in.wav out.mp4');
const fps = 25;
const log = rootLogger.child({ element: 'consumer' });
const budget = new AudioBudget(2);
const params: InferParams = inferParams.parse({ model: 'demo', providers: ['cpu'] });
// @ts-expect-error a misspelt provider is a type error: the declarations are the real ones, not `any`
const wrong: InferParams = { ...params, providers: ['cdua'] };
void wrong;

const { renderer, close } = await openRenderer(params, { log });
try {
  const source = connectable(wavFile(input, { budget, log }), { connector: () => new Subject<PipelineEvent>() });
  const frames = source.pipe(resample({ rate: 16_000, channels: 1 }), chunk({ size: 1280 }), gain(0.5), infer(renderer, { maxInFlight: 2, fps }), pairWithAudio(source, { fps }));
  const write = mp4File.create(mp4File.params.parse({ path: output }), { fps, budget, log, sourceEvents: source });
  const done: Promise<SinkProgress> = lastValueFrom(write(frames));
  source.connect();
  const { frames: n, seconds } = await done;
  console.log(JSON.stringify({ frames: n, seconds }));
} finally {
  await close();
}
