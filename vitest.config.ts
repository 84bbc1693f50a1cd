import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests mount images and share /proc/mounts; keep files in one process pool
    // but let vitest run files in parallel.
    pool: 'forks',
  },
});
