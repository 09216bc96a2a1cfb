import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One file at a time: the real-time tests (LiveKit, browser, A/V sync) measure timing and the
    // machines have 2 cores; running files side by side would make those figures noise.
    fileParallelism: false,
    // Quiet output: the project's loggers at warn (a test that reads log lines sets SYNCTALK_LOG_LEVEL
    // for the process it starts), and rtc-node, whose only switch is NODE_ENV (debug unless 'production').
    env: { NODE_ENV: 'production', SYNCTALK_LOG_LEVEL: 'warn' },
  },
});
