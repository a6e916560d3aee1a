// Moving verified files from staging into place on the volume.
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
import { lstat, mkdir, rename, rmdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { Logger } from 'pino';

import { FetchError } from './errors.js';
import {
  MANIFEST_VERSION,
  manifestText,
  readJson,
  removeIfExists,
  sha256Hex,
  syncDir,
  writeAtomic,
  type Layout,
  type Manifest,
  type Marker,
} from './layout.js';
import { unsafePathReason } from './paths.js';
import type { RemoteFile } from './sources/index.js';

/** A file verified in staging, ready to be renamed into place. */
export interface Staged {
  file: RemoteFile;
  size: number;
  sha256: string;
  /** The part file to rename, or undefined when an interrupted publish already moved it. */
  part: string | undefined;
  /** Unpacked from an archive the source listed (and that was verified by its digest). */
  unpacked?: boolean;
}

/** True when every parent of `path` under `root` is a real directory (no link to follow out). */
export async function parentsAreDirectories(root: string, path: string): Promise<boolean> {
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

export async function publish(
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
