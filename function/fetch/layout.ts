// The program's on-disk layout in the volume, the manifest and the completion marker.
//
//   <targetDir>/                       the artifact's files, at the volume root (consumers
//                                      mount the whole volume at their mountPath)
//   <targetDir>/.modelcache/lock       held while a fetch runs (see lock.ts)
//   <targetDir>/.modelcache/staging/<identity>/parts/<id>       partial / finished files
//   <targetDir>/.modelcache/staging/<identity>/parts/<id>.json  durable offset checkpoint
//   <targetDir>/.modelcache/manifest.json   identity, resolved revision, files + digests
//   <targetDir>/.modelcache/complete.json   completion marker, written last
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { FetchError } from './errors.js';
import { STATE_DIR } from './paths.js';

export const MANIFEST_VERSION = 1;

export interface ManifestFile {
  path: string;
  size: number;
  /** sha256 of the staged bytes, computed while writing them. */
  sha256: string;
  /**
   * What the bytes were checked against: the source's sha256, its git blob id, the digest of
   * the archive they were unpacked from (an OCI layer), or nothing the source published.
   */
  verifiedBy: 'sha256' | 'gitBlobSha1' | 'archive' | 'none';
}

export interface Manifest {
  version: typeof MANIFEST_VERSION;
  identity: string;
  sourceType: string;
  resolvedRevision: string;
  totalBytes: number;
  files: ManifestFile[];
}

export interface Marker {
  version: typeof MANIFEST_VERSION;
  identity: string;
  /** sha256 of manifest.json's bytes: a marker only vouches for the manifest it was written with. */
  manifestSha256: string;
}

export interface Checkpoint {
  path: string;
  size?: number;
  validator?: string;
  /** Bytes known to be on disk (fsynced) at the start of the part file. */
  offset: number;
  /** Fetched in parts of this many bytes over several connections (see ranged.ts). */
  partBytes?: number;
  /** Indices of the parts that are whole and fsynced, in a file fetched in parts. */
  parts?: number[];
  /** The part is whole and verified; sha256 is its digest. */
  done?: boolean;
  sha256?: string;
}

export class Layout {
  readonly state: string;
  readonly lock: string;
  readonly manifest: string;
  readonly marker: string;
  readonly stagingRoot: string;
  readonly staging: string;
  readonly parts: string;

  constructor(
    readonly root: string,
    readonly identity: string,
  ) {
    this.state = join(root, STATE_DIR);
    this.lock = join(this.state, 'lock');
    this.manifest = join(this.state, 'manifest.json');
    this.marker = join(this.state, 'complete.json');
    this.stagingRoot = join(this.state, 'staging');
    this.staging = join(this.stagingRoot, identity);
    this.parts = join(this.staging, 'parts');
  }

  /** Flat, name-independent part files: nothing from the source names a staging path. */
  part(path: string): string {
    return join(this.parts, createHash('sha256').update(path).digest('hex').slice(0, 40));
  }

  checkpoint(path: string): string {
    return `${this.part(path)}.json`;
  }

  /**
   * Create the state directories, refusing a volume whose state dir is a link. Inside it,
   * nothing is ever a link: every one found is removed (the link itself, never what it
   * points at), so no later cleanup, write or lock operation can reach outside the volume.
   * Returns the links it removed.
   */
  async prepare(): Promise<string[]> {
    const root = await lstat(this.root).catch(() => undefined);
    if (!root?.isDirectory()) throw new FetchError(`target directory ${this.root} does not exist`);
    await mkdir(this.state, { recursive: true });
    const st = await lstat(this.state);
    if (!st.isDirectory() || st.isSymbolicLink()) {
      throw new FetchError(`${this.state} is not a directory (a link or a file is in the way)`);
    }
    const removed = await removeLinks(this.state);
    for (const dir of [this.stagingRoot, this.staging, this.parts]) {
      await mkdir(dir).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      });
      const d = await lstat(dir);
      if (!d.isDirectory()) {
        throw new FetchError(`${dir} is not a directory (a file is in the way)`);
      }
    }
    return removed;
  }
}

/** Unlink every symbolic link under `dir`, descending only into real directories. */
async function removeLinks(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) {
      await unlink(path);
      removed.push(path);
    } else if (entry.isDirectory()) {
      removed.push(...(await removeLinks(path)));
    }
  }
  return removed;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Write a small file atomically: temp file, fsync, rename, fsync the directory. */
export async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(join(path, '..'));
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined);
  if (fh === undefined) return;
  try {
    await fh.sync().catch(() => undefined); // some filesystems refuse fsync on directories
  } finally {
    await fh.close();
  }
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape it expects
export async function readJson<T>(path: string): Promise<{ value: T; raw: string } | undefined> {
  try {
    const raw = await readFile(path, 'utf8');
    return { value: JSON.parse(raw) as T, raw };
  } catch {
    return undefined;
  }
}

export async function removeIfExists(path: string): Promise<void> {
  await unlink(path).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
}

/** The manifest as written: stable key order, one file per line for humans. */
export function manifestText(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/**
 * The staged manifest when the marker vouches for it: same identity, the manifest's own
 * digest, and every file still present at its size. Anything else means "not complete".
 */
export async function completedManifest(layout: Layout): Promise<Manifest | undefined> {
  const marker = await readJson<Marker>(layout.marker);
  if (marker?.value.identity !== layout.identity) return undefined;
  const manifest = await readJson<Manifest>(layout.manifest);
  if (manifest === undefined || sha256Hex(manifest.raw) !== marker.value.manifestSha256) {
    return undefined;
  }
  if (manifest.value.identity !== layout.identity) return undefined;
  for (const f of manifest.value.files) {
    const st = await lstat(join(layout.root, f.path)).catch(() => undefined);
    if (!st?.isFile() || st.size !== f.size) return undefined;
  }
  return manifest.value;
}
