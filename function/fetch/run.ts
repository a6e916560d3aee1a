// The engine: plan, check room, download in parallel with resume and verification,
// publish atomically, write the manifest and the completion marker last.
//
// Publishing. The artifact's files live at the volume root, because consumers mount the
// whole volume at their mountPath. Every file is downloaded and verified in staging first
// (.modelcache/staging/<identity>/parts), so publishing is only renames on one
// filesystem. It runs in this order:
//   1. remove the completion marker (the volume is "not complete" from here on);
//   2. unlink the files the previous identity's manifest listed that this one does not;
//   3. rename each new file over its path (atomic per file: a reader sees the old or the
//      new file whole, never a mix of bytes, and a reader holding the old file open keeps
//      reading the old inode until it closes it);
//   4. write the manifest, then the marker.
// Between 1 and 4 the set of files is mixed, for the milliseconds the renames take, and
// the marker says so. Files the program never listed in a manifest (lost+found, a user's
// own files) are never touched. A refetch (new identity) on the same volume therefore
// needs room for the new files next to the old ones until step 2; the free-space check
// counts that.
import { constants } from 'node:fs';
import {
  lstat,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  rmdir,
  statfs,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { Logger } from 'pino';

import {
  DEFAULT_REQUEST_LIMITS,
  StallError,
  Throughput,
  Watch,
  minWindowBytes,
  type RequestLimits,
} from './deadline.js';
import { FetchError, TruncatedError, classify, describe, redact } from './errors.js';
import {
  Layout,
  MANIFEST_VERSION,
  completedManifest,
  manifestText,
  readJson,
  removeIfExists,
  sha256Hex,
  syncDir,
  writeAtomic,
  type Checkpoint,
  type Manifest,
  type ManifestFile,
  type Marker,
} from './layout.js';
import { Hashes, rehash, writeAll } from './hashing.js';
import { acquireLock } from './lock.js';
import {
  Budget,
  DEFAULT_RANGE_OPTIONS,
  RangeIgnoredError,
  Slots,
  fetchRanged,
  type RangeOptions,
} from './ranged.js';
import { localHolderGone, type HolderGone } from './pods.js';
import { unsafePathReason } from './paths.js';
import type { FetchPlan } from '../contract/plan.js';
import type { Reporter } from './reporter.js';
import { DEFAULT_RETRY, backoffMs, wait, type RetryOptions } from './retry.js';
import { sourceFor, type RemoteFile, type Source } from './sources/index.js';

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  log: Logger;
  reporter: Reporter;
  /** Files downloaded at once. */
  concurrency: number;
  /** Parallel ranged requests within one file, and the bounds on them. */
  ranges: RangeOptions;
  /**
   * A request that receives nothing for this long is dropped and resumed; also the window
   * over which a body must keep up minBytesPerSecond.
   */
  stallTimeoutMs: number;
  /** The minimum rate of every body (a trickle never looks idle, yet never finishes). */
  minBytesPerSecond: number;
  /** A metadata request (listing page, HEAD, API call) completes within this, body included. */
  requestTimeoutMs: number;
  retry: RetryOptions;
  /** How often progress is logged and reported. */
  progressIntervalMs: number;
  lockStaleMs: number;
  lockPollMs: number;
  /** Whether a lock's holder is provably gone; only this host's processes when absent. */
  lockHolderGone?: HolderGone;
  /** Free bytes of the filesystem holding `dir` (tests substitute a small disk). */
  freeBytes: (dir: string) => Promise<number>;
  signal?: AbortSignal;
}

export const DEFAULT_RUN_OPTIONS: Omit<RunOptions, 'env' | 'log' | 'reporter'> = {
  // As many files at once as connections: a repo of small files is bound by round trips
  // (bench:fetch, many small files); the connection slots bound the requests either way.
  concurrency: 16,
  ranges: DEFAULT_RANGE_OPTIONS,
  ...DEFAULT_REQUEST_LIMITS,
  retry: DEFAULT_RETRY,
  progressIntervalMs: 5_000,
  lockStaleMs: 60_000,
  lockPollMs: 2_000,
  freeBytes: async (dir) => {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  },
};

export interface RunResult {
  /** 'complete': staged now; 'already-complete': a valid marker for this identity was there. */
  outcome: 'complete' | 'already-complete';
  manifest: Manifest;
  /** Bytes that came over the network in this run (resumed bytes are not counted). */
  bytesFetched: number;
  /** Bytes found in staging from an earlier, interrupted run and kept. */
  bytesResumed: number;
}

const WRITE_BATCH = 4 << 20;
const MIB = 1 << 20;

/** Durable checkpoints every 1/16 of a file, between 1 and 64 MiB: resume loses at most that. */
function checkpointEvery(size: number | undefined): number {
  if (size === undefined) return 64 * MIB;
  return Math.min(64 * MIB, Math.max(MIB, Math.floor(size / 16)));
}

/** Reject unsafe names, duplicates, and a file that is also another file's directory. */
function checkPaths(files: readonly RemoteFile[]): void {
  const seen = new Set<string>();
  for (const f of files) {
    const reason = unsafePathReason(f.path);
    if (reason !== undefined)
      throw new FetchError(`unsafe path from the source: ${reason}`, f.path);
    if (seen.has(f.path)) throw new FetchError('listed twice by the source', f.path);
    seen.add(f.path);
  }
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seen.has(dir)) throw new FetchError(`is both a file and the directory of ${f.path}`, dir);
    }
  }
}

/** The revision reported for sources without commits: the digest of what was staged. */
function derivedRevision(files: readonly ManifestFile[]): string {
  const only = files.length === 1 ? files[0] : undefined;
  if (only !== undefined) return `sha256:${only.sha256}`;
  const listing = files.map((f) => `${f.sha256}  ${f.path}\n`).join('');
  return `sha256:${sha256Hex(listing)}`;
}

class Progress {
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

interface Staged {
  file: RemoteFile;
  size: number;
  sha256: string;
  /** The part file to rename, or undefined when an interrupted publish already moved it. */
  part: string | undefined;
  /** Unpacked from an archive the source listed (and that was verified by its digest). */
  unpacked?: boolean;
}

export async function runFetch(plan: FetchPlan, opts: RunOptions): Promise<RunResult> {
  const log = opts.log;
  const layout = new Layout(plan.targetDir, plan.identity);
  for (const link of await layout.prepare()) {
    log.warn({ link }, 'removed a symbolic link from the state directory (never followed)');
  }

  const early = await completedManifest(layout);
  if (early !== undefined) return alreadyComplete(early, opts);

  const lock = await acquireLock(layout.lock, plan.identity, {
    staleMs: opts.lockStaleMs,
    pollMs: opts.lockPollMs,
    holderGone: opts.lockHolderGone ?? ((h) => Promise.resolve(localHolderGone(h))),
    onWait: (holder) => {
      log.info({ holder }, 'another fetch holds the volume lock; waiting');
    },
    onTakeover: (holder, why) => {
      log.info(
        { holder, why },
        why === 'gone'
          ? 'took over the volume lock: its holder is provably gone'
          : 'took over the volume lock: its holder stopped beating',
      );
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  try {
    // The holder we waited for may have staged this very identity.
    const done = await completedManifest(layout);
    if (done !== undefined) return alreadyComplete(done, opts);
    // Losing the lock stops the run before it publishes anything: another fetch owns the volume.
    const stop = new AbortController();
    const forward = (): void => {
      stop.abort(opts.signal?.reason);
    };
    if (opts.signal?.aborted === true) forward();
    opts.signal?.addEventListener('abort', forward, { once: true });
    lock.lost.catch((err: unknown) => {
      stop.abort(err);
    });
    try {
      return await stage(plan, layout, { ...opts, signal: stop.signal });
    } catch (err) {
      const reason: unknown = stop.signal.reason;
      throw reason instanceof FetchError ? reason : err;
    } finally {
      opts.signal?.removeEventListener('abort', forward);
    }
  } finally {
    await lock.release();
  }
}

function alreadyComplete(manifest: Manifest, opts: RunOptions): RunResult {
  opts.log.info(
    { resolvedRevision: manifest.resolvedRevision, files: manifest.files.length },
    'already staged: a valid completion marker for this identity is present',
  );
  opts.reporter.report(
    {
      bytesDone: manifest.totalBytes,
      bytesTotal: manifest.totalBytes,
      resolvedRevision: manifest.resolvedRevision,
      fetchError: null,
    },
    true,
  );
  return { outcome: 'already-complete', manifest, bytesFetched: 0, bytesResumed: 0 };
}

async function stage(plan: FetchPlan, layout: Layout, opts: RunOptions): Promise<RunResult> {
  const log = opts.log;
  // Staging of other identities is abandoned work (a refetch superseded it): free its space.
  for (const entry of await readdir(layout.stagingRoot)) {
    if (entry !== plan.identity) {
      log.info({ identity: entry }, 'removing staging of another identity');
      await rm(join(layout.stagingRoot, entry), { recursive: true, force: true });
    }
  }

  const source = await sourceFor(plan.source, opts.env, requestLimits(opts));
  const secrets = source.secrets;
  log.info({ source: source.describe }, 'listing the source');
  const listing = await withRetry(opts, secrets, undefined, (signal) => source.list(signal)).catch(
    (err: unknown) => {
      // An error about one file names it; any other is about the listing as a whole.
      const cause = err instanceof FetchError ? err : new FetchError(describe(err, secrets));
      const message =
        cause.file === undefined ? `listing ${source.describe}: ${cause.message}` : cause.message;
      throw new FetchError(redact(message, secrets), cause.file);
    },
  );
  const files = [...listing.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  checkPaths(files);

  const total = files.reduce((n, f) => n + (f.size ?? 0), 0);
  const unknown = files.filter((f) => f.size === undefined).length;
  let staged = 0;
  for (const f of files) {
    const ck = await readJson<Checkpoint>(layout.checkpoint(f.path));
    if (ck?.value.path === f.path && ck.value.validator === f.validator) staged += ck.value.offset;
  }
  log.info(
    {
      files: files.length,
      bytesTotal: total,
      ...(unknown > 0 ? { filesOfUnknownSize: unknown } : {}),
      bytesAlreadyStaged: staged,
      resolvedRevision: listing.resolvedRevision,
    },
    'plan',
  );
  if (plan.capacityBytes !== undefined && total > plan.capacityBytes) {
    throw new FetchError(
      `the artifact needs ${total} bytes, more than the volume's ${plan.capacityBytes} (capacityBytes); ask for a bigger volume`,
    );
  }
  const free = await opts.freeBytes(plan.targetDir);
  if (total - staged > free) {
    throw new FetchError(
      `the artifact needs ${total - staged} more bytes, the volume has ${free} free`,
    );
  }
  opts.reporter.report(
    {
      bytesDone: staged,
      bytesTotal: total,
      ...(listing.resolvedRevision !== undefined
        ? { resolvedRevision: listing.resolvedRevision }
        : {}),
    },
    true,
  );

  const progress = new Progress(total, files.length);
  const ticker = setInterval(() => {
    log.info(
      {
        bytesDone: progress.done,
        bytesTotal: total,
        bytesFetched: progress.fetched,
        filesDone: progress.filesDone,
        filesTotal: files.length,
      },
      'progress',
    );
    opts.reporter.report({ bytesDone: progress.done, bytesTotal: total });
  }, opts.progressIntervalMs);
  ticker.unref();

  // One failure stops the others: they checkpoint what they have and the error is reported.
  const stop = new AbortController();
  const onOuterAbort = (): void => {
    stop.abort(opts.signal?.reason);
  };
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const results: Staged[] = [];
  const outcome: { failure?: FetchError } = {};
  let next = 0;
  const ctx: FileContext = {
    plan,
    layout,
    opts,
    source,
    progress,
    signal: stop.signal,
    slots: new Slots(opts.ranges.maxConnections),
    budget: new Budget(opts.ranges.reorderBytes),
  };
  const worker = async (): Promise<void> => {
    while (outcome.failure === undefined && !stop.signal.aborted) {
      const file = files[next++];
      if (file === undefined) return;
      try {
        results.push(await stageFile(ctx, file));
        progress.filesDone++;
      } catch (err) {
        outcome.failure ??=
          err instanceof FetchError && err.file !== undefined
            ? err
            : new FetchError(describe(err, secrets), file.path);
        stop.abort(outcome.failure);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  } finally {
    clearInterval(ticker);
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
  if (outcome.failure !== undefined) {
    throw new FetchError(redact(outcome.failure.message, secrets), outcome.failure.file);
  }
  opts.signal?.throwIfAborted();

  const published = await assembled(source, layout, results, plan, stop.signal);
  published.sort((a, b) => (a.file.path < b.file.path ? -1 : 1));
  const manifestFiles: ManifestFile[] = published.map((r) => ({
    path: r.file.path,
    size: r.size,
    sha256: r.sha256,
    verifiedBy:
      r.unpacked === true
        ? 'archive'
        : r.file.sha256 !== undefined
          ? 'sha256'
          : r.file.gitBlobSha1 !== undefined
            ? 'gitBlobSha1'
            : 'none',
  }));
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    identity: plan.identity,
    sourceType: plan.source.type,
    resolvedRevision: listing.resolvedRevision ?? derivedRevision(manifestFiles),
    totalBytes: manifestFiles.reduce((n, f) => n + f.size, 0),
    files: manifestFiles,
  };
  await publish(layout, published, manifest, log);
  await rm(layout.staging, { recursive: true, force: true });

  log.info(
    {
      resolvedRevision: manifest.resolvedRevision,
      files: manifest.files.length,
      bytesTotal: manifest.totalBytes,
      bytesFetched: progress.fetched,
      bytesResumed: progress.resumed,
      bytesKept: progress.kept,
    },
    'staged',
  );
  opts.reporter.report(
    {
      bytesDone: manifest.totalBytes,
      bytesTotal: manifest.totalBytes,
      resolvedRevision: manifest.resolvedRevision,
      fetchError: null,
    },
    true,
  );
  return {
    outcome: 'complete',
    manifest,
    bytesFetched: progress.fetched,
    bytesResumed: progress.resumed,
  };
}

/**
 * The files to publish: the downloaded ones, with the archives the source listed replaced by
 * what its assemble() unpacks from them (under staging, so publishing stays renames).
 */
async function assembled(
  source: Source,
  layout: Layout,
  results: Staged[],
  plan: FetchPlan,
  signal: AbortSignal,
): Promise<Staged[]> {
  const archives = results.filter((r) => r.file.archive === true);
  if (archives.length === 0 || source.assemble === undefined) return results;
  const work = join(layout.staging, 'unpacked');
  await rm(work, { recursive: true, force: true });
  await mkdir(work);
  const files = await source.assemble(
    archives.map((a) => {
      if (a.part === undefined) throw new Error(`archive ${a.file.path} has no part`);
      return { path: a.file.path, file: a.part };
    }),
    work,
    { ...(plan.capacityBytes !== undefined ? { maxBytes: plan.capacityBytes } : {}), signal },
  );
  const out: Staged[] = [
    ...results.filter((r) => r.file.archive !== true),
    ...files.map((f) => ({
      file: { path: f.path, size: f.size },
      size: f.size,
      sha256: f.sha256,
      part: f.file,
      unpacked: true,
    })),
  ];
  checkPaths(out.map((s) => s.file));
  return out;
}

function requestLimits(opts: RunOptions): RequestLimits {
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
async function withRetry<T>(
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
        throw new FetchError(`${describe(err, secrets)}${suffix}`, file);
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

interface FileContext {
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
async function stageFile(ctx: FileContext, file: RemoteFile): Promise<Staged> {
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
      const what = file.sha256 !== undefined ? 'sha256' : 'git blob sha1';
      if (tries >= 1) {
        await fh.close().catch(() => undefined);
        await removeIfExists(partPath);
        throw new FetchError(
          `${what} mismatch: expected ${expected}, got ${got ?? '?'}`,
          file.path,
        );
      }
      log.warn({ expected, got }, `${what} mismatch; downloading the file again`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new FetchError('disk full (ENOSPC) while writing', file.path);
    }
    throw err;
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
      const what = file.sha256 !== undefined ? 'sha256' : 'git blob sha1';
      if (tries >= 1) {
        await removeIfExists(partPath);
        throw new FetchError(
          `${what} mismatch: expected ${expected}, got ${got ?? '?'}`,
          file.path,
        );
      }
      log.warn({ expected, got }, `${what} mismatch; downloading the file again`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new FetchError('disk full (ENOSPC) while writing', file.path);
    }
    throw err;
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

/** True when every parent of `path` under `root` is a real directory (no link to follow out). */
async function parentsAreDirectories(root: string, path: string): Promise<boolean> {
  let at = root;
  for (const s of path.split('/').slice(0, -1)) {
    at = join(at, s);
    const st = await lstat(at).catch(() => undefined);
    if (st === undefined || st.isSymbolicLink() || !st.isDirectory()) return false;
  }
  return true;
}

/** Make the parent directories of `path` under `root`, refusing links and files in the way. */
async function ensureParents(root: string, path: string): Promise<void> {
  const segments = path.split('/').slice(0, -1);
  let at = root;
  for (const s of segments) {
    at = join(at, s);
    const st = await lstat(at).catch(() => undefined);
    if (st === undefined) {
      await mkdir(at);
      continue;
    }
    if (st.isSymbolicLink()) {
      throw new FetchError(`a symbolic link on the volume is in the way at ${s}`, path);
    }
    if (!st.isDirectory()) throw new FetchError(`a file on the volume is in the way at ${s}`, path);
  }
}

async function publish(
  layout: Layout,
  staged: Staged[],
  manifest: Manifest,
  log: Logger,
): Promise<void> {
  const previous = (await readJson<Manifest>(layout.manifest))?.value;
  await removeIfExists(layout.marker);
  await syncDir(layout.state);

  const keep = new Set(manifest.files.map((f) => f.path));
  const emptied = new Set<string>();
  for (const old of previous?.files ?? []) {
    if (keep.has(old.path) || unsafePathReason(old.path) !== undefined) continue;
    if (!(await parentsAreDirectories(layout.root, old.path))) continue;
    const path = join(layout.root, old.path);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isFile() === true || st?.isSymbolicLink() === true) {
      await unlink(path);
      emptied.add(dirname(old.path));
    }
  }
  // Directories the previous artifact had and this one does not: remove them when empty.
  for (const dir of [...emptied].sort().reverse()) {
    for (let d = dir; d !== '.' && d !== ''; d = dirname(d)) {
      const ok = await rmdir(join(layout.root, d)).then(
        () => true,
        () => false,
      );
      if (!ok) break;
    }
  }

  const dirs = new Set<string>();
  for (const s of staged) {
    await ensureParents(layout.root, s.file.path);
    const dest = join(layout.root, s.file.path);
    if (s.part !== undefined) {
      const st = await lstat(dest).catch(() => undefined);
      if (st?.isDirectory() === true) {
        throw new FetchError('a directory on the volume is in the way', s.file.path);
      }
      await rename(s.part, dest);
    }
    dirs.add(dirname(dest));
  }
  for (const d of dirs) await syncDir(d);

  const text = manifestText(manifest);
  await writeAtomic(layout.manifest, text);
  const marker: Marker = {
    version: MANIFEST_VERSION,
    identity: manifest.identity,
    manifestSha256: sha256Hex(text),
  };
  await writeAtomic(layout.marker, `${JSON.stringify(marker)}\n`);
  log.info({ files: staged.length }, 'published');
}
