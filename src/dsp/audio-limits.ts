/**
 * The audio formats the framework takes, from any file, spec or peer: outside these ranges input is refused with
 * one line instead of sizing buffers and filters from an absurd number (a 4 GHz "rate" in a WAV header).
 *
 * - Sample rates: 1000 to 768000 Hz, whole numbers (telephone-band 8 kHz and below down to 1 kHz; 768 kHz is the
 *   highest rate common hardware records).
 * - Channels: 1 to 64.
 */
export const MIN_SAMPLE_RATE = 1000;
export const MAX_SAMPLE_RATE = 768_000;
export const MAX_CHANNELS = 64;

/** Why `rate` (Hz) is not a rate we take, or null. */
export const sampleRateProblem = (rate: number): string | null =>
  Number.isInteger(rate) && rate >= MIN_SAMPLE_RATE && rate <= MAX_SAMPLE_RATE
    ? null
    : `sample rate ${rate} Hz is out of range (supported: ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE} Hz)`;

/** Why `channels` is not a channel count we take, or null. */
export const channelsProblem = (channels: number): string | null =>
  Number.isInteger(channels) && channels >= 1 && channels <= MAX_CHANNELS ? null : `${channels} channels is out of range (supported: 1 to ${MAX_CHANNELS})`;
