import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The end-to-end and chaos suites run real clusters: one file at a time keeps them
    // from competing for the CPU (and their elections from timing out).
    fileParallelism: false,
  },
});
