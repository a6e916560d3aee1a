// One file over several connections: parts of a fixed size fetched with ranged requests
// and written in place, while one reader hashes the file in order. Bytes that arrive ahead
// of the part being hashed wait in memory, under a budget shared by every file: a
// connection that is ahead stops reading (TCP pushes back on the server) until the hash
// catches up, so memory stays bounded whatever the file size, and no byte is read back
// from the volume except the parts an earlier, interrupted run completed.
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

import type { Logger } from 'pino';

import { StallError, Throughput, Watch, type RequestLimits } from './deadline.js';
import { FetchError, TruncatedError } from './errors.js';
import { Hashes, rehash, writeAll } from './hashing.js';
import { writeAtomic, type Checkpoint } from './layout.js';
import type { OpenedBody, RemoteFile } from './sources/index.js';

export interface RangeOptions {
  /** Size of one ranged request. */
  partBytes: number;
  /** Ranged requests one file keeps open at once. */
  connectionsPerFile: number;
  /** Ranged and whole-file requests open at once across every file. */
  maxConnections: number;
  /** Bytes held in memory ahead of the hash, across every file. */
  reorderBytes: number;
}

// A part ahead of the one being hashed holds its bytes until the hash reaches it, so the
// reorder buffer must hold about (connectionsPerFile - 1) parts for no connection to pause:
// 8 MiB parts fit 64 MiB (bench:fetch: as fast as 16 MiB parts with 128 MiB, and the peak
// RSS stays under 256 MiB whatever the file size).
export const DEFAULT_RANGE_OPTIONS: RangeOptions = {
  partBytes: 8 << 20,
  connectionsPerFile: 8,
  maxConnections: 16,
  reorderBytes: 64 << 20,
};

/** The server answered a ranged request with something else: the file goes over one stream. */
export class RangeIgnoredError extends FetchError {
  constructor(file: string) {
    super('the server ignored a range request', file);
    this.name = 'RangeIgnoredError';
  }
}

/** A counting semaphore; slots are handed out in the order they were asked for. */
export class Slots {
  private free: number;
  private readonly queue: (() => void)[] = [];
  constructor(n: number) {
    this.free = Math.max(1, n);
  }

  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.free > 0) this.free--;
    else {
      await new Promise<void>((resolve, reject) => {
        const grant = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.queue.indexOf(grant);
          if (i >= 0) this.queue.splice(i, 1);
          reject(signal.reason as Error);
        };
        this.queue.push(grant);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next !== undefined) next();
      else this.free++;
    };
  }
}

/** Bytes held ahead of the hash; waiters are woken whenever it shrinks or a hash moves on. */
export class Budget {
  used = 0;
  private waiters = new Set<() => void>();
  constructor(readonly cap: number) {}

  add(n: number): void {
    this.used += n;
  }

  release(n: number): void {
    this.used -= n;
    // Waiters resume once a quarter of the budget is free, not on every chunk hashed: one
    // wake per chunk would resume and pause every waiting connection thousands of times.
    if (this.waiters.size > 0 && this.used <= this.cap * 0.75) this.wake();
  }

  wake(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const f of w) f();
  }

  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.waiters.delete(done);
        reject(signal.reason as Error);
      };
      this.waiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export interface RangedFile {
  file: RemoteFile;
  size: number;
  fh: FileHandle;
  partPath: string;
  checkpointPath: string;
  /** The checkpoint an earlier run left, already checked against this file's version. */
  previous: Checkpoint | undefined;
  options: RangeOptions;
  slots: Slots;
  budget: Budget;
  limits: RequestLimits;
  open: (offset: number, end: number, signal: AbortSignal) => Promise<OpenedBody>;
  /** The engine's retry policy around one attempt; `mark` is the attempt's progress. */
  retry: (attempt: (signal: AbortSignal) => Promise<void>, mark: () => number) => Promise<void>;
  /** Called for every chunk before it is kept (progress, capacity check; may throw). */
  received: (n: number) => void;
  /** Called once with the bytes kept from the earlier run. */
  resumed: (n: number) => void;
  log: Logger;
  signal: AbortSignal;
}

class Part {
  /** Bytes of this part received (and written or queued for writing). */
  received = 0;
  /** Chunks received and not yet hashed. */
  readonly queue: Buffer[] = [];
  complete = false;
  private notify: (() => void) | undefined;
  constructor(
    readonly index: number,
    readonly start: number,
    readonly end: number,
  ) {}

  push(chunk: Buffer): void {
    this.queue.push(chunk);
    this.poke();
  }

  finish(): void {
    this.complete = true;
    this.poke();
  }

  poke(): void {
    const n = this.notify;
    this.notify = undefined;
    n?.();
  }

  next(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        reject(signal.reason as Error);
      };
      this.notify = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** Bytes a connection gathers before one write: held outside the reorder buffer, so kept small. */
const WRITE_BATCH = 1 << 20;

/**
 * End a body nobody will read. A stream is destroyed, and what it reports later (the abort
 * of the request under it) is dropped; a bare iterator's return() before its first next()
 * would leave the stream open, erroring later with no listener.
 */
function discard(body: AsyncIterable<Uint8Array>): void {
  if (body instanceof Readable) {
    body.on('error', () => undefined);
    body.destroy();
    return;
  }
  void body[Symbol.asyncIterator]()
    .return?.()
    .catch(() => undefined);
}

/**
 * Fetch `r.file` in parts and return its hashes, computed in order. Parts recorded complete
 * by an earlier run are kept (and hashed from the volume); the others are fetched again
 * from their start. Throws RangeIgnoredError when the server does not honour ranges.
 */
export async function fetchRanged(r: RangedFile): Promise<Hashes> {
  const { size, options } = r;
  const count = Math.ceil(size / options.partBytes);
  const parts = Array.from(
    { length: count },
    (_, i) => new Part(i, i * options.partBytes, Math.min(size, (i + 1) * options.partBytes)),
  );
  const kept = new Set<number>();
  if (r.previous?.partBytes === options.partBytes) {
    for (const i of r.previous.parts ?? []) if (parts[i] !== undefined) kept.add(i);
  } else if (r.previous !== undefined && r.previous.parts === undefined) {
    // A checkpoint of a one-stream fetch: the parts wholly inside its offset are on disk.
    for (const p of parts) if (p.end <= r.previous.offset) kept.add(p.index);
  }
  const keptBytes = [...kept].reduce(
    (n, i) => n + ((parts[i]?.end ?? 0) - (parts[i]?.start ?? 0)),
    0,
  );
  await r.fh.truncate(size);
  r.resumed(keptBytes);
  if (keptBytes > 0)
    r.log.info({ bytes: keptBytes, parts: kept.size }, 'resuming the parts already fetched');

  const stop = new AbortController();
  const signal = AbortSignal.any([r.signal, stop.signal]);
  let head = 0;
  let nextPart = 0;
  const done = new Set(kept);
  const failure: { err?: unknown } = {};
  const fail = (err: unknown): void => {
    failure.err ??= err;
    stop.abort(err);
  };
  // Checkpoints are written off the connections' path, one at a time: a part that completes
  // while one is being written goes into the next, so a connection never waits for an fsync.
  // Each lists the parts done before its datasync began, whose bytes that datasync covers.
  let saving: Promise<void> | undefined;
  let lastSave: Promise<void> = Promise.resolve();
  /** Parts recorded so far; a save covers those recorded when it began. */
  let recorded = 0;
  const save = async (): Promise<void> => {
    for (;;) {
      const covered = recorded;
      const body: Checkpoint = {
        path: r.file.path,
        size,
        ...(r.file.validator !== undefined ? { validator: r.file.validator } : {}),
        offset: 0,
        partBytes: options.partBytes,
        parts: [...done].sort((a, b) => a - b),
      };
      await r.fh.datasync();
      await writeAtomic(r.checkpointPath, JSON.stringify(body));
      // No await between this test and the return: a part recorded from here on starts a new save.
      if (recorded === covered) {
        saving = undefined;
        return;
      }
    }
  };
  const record = (): void => {
    recorded++;
    if (saving !== undefined) return;
    saving = save().catch((err: unknown) => {
      saving = undefined;
      fail(err);
    });
    lastSave = saving;
  };

  const hashes = new Hashes(r.file);
  const hasher = async (): Promise<void> => {
    for (const part of parts) {
      head = part.index;
      r.budget.wake();
      if (kept.has(part.index)) {
        await rehash(r.partPath, part.start, part.end, hashes);
        continue;
      }
      for (;;) {
        const chunk = part.queue.shift();
        if (chunk !== undefined) {
          hashes.update(chunk);
          r.budget.release(chunk.length);
          continue;
        }
        if (part.complete) break;
        await part.next(signal);
      }
    }
  };

  const fetchPart = async (part: Part, attemptSignal: AbortSignal): Promise<void> => {
    const watch = new Watch(attemptSignal);
    const cancelSilence = watch.after(r.limits.stallTimeoutMs, () => StallError.silent(r.limits));
    let meter: Throughput | undefined;
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async (): Promise<void> => {
      if (batched === 0) return;
      const chunks = batch;
      const at = part.start + part.received - batched;
      batch = [];
      batched = 0;
      await writeAll(r.fh, chunks, at);
    };
    try {
      const from = part.start + part.received;
      const opened = await r.open(from, part.end, watch.signal);
      cancelSilence();
      if (opened.partial !== true || opened.start !== from) {
        discard(opened.body);
        throw new RangeIgnoredError(r.file.path);
      }
      meter = new Throughput(r.limits, watch);
      for await (const raw of opened.body) {
        meter.feed(raw.byteLength);
        const chunk = Buffer.isBuffer(raw)
          ? raw
          : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        if (part.start + part.received + chunk.length > part.end) {
          throw new FetchError(
            `the source sent more than the ${part.end - part.start} bytes of the range from ${part.start}`,
            r.file.path,
          );
        }
        r.received(chunk.length);
        part.received += chunk.length;
        batch.push(chunk);
        batched += chunk.length;
        r.budget.add(chunk.length);
        part.push(chunk);
        if (batched >= WRITE_BATCH) await flush();
        // Ahead of the hash and over the budget: stop reading until the hash catches up.
        // The rate rule is suspended meanwhile (the pause is ours, not the server's).
        if (part.index !== head && r.budget.used >= r.budget.cap) {
          meter.stop();
          while (part.index !== head && r.budget.used >= r.budget.cap) {
            await r.budget.changed(watch.signal);
          }
          meter = new Throughput(r.limits, watch);
        }
      }
      await flush();
      if (part.start + part.received < part.end) {
        throw new TruncatedError(part.start + part.received, part.end);
      }
    } catch (err) {
      // What arrived is good: keep it so the retry asks only for the rest of the part.
      await flush();
      throw watch.reason ?? err;
    } finally {
      cancelSilence();
      meter?.stop();
      watch.dispose();
    }
  };

  const worker = async (): Promise<void> => {
    for (;;) {
      // A slot first, then the next part: the part being hashed always holds a connection.
      const release = await r.slots.acquire(signal);
      try {
        let part: Part | undefined;
        while ((part = parts[nextPart]) !== undefined && kept.has(part.index)) nextPart++;
        if (part === undefined) return;
        nextPart++;
        const current = part;
        await r.retry(
          (s) => fetchPart(current, AbortSignal.any([s, signal])),
          () => current.received,
        );
        current.finish();
        done.add(current.index);
        record();
      } finally {
        release();
      }
    }
  };

  const guard = async (task: () => Promise<void>): Promise<void> => {
    try {
      await task();
    } catch (err) {
      fail(err);
    }
  };
  const connections = Math.max(1, Math.min(options.connectionsPerFile, count - kept.size));
  await Promise.all([guard(hasher), ...Array.from({ length: connections }, () => guard(worker))]);
  // Bytes still queued for a hash that will not happen go back to the budget.
  for (const p of parts) r.budget.release(p.queue.splice(0).reduce((n, c) => n + c.length, 0));
  // The last checkpoint is on disk before the caller writes its own (or resumes from it).
  await lastSave;
  if (failure.err !== undefined) {
    throw (r.signal.aborted ? r.signal.reason : failure.err) as Error;
  }
  return hashes;
}
