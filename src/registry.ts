/**
 * The elements a pipeline spec can name: the top of the layers (it imports every element; no element imports it).
 * Add an element here to make it usable from JSON (docs/add-an-element.md). A live session adds its room-bound
 * source and sink (workers/avatar-session.ts).
 */
import { chunkElement } from './operators/chunk.ts';
import { idleFillElement } from './operators/idle-fill.ts';
import { inferElement } from './operators/infer.ts';
import { pairElement } from './operators/pair.ts';
import { resampleElement } from './operators/resample.ts';
import { scaleElement } from './operators/scale.ts';
import { mp4File } from './sinks/mp4-file.ts';
import { nullSink } from './sinks/null.ts';
import { wavFileElement } from './sources/wav-file.ts';
import type { Registry } from './pipelines/spec.ts';

export const registry: Registry = [wavFileElement, idleFillElement, resampleElement, chunkElement, inferElement, scaleElement, pairElement, mp4File, nullSink];
