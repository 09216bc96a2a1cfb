/**
 * A SyncTalk avatar bundle as a renderer kind: a folder (docs/synctalk-bundle.md; one without manifest.json is
 * reported as such). 16 kHz mono chunks of any size, 25 fps, the manifest's frame size, 252.5 ms of lookahead
 * ('full') or 132.5 ms ('low-latency'); see synctalk/renderer.ts.
 */
import { LOOKAHEAD_SECONDS } from '../synctalk/audio-attention-windows.ts';
import { SYNCTALK_FPS } from '../synctalk/ave-windows.ts';
import { isBundleFolder, readSyncTalkManifest, SyncTalkBundle } from '../synctalk/bundle.ts';
import { MEL_SAMPLE_RATE } from '../synctalk/mel.ts';
import { SyncTalkRenderer } from '../synctalk/renderer.ts';
import type { RendererKind } from './renderer-kind.ts';

export const syncTalkBundleKind: RendererKind = {
  name: 'SyncTalk bundle',
  matches: isBundleFolder,
  format: (path, { lookahead = 'full' }) => {
    const { width, height } = readSyncTalkManifest(path);
    return { width, height, sampleRate: MEL_SAMPLE_RATE, channels: 1, chunk: null, fps: SYNCTALK_FPS, lookahead: LOOKAHEAD_SECONDS[lookahead] };
  },
  open: async (path, { models, load, lookahead }) => {
    const bundle = await SyncTalkBundle.open(path, (graph) => models.acquire(graph, load));
    return { renderer: new SyncTalkRenderer(bundle, { lookahead }), close: () => bundle.close() };
  },
};
