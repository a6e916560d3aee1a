// The harness's Kubernetes client retries what the API server asks it to retry, as client-go
// does: a CI run failed on one 429 "storage is (re)initializing" from a CRD created seconds before.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kube, KubeError, MAX_RETRIES, retryDelayMs } from './kube.js';
import { makePki, type Pki } from './pki.js';

describe('retryDelayMs', () => {
  const cases: {
    reason: string;
    status: number;
    retryAfter: string | undefined;
    want: number | undefined;
  }[] = [
    { reason: 'a 429 with Retry-After waits as asked', status: 429, retryAfter: '1', want: 1000 },
    { reason: 'a 503 with Retry-After is retried too', status: 503, retryAfter: '3', want: 3000 },
    {
      reason: 'a 429 without Retry-After is final',
      status: 429,
      retryAfter: undefined,
      want: undefined,
    },
    { reason: 'a 404 is final whatever it carries', status: 404, retryAfter: '1', want: undefined },
    {
      reason: 'a 409 conflict is the caller’s to handle',
      status: 409,
      retryAfter: '1',
      want: undefined,
    },
    { reason: 'Retry-After: 0 still waits a second', status: 429, retryAfter: '0', want: 1000 },
    { reason: 'a long wait is capped at 10 s', status: 429, retryAfter: '120', want: 10_000 },
    {
      reason: 'an HTTP-date is not understood: final',
      status: 429,
      retryAfter: 'Wed, 21 Oct',
      want: undefined,
    },
    { reason: 'a negative wait is not a wait', status: 500, retryAfter: '-1', want: undefined },
  ];
  it.each(cases)('$reason', ({ status, retryAfter, want }) => {
    expect(retryDelayMs(status, retryAfter)).toBe(want);
  });
});

describe('Kube.request against a loopback HTTPS server', () => {
  let dir: string;
  let pki: Pki;
  let server: Server;
  let busyFor = 0;
  let seen = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kube-test-'));
    pki = makePki(join(dir, 'pki'));
    server = createServer(
      { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) },
      (req, res) => {
        seen++;
        if (req.url === '/busy' && seen <= busyFor) {
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
          res.end('{"message":"storage is (re)initializing"}');
          return;
        }
        if (req.url === '/gone') {
          res.writeHead(404, { 'content-type': 'application/json', 'retry-after': '1' });
          res.end('{"message":"not found"}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"items":[{"n":1}]}');
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    await new Promise<void>((r) => {
      server.close(() => {
        r();
      });
    });
    rmSync(dir, { recursive: true, force: true });
  });

  const kube = (): Kube =>
    new Kube(
      {
        name: 'wl-t',
        server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
        kubeconfig: '',
        caFile: pki.ca,
        certFile: pki.admin.cert,
        keyFile: pki.admin.key,
      },
      'kubectl',
    );

  it('sends a list again after two 429s and returns the third answer', async () => {
    seen = 0;
    busyFor = 2;
    expect(await kube().list('/busy')).toEqual([{ n: 1 }]);
    expect(seen).toBe(3);
  });

  it('gives up after MAX_RETRIES and reports the last 429', async () => {
    seen = 0;
    busyFor = Number.MAX_SAFE_INTEGER;
    const err = await kube()
      .get('/busy')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect((err as KubeError).status).toBe(429);
    expect((err as KubeError).message).toBe(
      'wl-t GET /busy: HTTP 429: {"message":"storage is (re)initializing"}',
    );
    expect(seen).toBe(MAX_RETRIES + 1);
  }, 20_000);

  it('does not retry a 404 even when it carries Retry-After', async () => {
    seen = 0;
    expect(await kube().getOrUndefined('/gone')).toBeUndefined();
    expect(seen).toBe(1);
  });
});
