// Entrypoint of the prefetch Job (dist/function/fetch/main.js): exec form, no shell.
// Reads the plan from MODELCACHE_PLAN, stages it into the volume, exits 0 or 1.
import { main } from './cli.js';

const controller = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    controller.abort(new Error(`interrupted by ${sig}`));
  });
}

const outcome = await main({ env: process.env, signal: controller.signal });
process.exit(outcome.code);
