// The program around the engine: plan validation naming the field, exit status, the one
// final line (termination message), redaction, and the built entrypoint as the Job runs it.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ENV_FETCH_PLAN, EXIT_PERMANENT } from '../../function/constants.js';
import { main } from '../../function/fetch/cli.js';
import { noopReporter } from '../../function/fetch/reporter.js';
import { capturedLogger, fastOptions, planFor, scratch, tree } from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { sha256 } from '../support/fetch-serve.js';

let server: HttpTestServer;
let volume: ReturnType<typeof scratch>;

beforeAll(async () => {
  server = await startHttpServer({ '/hello.txt': Buffer.from('hello\n') });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  volume.cleanup();
});

function invoke(env: NodeJS.ProcessEnv, terminationLog?: string) {
  const { log, lines } = capturedLogger();
  return {
    lines,
    outcome: main({
      env,
      log,
      reporter: () => noopReporter,
      terminationLog: terminationLog ?? join(volume.dir, 'absent', 'termination-log'),
      options: fastOptions(),
    }),
  };
}

const valid = () =>
  planFor({ type: 'http', url: server.url('/hello.txt'), path: 'hello.txt' }, volume.dir);

describe('fetch program entrypoint', () => {
  it.each([
    {
      reason: 'no plan in the env',
      raw: undefined,
      line: `${ENV_FETCH_PLAN} is not set: the Job passes the fetch plan as JSON in it`,
    },
    {
      reason: 'a plan that is not JSON',
      raw: '{nope',
      line: `${ENV_FETCH_PLAN} is not valid JSON: Expected property name or '}' in JSON at position 1`,
    },
    {
      reason: 'a plan of another version',
      raw: JSON.stringify({ ...planForTest(), version: 2 }),
      line: `${ENV_FETCH_PLAN} is not a valid fetch plan: version: Invalid input: expected 1`,
    },
    {
      reason: 'an identity that is not a sha256',
      raw: JSON.stringify({ ...planForTest(), identity: 'xyz' }),
      line: `${ENV_FETCH_PLAN} is not a valid fetch plan: identity: Invalid string: must match pattern /^[a-f0-9]{64}$/`,
    },
    {
      reason: 'an http target path escaping the volume',
      raw: JSON.stringify({
        ...planForTest(),
        source: { type: 'http', url: 'http://x/y', path: '../y' },
      }),
      line: `${ENV_FETCH_PLAN} is not a valid fetch plan: source.path: must not contain empty, "." or ".." segments`,
    },
    {
      reason: 'an unknown source type',
      raw: JSON.stringify({ ...planForTest(), source: { type: 'ftp' } }),
      line: `${ENV_FETCH_PLAN} is not a valid fetch plan: source.type: Invalid discriminator value. Expected 'huggingFace' | 's3' | 'http' | 'oci' | 'inline' | 'configMap'`,
    },
  ])('rejects $reason with a line naming the field', async ({ raw, line }) => {
    volume = scratch();
    const terminationLog = join(volume.dir, 'termination-log');
    writeFileSync(terminationLog, '');
    const { outcome, lines } = invoke(
      raw === undefined ? {} : { [ENV_FETCH_PLAN]: raw },
      terminationLog,
    );
    // The next pod would read the same plan: permanent, so the Job fails on this pod.
    expect(await outcome).toEqual({ code: EXIT_PERMANENT, line });
    expect(readFileSync(terminationLog, 'utf8')).toBe(`${line}\n`);
    expect(lines.at(-1)).toMatchObject({ level: 'error', msg: line, permanent: true });
  });

  it('stages a valid plan and exits 0, writing no termination message', async () => {
    volume = scratch();
    const { outcome, lines } = invoke({ [ENV_FETCH_PLAN]: JSON.stringify(valid()) });
    const result = await outcome;
    expect(result.code).toBe(0);
    expect(tree(volume.dir)).toEqual({ 'hello.txt': sha256('hello\n') });
    // Progress lines come on a timer: how many a run prints depends on the machine's load.
    expect(lines.map((l) => l['msg']).filter((m) => m !== 'progress')).toEqual([
      'fetch starting',
      'listing the source',
      'plan',
      'published',
      'staged',
      'fetch succeeded',
    ]);
  });

  it.each([
    {
      reason:
        'a server that answers 503 every time: retried, then exit 1 (the next pod may fare better)',
      fault: { kind: 'status', status: 503 } as const,
      code: 1,
      line: (url: string) => `hello.txt: HTTP 503 from ${url} (gave up after 5 attempts)`,
    },
    {
      reason: 'a 410 Gone: permanent at once',
      fault: { kind: 'status', status: 410 } as const,
      code: EXIT_PERMANENT,
      line: (url: string) => `hello.txt: HTTP 410 Gone from ${url}`,
    },
    {
      reason: 'a 400 from a confused proxy: final for this pod, not for the Job',
      fault: { kind: 'status', status: 400 } as const,
      code: 1,
      line: (url: string) => `hello.txt: HTTP 400 Bad Request from ${url}`,
    },
  ])('exit status: $reason', async ({ fault, code, line }) => {
    volume = scratch();
    server.faults.add('/hello.txt', fault, { sticky: true });
    try {
      const { outcome, lines } = invoke({ [ENV_FETCH_PLAN]: JSON.stringify(valid()) });
      expect(await outcome).toEqual({ code, line: line(server.url('/hello.txt')) });
      expect(lines.at(-1)).toMatchObject({ level: 'error', permanent: code === EXIT_PERMANENT });
    } finally {
      server.faults.clear();
    }
  });

  it('never prints a token: the final line is redacted', async () => {
    volume = scratch();
    const secret = 'tok-abcdef-123456';
    const plan = planFor(
      {
        type: 'http',
        url: `${server.url('/missing')}?access_token=${secret}`,
        path: 'x',
        tokenEnv: 'MODELCACHE_HTTP_TOKEN',
      },
      volume.dir,
    );
    const { outcome, lines } = invoke({
      [ENV_FETCH_PLAN]: JSON.stringify(plan),
      MODELCACHE_HTTP_TOKEN: secret,
    });
    const result = await outcome;
    expect(result).toEqual({
      code: EXIT_PERMANENT,
      line: `listing ${server.url('/missing')}: HTTP 404 Not Found from ${server.url('/missing')}`,
    });
    expect(JSON.stringify(lines)).not.toContain(secret);
  });

  it('the built entrypoint runs as the Job runs it (exec form), exit status and final line', async () => {
    volume = scratch();
    const plan = planFor({ type: 'http', url: server.url('/nothing-here'), path: 'x' }, volume.dir);
    const child = spawn(process.execPath, ['--import', 'tsx', 'function/fetch/main.ts'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        [ENV_FETCH_PLAN]: JSON.stringify(plan),
        MODELCACHE_FETCH_RETRY_BASE_MS: '10',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const last = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect([code, last['level'], last['msg'], last['name']]).toEqual([
      EXIT_PERMANENT,
      'error',
      `listing ${server.url('/nothing-here')}: HTTP 404 Not Found from ${server.url('/nothing-here')}`,
      'modelcache-fetch',
    ]);
  }, 30_000);
});

function planForTest() {
  return planFor({ type: 'http', url: 'http://127.0.0.1:9/x', path: 'x' }, '/cache');
}
