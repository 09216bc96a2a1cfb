/**
 * `npm run bench`: prints one table of figures. Speed targets live here, never in timed unit tests.
 * On the shared 2-core machines, compare ratios from one run; absolute times are only meaningful on
 * a dedicated (GPU) machine. Each row names its target where the issues set one.
 * Run with NODE_ENV=production (the npm script does), which keeps rtc-node's debug lines off stdout.
 */
import { dispose } from '@livekit/rtc-node';
import { frameworkCost } from './framework.ts';
import { demoModelMsPerFrame, eventLoopLag, sharedModelThroughput } from './inference.ts';
import { measureLiveAvatar } from './livekit.ts';
import { syncTalkMarchingCost, syncTalkMsPerFrame, syncTalkReferenceMsPerFrame, syncTalkRoomsThroughput } from './synctalk.ts';

interface Row {
  readonly figure: string;
  readonly value: string;
  readonly target: string;
}

const rows: Row[] = [];
const add = (figure: string, value: string, target = ''): void => {
  rows.push({ figure, value, target });
  process.stderr.write(`  ${figure}: ${value}\n`);
};

async function main(): Promise<void> {
  process.stderr.write('running benchmarks...\n');

  const fw = await frameworkCost(30);
  add('framework CPU per 40 ms frame (main thread, model run excluded)', `${fw.cpuMsPerFrame.toFixed(3)} ms`, '< 1 ms');
  add('framework CPU as a share of real time', `${((fw.cpuMsPerFrame / 40) * 100).toFixed(2)} %`);
  add('main-thread busy (wall clock) per frame, for comparison', `${fw.busyMsPerFrame.toFixed(3)} ms`);
  add('demo render pipeline speed (WAV 48 kHz stereo -> null sink, cpu)', `${fw.realtimeFactor.toFixed(1)}x real time`);

  const b1 = await demoModelMsPerFrame(1);
  const b8 = await demoModelMsPerFrame(8);
  add('demo model time per frame, batch 1 (cpu, 1 thread, worker round trip)', `${b1.toFixed(2)} ms`);
  add('demo model time per frame, batch 8', `${b8.toFixed(2)} ms`);
  add('batch 8 / batch 1 per-frame time', `${(b8 / b1).toFixed(2)}`);

  const shared = await sharedModelThroughput(4, { maxBatch: 16 });
  add('demo model, 4 sessions sharing it: frames/s unbatched', `${shared.unbatchedFps.toFixed(0)} fps`);
  add('demo model, 4 sessions sharing it: frames/s batched (maxBatch 16)', `${shared.batchedFps.toFixed(0)} fps`);
  add('demo model, 4 sessions sharing it: batched / unbatched', `${shared.speedup.toFixed(2)}x`);
  add('demo model, 4 sessions sharing it: mean frames per model run (batched)', `${shared.meanRowsPerRun.toFixed(1)}`);

  const lag = await eventLoopLag(3, 8);
  add('event-loop lag while inference runs (max)', `${lag.maxMs.toFixed(1)} ms`, '< 10 ms');
  add('event-loop lag while inference runs (p99)', `${lag.p99Ms.toFixed(1)} ms`);

  const live = await measureLiveAvatar();
  add('A/V offset at a LiveKit viewer, demo avatar (mouth vs audio envelope; + = audio late)', `${live.avOffsetMs.toFixed(0)} ms`, '|x| <= 40');
  add('latency: first audio byte sent by the agent -> first speech frame at the viewer', `${live.latencyMs.toFixed(0)} ms`, '< 150 ms');
  add('frame rate at the viewer: idle / speech', `${live.idleFps.toFixed(1)} / ${live.speechFps.toFixed(1)} fps`, '25');

  for (const size of [64, 128]) {
    const st = await syncTalkMsPerFrame(size);
    const ref = await syncTalkReferenceMsPerFrame(size);
    add(`SyncTalk renderer per frame at ${size}x${size} (cpu, 1 thread, portrait)`, `${st.msPerFrame.toFixed(0)} ms`);
    add(`SyncTalk render.onnx alone at ${size}x${size}`, `${st.renderMs.toFixed(0)} ms`);
    add(`PyTorch reference per frame at ${size}x${size} (cpu, 1 thread)`, `${ref.toFixed(0)} ms`);
    add(`reference / renderer time at ${size}x${size}`, `${(ref / st.msPerFrame).toFixed(2)}`, '> 1');
    if (size === 128) add('SyncTalk renderer at 512x512, scaled by pixel count from 128x128', `${((st.msPerFrame * 16) / 1000).toFixed(1)} s`);
  }

  const marching = await syncTalkMarchingCost(128);
  add('SyncTalk render.onnx at 128x128, head: exact schedule / fixed-16 (--samples 16)', `${marching.headExactMs.toFixed(0)} / ${marching.headFixedMs.toFixed(0)} ms`);
  add('exact render graph / fixed-16 graph time (128x128, head)', `${(marching.headExactMs / marching.headFixedMs).toFixed(2)}`, '<= 1.15');
  add('SyncTalk render.onnx at 128x128, portrait: exact schedule / fixed-16', `${marching.portraitExactMs.toFixed(0)} / ${marching.portraitFixedMs.toFixed(0)} ms`);
  add('exact render graph / fixed-16 graph time (128x128, portrait: + densities of the rays outside every mask, they count in n_alive)', `${(marching.portraitExactMs / marching.portraitFixedMs).toFixed(2)}`);

  const rooms = await syncTalkRoomsThroughput(64, 4);
  add('SyncTalk, 4 rooms sharing one 64x64 bundle: frames/s unbatched (cpu, 1 thread)', `${rooms.unbatchedFps.toFixed(1)} fps`);
  add('SyncTalk, 4 rooms sharing one 64x64 bundle: frames/s batched (maxBatch 16)', `${rooms.batchedFps.toFixed(1)} fps`);
  add('SyncTalk 4 rooms batched / unbatched throughput', `${rooms.speedup.toFixed(2)}x`);
  add('SyncTalk 4 rooms: mean frames per render.onnx run (batched)', `${rooms.meanRowsPerRun.toFixed(1)}`);
  add('SyncTalk render.onnx alone at 64x64, ms per frame: batch 1 / batch 4', `${rooms.renderMsPerFrame.batch1.toFixed(1)} / ${rooms.renderMsPerFrame.batch4.toFixed(1)} ms`);

  const w1 = Math.max(...rows.map((r) => r.figure.length), 'figure'.length);
  const w2 = Math.max(...rows.map((r) => r.value.length), 'value'.length);
  const line = (a: string, b: string, c: string): string => `| ${a.padEnd(w1)} | ${b.padStart(w2)} | ${c.padEnd(8)} |`;
  const out = [line('figure', 'value', 'target'), `|${'-'.repeat(w1 + 2)}|${'-'.repeat(w2 + 2)}|${'-'.repeat(10)}|`, ...rows.map((r) => line(r.figure, r.value, r.target))];
  process.stdout.write(`${out.join('\n')}\n`);
}

await main();
// rtc-node's native side keeps the process alive until it is disposed.
await dispose();
process.exit(0);
