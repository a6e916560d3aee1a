// npm run test:e2e: builds (or reuses) the pinned control plane, then, inside a private network
// namespace with only loopback, boots it and runs the scenarios in order, printing per scenario
// the seconds from apply to Ready, the Function calls made and whether Crossplane's watch
// circuit breaker opened, and last `e2e: N passed, M failed`.
//
//   npm run test:e2e                 # all scenarios
//   E2E_ONLY=inline,hf npm run test:e2e   # some, by name
//   E2E_UPDATE=1 ...                 # rewrite test/e2e/expected/*.yaml (review the diff)
//
// Needs root (network and mount namespaces, chroot), Go (first build), and the fetch tests'
// Python venv for moto (installed by test/all.sh).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Ctx } from './harness.js';
import { assertSealed, IN_NETNS, reexecInPrivateNetwork } from './netns.js';
import { SCENARIOS, WORKLOAD_CLUSTERS } from './scenarios.js';
import { Sources } from './sources.js';
import { Stack } from './stack.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUN_DIR = join(ROOT, '.cache/e2e/run');

async function inside(): Promise<number> {
  await assertSealed();
  const only = (process.env['E2E_ONLY'] ?? '').split(',').filter((s) => s !== '');
  const picked = SCENARIOS.filter((s) => only.length === 0 || only.includes(s.name));
  if (picked.length === 0) throw new Error(`E2E_ONLY=${only.join(',')} names no scenario`);
  const stack = new Stack(ROOT, RUN_DIR, WORKLOAD_CLUSTERS);
  let passed = 0;
  let failed = 0;
  const sources = new Sources(ROOT);
  // Interrupted: take the whole stack down (every component leads its own process group).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stdout.write(`\ne2e: ${sig}; stopping the stack\n`);
      void sources
        .close()
        .then(() => stack.down())
        .finally(() => process.exit(130));
    });
  }
  try {
    await stack.up();
    for (const s of picked) {
      const t0 = Date.now();
      process.stdout.write(`\n== ${s.name}: ${s.title}\n`);
      const ctx = new Ctx(stack, ROOT, s.name);
      let error: unknown;
      try {
        await s.run(ctx, sources);
      } catch (err) {
        error = err;
      }
      ctx.finish();
      const r = ctx.report;
      const ready =
        r.readySeconds !== undefined ? `${r.readySeconds.toFixed(1)} s to Ready` : 'no Ready';
      for (const n of r.notes) process.stdout.write(`   ${n}\n`);
      process.stdout.write(
        `   ${ready}; ${r.functionCalls} Function calls; circuit breaker ${r.circuitOpened ? 'OPENED' : 'closed'}; ${Math.round((Date.now() - t0) / 1000)} s in all\n`,
      );
      if (error === undefined) {
        passed++;
        process.stdout.write(`   PASS ${s.name}\n`);
      } else {
        failed++;
        const msg = error instanceof Error ? (error.stack ?? error.message) : JSON.stringify(error);
        process.stdout.write(`   FAIL ${s.name}: ${msg}\n   component logs: ${stack.logs}\n`);
      }
      try {
        const c0 = Date.now();
        await ctx.cleanup();
        process.stdout.write(`   cleaned up in ${Math.round((Date.now() - c0) / 1000)} s\n`);
      } catch (err) {
        failed++;
        process.stdout.write(
          `   FAIL ${s.name} cleanup: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        break;
      }
    }
  } finally {
    await sources.close();
    await stack.down().catch((err: unknown) => {
      process.stdout.write(`stack down: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  }
  process.stdout.write(`\ncomponent logs and pod logs kept in ${RUN_DIR}\n`);
  process.stdout.write(`e2e: ${passed} passed, ${failed} failed\n`);
  return failed === 0 && passed === picked.length ? 0 : 1;
}

function outside(): number {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'e2e: needs root (network and mount namespaces, chroot for the stand-in kubelet)\n',
    );
    return 1;
  }
  const t = Date.now();
  execFileSync('bash', [join(ROOT, 'test/e2e/build.sh')], { stdio: 'inherit' });
  process.stdout.write(`e2e: binaries ready in ${Math.round((Date.now() - t) / 1000)} s\n`);
  const tsx = join(ROOT, 'node_modules/.bin/tsx');
  if (!existsSync(tsx)) throw new Error(`${tsx} is missing: run npm ci`);
  return reexecInPrivateNetwork([tsx, fileURLToPath(import.meta.url)]);
}

if (process.env[IN_NETNS] === '1') {
  inside().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stdout.write(
        `e2e: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.stdout.write(
        `component logs kept in ${join(RUN_DIR, 'logs')}\ne2e: 0 passed, 1 failed\n`,
      );
      process.exit(1);
    },
  );
} else {
  process.exit(outside());
}
