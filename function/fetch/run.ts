// The engine: plan, check room, download in parallel with resume and verification,
// publish atomically, write the manifest and the completion marker last. One run holds the
// volume lock throughout, so the steps below never race another fetch of the same volume;
// moving one file's bytes is in transfer.ts, moving staged files into place in publish.ts.
import { mkdir, readdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';

import type { Logger } from 'pino';

import { DEFAULT_REQUEST_LIMITS } from './deadline.js';
import { FetchError, describe, isPermanent, redact } from './errors.js';
import {
  Layout,
  MANIFEST_VERSION,
  completedManifest,
  readJson,
  sha256Hex,
  type Checkpoint,
  type Manifest,
  type ManifestFile,
} from './layout.js';
import { acquireLock } from './lock.js';
import { Budget, DEFAULT_RANGE_OPTIONS, Slots, type RangeOptions } from './ranged.js';
import { localHolderGone, type HolderGone } from './pods.js';
import { unsafePathReason } from './paths.js';
import type { FetchPlan } from '../contract/plan.js';
import { publish, type Staged } from './publish.js';
import type { Reporter } from './reporter.js';
import { DEFAULT_RETRY, type RetryOptions } from './retry.js';
import { sourceFor, type RemoteFile, type Source } from './sources/index.js';
import { Progress, requestLimits, stageFile, withRetry, type FileContext } from './transfer.js';

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

/** Reject unsafe names, duplicates, and a file that is also another file's directory. */
function checkPaths(files: readonly RemoteFile[]): void {
  const seen = new Set<string>();
  for (const f of files) {
    const reason = unsafePathReason(f.path);
    if (reason !== undefined)
      throw FetchError.permanent(`unsafe path from the source: ${reason}`, f.path);
    if (seen.has(f.path)) throw FetchError.permanent('listed twice by the source', f.path);
    seen.add(f.path);
  }
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seen.has(dir))
        throw FetchError.permanent(`is both a file and the directory of ${f.path}`, dir);
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
      throw new FetchError(redact(message, secrets), cause.file, isPermanent(err));
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
    throw FetchError.permanent(
      `the artifact needs ${total} bytes, more than the volume's ${plan.capacityBytes} (capacityBytes); ask for a bigger volume`,
    );
  }
  const free = await opts.freeBytes(plan.targetDir);
  if (total - staged > free) {
    throw FetchError.permanent(
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
            : new FetchError(describe(err, secrets), file.path, isPermanent(err));
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
    throw new FetchError(
      redact(outcome.failure.message, secrets),
      outcome.failure.file,
      outcome.failure.permanent,
    );
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
