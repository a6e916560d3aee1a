// Moving one file's bytes into its part under staging. Every byte written is covered by a
// durable checkpoint before it is trusted, so a run killed or cut off at any point resumes from
// the last checkpoint instead of from zero, and a corrupt part is never resumed from.
import { constants } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { StallError, Throughput, Watch, minWindowBytes, type RequestLimits } from './deadline.js';
import { FetchError, TruncatedError, classify, describe, isPermanent } from './errors.js';
import { Hashes, rehash, writeAll } from './hashing.js';
import { readJson, removeIfExists, writeAtomic, type Checkpoint, type Layout } from './layout.js';
import { RangeIgnoredError, fetchRanged, type Budget, type Slots } from './ranged.js';
import type { FetchPlan } from '../contract/plan.js';
import { parentsAreDirectories, type Staged } from './publish.js';
import { backoffMs, wait } from './retry.js';
import type { RunOptions } from './run.js';
import type { RemoteFile, Source } from './sources/index.js';

const WRITE_BATCH = 4 << 20;
const MIB = 1 << 20;

/** What a file's bytes are checked against: its sha256 where listed, else git's blob sha1. */
const digestName = (file: RemoteFile): string =>
  file.sha256 !== undefined ? 'sha256' : 'git blob sha1';

/** The second mismatch of a file's bytes: the file fails. */
function mismatch(file: RemoteFile, expected: string, got: string | undefined): FetchError {
  return new FetchError(
    `${digestName(file)} mismatch: expected ${expected}, got ${got ?? '?'}`,
    file.path,
  );
}

/** A full volume named as such for the user; any other error as it was. */
function diskFullOr(err: unknown, path: string): unknown {
  return (err as NodeJS.ErrnoException).code === 'ENOSPC'
    ? FetchError.permanent('disk full (ENOSPC) while writing', path)
    : err;
}

/** Durable checkpoints every 1/16 of a file, between 1 and 64 MiB: resume loses at most that. */
function checkpointEvery(size: number | undefined): number {
  if (size === undefined) return 64 * MIB;
  return Math.min(64 * MIB, Math.max(MIB, Math.floor(size / 16)));
}

/** Byte counters every worker adds to: the progress reported and the run's result. */
export class Progress {
  done = 0;
  fetched = 0;
  resumed = 0;
  /** Bytes already on the volume with the listed size and checksum, kept as they are. */
  kept = 0;
  filesDone = 0;
  constructor(
    readonly total: number,
    readonly files: number,
  ) {}
}

export function requestLimits(opts: RunOptions): RequestLimits {
  return {
    stallTimeoutMs: opts.stallTimeoutMs,
    minBytesPerSecond: opts.minBytesPerSecond,
    requestTimeoutMs: opts.requestTimeoutMs,
  };
}

/**
 * Run `attempt` until it succeeds, fails for good, or fails `retry.attempts` times in a row
 * without progress (`mark` moving by at least one window's minimum resets the count: a
 * trickle that delivers a byte per attempt is no progress).
 */
export async function withRetry<T>(
  opts: RunOptions,
  secrets: readonly string[],
  file: string | undefined,
  attempt: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
  mark: () => number = () => 0,
): Promise<T> {
  let failures = 0;
  const signal = outer ?? opts.signal ?? new AbortController().signal;
  const progress = minWindowBytes(requestLimits(opts));
  for (;;) {
    const before = mark();
    try {
      return await attempt(signal);
    } catch (err) {
      if (signal.aborted) throw err;
      const verdict = classify(err);
      failures = mark() - before >= progress ? 1 : failures + 1;
      if (!verdict.retry || failures >= opts.retry.attempts) {
        if (err instanceof FetchError) throw err;
        const suffix = verdict.retry ? ` (gave up after ${failures} attempts)` : '';
        throw new FetchError(
          `${describe(err, secrets)}${suffix}`,
          file,
          !verdict.retry && isPermanent(err),
        );
      }
      const ms = backoffMs(opts.retry, failures, verdict.afterMs);
      opts.log.warn(
        { file, attempt: failures, retryInMs: ms, cause: describe(err, secrets) },
        'transient failure; retrying',
      );
      await wait(ms, signal);
    }
  }
}

export interface FileContext {
  plan: FetchPlan;
  layout: Layout;
  opts: RunOptions;
  source: Source;
  progress: Progress;
  signal: AbortSignal;
  /** Requests open at once across every file. */
  slots: Slots;
  /** Bytes held ahead of the hash across every file fetched in parts. */
  budget: Budget;
}

/** Download (or resume) one file into its part, verify it, and return it ready to publish. */
export async function stageFile(ctx: FileContext, file: RemoteFile): Promise<Staged> {
  const { layout, progress, opts } = ctx;
  const partPath = layout.part(file.path);
  const ckptPath = layout.checkpoint(file.path);
  const log = opts.log.child({ file: file.path });

  let ck = (await readJson<Checkpoint>(ckptPath))?.value;
  if (
    ck !== undefined &&
    (ck.path !== file.path || ck.validator !== file.validator || ck.size !== file.size)
  ) {
    log.info('the source changed since the interrupted run; starting this file over');
    ck = undefined;
  }
  const partStat = await lstat(partPath).catch(() => undefined);
  if (ck?.done === true && ck.sha256 !== undefined) {
    if (partStat?.isFile() === true && partStat.size === ck.offset) {
      progress.done += ck.offset;
      progress.resumed += ck.offset;
      return { file, size: ck.offset, sha256: ck.sha256, part: partPath };
    }
    // An interrupted publish may have moved it already: accept it only if it hashes the same.
    const published = join(layout.root, file.path);
    const st = await lstat(published).catch(() => undefined);
    if (
      file.archive !== true &&
      partStat === undefined &&
      st?.isFile() === true &&
      st.size === ck.offset
    ) {
      const h = new Hashes({ path: file.path });
      await rehash(published, 0, st.size, h);
      if (h.sha256.digest('hex') === ck.sha256) {
        progress.done += ck.offset;
        progress.resumed += ck.offset;
        return { file, size: ck.offset, sha256: ck.sha256, part: undefined };
      }
    }
    ck = undefined;
  }
  if (ck === undefined && file.archive !== true) {
    const kept = await keptOnVolume(ctx, file);
    if (kept !== undefined) return kept;
  }
  const whole = file.size;
  if (
    whole !== undefined &&
    ctx.source.ranges === true &&
    opts.ranges.connectionsPerFile > 1 &&
    whole > opts.ranges.partBytes
  ) {
    const staged = await stageInParts(ctx, file, whole, ck, partStat?.isFile() === true);
    if (staged !== undefined) return staged;
    ck = undefined;
  }
  return stageWhole(ctx, file, ck);
}

/**
 * The file as the volume already holds it, when its size and checksum match the listing:
 * a refetch of an unchanged artifact moves no bytes. Re-hashed here, never trusted from a
 * manifest; a file without a published checksum is fetched again.
 */
async function keptOnVolume(ctx: FileContext, file: RemoteFile): Promise<Staged | undefined> {
  const expected = file.sha256 ?? file.gitBlobSha1;
  if (file.size === undefined || expected === undefined) return undefined;
  if (!(await parentsAreDirectories(ctx.layout.root, file.path))) return undefined;
  const path = join(ctx.layout.root, file.path);
  const st = await lstat(path).catch(() => undefined);
  if (st?.isFile() !== true || st.size !== file.size) return undefined;
  const h = new Hashes(file);
  await rehash(path, 0, st.size, h);
  const sha256 = h.sha256.digest('hex');
  const got = file.sha256 !== undefined ? sha256 : h.git?.digest('hex');
  if (got !== expected) return undefined;
  ctx.progress.done += st.size;
  ctx.progress.kept += st.size;
  ctx.opts.log.info(
    { file: file.path, bytes: st.size },
    'already on the volume with this size and checksum; kept',
  );
  return { file, size: st.size, sha256, part: undefined };
}

/**
 * Download (or resume) `file` in parts over several connections. Undefined when the server
 * ignores ranges: the part and its checkpoint are gone then, for one stream to start over.
 */
async function stageInParts(
  ctx: FileContext,
  file: RemoteFile,
  size: number,
  ck: Checkpoint | undefined,
  partExists: boolean,
): Promise<Staged | undefined> {
  const { layout, progress, opts } = ctx;
  const partPath = layout.part(file.path);
  const ckptPath = layout.checkpoint(file.path);
  const log = opts.log.child({ file: file.path });
  // O_NOFOLLOW: a link planted since prepare() fails the open instead of being written through.
  const fh = await open(
    partPath,
    partExists
      ? constants.O_RDWR | constants.O_NOFOLLOW
      : constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o644,
  );
  let counted = 0;
  const forget = async (): Promise<void> => {
    progress.done -= counted;
    counted = 0;
    await fh.truncate(0);
    await removeIfExists(ckptPath);
  };
  try {
    for (let tries = 0; ; tries++) {
      let hashes: Hashes;
      try {
        hashes = await fetchRanged({
          file,
          size,
          fh,
          partPath,
          checkpointPath: ckptPath,
          previous: tries === 0 && partExists ? ck : undefined,
          options: opts.ranges,
          slots: ctx.slots,
          budget: ctx.budget,
          limits: requestLimits(opts),
          open: (offset, end, signal) => ctx.source.open(file, offset, signal, end),
          retry: (attempt, mark) =>
            withRetry(opts, ctx.source.secrets, file.path, attempt, ctx.signal, mark),
          received: (n) => {
            const capacity = ctx.plan.capacityBytes;
            if (capacity !== undefined && progress.done + n > capacity) {
              throw new FetchError(
                `writing it would exceed the volume's ${capacity} bytes (capacityBytes)`,
                file.path,
              );
            }
            progress.done += n;
            progress.fetched += n;
            counted += n;
          },
          resumed: (n) => {
            progress.done += n;
            progress.resumed += n;
            counted += n;
          },
          log,
          signal: ctx.signal,
        });
      } catch (err) {
        if (!(err instanceof RangeIgnoredError) || ctx.signal.aborted) throw err;
        log.warn('the server ignored a range request; fetching the file over one stream');
        await forget();
        await fh.close().catch(() => undefined);
        await removeIfExists(partPath);
        return undefined;
      }
      const sha256 = hashes.sha256.digest('hex');
      const git = hashes.git?.digest('hex');
      const expected = file.sha256 ?? file.gitBlobSha1;
      const got = file.sha256 !== undefined ? sha256 : git;
      if (expected === undefined || got === expected) {
        await fh.sync();
        const body: Checkpoint = {
          path: file.path,
          size,
          ...(file.validator !== undefined ? { validator: file.validator } : {}),
          offset: size,
          done: true,
          sha256,
        };
        await writeAtomic(ckptPath, JSON.stringify(body));
        return { file, size, sha256, part: partPath };
      }
      // Corrupt bytes are never resumed from: drop them, and try once more from zero.
      await forget();
      if (tries >= 1) {
        await fh.close().catch(() => undefined);
        await removeIfExists(partPath);
        throw mismatch(file, expected, got);
      }
      log.warn({ expected, got }, `${digestName(file)} mismatch; downloading the file again`);
    }
  } catch (err) {
    throw diskFullOr(err, file.path);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Download (or resume) `file` over one stream from the checkpointed offset. */
async function stageWhole(
  ctx: FileContext,
  file: RemoteFile,
  ck: Checkpoint | undefined,
): Promise<Staged> {
  const { layout, progress, opts } = ctx;
  const partPath = layout.part(file.path);
  const ckptPath = layout.checkpoint(file.path);
  const log = opts.log.child({ file: file.path });
  const partStat = await lstat(partPath).catch(() => undefined);
  // O_NOFOLLOW: a link planted since prepare() fails the open instead of being written through.
  const fh = await open(
    partPath,
    partStat?.isFile() === true
      ? constants.O_RDWR | constants.O_NOFOLLOW
      : constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o644,
  );
  const st: PartState = {
    fh,
    offset: 0,
    lastCheckpoint: 0,
    hashes: new Hashes(file),
    every: checkpointEvery(file.size),
    checkpointPath: ckptPath,
  };
  try {
    if (ck !== undefined && partStat?.isFile() === true && partStat.size >= ck.offset) {
      st.offset = ck.offset;
      st.lastCheckpoint = ck.offset;
      await rehash(partPath, 0, st.offset, st.hashes);
      if (st.offset > 0) log.info({ offset: st.offset }, 'resuming within the file');
    }
    await fh.truncate(st.offset);
    progress.done += st.offset;
    progress.resumed += st.offset;

    for (let tries = 0; ; tries++) {
      if (file.size === undefined || st.offset < file.size) {
        const release = await ctx.slots.acquire(ctx.signal);
        await withRetry(
          opts,
          ctx.source.secrets,
          file.path,
          (signal) => transfer(ctx, file, st, signal),
          ctx.signal,
          () => st.offset,
        )
          .catch(async (err: unknown) => {
            await checkpoint(file, st).catch(() => undefined);
            throw err;
          })
          .finally(release);
      }
      const sha256 = st.hashes.sha256.digest('hex');
      const git = st.hashes.git?.digest('hex');
      const expected = file.sha256 ?? file.gitBlobSha1;
      const got = file.sha256 !== undefined ? sha256 : git;
      if (expected === undefined || got === expected) {
        await fh.sync();
        await checkpoint(file, st, { done: true, sha256 });
        return { file, size: st.offset, sha256, part: partPath };
      }
      // Corrupt bytes are never resumed from: drop them, and try once more from zero.
      await fh.truncate(0);
      await removeIfExists(ckptPath);
      progress.done -= st.offset;
      st.offset = 0;
      st.lastCheckpoint = 0;
      st.hashes = new Hashes(file);
      if (tries >= 1) {
        await removeIfExists(partPath);
        throw mismatch(file, expected, got);
      }
      log.warn({ expected, got }, `${digestName(file)} mismatch; downloading the file again`);
    }
  } catch (err) {
    throw diskFullOr(err, file.path);
  } finally {
    await fh.close();
  }
}

interface PartState {
  fh: FileHandle;
  /** Bytes written to the part (and hashed). */
  offset: number;
  lastCheckpoint: number;
  hashes: Hashes;
  every: number;
  checkpointPath: string;
}

/** fsync the part, then record its length: after a crash, resume trusts only this many bytes. */
async function checkpoint(
  file: RemoteFile,
  st: PartState,
  extra: Partial<Checkpoint> = {},
): Promise<void> {
  await st.fh.datasync();
  const body: Checkpoint = {
    path: file.path,
    ...(file.size !== undefined ? { size: file.size } : {}),
    ...(file.validator !== undefined ? { validator: file.validator } : {}),
    offset: st.offset,
    ...extra,
  };
  await writeAtomic(st.checkpointPath, JSON.stringify(body));
  st.lastCheckpoint = st.offset;
}

/** One attempt: open at the current offset and append until the body ends, stalls or fails. */
async function transfer(
  ctx: FileContext,
  file: RemoteFile,
  st: PartState,
  signal: AbortSignal,
): Promise<void> {
  const { opts, progress } = ctx;
  const limits = requestLimits(opts);
  // Until the body starts, nothing received for the stall timeout is a stall; from then on
  // the body must keep up the minimum rate over every window of it.
  const watch = new Watch(signal);
  const cancelSilence = watch.after(opts.stallTimeoutMs, () => StallError.silent(limits));
  let meter: Throughput | undefined;
  // Received bytes are hashed at once and written in batches; one batch may be on its way
  // to disk while the next one arrives, so the disk and the network overlap.
  let batch: Buffer[] = [];
  let batched = 0;
  let queued = 0;
  let inflight: Promise<void> | undefined;
  const write = (): void => {
    if (batched === 0) return;
    const chunks = batch;
    const n = batched;
    const at = st.offset + queued;
    batch = [];
    batched = 0;
    queued += n;
    const previous = inflight;
    inflight = (async () => {
      await previous;
      await writeAll(st.fh, chunks, at);
      st.offset = at + n;
      queued -= n;
      if (st.offset - st.lastCheckpoint >= st.every) await checkpoint(file, st);
    })();
    inflight.catch(() => undefined); // awaited below; never an unhandled rejection
  };
  const flush = async (): Promise<void> => {
    write();
    const last = inflight;
    inflight = undefined;
    await last;
  };
  try {
    const opened = await ctx.source.open(file, st.offset, watch.signal);
    cancelSilence();
    meter = new Throughput(limits, watch);
    if (opened.start !== st.offset) {
      opts.log.warn(
        { file: file.path, offset: st.offset },
        'the server ignored the range request; restarting the file',
      );
      progress.done -= st.offset;
      st.offset = 0;
      st.lastCheckpoint = 0;
      await st.fh.truncate(0);
      st.hashes = new Hashes(file);
    }
    for await (const raw of opened.body) {
      meter.feed(raw.byteLength);
      const chunk = Buffer.isBuffer(raw)
        ? raw
        : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      if (file.size !== undefined && st.offset + queued + batched + chunk.length > file.size) {
        throw new FetchError(
          `the source sent more than the ${file.size} bytes it listed`,
          file.path,
        );
      }
      const capacity = ctx.plan.capacityBytes;
      if (capacity !== undefined && progress.done + chunk.length > capacity) {
        throw new FetchError(
          `writing it would exceed the volume's ${capacity} bytes (capacityBytes)`,
          file.path,
        );
      }
      st.hashes.update(chunk);
      batch.push(chunk);
      batched += chunk.length;
      progress.done += chunk.length;
      progress.fetched += chunk.length;
      if (batched >= Math.min(WRITE_BATCH, st.every)) {
        const previous = inflight;
        await previous; // at most one batch waits for the disk
        write();
      }
    }
    await flush();
    if (file.size !== undefined && st.offset < file.size) {
      throw new TruncatedError(st.offset, file.size);
    }
  } catch (err) {
    // Bytes received and hashed are good: keep them so the retry resumes after them.
    await flush();
    throw watch.reason ?? err;
  } finally {
    cancelSilence();
    meter?.stop();
    watch.dispose();
  }
}
