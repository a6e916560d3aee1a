// Issue 13 #12: a symbolic link anywhere under the program's state directory (.modelcache)
// is never followed: staging cleanup, part files and the lock stay on the volume, and what
// the link pointed at survives untouched.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { Layout } from '../../function/fetch/layout.js';
import { IDENTITY_A, planFor, run, scratch, tree } from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { sha256 } from '../support/fetch-serve.js';

const DATA = Buffer.from('weights of the model\n');

let server: HttpTestServer;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  server = await startHttpServer({ '/model.bin': DATA });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const s = scratch();
  cleanups.push(s.cleanup);
  return s.dir;
}

/** A directory outside the volume holding what a cleanup or a write would destroy. */
function outsideDir(): string {
  const outside = dir();
  mkdirSync(join(outside, 'c'.repeat(64), 'parts'), { recursive: true });
  writeFileSync(join(outside, 'c'.repeat(64), 'parts', 'x'), 'someone else’s part');
  writeFileSync(join(outside, 'keep.txt'), 'must survive');
  writeFileSync(join(outside, 'target.bin'), 'must not be overwritten');
  writeFileSync(join(outside, 'lock-target'), 'not a lock');
  return outside;
}

const layout = (volume: string): Layout => new Layout(volume, IDENTITY_A);

describe('issue13 #12: links under the state directory', () => {
  it.each([
    {
      reason: 'the staging root is a link out of the volume',
      plant: (volume: string, outside: string) => {
        mkdirSync(join(volume, '.modelcache'));
        symlinkSync(outside, layout(volume).stagingRoot);
      },
    },
    {
      reason: 'this identity’s staging directory is a link',
      plant: (volume: string, outside: string) => {
        mkdirSync(layout(volume).stagingRoot, { recursive: true });
        symlinkSync(outside, layout(volume).staging);
      },
    },
    {
      reason: 'the parts directory is a link',
      plant: (volume: string, outside: string) => {
        mkdirSync(layout(volume).staging, { recursive: true });
        symlinkSync(outside, layout(volume).parts);
      },
    },
    {
      reason: 'the part file of the artifact is a link to a file outside',
      plant: (volume: string, outside: string) => {
        mkdirSync(layout(volume).parts, { recursive: true });
        symlinkSync(join(outside, 'target.bin'), layout(volume).part('model.bin'));
      },
    },
    {
      reason: 'the lock is a link to a file outside',
      plant: (volume: string, outside: string) => {
        mkdirSync(join(volume, '.modelcache'));
        symlinkSync(join(outside, 'lock-target'), layout(volume).lock);
      },
    },
  ])(
    'issue13 #12: a symlink under .modelcache is never followed: $reason',
    async ({ plant }) => {
      const volume = dir();
      const outside = outsideDir();
      const before = tree(outside);
      plant(volume, outside);

      const result = await run(
        planFor(
          { type: 'http', url: server.url('/model.bin'), path: 'model.bin', sha256: sha256(DATA) },
          volume,
        ),
      );

      expect(result.outcome).toBe('complete');
      expect(tree(outside)).toEqual(before);
      expect(tree(volume, { includeState: true })).toEqual({
        '.modelcache/complete.json': expect.any(String) as string,
        '.modelcache/manifest.json': expect.any(String) as string,
        'model.bin': sha256(DATA),
      });
    },
    15_000,
  );
});
