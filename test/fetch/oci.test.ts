// The OCI source against real peers nobody here wrote: go-containerregistry's registry
// (`crane registry serve`), artifacts pushed with the official ORAS CLI, images built with
// crane; a front of our own for the token challenge, blob-storage redirects, a corrupt byte
// and slow bodies (test/oci/peers.ts). Every peer is built from the Go module proxy at the
// pins in test/oci/versions.env.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import type { Manifest } from '../../function/fetch/layout.js';
import { Layout } from '../../function/fetch/layout.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import { DEFAULT_RANGE_OPTIONS } from '../../function/fetch/ranged.js';
import { credentialsFor, parseChallenge } from '../../function/fetch/sources/oci-auth.js';
import { ociSource, parseRef } from '../../function/fetch/sources/oci.js';
import { bytes, capturedLogger, planFor, run, scratch, tree } from '../support/fetch-harness.js';
import {
  crane,
  craneImage,
  oras,
  tarball,
  startFront,
  startRegistry,
  type Front,
  type Registry,
  type TarEntry,
} from '../oci/peers.js';

const MIB = 1024 * 1024;
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

let registry: Registry;
let work: string;
const volumes: { cleanup: () => void }[] = [];
const fronts: Front[] = [];

function volume(): string {
  const v = scratch('modelcache-oci-');
  volumes.push(v);
  return v.dir;
}

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'modelcache-oci-work-'));
}, 600_000);
afterAll(async () => {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
});
afterEach(async () => {
  for (const v of volumes.splice(0)) v.cleanup();
  for (const f of fronts.splice(0)) await f.close();
});

function oci(ref: string, extra: Partial<Extract<FetchPlanSource, { type: 'oci' }>> = {}) {
  return { type: 'oci' as const, ref, plainHTTP: true, ...extra };
}

/** A directory of files for `oras push`, returned with each file's sha256. */
function files(dir: string, content: Record<string, Buffer | string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [path, data] of Object.entries(content)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), data);
    out[path] = sha(data);
  }
  return out;
}

/** An ORAS push of `paths` from `dir`; returns the manifest digest. */
async function orasPush(ref: string, dir: string, paths: string[]): Promise<string> {
  return oras(
    ['push', '--plain-http', '--no-tty', '--format', 'go-template={{.digest}}', ref, ...paths],
    dir,
  );
}

function manifestOf(
  sourceType: string,
  revision: string,
  staged: Record<string, Buffer | string>,
  verifiedBy: 'sha256' | 'archive',
  byPath: Record<string, 'sha256' | 'archive'> = {},
): Manifest {
  const list = Object.entries(staged)
    .map(([path, data]) => ({
      path,
      size: Buffer.byteLength(data),
      sha256: sha(data),
      verifiedBy: byPath[path] ?? verifiedBy,
    }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  return {
    version: 1,
    identity: 'a'.repeat(64),
    sourceType,
    resolvedRevision: revision,
    totalBytes: list.reduce((n, f) => n + f.size, 0),
    files: list,
  };
}

// ---------------------------------------------------------------------------------------------

describe('references, challenges and docker configs', () => {
  const refs: { reason: string; ref: string; want: ReturnType<typeof parseRef> }[] = [
    {
      reason: 'a tag',
      ref: 'ghcr.io/org/model:v1',
      want: { host: 'ghcr.io', apiHost: 'ghcr.io', repository: 'org/model', tag: 'v1' },
    },
    {
      reason: 'a port, nested repository and digest',
      ref: `localhost:5000/a/b/c@sha256:${'a'.repeat(64)}`,
      want: {
        host: 'localhost:5000',
        apiHost: 'localhost:5000',
        repository: 'a/b/c',
        digest: `sha256:${'a'.repeat(64)}`,
      },
    },
    {
      reason: 'Docker Hub is served from registry-1.docker.io',
      ref: `docker.io/library/ubuntu:24.04@sha256:${'b'.repeat(64)}`,
      want: {
        host: 'docker.io',
        apiHost: 'registry-1.docker.io',
        repository: 'library/ubuntu',
        tag: '24.04',
        digest: `sha256:${'b'.repeat(64)}`,
      },
    },
  ];
  it.each(refs)('parses $reason', ({ ref, want }) => {
    expect(parseRef(ref)).toEqual(want);
  });

  it('parses a Bearer challenge with quoted and escaped parameters', () => {
    expect(
      parseChallenge('Bearer realm="https://auth.example/token",service="reg \\"x\\"",scope=a:b'),
    ).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'reg "x"', scope: 'a:b' },
    });
  });

  const configs: {
    reason: string;
    config: unknown;
    host: string;
    want: ReturnType<typeof credentialsFor> | string;
  }[] = [
    {
      reason: 'auth is base64 of user:password',
      config: { auths: { 'reg.example:5000': { auth: Buffer.from('u:p:w').toString('base64') } } },
      host: 'reg.example:5000',
      want: { username: 'u', password: 'p:w' },
    },
    {
      reason: 'a key written as a URL matches its host; Docker Hub has three names',
      config: { auths: { 'https://index.docker.io/v1/': { username: 'u', password: 'p' } } },
      host: 'docker.io',
      want: { username: 'u', password: 'p' },
    },
    {
      reason: 'an identity token is kept for the refresh-token exchange',
      config: { auths: { 'ghcr.io': { identitytoken: 'refresh' } } },
      host: 'ghcr.io',
      want: { identityToken: 'refresh' },
    },
    {
      reason: 'no entry for the registry',
      config: { auths: { 'ghcr.io': { auth: 'eDp5' } } },
      host: 'quay.io',
      want: undefined,
    },
    {
      reason: 'auths missing: the field is named, no value quoted',
      config: { credHelpers: {} },
      host: 'quay.io',
      want: 'the docker config (.dockerconfigjson) is not valid: auths: Invalid input: expected record, received undefined',
    },
    {
      reason: 'auth that is not user:password',
      config: { auths: { 'ghcr.io': { auth: Buffer.from('secret-value').toString('base64') } } },
      host: 'ghcr.io',
      want: 'the docker config\'s auths.ghcr.io.auth is not base64 of "user:password"',
    },
  ];
  it.each(configs)('reads a docker config: $reason', ({ config, host, want }) => {
    const read = (): unknown => credentialsFor(JSON.stringify(config), host);
    if (typeof want === 'string') expect(read).toThrow(new FetchError(want));
    else expect(read()).toEqual(want);
  });
});

describe('an artifact pushed with oras', () => {
  it('stages each layer as the file its title names, and an archived directory unpacked; the tag resolves to the manifest digest', async () => {
    const dir = mkdtempSync(join(work, 'artifact-'));
    const weights = bytes(3 * MIB, 1);
    const content = {
      'model.safetensors': weights,
      'config.json': '{"hidden_size": 8}',
      'tokenizer/tokenizer.json': '{"vocab": {}}',
      'tokenizer/special/tokens.txt': 'bos\neos\n',
    };
    files(dir, content);
    const ref = `${registry.host}/models/granite:v1`;
    const digest = await orasPush(ref, dir, ['model.safetensors', 'config.json', 'tokenizer']);
    const target = volume();
    const result = await run(planFor(oci(ref), target));
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestOf('oci', digest, content, 'sha256', {
        'tokenizer/tokenizer.json': 'archive',
        'tokenizer/special/tokens.txt': 'archive',
      }),
      bytesFetched: result.bytesFetched,
      bytesResumed: 0,
    });
    expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(tree(target)).toEqual(
      Object.fromEntries(Object.entries(content).map(([p, d]) => [p, sha(d)])),
    );
  }, 120_000);

  const shapes: { reason: string; redirectBlobs: boolean; want: string[] }[] = [
    {
      reason:
        'blobs handed out from blob storage (a redirect): a blob larger than a part over parallel closed ranges, after one probe of the largest',
      redirectBlobs: true,
      want: [
        'registry a bytes=0-0 307',
        'registry a bytes=0-1048575 307',
        'registry a bytes=1048576-2097151 307',
        'registry a bytes=2097152-3145727 307',
        'registry b whole 307',
        'storage a bytes=0-0 206',
        'storage a bytes=0-1048575 206',
        'storage a bytes=1048576-2097151 206',
        'storage a bytes=2097152-3145727 206',
        'storage b whole 200',
      ],
    },
    {
      reason:
        'blobs the registry serves itself: one stream per blob (some registries read a blob up to every range start)',
      redirectBlobs: false,
      want: ['registry a bytes=0-0 206', 'registry a whole 200', 'registry b whole 200'],
    },
  ];
  it.each(shapes)(
    'fetches blobs in parallel; $reason',
    async ({ redirectBlobs, want }) => {
      const dir = mkdtempSync(join(work, 'parts-'));
      const content = { 'a.bin': bytes(3 * MIB, 8), 'b.bin': bytes(MIB / 2, 9) };
      files(dir, content);
      await orasPush(`${registry.host}/models/parts:v1`, dir, ['a.bin', 'b.bin']);
      const front = await startFront(registry.host, { redirectBlobs });
      fronts.push(front);
      const target = volume();
      await run(planFor(oci(`${front.host}/models/parts:v1`), target), {
        ranges: { partBytes: MIB, connectionsPerFile: 4, maxConnections: 8, reorderBytes: 2 * MIB },
      });
      expect(tree(target)).toEqual({
        'a.bin': sha(content['a.bin']),
        'b.bin': sha(content['b.bin']),
      });
      const asked = front.requests
        .filter((r) => r.path.includes('/blobs/'))
        .map(
          (r) =>
            `${r.at} ${r.path.includes(sha(content['a.bin'])) ? 'a' : 'b'} ${r.range ?? 'whole'} ${String(r.status)}`,
        )
        .sort();
      expect(asked).toEqual(want);
    },
    120_000,
  );

  it("unpacks a ModelPack artifact's tar weight layer by its media type; a raw layer stays a file", async () => {
    const dir = mkdtempSync(join(work, 'modelpack-'));
    const weights = bytes(MIB, 10);
    writeFileSync(
      join(dir, 'weights.tar'),
      await tarball([{ name: 'model.safetensors', data: weights }]),
    );
    files(dir, { 'config.json': '{"architectures":["Granite"]}' });
    const ref = `${registry.host}/modelpack/granite:v1`;
    const digest = await oras(
      [
        'push',
        '--plain-http',
        '--no-tty',
        '--format',
        'go-template={{.digest}}',
        '--artifact-type',
        'application/vnd.cncf.model.manifest.v1+json',
        ref,
        'weights.tar:application/vnd.cncf.model.weight.v1.tar',
        'config.json:application/vnd.cncf.model.weight.config.v1.raw',
      ],
      dir,
    );
    const target = volume();
    const result = await run(planFor(oci(ref), target));
    const staged = { 'model.safetensors': weights, 'config.json': '{"architectures":["Granite"]}' };
    expect(result.manifest).toEqual(
      manifestOf('oci', digest, staged, 'sha256', { 'model.safetensors': 'archive' }),
    );
    expect(tree(target)).toEqual({
      'config.json': sha(staged['config.json']),
      'model.safetensors': sha(weights),
    });
  }, 120_000);

  it('keeps only what include/exclude select, by title', async () => {
    const dir = mkdtempSync(join(work, 'globs-'));
    files(dir, { 'a.safetensors': 'A', 'b.bin': 'B', 'README.md': 'R' });
    const ref = `${registry.host}/models/globs:v1`;
    await orasPush(ref, dir, ['a.safetensors', 'b.bin', 'README.md']);
    const target = volume();
    await run(
      planFor(oci(ref, { include: ['*.safetensors', '*.md'], exclude: ['README*'] }), target),
    );
    expect(tree(target)).toEqual({ 'a.safetensors': sha('A') });
  }, 120_000);

  it('a tag moved after it was resolved: every request names the digest, the first version is staged whole', async () => {
    const dir1 = mkdtempSync(join(work, 'v1-'));
    const dir2 = mkdtempSync(join(work, 'v2-'));
    files(dir1, { 'w.bin': bytes(2 * MIB, 2) });
    files(dir2, { 'w.bin': bytes(2 * MIB, 3) });
    const ref = `${registry.host}/models/moving:latest`;
    const first = await orasPush(ref, dir1, ['w.bin']);
    let moved = '';
    const front = await startFront(registry.host);
    fronts.push(front);
    const viaFront = `${front.host}/models/moving:latest`;
    // The fetch under the source: once the tag's manifest is answered, the tag is pushed over.
    const moving: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const url = input instanceof Request ? input.url : String(input);
      if (moved === '' && url.endsWith('/manifests/latest'))
        moved = await orasPush(ref, dir2, ['w.bin']);
      return res;
    };
    const target = volume();
    const plan = planFor(oci(viaFront), target);
    const source = ociSource(
      plan.source as Extract<FetchPlanSource, { type: 'oci' }>,
      {},
      {
        fetch: moving,
      },
    );
    const listing = await source.list(new AbortController().signal);
    expect(moved).toMatch(/^sha256:/);
    expect(moved).not.toBe(first);
    expect(listing.resolvedRevision).toBe(first);
    expect(listing.files).toEqual([
      {
        path: 'w.bin',
        size: 2 * MIB,
        sha256: sha(bytes(2 * MIB, 2)),
        validator: `sha256:${sha(bytes(2 * MIB, 2))}`,
      },
    ]);
    // The engine then stages by digest: the bytes of the first push, while the tag names the second.
    const result = await run(planFor(oci(`${viaFront.replace(':latest', '')}@${first}`), target));
    expect(result.manifest.resolvedRevision).toBe(first);
    expect(tree(target)).toEqual({ 'w.bin': sha(bytes(2 * MIB, 2)) });
    expect(front.requests.filter((r) => r.path.includes('/manifests/')).map((r) => r.path)).toEqual(
      ['/v2/models/moving/manifests/latest', `/v2/models/moving/manifests/${first}`],
    );
  }, 120_000);
});

describe('a modelcar image built with crane', () => {
  it('stages /models with the layers applied in order: overwrites, whiteouts, an opaque directory, links inside', async () => {
    const big = bytes(2 * MIB, 4);
    const ref = `${registry.host}/modelcar/granite:v1`;
    const digest = await craneImage(work, ref, [
      [
        { name: 'bin/sh', data: '#!binary' },
        { name: 'models/', type: 'directory' },
        { name: 'models/model.safetensors', data: big },
        { name: 'models/config.json', data: 'v1' },
        { name: 'models/old.bin', data: 'old' },
        { name: 'models/cache/', type: 'directory' },
        { name: 'models/cache/x', data: 'x' },
        { name: 'etc/passwd', data: 'root:x:0:0' },
      ],
      [
        { name: 'models/config.json', data: 'v2' },
        { name: 'models/.wh.old.bin', data: '' },
        { name: 'models/cache/.wh..wh..opq', data: '' },
        { name: 'models/cache/y', data: 'y' },
        { name: './models/tokenizer/vocab.txt', data: 'a b c' },
        { name: 'models/weights.safetensors', type: 'symlink', linkname: 'model.safetensors' },
        { name: 'models/abs.json', type: 'symlink', linkname: '/models/config.json' },
        { name: 'models/hard.bin', type: 'link', linkname: 'models/cache/y' },
        { name: 'etc/shadow', type: 'symlink', linkname: '/etc/passwd' },
      ],
    ]);
    const target = volume();
    const result = await run(planFor(oci(ref), target));
    const staged = {
      'model.safetensors': big,
      'weights.safetensors': big,
      'config.json': 'v2',
      'abs.json': 'v2',
      'cache/y': 'y',
      'hard.bin': 'y',
      'tokenizer/vocab.txt': 'a b c',
    };
    expect(result).toEqual({
      outcome: 'complete',
      manifest: manifestOf('oci', digest, staged, 'archive'),
      bytesFetched: result.bytesFetched,
      bytesResumed: 0,
    });
    expect(tree(target)).toEqual(
      Object.fromEntries(Object.entries(staged).map(([p, d]) => [p, sha(d)])),
    );
  }, 120_000);

  it('an image index resolves to its linux/amd64 manifest; the index digest is the revision', async () => {
    const amd = `${registry.host}/modelcar/multi:amd64`;
    const arm = `${registry.host}/modelcar/multi:arm64`;
    await craneImage(work, amd, [[{ name: 'models/arch.txt', data: 'amd64' }]]);
    await craneImage(work, arm, [[{ name: 'models/arch.txt', data: 'arm64' }]]);
    await crane(['mutate', '--set-platform', 'linux/amd64', amd, '-t', amd]);
    await crane(['mutate', '--set-platform', 'linux/arm64', arm, '-t', arm]);
    const idx = `${registry.host}/modelcar/multi:v1`;
    await crane(['index', 'append', '-m', arm, '-m', amd, '-t', idx]);
    const digest = await crane(['digest', idx]);
    const target = volume();
    const result = await run(planFor(oci(idx), target));
    expect({ revision: result.manifest.resolvedRevision, files: tree(target) }).toEqual({
      revision: digest,
      files: { 'arch.txt': sha('amd64') },
    });
  }, 120_000);

  const escapes: { reason: string; entry: TarEntry; error: string }[] = [
    {
      reason: 'a ".." path leaving the root',
      entry: { name: 'models/../../etc/cron.d/x', data: 'x' },
      error:
        'entry "models/../../etc/cron.d/x": the path has a ".." segment (it would leave the root)',
    },
    {
      reason: 'an absolute path',
      entry: { name: '/models/x', data: 'x' },
      error: 'entry "/models/x": absolute path',
    },
    {
      reason: 'a symbolic link leaving the staged directory',
      entry: { name: 'models/passwd', type: 'symlink', linkname: '../etc/passwd' },
      error:
        'entry "models/passwd": a symbolic link to "../etc/passwd" leaves the staged directory',
    },
    {
      reason: 'a symbolic link climbing out of the root',
      entry: { name: 'models/up', type: 'symlink', linkname: '../../../../host' },
      error: 'entry "models/up": a symbolic link to "../../../../host" leaves the staged directory',
    },
    {
      reason: 'a hard link to a file outside the staged directory',
      entry: { name: 'models/shadow', type: 'link', linkname: 'etc/shadow' },
      error: 'entry "models/shadow": a hard link to "etc/shadow" leaves the staged directory',
    },
    {
      reason: 'a device file',
      entry: { name: 'models/null', type: 'character-device' },
      error: 'entry "models/null": a device file is never staged',
    },
    {
      reason: 'a FIFO',
      entry: { name: 'models/pipe', type: 'fifo' },
      error: 'entry "models/pipe": a FIFO is never staged',
    },
  ];
  it.each(escapes)(
    'refuses a layer with $reason, naming layer and entry; nothing is published',
    async ({ entry, error }) => {
      const ref = `${registry.host}/modelcar/escape:${sha(entry.name).slice(0, 8)}`;
      await craneImage(work, ref, [[{ name: 'models/ok.txt', data: 'ok' }, entry]]);
      const manifest = JSON.parse(await crane(['manifest', ref])) as {
        layers: { digest: string }[];
      };
      const layer = manifest.layers[0]?.digest ?? '';
      const target = volume();
      await expect(run(planFor(oci(ref), target))).rejects.toThrow(
        new FetchError(`layer ${layer}: ${error}`),
      );
      expect(tree(target)).toEqual({});
    },
    120_000,
  );

  it('an unpacked tree larger than the volume is refused (bounded extraction)', async () => {
    const ref = `${registry.host}/modelcar/bomb:v1`;
    // Zeros compress a thousandfold: a small layer that unpacks past the volume's capacity.
    await craneImage(work, ref, [[{ name: 'models/zeros.bin', data: Buffer.alloc(4 * MIB) }]]);
    const manifest = JSON.parse(await crane(['manifest', ref])) as {
      layers: { digest: string; size: number }[];
    };
    const layer = manifest.layers[0];
    const target = volume();
    await expect(run(planFor(oci(ref), target, { capacityBytes: MIB }))).rejects.toThrow(
      new FetchError(
        `layer ${layer?.digest ?? ''}: entry "models/zeros.bin": unpacking it would exceed the ${MIB} bytes the volume holds`,
      ),
    );
    expect(layer?.size).toBeLessThan(MIB);
  }, 120_000);
});

describe('auth and integrity through a front of our own', () => {
  const config = (host: string): string =>
    JSON.stringify({
      auths: { [host]: { auth: Buffer.from('ml-team:s3cret-pw').toString('base64') } },
    });

  it('answers a Bearer challenge with the docker config at the realm; the token goes to the registry only; blob redirects carry no credential', async () => {
    const dir = mkdtempSync(join(work, 'auth-'));
    files(dir, { 'w.bin': bytes(MIB, 5) });
    await orasPush(`${registry.host}/private/m:v1`, dir, ['w.bin']);
    const front = await startFront(registry.host, {
      bearer: { user: 'ml-team', password: 's3cret-pw', token: 'tok-123' },
      redirectBlobs: true,
    });
    fronts.push(front);
    const target = volume();
    const plan = planFor(
      oci(`${front.host}/private/m:v1`, { dockerConfigEnv: 'DOCKER_CFG' }),
      target,
    );
    const { log, lines } = capturedLogger();
    const result = await run(plan, { env: { DOCKER_CFG: config(front.host) }, log });
    expect(tree(target)).toEqual({ 'w.bin': sha(bytes(MIB, 5)) });
    const logged = JSON.stringify(lines);
    for (const secret of [
      's3cret-pw',
      'tok-123',
      Buffer.from('ml-team:s3cret-pw').toString('base64'),
    ]) {
      expect(logged).not.toContain(secret);
    }
    expect(lines.some((l) => l['msg'] === 'staged')).toBe(true);
    const blob = result.manifest.files[0]?.sha256 ?? '';
    const blobAt = (at: 'registry' | 'storage', range: string | undefined, status: number) => ({
      at,
      method: 'GET',
      path: `/v2/private/m/blobs/sha256:${blob}${at === 'storage' ? '?sig' : ''}`,
      range,
      auth: at === 'registry' ? 'bearer' : 'none',
      status,
    });
    expect(
      front.requests.map(({ at, method, path, range, auth, status }) => ({
        at,
        method,
        path,
        range,
        auth,
        status,
      })),
    ).toEqual([
      {
        at: 'registry',
        method: 'GET',
        path: '/v2/private/m/manifests/v1',
        range: undefined,
        auth: 'none',
        status: 401,
      },
      {
        at: 'realm',
        method: 'GET',
        path: '/token?scope&service',
        range: undefined,
        auth: 'basic',
        status: 200,
      },
      {
        at: 'registry',
        method: 'GET',
        path: '/v2/private/m/manifests/v1',
        range: undefined,
        auth: 'bearer',
        status: 200,
      },
      // The probe that finds blobs in blob storage (so large ones would go in parallel parts).
      blobAt('registry', 'bytes=0-0', 307),
      blobAt('storage', 'bytes=0-0', 206),
      {
        at: 'registry',
        method: 'GET',
        path: `/v2/private/m/blobs/sha256:${blob}`,
        range: undefined,
        auth: 'bearer',
        status: 307,
      },
      blobAt('storage', undefined, 200),
    ]);
  }, 120_000);

  it('Basic auth straight from the registry; anonymous without a secretRef is refused with the cause', async () => {
    const dir = mkdtempSync(join(work, 'basic-'));
    files(dir, { 'w.bin': 'basic' });
    await orasPush(`${registry.host}/private/basic:v1`, dir, ['w.bin']);
    const front = await startFront(registry.host, {
      basic: { user: 'ml-team', password: 's3cret-pw' },
    });
    fronts.push(front);
    const ok = volume();
    await run(planFor(oci(`${front.host}/private/basic:v1`, { dockerConfigEnv: 'C' }), ok), {
      env: { C: config(front.host) },
    });
    expect(tree(ok)).toEqual({ 'w.bin': sha('basic') });
    await expect(run(planFor(oci(`${front.host}/private/basic:v1`), volume()))).rejects.toThrow(
      FetchError.permanent(
        `listing oci://${front.host}/private/basic:v1 from http://${front.host}: HTTP 401 from http://${front.host}/v2/private/basic/manifests/v1: the registry asks for basic credentials and the source has no secretRef`,
      ),
    );
  }, 120_000);

  it('a wrong password fails at the realm, and no credential appears in the error', async () => {
    const front = await startFront(registry.host, {
      bearer: { user: 'ml-team', password: 'right-pw', token: 't' },
    });
    fronts.push(front);
    const err = await run(
      planFor(oci(`${front.host}/private/m:v1`, { dockerConfigEnv: 'C' }), volume()),
      {
        env: { C: config(front.host) },
      },
    ).catch((e: unknown) => e);
    expect(err).toEqual(
      FetchError.permanent(
        `listing oci://${front.host}/private/m:v1 from http://${front.host}: the token realm refused the docker config pull of private/m: HTTP 401 Unauthorized from http://${front.realm}/token`,
      ),
    );
    const text = (err as Error).message;
    expect(text).not.toContain('s3cret-pw');
    expect(text).not.toContain(Buffer.from('ml-team:s3cret-pw').toString('base64'));
  }, 120_000);

  it('a corrupt byte in a blob is caught by its digest: fetched once more, then refused; nothing published', async () => {
    const dir = mkdtempSync(join(work, 'corrupt-'));
    const data = bytes(MIB, 6);
    files(dir, { 'w.bin': data });
    await orasPush(`${registry.host}/models/corrupt:v1`, dir, ['w.bin']);
    const front = await startFront(registry.host);
    fronts.push(front);
    front.corrupt.set(`sha256:${sha(data)}`, 1234);
    const target = volume();
    await expect(run(planFor(oci(`${front.host}/models/corrupt:v1`), target))).rejects.toThrow(
      new FetchError(
        `sha256 mismatch: expected ${sha(data)}, got ${sha(Buffer.concat([data.subarray(0, 1234), Buffer.from([(data[1234] ?? 0) ^ 0xff]), data.subarray(1235)]))}`,
        'w.bin',
      ),
    );
    // The listing's one-byte probe, then the blob twice: the first copy failed its digest.
    expect(front.requests.filter((r) => r.path.includes('/blobs/')).map((r) => r.range)).toEqual([
      'bytes=0-0',
      undefined,
      undefined,
    ]);
    expect(tree(target)).toEqual({});
  }, 120_000);
});

describe('kill mid-blob, then resume', () => {
  it('a fetch program killed (SIGKILL) inside a blob resumes it with a Range request from its checkpoint', async () => {
    const dir = mkdtempSync(join(work, 'kill-'));
    const data = bytes(6 * MIB, 7);
    files(dir, { 'w.bin': data });
    await orasPush(`${registry.host}/models/kill:v1`, dir, ['w.bin']);
    const front = await startFront(registry.host);
    fronts.push(front);
    front.slow = { chunk: 64 * 1024, everyMs: 20 };
    const target = volume();
    const plan = planFor(oci(`${front.host}/models/kill:v1`), target);
    const child = spawn(process.execPath, ['--import', 'tsx', 'function/fetch/main.ts'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        MODELCACHE_PLAN: JSON.stringify(plan),
        MODELCACHE_FETCH_CONNECTIONS_PER_FILE: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        resolve();
      });
    });
    const checkpoint = new Layout(target, plan.identity).checkpoint('w.bin');
    const offset = (): number => {
      try {
        return (JSON.parse(readFileSync(checkpoint, 'utf8')) as { offset: number }).offset;
      } catch {
        return 0;
      }
    };
    const deadline = Date.now() + 60_000;
    while (offset() < MIB && child.exitCode === null && Date.now() < deadline) await sleep(25);
    child.kill('SIGKILL');
    await exited;
    expect(output).not.toContain('"fetch succeeded"');
    const kept = offset();
    expect(kept).toBeGreaterThanOrEqual(MIB);
    expect(kept).toBeLessThan(data.length);

    front.slow = undefined;
    front.requests.length = 0;
    const second = await run(plan, {
      ranges: {
        ...DEFAULT_RANGE_OPTIONS,
        connectionsPerFile: 1,
      },
    });
    expect({ resumed: second.bytesResumed, fetched: second.bytesFetched }).toEqual({
      resumed: kept,
      fetched: data.length - kept,
    });
    expect(front.requests.filter((r) => r.path.includes('/blobs/')).map((r) => r.range)).toEqual([
      'bytes=0-0',
      `bytes=${String(kept)}-${String(6 * MIB - 1)}`,
    ]);
    expect(tree(target)).toEqual({ 'w.bin': sha(data) });
  }, 120_000);
});
