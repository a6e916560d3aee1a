// The huggingFace source (@huggingface/hub) against the loopback test hub, and proof that
// the test hub is faithful: the official Python client downloads the same bytes from it.
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import type { Manifest } from '../../function/fetch/layout.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import { huggingFaceSource } from '../../function/fetch/sources/huggingface.js';
import { bytes, planFor, run, scratch, tree } from '../support/fetch-harness.js';
import { startTestHub, type HubFile, type TestHub } from '../support/fetch-hub.js';
import { pythonTool } from '../support/fetch-python.js';
import { sha256 } from '../support/fetch-serve.js';

const exec = promisify(execFile);
const REPO = 'acme/tiny-llm';
const TOKEN = 'hf_test_token_0123456789';

const FILES: HubFile[] = [
  {
    path: '.gitattributes',
    bytes: Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n'),
    lfs: false,
  },
  {
    path: 'config.json',
    bytes: Buffer.from('{"architectures":["LlamaForCausalLM"]}\n'),
    lfs: false,
  },
  { path: 'model-00001-of-00002.safetensors', bytes: bytes(2_500_000, 1), lfs: true },
  { path: 'model-00002-of-00002.safetensors', bytes: bytes(1_500_000, 2), lfs: true },
  { path: 'original/consolidated.00.pth', bytes: bytes(700_000, 3), lfs: true },
  { path: 'tokenizer/tokenizer.json', bytes: Buffer.from('{"version":"1.0"}\n'), lfs: false },
  { path: 'tokenizer/special tokens#1.txt', bytes: Buffer.from('<s>\n</s>\n'), lfs: false },
];
const DIGESTS = Object.fromEntries(FILES.map((f) => [f.path, sha256(f.bytes as Buffer)] as const));

let hub: TestHub;
let volume: ReturnType<typeof scratch>;

beforeAll(async () => {
  hub = await startTestHub({
    repo: REPO,
    files: FILES,
    refs: ['main', 'v1.0'],
    pageSize: 3,
    token: TOKEN,
  });
});
afterAll(async () => {
  await hub.close();
});
afterEach(() => {
  hub.faults.clear();
  hub.apiFaults.clear();
  hub.requests.length = 0;
  hub.cdnRequests.length = 0;
  volume.cleanup();
});

function source(
  extra: Partial<Extract<FetchPlanSource, { type: 'huggingFace' }>> = {},
): FetchPlanSource {
  return {
    type: 'huggingFace',
    repo: REPO,
    revision: 'main',
    endpoint: hub.endpoint,
    tokenEnv: 'HF_TOKEN',
    ...extra,
  };
}

const ENV = { HF_TOKEN: TOKEN };

function manifestFor(paths: string[]): Manifest {
  const files = FILES.filter((f) => paths.includes(f.path))
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => ({
      path: f.path,
      size: (f.bytes as Buffer).length,
      sha256: DIGESTS[f.path] ?? '',
      verifiedBy: f.lfs ? ('sha256' as const) : ('gitBlobSha1' as const),
    }));
  return {
    version: 1,
    identity: 'a'.repeat(64),
    sourceType: 'huggingFace',
    resolvedRevision: hub.commit,
    totalBytes: files.reduce((n, f) => n + f.size, 0),
    files,
  };
}

const ALL = FILES.map((f) => f.path);

describe('huggingFace source', () => {
  it('resolves the revision, lists the paginated tree, downloads and verifies every file', async () => {
    volume = scratch();
    const result = await run(planFor(source(), volume.dir), { env: ENV });
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestFor(ALL),
      bytesFetched: manifestFor(ALL).totalBytes,
      bytesResumed: 0,
    });
    expect(tree(volume.dir)).toEqual(DIGESTS);
    // Every hub request carries the token; the signed CDN URLs never get it.
    expect(new Set(hub.requests.map((r) => r.authorization))).toEqual(new Set([`Bearer ${TOKEN}`]));
    expect(
      hub.cdnRequests.map((r) => [r.path.replace(/\?.*/, ''), r.authorization]).sort(),
    ).toEqual(
      FILES.filter((f) => f.lfs)
        .map((f) => [`/lfs/${DIGESTS[f.path] ?? ''}`, undefined])
        .sort(),
    );
    // 7 files and 2 directories at 3 entries a page: 3 pages, followed through the Link header.
    expect(
      hub.requests.filter((r) => r.path.includes('/tree/')).map((r) => r.path.replace(/^.*\?/, '')),
    ).toEqual([
      'recursive=true&expand=false',
      'recursive=true&expand=false&cursor=3',
      'recursive=true&expand=false&cursor=6',
    ]);
  });

  it('sends a mirror’s token even when it lacks the public hub’s hf_ prefix', async () => {
    const mirror = await startTestHub({
      repo: REPO,
      files: FILES.slice(0, 3),
      token: 'mirror-token-abc',
    });
    volume = scratch();
    try {
      const result = await run(planFor(source({ endpoint: mirror.endpoint }), volume.dir), {
        env: { HF_TOKEN: 'mirror-token-abc' },
      });
      expect(result.manifest.files.map((f) => f.path)).toEqual(
        FILES.slice(0, 3)
          .map((f) => f.path)
          .sort(),
      );
      expect(new Set(mirror.requests.map((r) => r.authorization))).toEqual(
        new Set(['Bearer mirror-token-abc']),
      );
      expect(mirror.cdnRequests.map((r) => r.authorization)).toEqual([undefined]);
    } finally {
      await mirror.close();
    }
  });

  it.each([
    {
      reason: 'include selects by fnmatch over the whole path',
      include: ['*.json'],
      exclude: undefined,
      paths: ['config.json', 'tokenizer/tokenizer.json'],
    },
    {
      reason: 'a trailing slash means everything under the directory',
      include: ['tokenizer/'],
      exclude: undefined,
      paths: ['tokenizer/special tokens#1.txt', 'tokenizer/tokenizer.json'],
    },
    {
      reason: 'exclude removes from what include selected',
      include: ['*.safetensors', '*.json'],
      exclude: ['tokenizer/*', 'model-00002*'],
      paths: ['config.json', 'model-00001-of-00002.safetensors'],
    },
    {
      reason: 'exclude alone keeps everything else',
      include: undefined,
      exclude: ['original/*', '.gitattributes'],
      paths: ALL.filter((p) => !p.startsWith('original/') && p !== '.gitattributes'),
    },
  ])('$reason', async ({ include, exclude, paths }) => {
    volume = scratch();
    const result = await run(
      planFor(
        source({ ...(include ? { include } : {}), ...(exclude ? { exclude } : {}) }),
        volume.dir,
      ),
      { env: ENV },
    );
    expect(result.manifest).toEqual(manifestFor(paths));
    expect(tree(volume.dir)).toEqual(Object.fromEntries(paths.map((p) => [p, DIGESTS[p]])));
  });

  it.each([
    { reason: 'a tag resolves to its commit', revision: 'v1.0' },
    { reason: 'a commit id stays itself', revision: 'COMMIT' },
  ])('$reason', async ({ revision }) => {
    volume = scratch();
    const rev = revision === 'COMMIT' ? hub.commit : revision;
    const result = await run(
      planFor(source({ revision: rev, include: ['config.json'] }), volume.dir),
      {
        env: ENV,
      },
    );
    expect(result.manifest).toEqual(manifestFor(['config.json']));
  });

  it('fails with the hub’s reason for an unknown revision', async () => {
    volume = scratch();
    const err = await run(planFor(source({ revision: 'nope' }), volume.dir), { env: ENV }).catch(
      (e: unknown) => e,
    );
    expect(err).toEqual(
      FetchError.permanent(
        `listing hf://${REPO}@nope from ${hub.endpoint}: Invalid rev id: nope. URL: ${hub.endpoint}/api/models/${REPO}/revision/nope`,
      ),
    );
  });

  it('resumes an LFS file after a reset on the CDN, and retries a 429 on the API after Retry-After', async () => {
    volume = scratch();
    hub.apiFaults.add('tree', { kind: 'status', status: 429, retryAfter: '1' });
    hub.faults.add('model-00001-of-00002.safetensors', { kind: 'reset', afterBytes: 1_000_000 });
    const started = Date.now();
    const result = await run(planFor(source(), volume.dir), { env: ENV });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(result.bytesFetched).toBe(manifestFor(ALL).totalBytes);
    expect(result.manifest).toEqual(manifestFor(ALL));
    const first = DIGESTS['model-00001-of-00002.safetensors'] ?? '';
    const cdn = hub.cdnRequests.filter((r) => r.path.startsWith(`/lfs/${first}`));
    // The RST loses whatever the client had not read: it resumes exactly where its bytes end.
    const from = 2_500_000 - (cdn[1]?.bytes ?? 0);
    expect(cdn.map((r) => r.range)).toEqual([undefined, `bytes=${from}-2499999`]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(1_000_000);
  });

  it.each([
    {
      reason: 'an LFS file whose bytes do not hash to its lfs.oid',
      path: 'original/consolidated.00.pth',
      what: 'sha256',
    },
    {
      reason: 'a regular file whose bytes do not hash to its git blob id',
      path: 'config.json',
      what: 'git blob sha1',
    },
  ])('never marks complete $reason', async ({ path, what }) => {
    volume = scratch();
    hub.faults.add(path, { kind: 'corrupt', at: 3 }, { sticky: true });
    const err = await run(planFor(source(), volume.dir), { env: ENV }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as FetchError).file).toBe(path);
    expect((err as FetchError).message).toMatch(
      new RegExp(`^${what} mismatch: expected [0-9a-f]+, got [0-9a-f]+$`),
    );
    expect(tree(volume.dir)).toEqual({});
  });

  it.each([
    {
      reason: "the hub's own 403 for a regular file is permanent (the next pod meets it again)",
      path: 'config.json',
      status: 403,
      permanent: true,
    },
    {
      reason: "the hub's own 404 for a regular file is permanent",
      path: 'tokenizer/tokenizer.json',
      status: 404,
      permanent: true,
    },
    {
      reason: "the CDN's 403 is not: a signed URL may have expired, the next pod gets a fresh one",
      path: 'model-00002-of-00002.safetensors',
      status: 403,
      permanent: false,
    },
  ])('marks whether a refusal is final: $reason', async ({ path, status, permanent }) => {
    volume = scratch();
    hub.faults.add(path, { kind: 'status', status }, { sticky: true });
    const err = await run(planFor(source(), volume.dir), { env: ENV }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect({
      file: (err as FetchError).file,
      message: (err as FetchError).message.replace(/127\.0\.0\.1:\d+/, 'HOST'),
      permanent: (err as FetchError).permanent,
    }).toEqual({
      file: path,
      message: expect.stringMatching(new RegExp(`^HTTP ${status} from http://HOST/`)) as string,
      permanent,
    });
  });

  it.each([
    { reason: 'a parent-directory escape', path: '../evil.bin' },
    { reason: 'an absolute path', path: '/etc/evil.bin' },
    { reason: 'an empty segment', path: 'a//evil.bin' },
    { reason: 'a dot segment', path: 'a/./evil.bin' },
    { reason: 'the program state directory', path: '.modelcache/complete.json' },
  ])('rejects $reason in the tree before downloading anything', async ({ path }) => {
    const evil = await startTestHub({
      repo: REPO,
      files: [{ path: 'config.json', bytes: Buffer.from('{}'), lfs: false }],
      rawTreeEntries: [{ type: 'file', oid: '0'.repeat(40), size: 3, path }],
    });
    volume = scratch();
    try {
      const err = await run(
        planFor(source({ endpoint: evil.endpoint, tokenEnv: undefined }), volume.dir),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchError);
      expect((err as FetchError).file).toBe(path);
      expect((err as FetchError).message).toMatch(/^unsafe path from the source: /);
      expect(evil.requests.filter((r) => r.path.includes('/resolve/'))).toEqual([]);
      expect(tree(volume.dir)).toEqual({});
    } finally {
      await evil.close();
    }
  });
});

describe('test hub faithfulness', () => {
  it('the official Python client (hf download, HF_ENDPOINT) downloads the same bytes as the program', async () => {
    const hf = pythonTool('hf');
    volume = scratch();
    const ours = await run(planFor(source(), volume.dir), { env: ENV });
    const theirs = scratch();
    try {
      hub.requests.length = 0;
      hub.cdnRequests.length = 0;
      await exec(
        hf,
        ['download', REPO, '--revision', 'main', '--local-dir', join(theirs.dir, 'out')],
        {
          env: {
            PATH: process.env['PATH'] ?? '',
            HOME: theirs.dir,
            HF_HOME: join(theirs.dir, 'hf-home'),
            HF_ENDPOINT: hub.endpoint,
            HF_TOKEN: TOKEN,
            HF_HUB_DISABLE_TELEMETRY: '1',
            HF_HUB_DISABLE_UPDATE_CHECK: '1',
            HF_HUB_DISABLE_XET: '1',
            NO_COLOR: '1',
          },
          timeout: 60_000,
        },
      );
      rmSync(join(theirs.dir, 'out', '.cache'), { recursive: true, force: true });
      expect(tree(join(theirs.dir, 'out'))).toEqual(tree(volume.dir));
      expect(tree(volume.dir)).toEqual(DIGESTS);
      expect(ours.manifest).toEqual(manifestFor(ALL));
      // The Python client went through the same endpoints: revision, paginated tree, HEAD + GET resolve.
      const kinds = new Set(
        hub.requests
          .filter((r) => r.path.includes(REPO))
          .map((r) =>
            r.path.includes('/revision/')
              ? 'revision'
              : r.path.includes('/tree/')
                ? 'tree'
                : r.path.includes('/resolve-cache/')
                  ? `${r.method} resolve-cache`
                  : `${r.method} resolve ${r.status}`,
          ),
      );
      expect([...kinds].sort()).toEqual(
        ['GET resolve 200', 'HEAD resolve 200', 'HEAD resolve 302', 'revision', 'tree'].sort(),
      );
      // It took the LFS files from the CDN's signed URLs without the token, as the program does.
      const lfs = hub.cdnRequests.filter((r) => r.method === 'GET');
      expect(lfs.map((r) => r.authorization)).toEqual([undefined, undefined, undefined]);
    } finally {
      theirs.cleanup();
    }
  }, 90_000);
});

describe('issue13 #2: the token and tree pagination', () => {
  const SMALL: HubFile[] = [
    { path: 'a.json', bytes: Buffer.from('{"a":1}\n'), lfs: false },
    { path: 'b.json', bytes: Buffer.from('{"b":2}\n'), lfs: false },
  ];

  /** A second loopback server that records the Authorization header of every request. */
  async function recorder(): Promise<{
    base: string;
    seen: (string | undefined)[];
    close: () => Promise<void>;
  }> {
    const seen: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('[]');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      seen,
      close: () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => {
            resolve();
          });
        }),
    };
  }

  it('issue13 #2: the token never follows a tree Link to another origin', async () => {
    const evil = await recorder();
    const hostile = await startTestHub({
      repo: REPO,
      files: SMALL,
      pageSize: 1,
      token: TOKEN,
      nextLink: (honest) =>
        honest === undefined ? undefined : honest.replace(/^http:\/\/[^/]+/, evil.base),
    });
    volume = scratch();
    try {
      const result = await run(planFor(source({ endpoint: hostile.endpoint }), volume.dir), {
        env: ENV,
      });
      // What the listing holds is the hub's word either way; where the token goes is ours.
      expect(result.manifest.files.map((f) => f.path)).toEqual(['a.json']);
      expect(evil.seen).toEqual([undefined]);
      expect(new Set(hostile.requests.map((r) => r.authorization))).toEqual(
        new Set([`Bearer ${TOKEN}`]),
      );
    } finally {
      await hostile.close();
      await evil.close();
    }
  });

  it('issue13 #2: a tree Link from an https endpoint to http is refused before it is fetched', async () => {
    const plain = await startTestHub({ repo: REPO, files: SMALL, pageSize: 1, token: TOKEN });
    volume = scratch();
    // TLS terminated in front of the hub: the program talks https, the hub's Link says http.
    const secure = plain.endpoint.replace('http://', 'https://');
    const terminator: typeof fetch = (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      return fetch(url.startsWith(secure) ? url.replace(secure, plain.endpoint) : url, init);
    };
    try {
      const hf = huggingFaceSource(
        {
          type: 'huggingFace',
          repo: REPO,
          revision: 'main',
          endpoint: secure,
          tokenEnv: 'HF_TOKEN',
        },
        ENV,
        { fetch: terminator },
      );
      const err = await hf.list(new AbortController().signal).catch((e: unknown) => e);
      expect(err).toEqual(
        new FetchError(
          `the hub's tree pagination leads from https to ${plain.endpoint}/api/models/${REPO}/tree/${plain.commit}; refusing it`,
        ),
      );
      expect(plain.requests.filter((r) => r.path.includes('cursor='))).toEqual([]);
    } finally {
      await plain.close();
    }
  });

  it('issue13 #2: a self-referencing tree Link stops at the repeated page', async () => {
    const looping = await startTestHub({
      repo: REPO,
      files: SMALL,
      pageSize: 1,
      nextLink: (_honest, self) => self,
    });
    volume = scratch();
    try {
      const err = await run(
        planFor(source({ endpoint: looping.endpoint, tokenEnv: undefined }), volume.dir),
      ).catch((e: unknown) => e);
      expect(err).toEqual(
        new FetchError(
          `listing hf://${REPO}@main from ${looping.endpoint}: the hub's tree pagination repeats a page (${looping.endpoint}/api/models/${REPO}/tree/${looping.commit}); refusing to loop`,
        ),
      );
      expect(looping.requests.filter((r) => r.path.includes('/tree/')).length).toBe(1);
    } finally {
      await looping.close();
    }
  });

  it('issue13 #2: tree pagination is capped', async () => {
    const endless = await startTestHub({
      repo: REPO,
      files: SMALL,
      pageSize: 1,
      nextLink: (_honest, self) => {
        const next = new URL(self);
        next.searchParams.set('cursor', String(Number(next.searchParams.get('cursor') ?? '0') + 1));
        return next.href;
      },
    });
    volume = scratch();
    try {
      const hf = huggingFaceSource(
        { type: 'huggingFace', repo: REPO, revision: 'main', endpoint: endless.endpoint },
        {},
        { maxTreePages: 5 },
      );
      const err = await hf.list(new AbortController().signal).catch((e: unknown) => e);
      expect(err).toEqual(
        new FetchError("the hub's tree has more than 5 pages; refusing to list further"),
      );
      expect(endless.requests.filter((r) => r.path.includes('/tree/')).length).toBe(5);
    } finally {
      await endless.close();
    }
  }, 20_000);
});
