// The conformance suite (`npm run test:conformance`): tests that drive the upstream Crossplane
// CLI built by test/conformance/build-crossplane.sh. Kept out of `npm test`, which must run
// without Go; .ci/run builds the CLI and then runs this.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/conformance/**/*.conformance.ts'],
    reporters: ['verbose'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
