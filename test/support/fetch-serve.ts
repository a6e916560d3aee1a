// Serving bytes the way real object stores and CDNs do (Range, ETag, Content-Length), with
// scripted faults, for the fetch program's loopback test servers.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** File content: in memory for tests, on disk for the benchmark. */
export type Bytes = Buffer | { file: string; size: number };

export function sizeOf(b: Bytes): number {
  return Buffer.isBuffer(b) ? b.length : b.size;
}

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * A network that behaves like one, for the benchmark: every body answer waits one round
 * trip before its headers, and each connection's body is paced to a bandwidth cap (a
 * keep-alive connection serves one answer at a time, so per answer is per connection).
 */
export interface NetworkProfile {
  rttMs: number;
  bytesPerSecond: number;
}

let network: NetworkProfile | undefined;

/** Throttle every server in this process from now on (undefined: loopback as it is). */
export function setNetworkProfile(profile: NetworkProfile | undefined): void {
  network = profile;
}

/** One scripted misbehaviour, used by the next request that reaches it. */
export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string }
  /** Send `afterBytes` of the body, then destroy the socket (a connection reset). */
  | { kind: 'reset'; afterBytes: number }
  /** Send `afterBytes`, then close the connection mid-body (FIN): the client gets exactly those bytes. */
  | { kind: 'drop'; afterBytes: number }
  /** Chunked body that ends cleanly after `afterBytes`: the client must notice by size. */
  | { kind: 'truncate'; afterBytes: number }
  /** Send `afterBytes`, then nothing, keeping the connection open. */
  | { kind: 'stall'; afterBytes: number }
  /** Flip one byte of the body. */
  | { kind: 'corrupt'; at: number }
  /** Answer 200 with the whole body even when a range was asked for. */
  | { kind: 'ignoreRange' }
  /** No length anywhere: a 200 with a chunked body, ranges ignored (size unknown to the client). */
  | { kind: 'chunked' }
  /** Pace the body: `chunk` bytes every `everyMs`. */
  | { kind: 'slow'; chunk: number; everyMs: number }
  /** Read the request, then never answer (not even headers), keeping the connection open. */
  | { kind: 'hang' };

export interface ServedRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
  /** Body bytes actually written to the socket. */
  bytes: number;
  /** When the request arrived (ms since the epoch). */
  at: number;
}

/** Faults keyed by request path, consumed in order; a persistent fault (`sticky`) stays. */
export class FaultBook {
  private readonly queues = new Map<string, { fault: Fault; sticky: boolean }[]>();

  /** `range`: the fault waits for a request with exactly this Range header. */
  add(
    path: string,
    fault: Fault,
    opts: { sticky?: boolean; times?: number; range?: string } = {},
  ): void {
    const key = opts.range !== undefined ? `${path}\0${opts.range}` : path;
    const q = this.queues.get(key) ?? [];
    for (let i = 0; i < (opts.times ?? 1); i++) q.push({ fault, sticky: opts.sticky ?? false });
    this.queues.set(key, q);
  }

  /** The next fault for a request; the one-byte size probes clients send first never take one. */
  take(path: string, range?: string): Fault | undefined {
    if (range === 'bytes=0-0') return undefined;
    const ranged = range !== undefined ? this.queues.get(`${path}\0${range}`) : undefined;
    const q = ranged !== undefined && ranged.length > 0 ? ranged : this.queues.get(path);
    const head = q?.[0];
    if (head === undefined) return undefined;
    if (!head.sticky) q?.shift();
    return head.fault;
  }

  clear(): void {
    this.queues.clear();
  }
}

/** Write `body` `fault.chunk` bytes every `fault.everyMs` (a trickle), then end. */
export async function trickle(
  res: ServerResponse,
  body: Buffer,
  fault: { chunk: number; everyMs: number },
): Promise<void> {
  for (let i = 0; i < body.length; i += fault.chunk) {
    if (res.destroyed) return;
    res.write(body.subarray(i, i + fault.chunk));
    await sleep(fault.everyMs);
  }
  res.end();
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function parseRange(header: string | undefined, size: number): [number, number] | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') return [Math.max(0, size - Number(b)), size - 1];
  return [Number(a), b === '' ? size - 1 : Math.min(Number(b), size - 1)];
}

async function* chunksOf(b: Bytes, start: number, end: number): AsyncGenerator<Buffer> {
  if (end < start) return;
  if (Buffer.isBuffer(b)) {
    for (let at = start; at <= end; at += 64 * 1024) {
      yield b.subarray(at, Math.min(end + 1, at + 64 * 1024));
    }
    return;
  }
  for await (const c of createReadStream(b.file, { start, end, highWaterMark: 1 << 20 })) {
    yield c as Buffer;
  }
}

/**
 * Answer a GET/HEAD for `bytes` with Range support and the scripted `fault`. `headers` are
 * added to every answer (ETag, X-Repo-Commit, …). Records the request in `log`.
 */
export async function serveBytes(
  req: IncomingMessage,
  res: ServerResponse,
  bytes: Bytes,
  headers: Record<string, string>,
  fault: Fault | undefined,
  log: ServedRequest[],
): Promise<void> {
  const size = sizeOf(bytes);
  const entry: ServedRequest = {
    method: req.method ?? 'GET',
    path: req.url ?? '',
    range: req.headers.range,
    authorization: req.headers.authorization,
    status: 0,
    bytes: 0,
    at: Date.now(),
  };
  log.push(entry);
  if (fault?.kind === 'hang') return;
  const paced = network;
  if (paced !== undefined) await sleep(paced.rttMs);
  if (fault?.kind === 'status') {
    entry.status = fault.status;
    res.writeHead(fault.status, {
      'content-type': 'text/plain',
      ...(fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {}),
    });
    res.end(`injected ${fault.status}\n`);
    return;
  }
  const ifRange = req.headers['if-range'];
  const rangeOk =
    fault?.kind !== 'ignoreRange' &&
    fault?.kind !== 'chunked' &&
    (ifRange === undefined || ifRange === headers['etag']);
  const range = rangeOk ? parseRange(req.headers.range, size) : undefined;
  if (range && range[0] >= size) {
    entry.status = 416;
    res.writeHead(416, { 'content-range': `bytes */${size}` });
    res.end();
    return;
  }
  const [start, end] = range ?? [0, size - 1];
  const status = range ? 206 : 200;
  entry.status = status;
  const out: Record<string, string> = {
    ...headers,
    'accept-ranges': 'bytes',
    'content-type': 'application/octet-stream',
  };
  if (range) out['content-range'] = `bytes ${start}-${end}/${size}`;
  if (fault?.kind !== 'truncate' && fault?.kind !== 'chunked')
    out['content-length'] = String(Math.max(0, end - start + 1));
  res.writeHead(status, out);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  let sent = 0;
  const began = performance.now();
  const gone = (): boolean => res.destroyed;
  const limit =
    fault?.kind === 'reset' ||
    fault?.kind === 'drop' ||
    fault?.kind === 'truncate' ||
    fault?.kind === 'stall'
      ? fault.afterBytes
      : Infinity;
  for await (const c of chunksOf(bytes, start, end)) {
    if (res.destroyed) return;
    let chunk = c;
    if (sent + chunk.length > limit) chunk = chunk.subarray(0, Math.max(0, limit - sent));
    if (
      fault?.kind === 'corrupt' &&
      fault.at >= start + sent &&
      fault.at < start + sent + chunk.length
    ) {
      chunk = Buffer.from(chunk);
      const i = fault.at - start - sent;
      chunk[i] = (chunk[i] ?? 0) ^ 0xff;
    }
    if (fault?.kind === 'slow') {
      for (let i = 0; i < chunk.length; i += fault.chunk) {
        if (gone()) return;
        const part = chunk.subarray(i, i + fault.chunk);
        if (!res.write(part)) await drained(res);
        sent += part.length;
        entry.bytes = sent;
        await sleep(fault.everyMs);
      }
      continue;
    }
    if (chunk.length > 0 && !res.write(chunk)) await drained(res);
    sent += chunk.length;
    entry.bytes = sent;
    if (sent >= limit) break;
    if (paced !== undefined) {
      const due = began + (sent / paced.bytesPerSecond) * 1000 - performance.now();
      if (due > 0) await sleep(due);
    }
  }
  if (fault?.kind === 'reset') {
    // Cut the connection with an RST: bytes the client has not read yet are lost with it.
    await sleep(20);
    res.socket?.resetAndDestroy();
    return;
  }
  if (fault?.kind === 'drop') {
    // Close after the bytes are out, short of the promised Content-Length.
    res.socket?.end();
    return;
  }
  if (fault?.kind === 'stall') return; // never ends; the client's stall timeout must fire
  res.end();
}
