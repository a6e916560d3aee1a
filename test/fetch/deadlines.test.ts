// Issue 13 #11: every request the fetch program makes (listing, hub API, S3 HEAD/List,
// downloads) gets a deadline and a minimum-throughput rule, so a server that hangs or
// trickles is dropped in bounded time instead of parking the Job for hours.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import type { RunOptions } from '../../function/fetch/run.js';
import { bytes, planFor, run, scratch } from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { startTestHub, type TestHub } from '../support/fetch-hub.js';
import { trickle } from '../support/fetch-serve.js';

const REPO = 'acme/tiny';
const S3_ENV = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'not-a-real-secret' };

/** A stand-in S3 endpoint: `answer` decides what each request gets (nothing, a trickle…). */
async function fakeS3(
  answer: (res: ServerResponse) => void,
): Promise<{ endpoint: string; requests: number; close: () => Promise<void> }> {
  const state = { requests: 0 };
  const server: Server = createServer((req, res) => {
    state.requests++;
    req.resume();
    answer(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

const LIST_XML = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
);

let files: HttpTestServer;
let hub: TestHub;
let volume: ReturnType<typeof scratch>;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  files = await startHttpServer({ '/model.bin': bytes(1000, 7) });
  hub = await startTestHub({
    repo: REPO,
    files: [{ path: 'config.json', bytes: Buffer.from('{}\n'), lfs: false }],
  });
});
afterAll(async () => {
  await files.close();
  await hub.close();
});
afterEach(async () => {
  files.faults.clear();
  hub.apiFaults.clear();
  for (const c of closers.splice(0)) await c();
  volume.cleanup();
});

/** Short limits so every case ends in seconds: 2 attempts, then the final error. */
function limits(over: Partial<RunOptions> = {}): Partial<RunOptions> {
  return {
    stallTimeoutMs: 500,
    minBytesPerSecond: 1024,
    requestTimeoutMs: 3_000,
    retry: { attempts: 2, baseMs: 20, maxMs: 100, maxRetryAfterMs: 1_000 },
    ...over,
  };
}

interface Case {
  reason: string;
  setup: () => Promise<{ source: FetchPlanSource; env?: NodeJS.ProcessEnv }>;
  options?: Partial<RunOptions>;
  error: () => FetchError;
}

let s3: Awaited<ReturnType<typeof fakeS3>>;

const cases: Case[] = [
  {
    reason: 'an http listing (the size probe) that never answers',
    setup: async () => {
      const hanging = await fakeS3(() => undefined);
      closers.push(hanging.close);
      s3 = hanging;
      return { source: { type: 'http', url: `${hanging.endpoint}/m.bin`, path: 'm.bin' } };
    },
    error: () =>
      new FetchError(
        `listing ${s3.endpoint}/m.bin: nothing received for 0.5s (stalled) (gave up after 2 attempts)`,
      ),
  },
  {
    reason: 'a download trickling 1 byte every 1.5 s (stall timeout 2 s)',
    setup: () => {
      files.faults.add('/model.bin', { kind: 'slow', chunk: 1, everyMs: 1500 }, { sticky: true });
      return Promise.resolve({
        source: { type: 'http', url: files.url('/model.bin'), path: 'm.bin' },
      });
    },
    options: { stallTimeoutMs: 2_000 },
    error: () =>
      new FetchError(
        'less than 2048 bytes in 2s, under the minimum of 1024 bytes/s (stalled) (gave up after 2 attempts)',
        'm.bin',
      ),
  },
  {
    reason: 'a download whose server never sends headers',
    setup: () => {
      files.faults.add('/model.bin', { kind: 'hang' }, { sticky: true });
      return Promise.resolve({
        source: { type: 'http', url: files.url('/model.bin'), path: 'm.bin' },
      });
    },
    error: () =>
      new FetchError('nothing received for 0.5s (stalled) (gave up after 2 attempts)', 'm.bin'),
  },
  {
    reason: 'a hub revision API call that never answers',
    setup: () => {
      hub.apiFaults.add('revision', { kind: 'hang' }, { sticky: true });
      return Promise.resolve({
        source: { type: 'huggingFace', repo: REPO, revision: 'main', endpoint: hub.endpoint },
      });
    },
    error: () =>
      new FetchError(
        `listing hf://${REPO}@main from ${hub.endpoint}: nothing received for 0.5s (stalled) (gave up after 2 attempts)`,
      ),
  },
  {
    reason: 'a hub tree page trickling 1 byte every 1.5 s',
    setup: () => {
      hub.apiFaults.add('tree', { kind: 'slow', chunk: 1, everyMs: 1500 }, { sticky: true });
      return Promise.resolve({
        source: { type: 'huggingFace', repo: REPO, revision: 'main', endpoint: hub.endpoint },
      });
    },
    options: { stallTimeoutMs: 2_000 },
    error: () =>
      new FetchError(
        `listing hf://${REPO}@main from ${hub.endpoint}: less than 2048 bytes in 2s, under the minimum of 1024 bytes/s (stalled) (gave up after 2 attempts)`,
      ),
  },
  {
    reason: 'an S3 List that never answers',
    setup: async () => {
      s3 = await fakeS3(() => undefined);
      closers.push(s3.close);
      return {
        source: {
          type: 's3',
          bucket: 'b',
          prefix: 'p/',
          endpoint: s3.endpoint,
          credentialsFromEnv: true,
        },
        env: S3_ENV,
      };
    },
    error: () =>
      new FetchError(
        `listing s3://b/p/ at ${s3.endpoint}: nothing received for 0.5s (stalled) (gave up after 2 attempts)`,
      ),
  },
  {
    reason: 'an S3 HEAD of a single object that never answers',
    setup: async () => {
      // The listing answers (no key under the prefix), the HEAD of the object hangs.
      s3 = await fakeS3((res) => {
        if (s3.requests === 1) {
          res.writeHead(200, { 'content-type': 'application/xml' });
          res.end(LIST_XML);
        }
      });
      closers.push(s3.close);
      return {
        source: {
          type: 's3',
          bucket: 'b',
          prefix: 'p/model.gguf',
          endpoint: s3.endpoint,
          credentialsFromEnv: true,
        },
        env: S3_ENV,
      };
    },
    options: { retry: { attempts: 1, baseMs: 20, maxMs: 100, maxRetryAfterMs: 1_000 } },
    error: () =>
      new FetchError(
        `listing s3://b/p/model.gguf at ${s3.endpoint}: nothing received for 0.5s (stalled) (gave up after 1 attempts)`,
      ),
  },
  {
    reason: 'an S3 List trickling 1 byte every 1.5 s past the request deadline',
    setup: async () => {
      s3 = await fakeS3((res) => {
        res.writeHead(200, { 'content-type': 'application/xml' });
        void trickle(res, LIST_XML, { chunk: 1, everyMs: 1500 });
      });
      closers.push(s3.close);
      return {
        source: {
          type: 's3',
          bucket: 'b',
          prefix: 'p/',
          endpoint: s3.endpoint,
          credentialsFromEnv: true,
        },
        env: S3_ENV,
      };
    },
    options: { stallTimeoutMs: 2_000, requestTimeoutMs: 3_000 },
    error: () =>
      new FetchError(
        `listing s3://b/p/ at ${s3.endpoint}: not complete within 3s (request deadline) (gave up after 2 attempts)`,
      ),
  },
];

describe('issue13 #11: deadlines and minimum throughput', () => {
  it.each(cases)(
    'issue13 #11: every request gets a deadline and a minimum-throughput rule: $reason',
    async ({ setup, options, error }) => {
      volume = scratch();
      const { source, env } = await setup();
      const started = Date.now();
      const err = await run(planFor(source, volume.dir), {
        ...limits(options),
        ...(env ? { env } : {}),
      }).catch((e: unknown) => e);
      expect(err).toEqual(error());
      expect(Date.now() - started).toBeLessThan(12_000);
    },
    20_000,
  );
});
