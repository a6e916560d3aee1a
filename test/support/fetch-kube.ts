// A fake Kubernetes API server on loopback (TLS, bearer token) that records the requests
// the fetch program sends (PATCHes and GETs of its own Job, GETs of the pod holding the
// volume lock), laid out like an in-cluster pod sees it.
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
  /**
   * Pods a GET of /api/v1/namespaces/{ns}/pods/{name} finds, by "ns/name", with their
   * phase; any other pod is 404. `forbidden` answers every pod GET 403 (no RBAC for it).
   */
  pods: Map<string, string>;
  forbidden: boolean;
  /** Answer pod GETs with a bare 404, as a server that does not serve the path at all. */
  noSuchPath: boolean;
  /** Jobs a GET of /apis/batch/v1/namespaces/{ns}/jobs/{name} finds, by "ns/name"; others 404. */
  jobs: Map<string, unknown>;
  /** Answer every Job GET 403 (a Role granting only `patch`, as before `get` was added). */
  jobsForbidden: boolean;
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
  const pods = new Map<string, string>();
  const jobs = new Map<string, unknown>();
  const state = { respondWith: 200, forbidden: false, noSuchPath: false, jobsForbidden: false };
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
      const job = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/?]+)$/.exec(req.url ?? '');
      if (req.method === 'GET' && job) {
        const found = jobs.get(`${job[1] ?? ''}/${job[2] ?? ''}`);
        const status = state.jobsForbidden ? 403 : found === undefined ? 404 : 200;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            status === 200
              ? found
              : { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: status },
          ),
        );
        return;
      }
      const pod = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)$/.exec(req.url ?? '');
      if (req.method === 'GET' && pod) {
        const phase = pods.get(`${pod[1] ?? ''}/${pod[2] ?? ''}`);
        const status = state.forbidden ? 403 : phase === undefined || state.noSuchPath ? 404 : 200;
        const failure = {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          code: status,
        };
        // The API server's own bodies: NotFound names the pod; a path it does not serve does not.
        const body =
          status === 200
            ? {
                kind: 'Pod',
                apiVersion: 'v1',
                metadata: { name: pod[2], namespace: pod[1] },
                status: { phase },
              }
            : status === 403
              ? { ...failure, reason: 'Forbidden', message: `pods "${pod[2] ?? ''}" is forbidden` }
              : state.noSuchPath
                ? {
                    ...failure,
                    reason: 'NotFound',
                    message: 'the server could not find the requested resource',
                  }
                : {
                    ...failure,
                    reason: 'NotFound',
                    message: `pods "${pod[2] ?? ''}" not found`,
                    details: { name: pod[2], kind: 'pods' },
                  };
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
        return;
      }
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
    pods,
    jobs,
    get jobsForbidden() {
      return state.jobsForbidden;
    },
    set jobsForbidden(v: boolean) {
      state.jobsForbidden = v;
    },
    get noSuchPath() {
      return state.noSuchPath;
    },
    set noSuchPath(v: boolean) {
      state.noSuchPath = v;
    },
    get forbidden() {
      return state.forbidden;
    },
    set forbidden(v: boolean) {
      state.forbidden = v;
    },
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
