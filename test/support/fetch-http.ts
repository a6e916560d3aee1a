// A plain HTTP file server on loopback with Range, ETag, bearer auth and scripted faults.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { FaultBook, serveBytes, sha256, type Bytes, type ServedRequest } from './fetch-serve.js';

export interface HttpTestServer {
  base: string;
  url(path: string): string;
  files: Map<string, Bytes>;
  faults: FaultBook;
  requests: ServedRequest[];
  /** Body bytes served for `path` since the last reset. */
  bytesServed(path: string): number;
  close(): Promise<void>;
}

export async function startHttpServer(
  files: Record<string, Bytes>,
  opts: { token?: string; etag?: boolean; chunked?: boolean } = {},
): Promise<HttpTestServer> {
  const map = new Map(Object.entries(files));
  const faults = new FaultBook();
  const requests: ServedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
      requests.push({
        method: req.method ?? '',
        path,
        range: req.headers.range,
        authorization: req.headers.authorization,
        status: 401,
        bytes: 0,
        at: Date.now(),
      });
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('unauthorized\n');
      return;
    }
    const bytes = map.get(path);
    if (bytes === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    const headers: Record<string, string> = {};
    if (opts.etag !== false) {
      headers['etag'] =
        `"${Buffer.isBuffer(bytes) ? sha256(bytes).slice(0, 16) : String(bytes.size)}"`;
    }
    const fault =
      faults.take(path, req.headers.range) ??
      (opts.chunked ? { kind: 'chunked' as const } : undefined);
    serveBytes(req, res, bytes, headers, fault, requests).catch(() => {
      res.destroy();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    url: (p) => `${base}${p}`,
    files: map,
    faults,
    requests,
    bytesServed: (p) =>
      requests.filter((r) => r.path.split('?')[0] === p).reduce((n, r) => n + r.bytes, 0),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
