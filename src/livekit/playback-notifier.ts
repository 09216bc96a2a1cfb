/**
 * PlaybackNotifier: the avatar's outgoing RPCs of LiveKit's avatar protocol, sent to the agent.
 *
 * - `started()`: `lk.playback_started`, payload "". An agent that does not handle it (agents-js by
 *   default) answers UNSUPPORTED_METHOD: logged once, and later calls are skipped.
 * - `finished(position, interrupted)`: `lk.playback_finished`, payload exactly
 *   `{"playback_position": <s>, "interrupted": <bool>, "synchronized_transcript": null}`.
 * - Calls are sent one at a time in order; each is tried 3 times with 0.1 s between tries.
 * - Queue bound: `maxQueued` calls (default 16; strategy: drop the oldest `lk.playback_started`, with a
 *   warning). `lk.playback_finished` is never dropped, since an agent waits for each one; those are
 *   bounded by PlaybackAnswers (one per stream, at most its `maxOutstanding` unsent).
 * - `close()` takes no more calls, drops the queued `lk.playback_started`, and resolves once the queued
 *   `lk.playback_finished` calls have been sent (or have failed).
 */
import { type Room, RpcError } from '@livekit/rtc-node';
import type { Logger } from '../log.ts';
import { playbackFinishedPayload, RPC_PLAYBACK_FINISHED, RPC_PLAYBACK_STARTED } from './protocol.ts';

export interface PlaybackNotifierOptions {
  /** Tries per call (default 3). */
  readonly tries?: number;
  /** Milliseconds between tries (default 100). */
  readonly retryDelayMs?: number;
  /** Milliseconds the agent has to answer one try (default 5000). */
  readonly responseTimeoutMs?: number;
  /** Calls queued at most (default 16). */
  readonly maxQueued?: number;
}

interface Call {
  readonly method: string;
  readonly payload: string;
}

export class PlaybackNotifier {
  private readonly queue: Call[] = [];
  private running: Promise<void> | null = null;
  private startedUnsupported = false;
  private closed = false;
  private readonly tries: number;
  private readonly retryDelayMs: number;
  private readonly responseTimeoutMs: number;
  private readonly maxQueued: number;

  constructor(
    private readonly room: Room,
    /** The agent's identity. */
    private readonly agentIdentity: string,
    private readonly log: Logger,
    options: PlaybackNotifierOptions = {},
  ) {
    this.tries = options.tries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 100;
    this.responseTimeoutMs = options.responseTimeoutMs ?? 5000;
    this.maxQueued = options.maxQueued ?? 16;
  }

  /** The first audio of a segment is playing. */
  started(): void {
    if (!this.startedUnsupported) this.enqueue({ method: RPC_PLAYBACK_STARTED, payload: '' });
  }

  /** A segment ended (`interrupted` false) or was cut (`true`) after `position` seconds of it played. */
  finished(position: number, interrupted: boolean): void {
    this.enqueue({ method: RPC_PLAYBACK_FINISHED, payload: playbackFinishedPayload(position, interrupted) });
  }

  /** Resolves when every queued call has been sent (or has failed). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    const finished = this.queue.filter((c) => c.method === RPC_PLAYBACK_FINISHED);
    this.queue.splice(0, this.queue.length, ...finished);
    await this.idle();
  }

  private enqueue(call: Call): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueued) {
      const oldest = this.queue.findIndex((c) => c.method === RPC_PLAYBACK_STARTED);
      if (oldest >= 0) {
        this.queue.splice(oldest, 1);
        this.log.warn({ method: RPC_PLAYBACK_STARTED }, 'playback notifications queue full; oldest playback_started dropped');
      }
    }
    this.queue.push(call);
    if (this.running === null) {
      this.running = this.drain().finally(() => {
        this.running = null;
      });
    }
  }

  private async drain(): Promise<void> {
    for (let call = this.queue.shift(); call !== undefined; call = this.queue.shift()) {
      if (call.method === RPC_PLAYBACK_STARTED && this.startedUnsupported) continue;
      await this.send(call);
    }
  }

  private async send(call: Call): Promise<void> {
    const local = this.room.localParticipant;
    for (let attempt = 1; attempt <= this.tries; attempt++) {
      if (local === undefined || !this.room.isConnected) {
        this.log.warn({ method: call.method }, 'room not connected; playback notification not sent');
        return;
      }
      try {
        await local.performRpc({ destinationIdentity: this.agentIdentity, method: call.method, payload: call.payload, responseTimeout: this.responseTimeoutMs });
        return;
      } catch (err) {
        if (call.method === RPC_PLAYBACK_STARTED && err instanceof RpcError && err.code === RpcError.ErrorCode.UNSUPPORTED_METHOD) {
          this.startedUnsupported = true;
          this.log.info(`the agent does not handle ${RPC_PLAYBACK_STARTED}; not sending it again`);
          return;
        }
        if (attempt === this.tries) {
          this.log.warn({ method: call.method, err }, `${call.method} failed after ${this.tries} tries`);
          return;
        }
        await new Promise((r) => setTimeout(r, this.retryDelayMs));
      }
    }
  }
}
