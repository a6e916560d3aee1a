// The s3 source (AWS SDK) against a real S3-compatible server (moto's, from PyPI) on
// loopback: prefix listing with pagination, stored SHA-256 checksums, ranged resume
// after a reset (through a faulty proxy), credentials, and hostile keys.
import {
  CreateBucketCommand,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import type { Manifest } from '../../function/fetch/layout.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import { bytes, planFor, run, scratch, tree } from '../support/fetch-harness.js';
import { startFaultyProxy, type FaultyProxy } from '../support/fetch-proxy.js';
import { startMoto, type Moto } from '../support/fetch-python.js';
import { sha256 } from '../support/fetch-serve.js';

const BUCKET = 'models';
const ENV = { AWS_ACCESS_KEY_ID: 'testing-key', AWS_SECRET_ACCESS_KEY: 'testing-secret-value' };
const CONFIG = Buffer.from('{"model_type":"llama"}\n');
const WEIGHTS = bytes(4_000_000, 21);
const GGUF = bytes(300_000, 22);

let moto: Moto;
let proxy: FaultyProxy;
let volume: ReturnType<typeof scratch>;

async function put(client: S3Client, input: Omit<PutObjectCommandInput, 'Bucket'>): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: BUCKET, ...input }));
}

beforeAll(async () => {
  moto = await startMoto();
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: moto.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ENV.AWS_ACCESS_KEY_ID, secretAccessKey: ENV.AWS_SECRET_ACCESS_KEY },
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await put(client, { Key: 'llama/config.json', Body: CONFIG });
  await put(client, {
    Key: 'llama/weights/model.safetensors',
    Body: WEIGHTS,
    ChecksumAlgorithm: 'SHA256',
  });
  await put(client, { Key: 'llama/empty/', Body: '' });
  await put(client, { Key: 'llama-2/not-this.bin', Body: 'x' });
  await put(client, { Key: 'single/model.gguf', Body: GGUF, ChecksumAlgorithm: 'SHA256' });
  const many = Array.from({ length: 1003 }, (_, i) => `many/f${String(i).padStart(4, '0')}.txt`);
  for (let i = 0; i < many.length; i += 50) {
    await Promise.all(many.slice(i, i + 50).map((Key) => put(client, { Key, Body: Key })));
  }
  for (const key of ['evil1/../escape.bin', 'evil2/a//b.bin', 'evil3/.modelcache/complete.json']) {
    await put(client, { Key: key, Body: 'evil' });
  }
  client.destroy();
  proxy = await startFaultyProxy(Number(new URL(moto.endpoint).port));
}, 120_000);

afterAll(async () => {
  await proxy.close();
  await moto.stop();
});
afterEach(() => {
  volume.cleanup();
});

function source(prefix: string, endpoint = moto.endpoint): FetchPlanSource {
  return {
    type: 's3',
    bucket: BUCKET,
    prefix,
    endpoint,
    region: 'us-east-1',
    credentialsFromEnv: true,
  };
}

const LLAMA: Manifest = {
  version: 1,
  identity: 'a'.repeat(64),
  sourceType: 's3',
  resolvedRevision: `sha256:${sha256(
    `${sha256(CONFIG)}  config.json\n${sha256(WEIGHTS)}  weights/model.safetensors\n`,
  )}`,
  totalBytes: CONFIG.length + WEIGHTS.length,
  files: [
    { path: 'config.json', size: CONFIG.length, sha256: sha256(CONFIG), verifiedBy: 'none' },
    {
      path: 'weights/model.safetensors',
      size: WEIGHTS.length,
      sha256: sha256(WEIGHTS),
      verifiedBy: 'sha256',
    },
  ],
};

describe('s3 source', () => {
  it.each([
    {
      reason: 'a prefix without a trailing slash is a directory, not a string prefix',
      prefix: 'llama',
    },
    { reason: 'a prefix with a trailing slash', prefix: 'llama/' },
  ])('stages the prefix with stored checksums verified: $reason', async ({ prefix }) => {
    volume = scratch();
    const result = await run(planFor(source(prefix), volume.dir), { env: ENV });
    expect(result).toEqual({
      outcome: 'complete',
      manifest: LLAMA,
      bytesFetched: LLAMA.totalBytes,
      bytesResumed: 0,
    });
    expect(tree(volume.dir)).toEqual({
      'config.json': sha256(CONFIG),
      'weights/model.safetensors': sha256(WEIGHTS),
    });
  });

  it('resumes with a ranged GET after a connection reset mid-object', async () => {
    volume = scratch();
    proxy.resetAfter(1_500_000, 1);
    const result = await run(planFor(source('llama', proxy.endpoint), volume.dir), { env: ENV });
    expect(proxy.resets).toBe(1);
    expect(result).toEqual({
      outcome: 'complete',
      manifest: LLAMA,
      bytesFetched: LLAMA.totalBytes,
      bytesResumed: 0,
    });
    expect(tree(volume.dir)['weights/model.safetensors']).toBe(sha256(WEIGHTS));
  });

  it('follows ListObjectsV2 pagination past 1000 keys', async () => {
    volume = scratch();
    const result = await run(planFor(source('many'), volume.dir), { env: ENV });
    expect(result.manifest.files.length).toBe(1003);
    expect(result.manifest.files.map((f) => f.path)).toEqual(
      Array.from({ length: 1003 }, (_, i) => `f${String(i).padStart(4, '0')}.txt`),
    );
    expect(result.manifest.files[1002]).toEqual({
      path: 'f1002.txt',
      size: 14,
      sha256: sha256('many/f1002.txt'),
      verifiedBy: 'none',
    });
  });

  it('stages a prefix that names one object under its base name', async () => {
    volume = scratch();
    const result = await run(planFor(source('single/model.gguf'), volume.dir), { env: ENV });
    expect(result.manifest).toEqual({
      version: 1,
      identity: 'a'.repeat(64),
      sourceType: 's3',
      resolvedRevision: `sha256:${sha256(GGUF)}`,
      totalBytes: GGUF.length,
      files: [
        { path: 'model.gguf', size: GGUF.length, sha256: sha256(GGUF), verifiedBy: 'sha256' },
      ],
    });
  });

  it('names the missing variables when the plan takes credentials from the env', async () => {
    volume = scratch();
    await expect(run(planFor(source('llama'), volume.dir), { env: {} })).rejects.toThrow(
      FetchError.permanent(
        'the plan takes S3 credentials from the env, but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set',
      ),
    );
  });

  it.each([
    {
      reason: 'a parent-directory escape',
      prefix: 'evil1',
      path: '../escape.bin',
      message: 'path has an empty, "." or ".." segment',
    },
    {
      reason: 'an empty segment',
      prefix: 'evil2',
      path: 'a//b.bin',
      message: 'path has an empty, "." or ".." segment',
    },
    {
      reason: 'the program state directory',
      prefix: 'evil3',
      path: '.modelcache/complete.json',
      message: 'path enters the reserved .modelcache/ directory',
    },
  ])('rejects a key with $reason before writing anything', async ({ prefix, path, message }) => {
    volume = scratch();
    const err = await run(planFor(source(prefix), volume.dir), { env: ENV }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FetchError);
    expect([(err as FetchError).file, (err as FetchError).message]).toEqual([
      path,
      `unsafe path from the source: ${message}`,
    ]);
    expect(tree(volume.dir)).toEqual({});
  });
});
