/**
 * probe: what a media file holds, read with Debian's `ffprobe` (JSON output, frames counted by decoding).
 *
 * Units: `fps` frames per second, `duration` seconds, `sampleRate` Hz. Only the first video and the first
 * audio stream are reported.
 */
import { execFile } from 'node:child_process';
import { InputError } from '../errors.ts';
import { lastLine } from './stderr-tail.ts';

export interface ProbedVideo {
  readonly codec: string;
  readonly width: number;
  readonly height: number;
  /** The stream's frame rate (`r_frame_rate`), frames per second. */
  readonly fps: number;
  /** Frames counted by decoding the whole stream (`-count_frames`). */
  readonly frames: number;
  /** Seconds. */
  readonly duration: number;
}

export interface ProbedAudio {
  readonly codec: string;
  /** Hz. */
  readonly sampleRate: number;
  readonly channels: number;
  /** Seconds. */
  readonly duration: number;
}

export interface Probe {
  readonly video?: ProbedVideo;
  readonly audio?: ProbedAudio;
}

interface FfprobeStream {
  readonly codec_type?: string;
  readonly codec_name?: string;
  readonly width?: number;
  readonly height?: number;
  readonly r_frame_rate?: string;
  readonly nb_read_frames?: string;
  readonly sample_rate?: string;
  readonly channels?: number;
  readonly duration?: string;
}

/** Reads `path` with ffprobe. Rejects with an InputError naming `path` when ffprobe is missing or fails. */
export const probe = (path: string): Promise<Probe> =>
  new Promise((resolve, reject) => {
    execFile(
      'ffprobe',
      ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', path],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const notFound = (error as NodeJS.ErrnoException).code === 'ENOENT';
          reject(
            new InputError(
              path,
              notFound ? 'ffprobe not found on PATH; apt-get install ffmpeg' : `ffprobe failed: ${lastLine(stderr, error.message)}`,
            ),
          );
          return;
        }
        const streams = (JSON.parse(stdout) as { streams?: FfprobeStream[] }).streams ?? [];
        const v = streams.find((s) => s.codec_type === 'video');
        const a = streams.find((s) => s.codec_type === 'audio');
        resolve({
          ...(v
            ? {
                video: {
                  codec: v.codec_name ?? 'unknown',
                  width: v.width ?? 0,
                  height: v.height ?? 0,
                  fps: rate(v.r_frame_rate),
                  frames: Number(v.nb_read_frames ?? 0),
                  duration: Number(v.duration ?? NaN),
                },
              }
            : {}),
          ...(a
            ? {
                audio: {
                  codec: a.codec_name ?? 'unknown',
                  sampleRate: Number(a.sample_rate ?? 0),
                  channels: a.channels ?? 0,
                  duration: Number(a.duration ?? NaN),
                },
              }
            : {}),
        });
      },
    );
  });

/** "25/1" -> 25. */
const rate = (fraction: string | undefined): number => {
  const [num, den] = (fraction ?? '0/1').split('/').map(Number);
  return den ? num / den : 0;
};
