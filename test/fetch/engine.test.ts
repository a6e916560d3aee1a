// Staging as a whole: completion marker, refetch over a previous identity, resume after an
// interruption (in-process abort and a real SIGKILL), and one fetch at a time per volume.
import { spawn } from 'node:child_process';
import {
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  symlinkSync,
  closeSync,
  utimesSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import { Layout } from '../../function/fetch/layout.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import {
  bytes,
  capturedLogger,
  IDENTITY_B,
  planFor,
  readJsonFile,
  run,
  scratch,
  tree,
} from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { sha256 } from '../support/fetch-serve.js';

const SIZE = 8 * 1024 * 1024;
const DATA = bytes(SIZE, 31);
const DIGEST = sha256(DATA);
const SLOW = { kind: 'slow' as const, chunk: 64 * 1024, everyMs: 8 };

let server: HttpTestServer;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  server = await startHttpServer({ '/model.bin': DATA });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  server.faults.clear();
  server.requests.length = 0;
  for (const c of cleanups.splice(0)) c();
});

function volume(): string {
  const s = scratch();
  cleanups.push(s.cleanup);
  return s.dir;
}

function http(): FetchPlanSource {
  return { type: 'http', url: server.url('/model.bin'), path: 'model.bin', sha256: DIGEST };
}

function filesDir(files: Record<string, string>): string {
  const dir = volume();
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
  return dir;
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('completion marker', () => {
  it('a rerun with a valid marker for the same identity exits at once, fetching nothing', async () => {
    const target = volume();
    const first = await run(planFor(http(), target));
    server.requests.length = 0;
    const again = await run(planFor(http(), target));
    expect(again).toEqual({
      outcome: 'already-complete',
      manifest: first.manifest,
      bytesFetched: 0,
      bytesResumed: 0,
    });
    expect(server.requests).toEqual([]);
  });

  it.each([
    {
      reason: 'the manifest was altered after the marker vouched for it',
      // The file itself still has the listed size and sha256: re-verified and kept.
      fetched: 0,
      spoil: (t: string) => {
        writeFileSync(
          join(t, '.modelcache/manifest.json'),
          readFileSync(join(t, '.modelcache/manifest.json'), 'utf8').replace('"http"', '"s3"'),
        );
      },
    },
    {
      reason: 'a staged file is gone',
      fetched: SIZE,
      spoil: (t: string) => {
        writeFileSync(join(t, 'model.bin'), 'short');
      },
    },
  ])('restages when $reason', async ({ spoil, fetched }) => {
    const target = volume();
    await run(planFor(http(), target));
    spoil(target);
    const again = await run(planFor(http(), target));
    expect([again.outcome, again.bytesFetched]).toEqual(['complete', fetched]);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  });
});

describe('refetch over a previous identity', () => {
  it('replaces the previous artifact file by file, keeps foreign files, and open readers keep the old bytes', async () => {
    const target = volume();
    const v1 = filesDir({ 'config.json': 'v1 config', 'old/only-in-v1.txt': 'old' });
    await run(planFor({ type: 'configMap', dir: v1 }, target));
    writeFileSync(join(target, 'notes.txt'), 'the operator’s own file');
    mkdirSync(join(target, 'lost+found'));
    const reader = openSync(join(target, 'config.json'), 'r');

    const v2 = filesDir({ 'config.json': 'v2 config!', 'new/added.txt': 'new' });
    const result = await run(
      planFor({ type: 'configMap', dir: v2 }, target, { identity: IDENTITY_B }),
    );

    expect(tree(target)).toEqual({
      'config.json': sha256('v2 config!'),
      'new/added.txt': sha256('new'),
      'notes.txt': sha256('the operator’s own file'),
    });
    expect(existsSync(join(target, 'old'))).toBe(false);
    expect(existsSync(join(target, 'lost+found'))).toBe(true);
    const buf = Buffer.alloc(64);
    const n = readSync(reader, buf, 0, 64, 0);
    closeSync(reader);
    expect(buf.subarray(0, n).toString()).toBe('v1 config');
    expect(readJsonFile(join(target, '.modelcache/manifest.json'))).toEqual(result.manifest);
    expect(readJsonFile(join(target, '.modelcache/complete.json'))).toEqual({
      version: 1,
      identity: IDENTITY_B,
      manifestSha256: sha256(readFileSync(join(target, '.modelcache/manifest.json'))),
    });
  });

  it('never follows a link planted on the volume: old files behind it survive, new files refuse it', async () => {
    const target = volume();
    const outside = volume();
    writeFileSync(join(outside, 'b.txt'), 'outside');
    const v1 = filesDir({ 'a/b.txt': 'v1', 'c/d.txt': 'v1' });
    await run(planFor({ type: 'configMap', dir: v1 }, target));
    // Someone swaps the artifact's directories for links out of the volume.
    rmSync(join(target, 'a'), { recursive: true });
    symlinkSync(outside, join(target, 'a'));
    rmSync(join(target, 'c'), { recursive: true });
    symlinkSync(outside, join(target, 'c'));

    const v2 = filesDir({ 'c/d.txt': 'v2' });
    const err = await run(
      planFor({ type: 'configMap', dir: v2 }, target, { identity: IDENTITY_B }),
    ).catch((e: unknown) => e);
    expect(err).toEqual(
      new FetchError('a symbolic link on the volume is in the way at c', 'c/d.txt'),
    );
    expect(tree(outside)).toEqual({ 'b.txt': sha256('outside') });
    expect(existsSync(join(target, '.modelcache/complete.json'))).toBe(false);
  });

  it('removes the staging of an abandoned identity before staging a new one', async () => {
    const target = volume();
    mkdirSync(join(target, '.modelcache/staging', 'c'.repeat(64), 'parts'), { recursive: true });
    writeFileSync(join(target, '.modelcache/staging', 'c'.repeat(64), 'parts', 'x'), 'stale');
    await run(planFor(http(), target));
    expect(tree(target, { includeState: true })).toEqual({
      '.modelcache/complete.json': expect.any(String) as string,
      '.modelcache/manifest.json': expect.any(String) as string,
      'model.bin': DIGEST,
    });
  });
});

describe('resume after an interruption', () => {
  it('an aborted run keeps its verified bytes and the rerun fetches only the rest', async () => {
    const target = volume();
    server.faults.add('/model.bin', SLOW);
    const stop = new AbortController();
    const first = run(planFor(http(), target), { signal: stop.signal });
    await until(() => server.bytesServed('/model.bin') >= SIZE / 2);
    stop.abort(new Error('stopped by the test'));
    await expect(first).rejects.toThrow();
    expect(existsSync(join(target, '.modelcache/complete.json'))).toBe(false);
    expect(tree(target)).toEqual({});

    server.requests.length = 0;
    const second = await run(planFor(http(), target));
    const range = server.requests.find((r) => r.range !== 'bytes=0-0')?.range;
    expect(range).toBe(`bytes=${second.bytesResumed}-`);
    expect(second.bytesResumed).toBeGreaterThanOrEqual(SIZE / 4);
    expect(second.bytesFetched).toBe(SIZE - second.bytesResumed);
    expect(server.bytesServed('/model.bin')).toBe(SIZE - second.bytesResumed + 1);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  });

  it('a process killed (SIGKILL) at about half resumes within the file on rerun', async () => {
    const target = volume();
    server.faults.add('/model.bin', SLOW);
    const plan = planFor(http(), target);
    const child = spawn(process.execPath, ['--import', 'tsx', 'function/fetch/main.ts'], {
      env: { PATH: process.env['PATH'] ?? '', MODELCACHE_PLAN: JSON.stringify(plan) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        resolve(code);
      }),
    );
    // Killed once the child has durably checkpointed a quarter (what the server sent may
    // still sit in socket buffers on a loaded machine), at about half of what was served.
    const checkpoint = new Layout(target, plan.identity).checkpoint('model.bin');
    const checkpointed = (): number => {
      try {
        return (JSON.parse(readFileSync(checkpoint, 'utf8')) as { offset: number }).offset;
      } catch {
        return 0;
      }
    };
    await until(
      () =>
        (checkpointed() >= SIZE / 4 && server.bytesServed('/model.bin') >= SIZE / 2) ||
        child.exitCode !== null,
      30_000,
    );
    child.kill('SIGKILL');
    await exited;
    expect(output).not.toContain('"fetch succeeded"');
    const killedAt = server.bytesServed('/model.bin') - 1;
    expect(existsSync(join(target, '.modelcache/complete.json'))).toBe(false);

    server.requests.length = 0;
    const { log } = capturedLogger();
    const second = await run(plan, { log });
    expect(second.bytesResumed).toBeGreaterThanOrEqual(SIZE / 4);
    expect(second.bytesResumed).toBeLessThanOrEqual(killedAt);
    expect(second.bytesFetched).toBe(SIZE - second.bytesResumed);
    expect(second.bytesFetched).toBeLessThan(SIZE);
    expect(server.requests.map((r) => r.range)).toEqual([
      'bytes=0-0',
      `bytes=${second.bytesResumed}-`,
    ]);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  }, 60_000);
});

describe('one fetch per volume', () => {
  it('a concurrent second run waits for the lock, then finds the artifact staged', async () => {
    const target = volume();
    server.faults.add('/model.bin', SLOW);
    const a = capturedLogger();
    const b = capturedLogger();
    const first = run(planFor(http(), target), { log: a.log });
    await until(() => server.bytesServed('/model.bin') > 0);
    const second = run(planFor(http(), target), { log: b.log });
    const [r1, r2] = await Promise.all([first, second]);
    expect([r1.outcome, r2.outcome]).toEqual(['complete', 'already-complete']);
    expect(server.bytesServed('/model.bin')).toBe(SIZE + 1);
    expect(b.lines.map((l) => l['msg'])).toContain('another fetch holds the volume lock; waiting');
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  });

  it('stops when another fetch took its lock over, without marking anything complete', async () => {
    const target = volume();
    server.faults.add('/model.bin', { kind: 'slow', chunk: 64 * 1024, everyMs: 20 });
    const running = run(planFor(http(), target), { lockStaleMs: 400 });
    await until(() => server.bytesServed('/model.bin') > 0);
    writeFileSync(join(target, '.modelcache/lock'), JSON.stringify({ token: 'someone-else' }));
    await expect(running).rejects.toThrow(
      new FetchError('the volume lock was taken over by another fetch; stopping'),
    );
    expect(existsSync(join(target, '.modelcache/complete.json'))).toBe(false);
  });

  it('takes over a lock whose holder stopped beating', async () => {
    const target = volume();
    mkdirSync(join(target, '.modelcache'));
    writeFileSync(
      join(target, '.modelcache/lock'),
      JSON.stringify({
        token: 'dead',
        identity: 'x',
        host: 'gone',
        pid: 1,
        startedAt: '2026-01-01T00:00:00Z',
      }),
    );
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(target, '.modelcache/lock'), past, past);
    const result = await run(planFor(http(), target));
    expect(result.outcome).toBe('complete');
    expect(existsSync(join(target, '.modelcache/lock'))).toBe(false);
  });
});
