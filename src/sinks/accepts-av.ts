/** The caps check shared by the sinks: they take av frames (video zipped with its audio) and nothing else. */
import type { Caps } from '../pipelines/element.ts';

/** null for av caps, else a message naming what came instead. */
export const acceptsAv = (caps: Caps): string | null => {
  switch (caps.kind) {
    case 'av':
      return null;
    case 'video':
      return `needs av frames (video zipped with its audio), got video alone (${caps.width}x${caps.height}); add a pair element (it zips each frame with its source audio) before the sink`;
    case 'audio':
      return `needs av frames (video zipped with its audio), got audio alone (${caps.sampleRate ?? 'any'} Hz, ${caps.channels ?? 'any'} channels); render video from it first`;
  }
};
