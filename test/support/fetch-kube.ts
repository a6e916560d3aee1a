// A fake Kubernetes API server on loopback (TLS, bearer token) that records the PATCHes
// the fetch program sends to its own Job, laid out like an in-cluster pod sees it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { generate } from 'selfsigned';

export interface RecordedPatch {
  method: string;
  path: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: unknown;
}

export interface FakeApiServer {
  host: string;
  port: number;
  /** A directory holding `token` and `ca.crt`, as the service account mount does. */
  serviceAccountDir: string;
  token: string;
  patches: RecordedPatch[];
  /** Status the next requests get (200 by default), to prove failures are tolerated. */
  respondWith: number;
  close(): Promise<void>;
}

export async function startFakeApiServer(): Promise<FakeApiServer> {
  const cert = await generate([{ name: 'commonName', value: 'kubernetes' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'fetch-sa-'));
  const token = 'test-sa-token-0123456789';
  writeFileSync(join(dir, 'token'), token);
  writeFileSync(join(dir, 'ca.crt'), cert.cert);
  const patches: RecordedPatch[] = [];
  const state = { respondWith: 200 };
  const server: Server = createServer({ key: cert.private, cert: cert.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      patches.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body: text === '' ? undefined : (JSON.parse(text) as unknown),
      });
      res.writeHead(state.respondWith, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Job', apiVersion: 'batch/v1' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    serviceAccountDir: dir,
    token,
    patches,
    get respondWith() {
      return state.respondWith;
    },
    set respondWith(v: number) {
      state.respondWith = v;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
