// Shared pieces of the fetch program's tests: a scratch volume, plans, a captured logger,
// fast engine options, and reading back what landed on the volume.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, lstatSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import type { Logger } from 'pino';

import { createFetchLogger } from '../../function/fetch/cli.js';
import type { FetchPlan, FetchPlanSource } from '../../function/contract/plan.js';
import type { Report, Reporter } from '../../function/fetch/reporter.js';
import {
  DEFAULT_RUN_OPTIONS,
  runFetch,
  type RunOptions,
  type RunResult,
} from '../../function/fetch/run.js';

export const IDENTITY_A = 'a'.repeat(64);
export const IDENTITY_B = 'b'.repeat(64);

export function scratch(prefix = 'modelcache-fetch-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function planFor(
  source: FetchPlanSource,
  targetDir: string,
  extra: Partial<FetchPlan> = {},
): FetchPlan {
  return {
    version: 1,
    identity: IDENTITY_A,
    artifactKind: 'Weights',
    source,
    targetDir,
    report: { namespace: 'team-a', jobName: 'llama-fetch' },
    ...extra,
  };
}

/** A logger whose JSON lines are kept for assertions. */
export function capturedLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { log: createFetchLogger(true, sink), lines };
}

/** A reporter that records every report, for assertions on what would be patched. */
export function recordingReporter(): Reporter & { reports: { report: Report; force: boolean }[] } {
  const reports: { report: Report; force: boolean }[] = [];
  return {
    reports,
    report: (report, force = false) => {
      reports.push({ report, force });
    },
    flush: () => Promise.resolve(),
  };
}

/** Engine options tuned for loopback tests: short backoff and stall timeout. */
export function fastOptions(over: Partial<RunOptions> = {}): RunOptions {
  const { log } = capturedLogger();
  return {
    ...DEFAULT_RUN_OPTIONS,
    env: {},
    log,
    reporter: recordingReporter(),
    retry: { attempts: 5, baseMs: 20, maxMs: 200, maxRetryAfterMs: 5_000 },
    stallTimeoutMs: 1_000,
    progressIntervalMs: 100,
    lockStaleMs: 2_000,
    lockPollMs: 50,
    ...over,
  };
}

export async function run(plan: FetchPlan, over: Partial<RunOptions> = {}): Promise<RunResult> {
  return runFetch(plan, fastOptions(over));
}

/** Every regular file under `dir` (relative path → sha256), the state dir listed apart. */
export function tree(dir: string, opts: { includeState?: boolean } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (rel === '' && name === '.modelcache' && opts.includeState !== true) continue;
      const st = lstatSync(join(dir, path));
      if (st.isDirectory()) walk(path);
      else if (st.isSymbolicLink()) out[path] = 'symlink';
      else
        out[path] = createHash('sha256')
          .update(readFileSync(join(dir, path)))
          .digest('hex');
    }
  };
  walk('');
  return out;
}

export function readJsonFile(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}

/** Deterministic pseudo-random bytes (so digests in expectations are stable per seed). */
export function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
