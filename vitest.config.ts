import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['function/**/*.test.ts', 'test/**/*.test.ts'],
    reporters: ['verbose'],
    testTimeout: 30_000,
  },
});
