// A Hugging Face–compatible test hub on loopback, faithful to what both clients use
// (huggingface_hub's file_download.py / hf_api.py and @huggingface/hub's lib/):
//
//   GET  /api/models/{repo}/revision/{rev}        → {id, sha, siblings, …}
//   GET  /api/models/{repo}/tree/{rev}[/{path}]?recursive=&cursor=
//                                                 → entries, paginated with a Link header
//   HEAD/GET /{repo}/resolve/{rev}/{path}
//        regular (git) file: 200 with ETag (git blob id), X-Repo-Commit, Content-Length, Range;
//          by branch or tag name first a relative 307 to /api/resolve-cache/… as the hub does;
//        LFS file: 302 to a signed URL on a separate "CDN" origin, carrying X-Repo-Commit,
//          X-Linked-Etag (the sha256) and X-Linked-Size, as the hub does.
//   GET  {cdn}/lfs/{sha256}?X-Amz-Signature=…      → the bytes, Range, ETag; no auth header wanted
//
// Errors carry X-Error-Code (RepositoryNotFound, RevisionNotFound, EntryNotFound) as the hub's do.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import {
  FaultBook,
  serveBytes,
  sizeOf,
  trickle,
  type Bytes,
  type ServedRequest,
} from './fetch-serve.js';

export interface HubFile {
  path: string;
  bytes: Bytes;
  /** Stored in LFS (served through the CDN redirect, listed with lfs.oid = sha256). */
  lfs: boolean;
  /** sha256 of the bytes; computed for in-memory files, given for on-disk ones. */
  sha256?: string;
}

export interface HubOptions {
  repo: string;
  files: HubFile[];
  /** Branch and tag names → the one commit; the commit id itself always resolves. */
  refs?: string[];
  commit?: string;
  /** Entries per tree page (the real hub uses 1000; small here to exercise pagination). */
  pageSize?: number;
  /** When set, API and resolve requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Names listed in the tree that the hub will not serve safely (traversal tests). */
  rawTreeEntries?: Record<string, unknown>[];
  /**
   * A hostile hub's pagination: the `rel="next"` target to send, given the honest one
   * (undefined on the last page) and the page's own URL. Absent: the honest one.
   */
  nextLink?: (honest: string | undefined, self: string) => string | undefined;
}

export interface TestHub {
  endpoint: string;
  cdn: string;
  commit: string;
  /** Requests to the hub origin and to the CDN origin. */
  requests: ServedRequest[];
  cdnRequests: ServedRequest[];
  /** Faults keyed by file path in the repo (applied where its bytes are served). */
  faults: FaultBook;
  /** Faults for API paths, keyed 'revision' or 'tree'. */
  apiFaults: FaultBook;
  sha256Of(path: string): string;
  close(): Promise<void>;
}

const SIGNATURE = 'X-Amz-Signature=0123456789abcdef&X-Amz-Expires=3600';

function gitBlobId(b: Buffer): string {
  return createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}

function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function errorCode(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: message }, { 'x-error-code': code, 'x-error-message': message });
}

async function listen(server: Server): Promise<string> {
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function startTestHub(opts: HubOptions): Promise<TestHub> {
  const commit = opts.commit ?? createHash('sha1').update(opts.repo).digest('hex');
  const refs = new Set([...(opts.refs ?? ['main']), commit]);
  const pageSize = opts.pageSize ?? 1000;
  const faults = new FaultBook();
  const apiFaults = new FaultBook();
  const requests: ServedRequest[] = [];
  const cdnRequests: ServedRequest[] = [];
  const sha = new Map<string, string>();
  const byPath = new Map<string, HubFile>();
  const bySha = new Map<string, HubFile>();
  for (const f of opts.files) {
    const digest =
      f.sha256 ??
      (Buffer.isBuffer(f.bytes) ? createHash('sha256').update(f.bytes).digest('hex') : '');
    sha.set(f.path, digest);
    byPath.set(f.path, f);
    bySha.set(digest, f);
  }

  /** Tree entries: files and the directories they imply, sorted like the hub (by path). */
  function treeEntries(): Record<string, unknown>[] {
    const dirs = new Set<string>();
    const entries: Record<string, unknown>[] = [];
    for (const f of opts.files) {
      const parts = f.path.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
      const size = sizeOf(f.bytes);
      const digest = sha.get(f.path) ?? '';
      if (f.lfs) {
        const pointer = lfsPointer(digest, size);
        entries.push({
          type: 'file',
          oid: gitBlobId(Buffer.from(pointer)),
          size,
          lfs: { oid: digest, size, pointerSize: Buffer.byteLength(pointer) },
          path: f.path,
        });
      } else {
        entries.push({
          type: 'file',
          oid: Buffer.isBuffer(f.bytes) ? gitBlobId(f.bytes) : '',
          size,
          path: f.path,
        });
      }
    }
    for (const d of dirs) {
      entries.push({
        type: 'directory',
        oid: createHash('sha1').update(d).digest('hex'),
        size: 0,
        path: d,
      });
    }
    entries.push(...(opts.rawTreeEntries ?? []));
    return entries.sort((a, b) => String(a['path']).localeCompare(String(b['path'])));
  }

  let cdnBase = '';
  const authorized = (req: IncomingMessage): boolean =>
    opts.token === undefined || req.headers.authorization === `Bearer ${opts.token}`;

  const hub = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    const path = url.pathname;
    const record = (status: number): void => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        range: req.headers.range,
        authorization: req.headers.authorization,
        status,
        bytes: 0,
        at: Date.now(),
      });
    };
    const repoPrefix = `/api/models/${opts.repo}/`;
    if (path.startsWith('/api/')) {
      if (!authorized(req)) {
        record(401);
        errorCode(res, 401, 'RepoNotFound', 'Invalid credentials in Authorization header');
        return;
      }
      const injected = path.startsWith(`${repoPrefix}revision/`)
        ? apiFaults.take('revision')
        : path.startsWith(`${repoPrefix}tree/`)
          ? apiFaults.take('tree')
          : undefined;
      if (injected?.kind === 'hang') {
        record(0);
        return;
      }
      if (injected?.kind === 'slow') {
        // The page as JSON, trickled: a hub that answers but never quite finishes.
        record(200);
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
        void trickle(res, Buffer.from(JSON.stringify(treeEntries())), injected);
        return;
      }
      if (injected?.kind === 'status') {
        record(injected.status);
        res.writeHead(injected.status, {
          'content-type': 'text/plain',
          ...(injected.retryAfter !== undefined ? { 'retry-after': injected.retryAfter } : {}),
        });
        res.end('injected\n');
        return;
      }
    }
    if (path.startsWith('/api/models/') && !path.startsWith(repoPrefix)) {
      record(404);
      errorCode(res, 404, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (path.startsWith(`${repoPrefix}revision/`)) {
      const rev = decodeURIComponent(path.slice(`${repoPrefix}revision/`.length));
      if (!refs.has(rev)) {
        record(404);
        errorCode(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
        return;
      }
      record(200);
      json(res, 200, {
        _id: createHash('md5').update(opts.repo).digest('hex').slice(0, 24),
        id: opts.repo,
        modelId: opts.repo,
        author: opts.repo.split('/')[0],
        sha: commit,
        lastModified: '2026-01-01T00:00:00.000Z',
        private: false,
        gated: false,
        disabled: false,
        downloads: 0,
        likes: 0,
        tags: [],
        siblings: opts.files.map((f) => ({ rfilename: f.path })),
      });
      return;
    }
    if (path.startsWith(`${repoPrefix}tree/`)) {
      const rest = path.slice(`${repoPrefix}tree/`.length);
      const slash = rest.indexOf('/');
      const rev = decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash));
      const under = slash < 0 ? '' : decodeURIComponent(rest.slice(slash + 1));
      if (!refs.has(rev)) {
        record(404);
        errorCode(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
        return;
      }
      const recursive =
        url.searchParams.get('recursive') === 'true' || url.searchParams.get('recursive') === '1';
      let entries = treeEntries().filter((e) => {
        const p = String(e['path']);
        const inside = under === '' || p.startsWith(`${under}/`);
        const rel = under === '' ? p : p.slice(under.length + 1);
        return inside && (recursive || !rel.includes('/'));
      });
      const cursor = Number(url.searchParams.get('cursor') ?? '0');
      const page = entries.slice(cursor, cursor + pageSize);
      const headers: Record<string, string> = {};
      let honest: string | undefined;
      if (cursor + pageSize < entries.length) {
        const next = new URL(`http://${req.headers.host ?? ''}${url.pathname}`);
        for (const [k, v] of url.searchParams) if (k !== 'cursor') next.searchParams.append(k, v);
        next.searchParams.set('cursor', String(cursor + pageSize));
        honest = next.href;
      }
      const link = opts.nextLink
        ? opts.nextLink(honest, `http://${req.headers.host ?? ''}${req.url ?? ''}`)
        : honest;
      if (link !== undefined) headers['link'] = `<${link}>; rel="next"`;
      entries = page;
      record(200);
      json(res, 200, entries, headers);
      return;
    }
    const cache = `/api/resolve-cache/models/${opts.repo}/${commit}/`;
    const resolve = `/${opts.repo}/resolve/`;
    let rev: string;
    let filePath: string;
    if (path.startsWith(cache)) {
      rev = commit;
      filePath = decodeURIComponent(path.slice(cache.length));
    } else if (path.startsWith(resolve)) {
      const rest = path.slice(resolve.length);
      const slash = rest.indexOf('/');
      rev = decodeURIComponent(rest.slice(0, slash));
      filePath = rest
        .slice(slash + 1)
        .split('/')
        .map((s) => decodeURIComponent(s))
        .join('/');
    } else {
      record(404);
      errorCode(res, 404, 'RepoNotFound', 'Not found');
      return;
    }
    if (!authorized(req)) {
      record(401);
      errorCode(res, 401, 'GatedRepo', 'Access to this repo requires a token');
      return;
    }
    if (!refs.has(rev)) {
      record(404);
      errorCode(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return;
    }
    const file = byPath.get(filePath);
    if (file === undefined) {
      record(404);
      errorCode(res, 404, 'EntryNotFound', `${filePath} does not exist on "${rev}"`);
      return;
    }
    const digest = sha.get(filePath) ?? '';
    const common = {
      'x-repo-commit': commit,
      'access-control-expose-headers':
        'X-Repo-Commit,X-Linked-Etag,X-Linked-Size,ETag,Content-Range',
    };
    if (file.lfs) {
      const location = `${cdnBase}/lfs/${digest}?${SIGNATURE}`;
      record(302);
      const body = `Found. Redirecting to ${location}`;
      res.writeHead(302, {
        ...common,
        location,
        etag: `"${gitBlobId(Buffer.from(lfsPointer(digest, sizeOf(file.bytes))))}"`,
        'x-linked-etag': `"${digest}"`,
        'x-linked-size': String(sizeOf(file.bytes)),
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path.startsWith(resolve) && rev !== commit) {
      // The hub answers a branch or tag with a relative redirect to its commit-pinned cache URL.
      record(307);
      res.writeHead(307, {
        ...common,
        location: `${cache}${filePath.split('/').map(encodeURIComponent).join('/')}`,
        'content-length': '0',
      });
      res.end();
      return;
    }
    const etag = `"${Buffer.isBuffer(file.bytes) ? gitBlobId(file.bytes) : digest}"`;
    serveBytes(
      req,
      res,
      file.bytes,
      { ...common, etag },
      faults.take(filePath, req.headers.range),
      requests,
    ).catch(() => {
      res.destroy();
    });
  });

  const cdn = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://cdn');
    const digest = url.pathname.replace(/^\/lfs\//, '');
    const file = bySha.get(digest);
    if (file === undefined || url.searchParams.get('X-Amz-Signature') === null) {
      cdnRequests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        range: req.headers.range,
        authorization: req.headers.authorization,
        status: 403,
        bytes: 0,
        at: Date.now(),
      });
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<Error><Code>AccessDenied</Code></Error>');
      return;
    }
    serveBytes(
      req,
      res,
      file.bytes,
      { etag: `"${digest}"` },
      faults.take(file.path, req.headers.range),
      cdnRequests,
    ).catch(() => {
      res.destroy();
    });
  });

  const endpoint = await listen(hub);
  cdnBase = await listen(cdn);
  const close = (s: Server): Promise<void> =>
    new Promise((resolve) => {
      s.closeAllConnections();
      s.close(() => {
        resolve();
      });
    });
  return {
    endpoint,
    cdn: cdnBase,
    commit,
    requests,
    cdnRequests,
    faults,
    apiFaults,
    sha256Of: (p) => sha.get(p) ?? '',
    close: async () => {
      await Promise.all([close(hub), close(cdn)]);
    },
  };
}
