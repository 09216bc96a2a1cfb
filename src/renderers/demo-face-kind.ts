/**
 * The demo face as a renderer kind: an ONNX file with the demo-face contract (models/demo-face.ts), any path that is
 * not a folder. 16 kHz mono chunks of 1280 samples (80 ms, two frames each), 25 fps, 256x256, no lookahead.
 */
import { statSync } from 'node:fs';
import { DEMO_FACE, DemoFaceRenderer } from '../models/demo-face.ts';
import type { RendererKind } from './renderer-kind.ts';

export const demoFaceKind: RendererKind = {
  name: 'demo face',
  matches: (path) => statSync(path, { throwIfNoEntry: false })?.isDirectory() !== true,
  format: () => ({
    width: DEMO_FACE.size,
    height: DEMO_FACE.size,
    sampleRate: DEMO_FACE.sampleRate,
    channels: 1,
    chunk: DEMO_FACE.chunkSamples,
    fps: DEMO_FACE.fps,
    lookahead: 0,
  }),
  open: async (path, { models, load }) => {
    const lease = await models.acquire(path, load);
    try {
      return { renderer: new DemoFaceRenderer(lease.model), close: () => lease.release() };
    } catch (e) {
      await lease.release();
      throw e;
    }
  },
};
