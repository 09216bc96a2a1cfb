/**
 * AudioBudget: the bound on audio in flight through a pipeline, in seconds. Strategy: **wait**.
 *
 * A source `reserve`s the duration of each chunk before it emits it and waits while the budget is
 * full; a sink `release`s the duration of the audio it has written (played, for a live sink).
 * A flush `reset`s it. Nothing is dropped: the source simply reads its input no faster than the
 * sink consumes it, so every queue between them is bounded by `capacity` seconds of audio.
 *
 * `queued` is also what the idle clock reads: it ticks only when less than a frame is queued.
 */
/** Float tolerance for sums of frame durations (3 x 0.04 is a hair above 0.12). */
const EPSILON = 1e-9;

export class AudioBudget {
  private inFlight = 0;
  private waiters: Array<{ seconds: number; resolve: () => void }> = [];

  /** `capacity`: seconds of audio allowed in flight (default 2 s). */
  constructor(readonly capacity = 2) {}

  /** Seconds of audio reserved and not yet released. */
  get queued(): number {
    return this.inFlight;
  }

  /** Resolves once `seconds` fit under the capacity (at once when nothing is in flight). */
  reserve(seconds: number): Promise<void> {
    if (this.fits(seconds) && this.waiters.length === 0) {
      this.inFlight += seconds;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push({ seconds, resolve }));
  }

  /**
   * Reserve at once, without waiting, if no more than `limit` seconds would then be in flight;
   * returns whether it did. The idle clock uses it to keep only a few frames queued.
   */
  tryReserve(seconds: number, limit: number): boolean {
    if (this.waiters.length > 0 || this.inFlight + seconds > limit + EPSILON) return false;
    this.inFlight += seconds;
    return true;
  }

  release(seconds: number): void {
    this.inFlight = this.inFlight - seconds > EPSILON ? this.inFlight - seconds : 0;
    this.wake();
  }

  /** Forget everything in flight (after a flush) and let waiting sources go on. */
  reset(): void {
    this.inFlight = 0;
    this.wake();
  }

  private fits(seconds: number): boolean {
    return this.inFlight === 0 || this.inFlight + seconds <= this.capacity + EPSILON;
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0].seconds)) {
      const w = this.waiters.shift()!;
      this.inFlight += w.seconds;
      w.resolve();
    }
  }
}
