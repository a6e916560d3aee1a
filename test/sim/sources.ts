// The artifacts' sources, served on loopback by the fetch issue's test servers: the
// Hugging Face–compatible hub (test/support/fetch-hub.ts), the plain HTTP server
// (test/support/fetch-http.ts) and, for S3, moto's S3-compatible server
// (test/support/fetch-python.ts). Small, deterministic files, so a scenario stages in well
// under a second of wall time and every byte can be compared with what was served.
import { bytes } from '../support/fetch-harness.js';
import { startTestHub, type HubFile, type TestHub } from '../support/fetch-hub.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { expectedOf, type Expected } from './checks.js';

export interface ArtifactFile {
  path: string;
  bytes: Buffer;
  lfs: boolean;
}

/** A small model repo: config and tokenizer as git files, weights as LFS files. */
export function modelFiles(seed: number, weights: number[] = [400_000, 300_000]): ArtifactFile[] {
  const files: ArtifactFile[] = [
    {
      path: 'config.json',
      bytes: Buffer.from(`{"model_type":"llama","seed":${seed}}\n`),
      lfs: false,
    },
    {
      path: 'tokenizer.json',
      bytes: Buffer.from(JSON.stringify({ vocab: { a: 1, b: 2 }, seed }) + '\n'),
      lfs: false,
    },
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

export interface Hub {
  hub: TestHub;
  repo: string;
  files: ArtifactFile[];
  /** What a cache of the whole repo must stage. */
  expected: Expected;
}

export async function startHub(opts: {
  repo: string;
  files: ArtifactFile[];
  token?: string;
  commit?: string;
  refs?: string[];
}): Promise<Hub> {
  const hub = await startTestHub({
    repo: opts.repo,
    files: opts.files.map((f): HubFile => ({ path: f.path, bytes: f.bytes, lfs: f.lfs })),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.commit !== undefined ? { commit: opts.commit } : {}),
    ...(opts.refs !== undefined ? { refs: opts.refs } : {}),
  });
  return { hub, repo: opts.repo, files: opts.files, expected: expectedOf(opts.files) };
}

export interface Http {
  server: HttpTestServer;
  expected(path: string, as?: string): Expected;
}

export async function startHttp(files: Record<string, Buffer>, token?: string): Promise<Http> {
  const server = await startHttpServer(files, token !== undefined ? { token } : {});
  return {
    server,
    expected: (path, as) => {
      const b = files[path];
      if (b === undefined) throw new Error(`no file ${path} on the HTTP server`);
      return expectedOf([{ path: as ?? path.split('/').pop() ?? path, bytes: b }]);
    },
  };
}
