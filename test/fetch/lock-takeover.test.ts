// Issue 13 #16: a volume lock whose holder is provably gone (its process on this host is
// dead, or its pod is not running) is taken over at once, not after the stale timeout; a
// holder that may still be alive keeps it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { FetchPlanSource } from '../../function/contract/plan.js';
import { isPodOfJob, podHolderGone } from '../../function/fetch/pods.js';
import { bytes, capturedLogger, planFor, run, scratch, tree } from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fetch-kube.js';
import { sha256 } from '../support/fetch-serve.js';

const SIZE = 8 * 1024 * 1024;
const DATA = bytes(SIZE, 51);
const DIGEST = sha256(DATA);
/** Long enough that waiting it out would fail every case's time bound. */
const STALE_MS = 60_000;
const JOB = 'llama-fetch';
const HOLDER_POD = `${JOB}-x7k2p`;
/** The pod the fetch under test runs in, when it is a later pod of the holder's Job. */
const NEXT_POD = `${JOB}-q9w4z`;
/** The Job as a cluster that knows podReplacementPolicy stores it. */
const REPLACES_FAILED = { kind: 'Job', spec: { podReplacementPolicy: 'Failed', parallelism: 1 } };

let server: HttpTestServer;
let api: FakeApiServer;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  server = await startHttpServer({ '/model.bin': DATA });
  api = await startFakeApiServer();
});
afterAll(async () => {
  await server.close();
  await api.close();
});
afterEach(() => {
  server.faults.clear();
  server.requests.length = 0;
  api.patches.length = 0;
  api.pods.clear();
  api.jobs.clear();
  api.jobsForbidden = false;
  api.forbidden = false;
  api.noSuchPath = false;
  for (const c of cleanups.splice(0)) c();
});

function volume(): string {
  const s = scratch();
  cleanups.push(s.cleanup);
  return s.dir;
}

const http = (): FetchPlanSource => ({
  type: 'http',
  url: server.url('/model.bin'),
  path: 'model.bin',
  sha256: DIGEST,
});

function pods(who: { self?: string; jobName?: string } = {}) {
  const { log } = capturedLogger();
  return podHolderGone({
    host: api.host,
    port: api.port,
    namespace: 'team-a',
    jobName: who.jobName ?? JOB,
    ...(who.self !== undefined ? { self: who.self } : {}),
    tokenPath: `${api.serviceAccountDir}/token`,
    caPath: `${api.serviceAccountDir}/ca.crt`,
    timeoutMs: 2_000,
    log,
  });
}

/** A fresh lock (just beaten) held by a fetch in another pod. */
function lockHeldByPod(target: string, holder = HOLDER_POD): string {
  mkdirSync(join(target, '.modelcache'));
  const body = JSON.stringify({
    token: 'holder-token',
    identity: 'a'.repeat(64),
    host: holder,
    pid: 1,
    startedAt: new Date().toISOString(),
  });
  writeFileSync(join(target, '.modelcache/lock'), body);
  return body;
}

describe('issue13 #16: stale volume lock', () => {
  it('issue13 #16: a lock whose holder was SIGKILLed on this host is taken over at once', async () => {
    const target = volume();
    server.faults.add('/model.bin', { kind: 'slow', chunk: 64 * 1024, everyMs: 8 });
    const plan = planFor(http(), target);
    const child = spawn(process.execPath, ['--import', 'tsx', 'function/fetch/main.ts'], {
      env: { PATH: process.env['PATH'] ?? '', MODELCACHE_PLAN: JSON.stringify(plan) },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const end = Date.now() + 30_000;
    while (server.bytesServed('/model.bin') < SIZE / 4 && Date.now() < end) await sleep(5);
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(join(target, '.modelcache/lock'))).toBe(true);

    const started = Date.now();
    const result = await run(plan, { lockStaleMs: STALE_MS });
    expect(result.outcome).toBe('complete');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  }, 60_000);

  it('issue13 #16: a dead pid recorded in another pid namespace proves nothing (a pod sharing the node’s host name)', async () => {
    const target = volume();
    mkdirSync(join(target, '.modelcache'));
    // A pid that is certainly free here, from a holder whose pids are not ours to look up.
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    const body = JSON.stringify({
      token: 'holder-token',
      identity: 'a'.repeat(64),
      host: hostname(),
      pid: dead.pid,
      pidNamespace: 'pid:[1]',
      startedAt: new Date().toISOString(),
    });
    writeFileSync(join(target, '.modelcache/lock'), body);
    const stop = new AbortController();
    const running = run(planFor(http(), target), { lockStaleMs: STALE_MS, signal: stop.signal });
    await sleep(1_000);
    stop.abort(new Error('stopped by the test'));
    await expect(running).rejects.toThrow('stopped by the test');
    expect(readFileSync(join(target, '.modelcache/lock'), 'utf8')).toBe(body);
    expect(server.requests).toEqual([]);
  });

  it.each([
    { reason: 'its pod no longer exists', phase: undefined },
    { reason: 'its pod failed (the container was killed)', phase: 'Failed' },
    { reason: 'its pod succeeded', phase: 'Succeeded' },
  ])(
    'issue13 #16: a lock held by another pod is taken over at once when $reason',
    async ({ phase }) => {
      const target = volume();
      lockHeldByPod(target);
      if (phase !== undefined) api.pods.set(`team-a/${HOLDER_POD}`, phase);
      const started = Date.now();
      const result = await run(planFor(http(), target), {
        lockStaleMs: STALE_MS,
        lockHolderGone: pods(),
      });
      expect(result.outcome).toBe('complete');
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(api.patches.map((r) => [r.method, r.path, r.authorization])).toEqual([
        ['GET', `/api/v1/namespaces/team-a/pods/${HOLDER_POD}`, `Bearer ${api.token}`],
      ]);
      expect(tree(target)).toEqual({ 'model.bin': DIGEST });
    },
    20_000,
  );

  it.each([
    { reason: 'its pod is running', phase: 'Running', forbidden: false, noSuchPath: false },
    { reason: 'its pod is pending', phase: 'Pending', forbidden: false, noSuchPath: false },
    {
      reason: 'the API refuses to say (no RBAC for pods)',
      phase: undefined,
      forbidden: true,
      noSuchPath: false,
    },
    {
      reason: 'the 404 is for the path, not the pod',
      phase: undefined,
      forbidden: false,
      noSuchPath: true,
    },
  ])(
    'issue13 #16: a lock held by another pod is kept while $reason',
    async ({ phase, forbidden, noSuchPath }) => {
      const target = volume();
      const body = lockHeldByPod(target);
      if (phase !== undefined) api.pods.set(`team-a/${HOLDER_POD}`, phase);
      api.forbidden = forbidden;
      api.noSuchPath = noSuchPath;
      const stop = new AbortController();
      const { log, lines } = capturedLogger();
      const running = run(planFor(http(), target), {
        lockStaleMs: STALE_MS,
        lockHolderGone: pods(),
        log,
        signal: stop.signal,
      });
      await sleep(1_000);
      stop.abort(new Error('stopped by the test'));
      await expect(running).rejects.toThrow('stopped by the test');
      expect(readFileSync(join(target, '.modelcache/lock'), 'utf8')).toBe(body);
      expect(lines.map((l) => l['msg'])).toContain('another fetch holds the volume lock; waiting');
      expect(server.requests).toEqual([]);
      expect(api.patches.length).toBeGreaterThanOrEqual(2);
      expect(new Set(api.patches.map((r) => `${r.method} ${r.path}`))).toEqual(
        new Set([`GET /api/v1/namespaces/team-a/pods/${HOLDER_POD}`]),
      );
    },
    20_000,
  );
});

describe('issue13 #16: an earlier pod of the same Job', () => {
  it.each([
    { reason: 'a pod the Job generated', host: `${JOB}-x7k2p`, jobName: JOB, want: true },
    { reason: 'this Job with a longer name', host: `${JOB}-2-x7k2p`, jobName: JOB, want: false },
    { reason: 'no random suffix', host: `${JOB}-`, jobName: JOB, want: false },
    { reason: 'a suffix of six', host: `${JOB}-x7k2pq`, jobName: JOB, want: false },
    { reason: 'an upper-case suffix', host: `${JOB}-X7K2P`, jobName: JOB, want: false },
    { reason: 'another Job', host: 'mistral-fetch-x7k2p', jobName: JOB, want: false },
    {
      reason: 'a Job name at the prefix limit (57 + "-")',
      host: `${'j'.repeat(57)}-x7k2p`,
      jobName: 'j'.repeat(57),
      want: true,
    },
    {
      reason: 'a Job name the API server would cut (the cut prefix may be another Job’s)',
      host: `${'j'.repeat(58)}x7k2p`,
      jobName: 'j'.repeat(58),
      want: false,
    },
  ])('isPodOfJob: $reason', ({ host, jobName, want }) => {
    expect(isPodOfJob(host, jobName)).toBe(want);
  });

  it('issue13 #16: a lock held by an earlier pod of this Job is taken over at once when the Job replaces only Failed pods', async () => {
    const target = volume();
    lockHeldByPod(target);
    api.jobs.set(`team-a/${JOB}`, REPLACES_FAILED);
    api.forbidden = true;
    const { log, lines } = capturedLogger();
    const started = Date.now();
    const result = await run(planFor(http(), target), {
      lockStaleMs: STALE_MS,
      lockHolderGone: pods({ self: NEXT_POD }),
      log,
    });
    expect(result.outcome).toBe('complete');
    const lockLines = lines
      .filter((l) => String(l['msg']).includes('volume lock'))
      .map((l) => [l['msg'], l['why']]);
    expect(lockLines).toEqual([['took over the volume lock: its holder is provably gone', 'gone']]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(api.patches.map((r) => [r.method, r.path, r.authorization])).toEqual([
      ['GET', `/apis/batch/v1/namespaces/team-a/jobs/${JOB}`, `Bearer ${api.token}`],
    ]);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  }, 20_000);

  const JOB_PATH = `GET /apis/batch/v1/namespaces/team-a/jobs/${JOB}`;
  const POD_PATH = `GET /api/v1/namespaces/team-a/pods/${HOLDER_POD}`;
  it.each([
    {
      reason: 'the cluster dropped podReplacementPolicy (it does not know the field)',
      job: { kind: 'Job', spec: { parallelism: 1 } },
      jobsForbidden: false,
      who: { self: NEXT_POD },
      jobGets: 1,
      requests: [JOB_PATH, POD_PATH],
    },
    {
      reason: 'the Job runs two pods at once',
      job: { kind: 'Job', spec: { podReplacementPolicy: 'Failed', parallelism: 2 } },
      jobsForbidden: false,
      who: { self: NEXT_POD },
      jobGets: 1,
      requests: [JOB_PATH, POD_PATH],
    },
    {
      reason: 'the Role grants no get on the Job (asked again at each poll)',
      job: REPLACES_FAILED,
      jobsForbidden: true,
      who: { self: NEXT_POD },
      jobGets: 2,
      requests: [JOB_PATH, POD_PATH],
    },
    {
      reason: 'the holder was a pod of another Job (the previous identity’s)',
      job: REPLACES_FAILED,
      jobsForbidden: false,
      who: { self: `${JOB}-0badf00d-q9w4z`, jobName: `${JOB}-0badf00d` },
      jobGets: 0,
      requests: [POD_PATH],
    },
    {
      reason: 'this fetch is not a pod of the Job',
      job: REPLACES_FAILED,
      jobsForbidden: false,
      who: { self: 'laptop' },
      jobGets: 0,
      requests: [POD_PATH],
    },
  ])(
    'issue13 #16: a lock held by another pod is kept while $reason',
    async ({ job, jobsForbidden, who, jobGets, requests }) => {
      const target = volume();
      const body = lockHeldByPod(target);
      api.jobs.set(`team-a/${who.jobName ?? JOB}`, job);
      api.jobsForbidden = jobsForbidden;
      // The default Role: no get on pods, so the pod lookup proves nothing either.
      api.forbidden = true;
      const stop = new AbortController();
      const running = run(planFor(http(), target), {
        lockStaleMs: STALE_MS,
        lockHolderGone: pods(who),
        signal: stop.signal,
      });
      await sleep(1_000);
      stop.abort(new Error('stopped by the test'));
      await expect(running).rejects.toThrow('stopped by the test');
      expect(readFileSync(join(target, '.modelcache/lock'), 'utf8')).toBe(body);
      expect(server.requests).toEqual([]);
      const seen = api.patches.map((r) => `${r.method} ${r.path}`);
      expect(new Set(seen)).toEqual(new Set(requests));
      const gets = seen.filter((r) => r.startsWith('GET /apis/batch')).length;
      if (jobGets < 2) expect(gets).toBe(jobGets);
      else expect(gets).toBeGreaterThanOrEqual(jobGets);
    },
    20_000,
  );
});
