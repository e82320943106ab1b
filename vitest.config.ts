import { defineConfig } from 'vitest/config';

export default defineConfig({
  // the client's test hooks (client/Meeting.ts); the shipped pages are built without them
  define: { __STAGEGATE_TEST_HOOKS__: 'true' },
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file gets its own process: mediasoup workers and Chromium are real subprocesses.
    pool: 'forks',
    // 2 cores: real media tests are CPU-bound; one file at a time keeps timings honest.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // expect.poll waits for real processes (workers, Chromium) on a busy 2-core machine: 1 s is too short
    expect: { poll: { timeout: 10_000 } },
  },
});
