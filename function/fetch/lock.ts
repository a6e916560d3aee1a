// One fetch at a time per volume: a lock file created with O_EXCL (atomic on local disks
// and NFSv3+), kept fresh by a heartbeat, taken over when its holder stopped beating or is
// provably gone (pods.ts: a SIGKILLed holder never releases it).
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';

import { FetchError } from './errors.js';
import { PID_NAMESPACE, type HolderGone } from './pods.js';
import { wait } from './retry.js';

interface LockBody {
  token: string;
  identity: string;
  host: string;
  pid: number;
  /** The holder's pid namespace: its pid means something only to a process in the same one. */
  pidNamespace?: string;
  startedAt: string;
}

export interface LockOptions {
  /** A lock whose file was not touched for this long belongs to a dead holder. */
  staleMs: number;
  /** How often a waiter looks again. */
  pollMs: number;
  /** Called once while waiting, naming the holder. */
  onWait?: (holder: string) => void;
  /** Called when a holder's lock is taken over: it stopped beating, or it is provably gone. */
  onTakeover?: (holder: string, why: 'stale' | 'gone') => void;
  /** Whether the holder is provably gone (asked each poll); its lock is then taken at once. */
  holderGone?: HolderGone;
  signal?: AbortSignal;
}

export interface Lock {
  /** Rejects once the lock was lost (taken over); the run must stop writing. */
  readonly lost: Promise<never>;
  release(): Promise<void>;
}

async function readBody(path: string): Promise<LockBody | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockBody;
  } catch {
    return undefined;
  }
}

function describeHolder(held: LockBody): string {
  return `${held.host} pid ${held.pid} (identity ${held.identity.slice(0, 12)}, since ${held.startedAt})`;
}

export async function acquireLock(
  path: string,
  identity: string,
  opts: LockOptions,
): Promise<Lock> {
  const body: LockBody = {
    token: randomUUID(),
    identity,
    host: hostname(),
    pid: process.pid,
    ...(PID_NAMESPACE !== undefined ? { pidNamespace: PID_NAMESPACE } : {}),
    startedAt: new Date().toISOString(),
  };
  let warned = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      await writeFile(path, JSON.stringify(body), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = await readBody(path);
    let age: number;
    try {
      age = Date.now() - (await stat(path)).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    const gone =
      held !== undefined &&
      age <= opts.staleMs &&
      opts.holderGone !== undefined &&
      (await opts.holderGone(held));
    if (held !== undefined && (age > opts.staleMs || gone)) {
      // Move the stale lock aside under its own token; if what moved is not what we judged
      // stale (another waiter replaced it meanwhile), put it back.
      const aside = `${path}.stale-${held.token}`;
      try {
        await rename(path, aside);
        const moved = await readBody(aside);
        if (moved?.token !== held.token) await rename(aside, path);
        else {
          await unlink(aside);
          opts.onTakeover?.(describeHolder(held), gone ? 'gone' : 'stale');
        }
      } catch {
        // someone else is taking it over; look again
      }
      continue;
    }
    if (!warned) {
      warned = true;
      opts.onWait?.(held ? describeHolder(held) : 'an unknown holder');
    }
    await wait(opts.pollMs, opts.signal);
  }

  let lose!: (err: FetchError) => void;
  const lost = new Promise<never>((_, reject) => (lose = reject));
  lost.catch(() => undefined);
  const beat = setInterval(
    () => {
      void (async () => {
        const now = await readBody(path);
        // An unreadable lock (a filesystem hiccup) is not a takeover; a missing or foreign one is.
        const gone =
          now === undefined &&
          (await stat(path).then(
            () => false,
            (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT',
          ));
        if (gone || (now !== undefined && now.token !== body.token)) {
          lose(new FetchError('the volume lock was taken over by another fetch; stopping'));
          return;
        }
        const t = new Date();
        await utimes(path, t, t).catch(() => undefined);
      })();
    },
    Math.max(50, Math.floor(opts.staleMs / 4)),
  );
  beat.unref();

  return {
    lost,
    async release() {
      clearInterval(beat);
      const now = await readBody(path);
      if (now?.token === body.token) await unlink(path).catch(() => undefined);
    },
  };
}
