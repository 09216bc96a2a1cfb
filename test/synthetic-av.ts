/**
 * A synthetic av source for sink tests: `seconds * fps` AvFrames of a moving RGBA gradient zipped with a
 * 440 Hz sine at the given rate and channels (exactly 1/fps seconds of audio per frame). When a budget is
 * given it reserves each frame's audio before emitting it (strategy wait), as a real source does.
 */
import { Observable } from 'rxjs';
import { audio, type AvFrame, type PipelineEvent } from '../src/events.ts';
import type { AudioBudget } from '../src/flow/audio-budget.ts';

export interface SyntheticAv {
  readonly seconds: number;
  readonly fps?: number;
  readonly width?: number;
  readonly height?: number;
  readonly sampleRate: number;
  readonly channels: number;
  readonly budget?: AudioBudget;
}

/** The RGBA picture of frame `i`: a gradient with a bar sweeping across once a second. */
const picture = (i: number, width: number, height: number, fps: number): Uint8Array => {
  const data = new Uint8Array(width * height * 4);
  const bar = Math.floor(((i % fps) / fps) * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      const on = Math.abs(x - bar) < 8;
      data[o] = on ? 255 : x & 255;
      data[o + 1] = on ? 255 : y & 255;
      data[o + 2] = (i * 4) & 255;
      data[o + 3] = 255;
    }
  }
  return data;
};

export const avFrame = (i: number, o: Required<Omit<SyntheticAv, 'seconds' | 'budget'>>, pictures: readonly Uint8Array[]): AvFrame => {
  const n = Math.round(o.sampleRate / o.fps);
  const samples = new Float32Array(n * o.channels);
  for (let s = 0; s < n; s++) {
    const v = 0.3 * Math.sin((2 * Math.PI * 440 * (i * n + s)) / o.sampleRate);
    for (let c = 0; c < o.channels; c++) samples[s * o.channels + c] = v;
  }
  return {
    type: 'av',
    video: { type: 'video', width: o.width, height: o.height, data: pictures[i % pictures.length], pts: i / o.fps, segment: 0, index: i },
    audio: audio(samples, o.sampleRate, o.channels, i / o.fps, 0),
  };
};

export const syntheticAv = (spec: SyntheticAv): Observable<PipelineEvent> =>
  new Observable<PipelineEvent>((subscriber) => {
    const o = { fps: 25, width: 256, height: 256, ...spec };
    const frames = Math.round(o.seconds * o.fps);
    const pictures = Array.from({ length: o.fps }, (_, i) => picture(i, o.width, o.height, o.fps));
    let stopped = false;
    void (async () => {
      for (let i = 0; i < frames && !stopped; i++) {
        await o.budget?.reserve(1 / o.fps);
        if (stopped) return;
        subscriber.next(avFrame(i, o, pictures));
      }
      subscriber.complete();
    })();
    return () => {
      stopped = true;
    };
  });
