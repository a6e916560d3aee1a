// The OCI source's test peers: go-containerregistry's real registry (`crane registry serve`),
// the official ORAS CLI and crane to push, all built from the Go module proxy at the pins in
// test/oci/versions.env (test/oci/build.sh, cached under .cache/bin), and a front of our own
// that the tests put between the fetch program and the registry: a token-challenge auth (the
// realm on its own origin), blob redirects to a "blob storage" origin, a corrupted byte, slow
// bodies, and a record of every request. Everything listens on 127.0.0.1.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { pack } from 'tar-stream';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);

/** The pins, parsed from the one file that sets them. */
export function ociPins(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(ROOT, 'test/oci/versions.env'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

/** crane and oras at their pins, built first when missing (never skipped). */
export function ociTools(): { crane: string; oras: string } {
  const pins = ociPins();
  const crane = join(ROOT, `.cache/bin/crane-${pins['CRANE_VERSION'] ?? ''}/crane`);
  const oras = join(ROOT, `.cache/bin/oras-${pins['ORAS_VERSION'] ?? ''}/oras`);
  if (!existsSync(crane) || !existsSync(oras)) {
    execFileSync('bash', [join(ROOT, 'test/oci/build.sh')], { stdio: 'inherit' });
  }
  return { crane, oras };
}

export async function crane(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run(ociTools().crane, args, { cwd, maxBuffer: 64 << 20 });
  return stdout.trim();
}

export async function oras(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run(ociTools().oras, args, {
    cwd,
    maxBuffer: 64 << 20,
    // No docker config of the machine's user is read or written.
    env: { PATH: process.env['PATH'] ?? '', HOME: cwd ?? '/nonexistent' },
  });
  return stdout.trim();
}

export interface Registry {
  /** host:port, for references. */
  host: string;
  stop(): Promise<void>;
}

/** `crane registry serve` on a loopback port, up when this resolves. */
export async function startRegistry(opts: { disk?: string } = {}): Promise<Registry> {
  const { crane: bin } = ociTools();
  const args = ['registry', 'serve', '--address', '127.0.0.1:0'];
  // Blobs in memory by default; on disk (--disk) for artifacts too large to hold twice.
  if (opts.disk !== undefined) args.push('--disk', opts.disk);
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const onData = (d: Buffer): void => {
    output += d.toString();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const deadline = Date.now() + 20_000;
  for (;;) {
    // It prints "serving on port N" for the address it was given (127.0.0.1:0).
    const m = /serving on port (\d+)/.exec(output);
    if (m?.[1] !== undefined) {
      const host = `127.0.0.1:${m[1]}`;
      try {
        const res = await fetch(`http://${host}/v2/`);
        await res.body?.cancel();
        return {
          host,
          stop: async () => {
            if (child.exitCode !== null) return;
            const exited = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            await exited;
          },
        };
      } catch {
        // not listening yet
      }
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`crane registry serve did not start: ${output.slice(-2000)}`);
    }
    await sleep(50);
  }
}

export interface FrontRequest {
  /** Which origin saw it. */
  at: 'registry' | 'realm' | 'storage';
  method: string;
  /** Path and query, the query's signature replaced by "sig". */
  path: string;
  range?: string;
  /** The scheme of the Authorization header it carried ("basic", "bearer"), or "none". */
  auth: string;
  status: number;
}

export interface FrontOptions {
  /** Ask for a token: 401 with a Bearer challenge naming the realm, which checks user:password. */
  bearer?: { user: string; password: string; token: string };
  /** Ask for Basic credentials directly. */
  basic?: { user: string; password: string };
  /** Answer blob GETs with a 307 to the storage origin (a signed URL, no credential needed). */
  redirectBlobs?: boolean;
}

export interface Front {
  /** host:port of the registry's origin. */
  host: string;
  realm: string;
  requests: FrontRequest[];
  /** Flip one byte at this offset of every body of this blob digest. */
  corrupt: Map<string, number>;
  /** Send blob bodies in chunks of this many bytes, one per `everyMs`. */
  slow: { chunk: number; everyMs: number } | undefined;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${String((server.address() as AddressInfo).port)}`;
}

function authScheme(req: IncomingMessage): string {
  const h = req.headers.authorization;
  return h === undefined ? 'none' : (h.split(' ')[0] ?? '').toLowerCase();
}

/** A front of our own before `upstream` (host:port of the real registry). */
export async function startFront(upstream: string, opts: FrontOptions = {}): Promise<Front> {
  const requests: FrontRequest[] = [];
  const corrupt = new Map<string, number>();
  const state: { slow: Front['slow'] } = { slow: undefined };
  const servers: Server[] = [];

  /** Copy the upstream answer for `path`, with the faults armed. */
  const relay = async (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    record: FrontRequest,
  ): Promise<void> => {
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'range']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const up = await fetch(`http://${upstream}${path}`, {
      method: req.method ?? 'GET',
      headers,
      redirect: 'manual',
    });
    record.status = up.status;
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (k !== 'content-encoding' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
    });
    res.writeHead(up.status, out);
    if (up.body === null || req.method === 'HEAD') {
      res.end();
      return;
    }
    const blob = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path)?.[1];
    const flip = blob !== undefined ? corrupt.get(blob) : undefined;
    const rangeStart = Number(
      /^bytes (\d+)-/.exec(up.headers.get('content-range') ?? '')?.[1] ?? 0,
    );
    let at = rangeStart;
    const slow = blob !== undefined ? state.slow : undefined;
    try {
      for await (const raw of Readable.fromWeb(up.body as never) as AsyncIterable<Buffer>) {
        const chunk = Buffer.from(raw);
        if (flip !== undefined && flip >= at && flip < at + chunk.length) {
          chunk[flip - at] = (chunk[flip - at] ?? 0) ^ 0xff;
        }
        at += chunk.length;
        if (slow === undefined) {
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
          continue;
        }
        for (let o = 0; o < chunk.length; o += slow.chunk) {
          if (res.destroyed) return;
          res.write(chunk.subarray(o, o + slow.chunk));
          await sleep(slow.everyMs);
        }
      }
      res.end();
    } catch {
      res.destroy();
    }
  };

  const storage = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://storage');
    const record: FrontRequest = {
      at: 'storage',
      method: req.method ?? 'GET',
      path: `${url.pathname}${url.search !== '' ? '?sig' : ''}`,
      ...(typeof req.headers.range === 'string' ? { range: req.headers.range } : {}),
      auth: authScheme(req),
      status: 0,
    };
    requests.push(record);
    if (url.searchParams.get('sig') !== 'signed') {
      record.status = 403;
      res.writeHead(403).end();
      return;
    }
    void relay(req, res, url.pathname, record);
  });
  const storageHost = await listen(storage);
  servers.push(storage);

  const realm = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://realm');
    const record: FrontRequest = {
      at: 'realm',
      method: req.method ?? 'GET',
      path: `${url.pathname}?${[...url.searchParams.keys()].sort().join('&')}`,
      auth: authScheme(req),
      status: 0,
    };
    requests.push(record);
    const b = opts.bearer;
    const expected =
      b !== undefined ? `Basic ${Buffer.from(`${b.user}:${b.password}`).toString('base64')}` : '';
    if (b === undefined || req.headers.authorization !== expected) {
      record.status = 401;
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[]}');
      return;
    }
    record.status = 200;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: b.token, expires_in: 300 }));
  });
  const realmHost = await listen(realm);
  servers.push(realm);

  const registry = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://registry');
    const record: FrontRequest = {
      at: 'registry',
      method: req.method ?? 'GET',
      path: url.pathname,
      ...(typeof req.headers.range === 'string' ? { range: req.headers.range } : {}),
      auth: authScheme(req),
      status: 0,
    };
    requests.push(record);
    const b = opts.bearer;
    const basic = opts.basic;
    const deny = (challenge: string): void => {
      record.status = 401;
      res
        .writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    };
    if (b !== undefined && req.headers.authorization !== `Bearer ${b.token}`) {
      const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(url.pathname)?.[1] ?? '';
      deny(
        `Bearer realm="http://${realmHost}/token",service="front.test",scope="repository:${repo}:pull"`,
      );
      return;
    }
    if (
      basic !== undefined &&
      req.headers.authorization !==
        `Basic ${Buffer.from(`${basic.user}:${basic.password}`).toString('base64')}`
    ) {
      deny('Basic realm="front.test"');
      return;
    }
    if (opts.redirectBlobs === true && /\/blobs\/sha256:/.test(url.pathname)) {
      record.status = 307;
      res.writeHead(307, { location: `http://${storageHost}${url.pathname}?sig=signed` }).end();
      return;
    }
    void relay(req, res, url.pathname, record);
  });
  const host = await listen(registry);
  servers.push(registry);

  return {
    host,
    realm: realmHost,
    requests,
    corrupt,
    get slow() {
      return state.slow;
    },
    set slow(v) {
      state.slow = v;
    },
    close: async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => {
          s.close(() => {
            resolve();
          });
        });
      }
    },
  };
}

/** Every entry's mtime: the same layers make the same digests on every run. */
const EPOCH = new Date(0);

export type TarEntry =
  | { name: string; data: Buffer | string }
  | { name: string; type: 'directory' }
  | { name: string; type: 'symlink' | 'link'; linkname: string }
  | { name: string; type: 'character-device' | 'fifo' };

/** A tar archive of raw entries, names as given (nothing normalised: escapes stay escapes). */
export async function tarball(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve) => {
    p.on('end', () => {
      resolve();
    });
  });
  for (const e of entries) {
    if ('data' in e) {
      await new Promise<void>((resolve, reject) => {
        p.entry({ name: e.name, mode: 0o644, mtime: EPOCH }, e.data, (err) => {
          if (err) reject(err);
          else resolve();
        });
      });
    } else if (e.type === 'symlink' || e.type === 'link') {
      p.entry({ name: e.name, type: e.type, linkname: e.linkname, mtime: EPOCH });
    } else if (e.type === 'directory') {
      p.entry({ name: e.name, type: 'directory', mode: 0o755, mtime: EPOCH });
    } else {
      p.entry({ name: e.name, type: e.type, devmajor: 1, devminor: 3, mtime: EPOCH });
    }
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * An image of these layers (oldest first) built with `crane append` in a scratch folder under
 * `work`; returns its manifest digest.
 */
export async function craneImage(work: string, ref: string, layers: TarEntry[][]): Promise<string> {
  const dir = mkdtempSync(join(work, 'image-'));
  for (const [i, layer] of layers.entries()) {
    const file = join(dir, `layer-${String(i)}.tar`);
    writeFileSync(file, await tarball(layer));
    await crane(['append', ...(i > 0 ? ['-b', ref] : []), '-f', file, '-t', ref]);
  }
  return crane(['digest', ref]);
}
