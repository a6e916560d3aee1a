// The http source against a real HTTP server on loopback: Range resume, validators, auth,
// and every fault the issue names (reset, 5xx, 429 + Retry-After, truncation, stall,
// ignored ranges, wrong checksum, disk full).
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import type { Manifest } from '../../function/fetch/layout.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import {
  bytes,
  capturedLogger,
  planFor,
  readJsonFile,
  run,
  scratch,
  tree,
} from '../support/fetch-harness.js';
import { sha256, type Fault } from '../support/fetch-serve.js';

const SIZE = 3_000_000;
const DATA = bytes(SIZE, 11);
const DIGEST = sha256(DATA);
const OTHER = bytes(1000, 12);

let server: HttpTestServer;
let volume: ReturnType<typeof scratch>;

beforeAll(async () => {
  server = await startHttpServer({ '/model.bin': DATA, '/other.bin': OTHER });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  server.faults.clear();
  server.requests.length = 0;
  volume.cleanup();
});

function source(extra: { sha256?: string; tokenEnv?: string; url?: string; path?: string } = {}) {
  return {
    type: 'http' as const,
    url: extra.url ?? server.url('/model.bin'),
    path: extra.path ?? 'weights/model.bin',
    ...(extra.sha256 !== undefined ? { sha256: extra.sha256 } : {}),
    ...(extra.tokenEnv !== undefined ? { tokenEnv: extra.tokenEnv } : {}),
  };
}

function manifestOf(verifiedBy: 'sha256' | 'none', path = 'weights/model.bin'): Manifest {
  return {
    version: 1,
    identity: 'a'.repeat(64),
    sourceType: 'http',
    resolvedRevision: `sha256:${DIGEST}`,
    totalBytes: SIZE,
    files: [{ path, size: SIZE, sha256: DIGEST, verifiedBy }],
  };
}

describe('http source', () => {
  it('stages one file, verified against the plan sha256, with manifest and marker', async () => {
    volume = scratch();
    const result = await run(planFor(source({ sha256: DIGEST }), volume.dir));
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestOf('sha256'),
      bytesFetched: SIZE,
      bytesResumed: 0,
    });
    expect(tree(volume.dir)).toEqual({ 'weights/model.bin': DIGEST });
    expect(readJsonFile(join(volume.dir, '.modelcache/manifest.json'))).toEqual(
      manifestOf('sha256'),
    );
    expect(Object.keys(tree(volume.dir, { includeState: true })).sort()).toEqual([
      '.modelcache/complete.json',
      '.modelcache/manifest.json',
      'weights/model.bin',
    ]);
    expect(server.requests.map((r) => [r.range, r.status])).toEqual([
      ['bytes=0-0', 206],
      [undefined, 200],
    ]);
  });

  const faults: {
    reason: string;
    faults: Fault[];
    ranges: (string | undefined)[];
    fetched: number;
  }[] = [
    {
      reason: 'a connection closed mid-body resumes from the byte it reached',
      faults: [{ kind: 'drop', afterBytes: 1_000_000 }],
      ranges: [undefined, 'bytes=1000000-'],
      fetched: SIZE,
    },
    {
      reason: '500s are retried with backoff',
      faults: [
        { kind: 'status', status: 500 },
        { kind: 'status', status: 503 },
      ],
      ranges: [undefined, undefined, undefined],
      fetched: SIZE,
    },
    {
      reason: 'a body that ends early without a length is caught by the listed size and resumed',
      faults: [{ kind: 'truncate', afterBytes: 1_200_000 }],
      ranges: [undefined, 'bytes=1200000-'],
      fetched: SIZE,
    },
    {
      reason: 'a stalled connection is dropped after the stall timeout and resumed',
      faults: [{ kind: 'stall', afterBytes: 500_000 }],
      ranges: [undefined, 'bytes=500000-'],
      fetched: SIZE,
    },
    {
      reason: 'a server that ignores the range restarts the file from zero',
      faults: [{ kind: 'drop', afterBytes: 700_000 }, { kind: 'ignoreRange' }],
      ranges: [undefined, 'bytes=700000-'],
      fetched: SIZE + 700_000,
    },
    {
      reason: 'a drop in the resumed range resumes again from the new position',
      faults: [
        { kind: 'drop', afterBytes: 1_000_000 },
        { kind: 'drop', afterBytes: 1_000_000 },
      ],
      ranges: [undefined, 'bytes=1000000-', 'bytes=2000000-'],
      fetched: SIZE,
    },
  ];

  it.each(faults)('$reason', async ({ faults: fs, ranges, fetched }) => {
    volume = scratch();
    for (const f of fs) server.faults.add('/model.bin', f);
    const result = await run(planFor(source({ sha256: DIGEST }), volume.dir));
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestOf('sha256'),
      bytesFetched: fetched,
      bytesResumed: 0,
    });
    expect(tree(volume.dir)).toEqual({ 'weights/model.bin': DIGEST });
    expect(server.requests.slice(1).map((r) => r.range)).toEqual(ranges);
  });

  it('a connection reset (RST) mid-file resumes from the bytes that arrived, none fetched twice', async () => {
    volume = scratch();
    server.faults.add('/model.bin', { kind: 'reset', afterBytes: 1_000_000 });
    const result = await run(planFor(source({ sha256: DIGEST }), volume.dir));
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestOf('sha256'),
      bytesFetched: SIZE,
      bytesResumed: 0,
    });
    // An RST discards what the client had not read yet: it resumes where its bytes end.
    const [cut, resumed] = server.requests.slice(1);
    const from = SIZE - (resumed?.bytes ?? 0);
    expect([cut?.range, resumed?.range]).toEqual([undefined, `bytes=${from}-`]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(1_000_000);
  });

  it('honours Retry-After on 429 before asking again', async () => {
    volume = scratch();
    server.faults.add('/model.bin', { kind: 'status', status: 429, retryAfter: '1' });
    const result = await run(planFor(source(), volume.dir));
    expect(result.manifest).toEqual(manifestOf('none'));
    const [limited, next] = server.requests.slice(1);
    expect([limited?.status, next?.status]).toEqual([429, 200]);
    expect((next?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(1000);
  });

  it('gives up on a file that keeps failing, naming the file and the cause', async () => {
    volume = scratch();
    server.faults.add('/model.bin', { kind: 'status', status: 502 }, { sticky: true });
    await expect(run(planFor(source(), volume.dir))).rejects.toThrow(
      new FetchError(
        `HTTP 502 from ${server.url('/model.bin')} (gave up after 5 attempts)`,
        'weights/model.bin',
      ),
    );
    expect(tree(volume.dir)).toEqual({});
    expect(existsSync(join(volume.dir, '.modelcache/complete.json'))).toBe(false);
  });

  it('refetches once after a corrupt body, then stages the good bytes', async () => {
    volume = scratch();
    server.faults.add('/model.bin', { kind: 'corrupt', at: 123_456 });
    const result = await run(planFor(source({ sha256: DIGEST }), volume.dir));
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestOf('sha256'),
      bytesFetched: 2 * SIZE,
      bytesResumed: 0,
    });
  });

  it('never marks a wrong checksum complete: fails naming the file and both digests', async () => {
    volume = scratch();
    const wrong = sha256('something else');
    const err = await run(planFor(source({ sha256: wrong }), volume.dir)).catch((e: unknown) => e);
    expect(err).toEqual(
      new FetchError(`sha256 mismatch: expected ${wrong}, got ${DIGEST}`, 'weights/model.bin'),
    );
    expect(tree(volume.dir, { includeState: true })).toEqual({});
  });

  it('sends the bearer token from the named env var and never prints it', async () => {
    const guarded = await startHttpServer({ '/model.bin': DATA }, { token: 'sekrit-token-42' });
    volume = scratch();
    try {
      const plan = planFor(
        source({ url: guarded.url('/model.bin'), tokenEnv: 'MODELCACHE_HTTP_TOKEN' }),
        volume.dir,
      );
      const ok = await run(plan, { env: { MODELCACHE_HTTP_TOKEN: 'sekrit-token-42' } });
      expect(ok.manifest).toEqual(manifestOf('none'));
      expect(guarded.requests.map((r) => r.authorization)).toEqual([
        'Bearer sekrit-token-42',
        'Bearer sekrit-token-42',
      ]);

      const other = scratch();
      const { log, lines } = capturedLogger();
      const err = await run(
        {
          ...planFor(
            source({ url: `${guarded.url('/model.bin')}?sig=query-secret`, tokenEnv: 'T' }),
            other.dir,
          ),
        },
        { env: { T: 'wrong-token-value' }, log },
      ).catch((e: unknown) => e);
      other.cleanup();
      expect(err).toEqual(
        FetchError.permanent(
          `listing ${guarded.url('/model.bin')}: HTTP 401 Unauthorized from ${guarded.url('/model.bin')}`,
        ),
      );
      const printed = JSON.stringify(lines) + String(err);
      expect(printed).not.toContain('wrong-token-value');
      expect(printed).not.toContain('query-secret');
    } finally {
      await guarded.close();
    }
  });

  it('fails fast when the file does not fit the volume (capacityBytes), before any body is fetched', async () => {
    volume = scratch();
    await expect(run(planFor(source(), volume.dir, { capacityBytes: SIZE - 1 }))).rejects.toThrow(
      FetchError.permanent(
        `the artifact needs ${SIZE} bytes, more than the volume's ${SIZE - 1} (capacityBytes); ask for a bigger volume`,
      ),
    );
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=0-0']);
  });

  it('fails fast when the filesystem has less free space than the artifact needs', async () => {
    volume = scratch();
    await expect(
      run(planFor(source(), volume.dir), { freeBytes: () => Promise.resolve(1_000_000) }),
    ).rejects.toThrow(
      FetchError.permanent(`the artifact needs ${SIZE} more bytes, the volume has 1000000 free`),
    );
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=0-0']);
  });

  it('stops a body of unknown size that outgrows the volume (disk full) and stages nothing', async () => {
    const chunked = await startHttpServer({ '/model.bin': DATA }, { chunked: true });
    volume = scratch();
    try {
      const err = await run(
        planFor(source({ url: chunked.url('/model.bin') }), volume.dir, {
          capacityBytes: 2_000_000,
        }),
      ).catch((e: unknown) => e);
      expect(err).toEqual(
        new FetchError(
          "writing it would exceed the volume's 2000000 bytes (capacityBytes)",
          'weights/model.bin',
        ),
      );
      expect(tree(volume.dir)).toEqual({});
      expect(existsSync(join(volume.dir, '.modelcache/complete.json'))).toBe(false);
    } finally {
      await chunked.close();
    }
  });

  it.each([
    { reason: 'a parent-directory escape', path: '../escape.bin' },
    { reason: 'an absolute path', path: '/etc/escape.bin' },
    { reason: 'an empty segment', path: 'a//escape.bin' },
    { reason: 'the program state directory', path: '.modelcache/manifest.json' },
  ])('rejects $reason as the target path', async ({ path }) => {
    volume = scratch();
    const err = await run(planFor(source({ path }), volume.dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as FetchError).file).toBe(path);
    expect((err as FetchError).message).toMatch(/^unsafe path from the source: /);
    expect(tree(volume.dir)).toEqual({});
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=0-0']);
  });
});
