// Progress and results patched onto the fetch Job through a fake API server on loopback
// (TLS, service-account token), throttled and best-effort.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  ANNOTATION_BYTES_DONE,
  ANNOTATION_BYTES_TOTAL,
  ANNOTATION_FETCH_ERROR,
  ANNOTATION_RESOLVED_REVISION,
} from '../../function/constants.js';
import { main } from '../../function/fetch/cli.js';
import { KubeReporter, noopReporter, reporterFromEnv } from '../../function/fetch/reporter.js';
import { bytes, capturedLogger, fastOptions, planFor, scratch } from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fetch-kube.js';
import { sha256 } from '../support/fetch-serve.js';

const SIZE = 2 * 1024 * 1024;
const DATA = bytes(SIZE, 41);
const JOB_PATH = '/apis/batch/v1/namespaces/team-a/jobs/llama-fetch';

let api: FakeApiServer;
let files: HttpTestServer;
let volume: ReturnType<typeof scratch>;

beforeAll(async () => {
  api = await startFakeApiServer();
  files = await startHttpServer({ '/model.bin': DATA });
});
afterAll(async () => {
  await api.close();
  await files.close();
});
afterEach(() => {
  api.patches.length = 0;
  api.respondWith = 200;
  files.faults.clear();
  volume.cleanup();
});

function reporterFor(intervalMs: number) {
  return (
    plan: { report: { namespace: string; jobName: string } },
    log: ReturnType<typeof capturedLogger>['log'],
  ) =>
    new KubeReporter({
      host: api.host,
      port: api.port,
      ...plan.report,
      tokenPath: `${api.serviceAccountDir}/token`,
      caPath: `${api.serviceAccountDir}/ca.crt`,
      intervalMs,
      timeoutMs: 2_000,
      log,
    });
}

function runMain(url: string, over: { intervalMs?: number; sha256?: string } = {}) {
  volume = scratch();
  const plan = planFor(
    { type: 'http', url, path: 'model.bin', ...(over.sha256 ? { sha256: over.sha256 } : {}) },
    volume.dir,
  );
  const { log, lines } = capturedLogger();
  return {
    lines,
    outcome: main({
      env: { MODELCACHE_PLAN: JSON.stringify(plan) },
      log,
      reporter: reporterFor(over.intervalMs ?? 100),
      terminationLog: `${volume.dir}/no-termination-log`,
      options: fastOptions({ progressIntervalMs: 50 }),
    }),
  };
}

describe('Job annotations reporter', () => {
  it('patches bytes done/total while staging and the resolved revision on success', async () => {
    files.faults.add('/model.bin', { kind: 'slow', chunk: 64 * 1024, everyMs: 10 });
    const started = Date.now();
    const { outcome } = runMain(files.url('/model.bin'));
    expect((await outcome).code).toBe(0);
    const elapsed = Date.now() - started;
    const patches = api.patches;
    // Throttled: one per 100 ms interval at most, plus the forced first and last.
    expect(patches.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 2);
    expect(
      new Set(patches.map((p) => `${p.method} ${p.path} ${p.contentType} ${p.authorization}`)),
    ).toEqual(new Set([`PATCH ${JOB_PATH} application/merge-patch+json Bearer ${api.token}`]));
    const bodies = patches.map((p) => p.body);
    expect(bodies[0]).toEqual({
      metadata: {
        annotations: { [ANNOTATION_BYTES_DONE]: '0', [ANNOTATION_BYTES_TOTAL]: String(SIZE) },
      },
    });
    expect(bodies[bodies.length - 1]).toEqual({
      metadata: {
        annotations: {
          [ANNOTATION_BYTES_DONE]: String(SIZE),
          [ANNOTATION_BYTES_TOTAL]: String(SIZE),
          [ANNOTATION_RESOLVED_REVISION]: `sha256:${sha256(DATA)}`,
          [ANNOTATION_FETCH_ERROR]: null,
        },
      },
    });
    // In between: progress only, never decreasing, throttled to the interval.
    const middle = bodies.slice(1, -1) as { metadata: { annotations: Record<string, string> } }[];
    expect(middle.length).toBeGreaterThanOrEqual(1);
    const done = middle.map((b) => Number(b.metadata.annotations[ANNOTATION_BYTES_DONE]));
    expect(done).toEqual([...done].sort((x, y) => x - y));
    expect(
      middle.every(
        (b) =>
          Object.keys(b.metadata.annotations).sort().join() ===
          [ANNOTATION_BYTES_DONE, ANNOTATION_BYTES_TOTAL].sort().join(),
      ),
    ).toBe(true);
  });

  it('patches the final error line when the fetch fails', async () => {
    const wrong = sha256('not it');
    const { outcome } = runMain(files.url('/model.bin'), { sha256: wrong });
    const result = await outcome;
    const line = `model.bin: sha256 mismatch: expected ${wrong}, got ${sha256(DATA)}`;
    expect([result.code, result.line]).toEqual([1, line]);
    expect(api.patches.at(-1)?.body).toEqual({
      metadata: { annotations: { [ANNOTATION_FETCH_ERROR]: line } },
    });
  });

  it('a failing API server never fails the fetch (best-effort)', async () => {
    api.respondWith = 500;
    const { outcome, lines } = runMain(files.url('/model.bin'));
    expect((await outcome).code).toBe(0);
    expect(api.patches.length).toBeGreaterThanOrEqual(2);
    expect(
      lines.filter((l) => l['level'] === 'warn').map((l) => [l['msg'], l['err']]),
    ).toContainEqual([
      'could not patch progress onto the Job (best-effort, continuing)',
      'PATCH job team-a/llama-fetch: HTTP 500',
    ]);
  });

  it('coalesces bursts: at most one PATCH per interval, the latest values win', async () => {
    const { log } = capturedLogger();
    const reporter = reporterFor(60_000)(
      { report: { namespace: 'team-a', jobName: 'llama-fetch' } },
      log,
    );
    for (let i = 1; i <= 100; i++) reporter.report({ bytesDone: i, bytesTotal: 100 });
    await reporter.flush();
    expect(api.patches.map((p) => p.body)).toEqual([
      {
        metadata: {
          annotations: { [ANNOTATION_BYTES_DONE]: '1', [ANNOTATION_BYTES_TOTAL]: '100' },
        },
      },
      {
        metadata: {
          annotations: { [ANNOTATION_BYTES_DONE]: '100', [ANNOTATION_BYTES_TOTAL]: '100' },
        },
      },
    ]);
    volume = scratch();
  });

  it.each([
    { reason: 'outside a cluster the reporter is the no-op', env: {}, inCluster: false },
    {
      reason: 'in a cluster (KUBERNETES_SERVICE_HOST set) it patches the Job',
      env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' },
      inCluster: true,
    },
  ])('$reason', ({ env, inCluster }) => {
    const { log } = capturedLogger();
    const r = reporterFromEnv(env, { namespace: 'n', jobName: 'j' }, log);
    expect([r === noopReporter, r instanceof KubeReporter]).toEqual([!inCluster, inCluster]);
    volume = scratch();
  });
});
