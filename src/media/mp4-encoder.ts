/**
 * Mp4Encoder: one Debian `ffmpeg` process turning raw RGBA frames and float32 PCM into an MP4 file:
 * H.264 (libx264, yuv420p, constant frame rate) + AAC at the source sample rate and channel count,
 * `+faststart`. Audio is neither resampled nor truncated (no `-shortest`).
 *
 * Video goes to ffmpeg's stdin (`-f rawvideo -pix_fmt rgba -i pipe:0`), audio to a second pipe on
 * fd 3 (`-f f32le -i pipe:3`). The two pipes are written independently: each chunk goes into its own
 * pipe's write queue at once, so a full video pipe never holds audio back or the reverse. `write`'s
 * callback fires once both chunks have been taken by the pipes; callers bound what is queued by waiting
 * on it (the mp4-file sink releases the audio budget there). ffmpeg is started so that it takes both
 * pipes even when they are fed strictly one frame at a time (see `mp4Args`).
 *
 * The folder of `path` is created when missing (an InputError naming it when it cannot be). The file is
 * written to a hidden temporary name beside `path` and renamed onto `path` when ffmpeg exits cleanly;
 * only a regular file or nothing is replaced (checkOutputPath, at the start and again before the rename).
 * `abort()` kills ffmpeg and removes the temporary file; it never throws. `Mp4Encoder.settled()` waits
 * for every ffmpeg of this process to be gone (and its temporary file removed), for a clean exit on a signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { InputError } from '../errors.ts';
import { checkOutputPath } from './output-path.ts';
import { StderrTail } from './stderr-tail.ts';

export interface Mp4Format {
  readonly width: number;
  readonly height: number;
  /** Frames per second, in and out. */
  readonly fps: number;
  /** Hz, in and out. */
  readonly sampleRate: number;
  readonly channels: number;
  /** x264 constant rate factor, 0-51. */
  readonly crf: number;
  /** x264 preset name. */
  readonly preset: string;
  /** AAC bitrate as ffmpeg takes it, e.g. '256k'. */
  readonly audioBitrate: string;
}

let serial = 0;
/** The exits of the encoders whose ffmpeg still runs. */
const running = new Set<Promise<unknown>>();

/** Removes `path` if it is there; never throws (the folder may be gone or not a folder). */
const removeQuietly = (path: string): void => {
  try {
    rmSync(path, { force: true });
  } catch {
    // nothing was written there, or it cannot be reached: either way no partial file is left by us
  }
};

export class Mp4Encoder {
  /** Where ffmpeg writes until it exits cleanly. */
  readonly tmpPath: string;
  /**
   * Settles when ffmpeg exits: resolves if it exited with code 0 after `finish()`, else rejects with
   * one InputError line quoting ffmpeg's last stderr line.
   */
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private readonly video: Writable;
  private readonly audio: Writable;
  private readonly stderr = new StderrTail();
  private ending = false;
  private aborted = false;
  private pipeError: Error | undefined;

  constructor(
    readonly path: string,
    format: Mp4Format,
  ) {
    checkOutputPath(path);
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (e) {
      throw new InputError(path, `cannot create its folder ${dirname(path)}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    this.tmpPath = join(dirname(path), `.${basename(path)}.${process.pid}-${serial++}.partial`);
    this.child = spawn('ffmpeg', mp4Args(format, this.tmpPath), { stdio: ['pipe', 'ignore', 'pipe', 'pipe'] });
    const [stdin, , stderr, fd3] = this.child.stdio;
    if (!(stdin instanceof Writable) || !(fd3 instanceof Writable) || stderr === null) {
      throw new Error('ffmpeg was spawned without its pipes');
    }
    this.video = stdin;
    this.audio = fd3;
    stderr.on('data', (chunk: Buffer) => this.stderr.push(chunk));
    const onPipeError = (e: Error): void => {
      // EPIPE when ffmpeg died first: its exit (below) is the real report.
      this.pipeError ??= e;
      this.kill();
    };
    this.video.on('error', onPipeError);
    this.audio.on('error', onPipeError);
    this.exited = new Promise<void>((resolve, reject) => {
      this.child.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new InputError(
            'mp4-file',
            e.code === 'ENOENT' ? 'ffmpeg not found on PATH; apt-get install ffmpeg' : `cannot start ffmpeg: ${e.message}`,
          ),
        ),
      );
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.aborted) removeQuietly(this.tmpPath);
        if (code === 0 && this.ending) {
          resolve();
          return;
        }
        const how = code === 0 ? 'ffmpeg exited before the input ended' : signal ? `ffmpeg stopped by ${signal}` : `ffmpeg exited with code ${code}`;
        reject(new InputError(path, `${how}: ${this.stderr.lastLine(this.pipeError?.message ?? 'no message')}`));
      });
    });
    const exit = this.exited.catch(() => undefined).finally(() => running.delete(exit));
    running.add(exit);
  }

  /** Resolves once no ffmpeg started by an encoder of this process runs any more. */
  static async settled(): Promise<void> {
    while (running.size > 0) await Promise.all(running);
  }

  /** Queues one frame's video (RGBA) and audio (interleaved float32); `done` once both pipes took them. */
  write(video: Uint8Array, audio: Float32Array, done: () => void): void {
    let pending = 2;
    const written = (e?: Error | null): void => {
      if (!e && --pending === 0) done();
    };
    this.video.write(video, written);
    this.audio.write(Buffer.from(audio.buffer, audio.byteOffset, audio.byteLength), written);
  }

  /** Closes both inputs, waits for ffmpeg to finish the file, then moves it onto `path`. */
  async finish(): Promise<void> {
    this.ending = true;
    this.video.end();
    this.audio.end();
    await this.exited;
    if (this.aborted) return;
    checkOutputPath(this.path);
    await rename(this.tmpPath, this.path);
  }

  /** Kills ffmpeg and removes the partial file (again once ffmpeg is gone, in case it was still opening it). */
  abort(): void {
    this.aborted = true;
    this.kill();
    this.video.destroy();
    this.audio.destroy();
    removeQuietly(this.tmpPath);
  }

  private kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * Why ffmpeg never stops reading one pipe while we wait on the other:
 * - `-probesize 32 -analyzeduration 0` on both inputs. ffmpeg opens its inputs one after the other and by
 *   default reads about a second of each first (~30 frames of audio before it takes a second video frame);
 *   the formats are given on the command line, so nothing needs probing.
 * - `-thread_queue_size 512` on the audio input. Once running, ffmpeg 5.1 reads only the input feeding the
 *   output stream furthest behind, and x264 holds back its lookahead (10 frames at veryfast, 60 at
 *   veryslow, plus one per thread), so ffmpeg takes no audio until video is that far ahead. Its audio
 *   reader thread keeps reading into this queue meanwhile: 512 packets of 1024 samples (about 11 s at
 *   48 kHz, 4 MiB of stereo float32; strategy wait). Measured: frames written strictly one at a time
 *   (each frame's video and audio taken before the next) run to the end at 8 and 48 kHz, from ultrafast
 *   to veryslow; without these options they stall after 1 to 20 frames.
 */
const unprobed = ['-probesize', '32', '-analyzeduration', '0'];

const mp4Args = (f: Mp4Format, out: string): string[] => [
  ...['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error', '-y'],
  ...unprobed,
  ...['-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${f.width}x${f.height}`, '-framerate', String(f.fps), '-i', 'pipe:0'],
  ...unprobed,
  ...['-thread_queue_size', '512'],
  ...['-f', 'f32le', '-ar', String(f.sampleRate), '-ac', String(f.channels), '-i', 'pipe:3'],
  ...['-map', '0:v:0', '-map', '1:a:0'],
  ...['-c:v', 'libx264', '-preset', f.preset, '-crf', String(f.crf), '-pix_fmt', 'yuv420p', '-r', String(f.fps), '-fps_mode', 'cfr'],
  ...['-c:a', 'aac', '-b:a', f.audioBitrate],
  ...['-movflags', '+faststart', '-f', 'mp4', out],
];
