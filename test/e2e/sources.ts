// The artifacts' sources the scenarios stage from, all on loopback inside the harness's
// namespace (the fetch pods share it): the project's Hugging Face–compatible test hub and plain
// HTTP server (test/support), and moto's S3 server from the fetch tests' pinned venv.
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { bytes } from '../support/fetch-harness.js';
import { startTestHub, type HubOptions, type TestHub } from '../support/fetch-hub.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { startMoto, type Moto } from '../support/fetch-python.js';
import type { Bytes } from '../support/fetch-serve.js';

export interface RepoFile {
  path: string;
  bytes: Buffer;
  lfs: boolean;
}

/** A small model repository: git files (config, tokenizer) and LFS weights, deterministic by seed. */
export function modelRepo(seed: number, weights: number[] = [600_000, 400_000]): RepoFile[] {
  const git = (path: string, text: string): RepoFile => ({
    path,
    bytes: Buffer.from(text),
    lfs: false,
  });
  const files = [
    git('config.json', `{"model_type":"llama","seed":${seed}}\n`),
    git('generation_config.json', `{"temperature":0.6,"seed":${seed}}\n`),
    git('tokenizer.json', JSON.stringify({ vocab: { a: 1, b: 2 }, seed }) + '\n'),
    git('tokenizer_config.json', `{"model_max_length":8192,"seed":${seed}}\n`),
    { path: 'tokenizer.model', bytes: bytes(50_000, seed * 100 + 50), lfs: true },
    git('README.md', `# model ${seed}\nnot staged by the examples' include globs\n`),
    { path: 'original/consolidated.00.pth', bytes: bytes(70_000, seed * 100 + 60), lfs: true },
  ];
  weights.forEach((size, i) => {
    files.push({
      path: `model-${String(i + 1).padStart(5, '0')}-of-${String(weights.length).padStart(5, '0')}.safetensors`,
      bytes: bytes(size, seed * 100 + i + 1),
      lfs: true,
    });
  });
  return files;
}

/** fnmatch-style globs as the examples' include lists use them ('*' does not cross '/'). */
export function matching(files: RepoFile[], include: string[]): Record<string, Buffer> {
  const res = include.map(
    (g) =>
      new RegExp(
        `^${g
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')}$`,
      ),
  );
  const out: Record<string, Buffer> = {};
  for (const f of files) if (res.some((r) => r.test(f.path))) out[f.path] = f.bytes;
  return out;
}

export class Sources {
  private readonly closers: (() => Promise<void>)[] = [];
  private moto: Moto | undefined;

  constructor(readonly root: string) {}

  async hub(opts: HubOptions): Promise<TestHub> {
    const hub = await startTestHub(opts);
    this.closers.push(() => hub.close());
    return hub;
  }

  async http(files: Record<string, Bytes>, opts: { token?: string } = {}): Promise<HttpTestServer> {
    const server = await startHttpServer(files, opts);
    this.closers.push(() => server.close());
    return server;
  }

  /** moto's S3 server (one for the run) with `bucket` holding `objects`. */
  async s3(
    bucket: string,
    objects: Record<string, Buffer>,
    creds: { id: string; secret: string },
  ): Promise<string> {
    if (!this.moto) {
      this.moto = await startMoto();
      const m = this.moto;
      this.closers.push(() => m.stop());
    }
    const client = new S3Client({
      endpoint: this.moto.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: creds.id, secretAccessKey: creds.secret },
    });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const [key, body] of Object.entries(objects)) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    }
    client.destroy();
    return this.moto.endpoint;
  }

  async close(): Promise<void> {
    for (const c of this.closers.reverse()) await c().catch(() => undefined);
  }
}
