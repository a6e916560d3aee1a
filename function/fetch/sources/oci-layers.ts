// Tar layers into a directory tree, safely: the OCI source's image layout (a modelcar's
// filesystem, layers applied in order with their whiteouts) and ORAS's directory archives.
//
// Every entry of every layer is checked, staged or not: an absolute name, a ".." segment, a
// link leaving the staged directory, a device file or a FIFO fails the whole artifact, naming
// the layer and the entry. Only the staged directory is written, under `workDir`: regular files
// (hashed as they are written), directories, and hard links to files already written. A
// symbolic link inside the directory is staged as a hard link to the file it resolves to, so
// the published tree holds regular files only. The written bytes are bounded by `maxBytes`.
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { link, mkdir, open, rm, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';

import { extract, type Header as TarHeader } from 'tar-stream';

import { FetchError } from '../errors.js';
import { writeAll } from '../hashing.js';
import { unsafePathReason } from '../paths.js';

/** One layer as downloaded and verified: its digest names it in errors. */
export interface LayerFile {
  digest: string;
  /** The verified blob on disk. */
  file: string;
}

/** A file of the assembled tree, ready to be renamed into place. */
export interface TreeFile {
  /** Relative to the staged directory (and so to the volume root). */
  path: string;
  /** Where it is under workDir. */
  file: string;
  size: number;
  sha256: string;
}

export interface UnpackOptions {
  /** The directory of the layers' filesystem to stage, relative, without slashes at either end; '' = all. */
  dir: string;
  /** Bytes the staged files may total (the volume's size). */
  maxBytes: number;
  /** Entries (of every kind, staged or not) the layers may hold together. */
  maxEntries?: number;
  keep: (path: string) => boolean;
  signal: AbortSignal;
}

export const DEFAULT_MAX_ENTRIES = 1_000_000;
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const MAX_LINK_HOPS = 40;
const WRITE_BATCH = 4 << 20;

type Node =
  | { kind: 'dir'; layer: number }
  | { kind: 'file'; layer: number; size: number; sha256: string; written: boolean }
  | { kind: 'symlink'; layer: number; target: string };

/** A tar stream's decompressor, chosen from its first bytes (gzip, zstd or plain tar). */
function decompressor(head: Buffer, digest: string): Transform | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return zlib.createGunzip();
  if (head.readUInt32LE(0) === 0xfd2fb528) {
    const make = (zlib as unknown as { createZstdDecompress?: () => Transform })
      .createZstdDecompress;
    if (make === undefined) {
      throw new FetchError(
        `layer ${digest} is zstd-compressed, which this Node.js runtime cannot decompress; push the layer as gzip or plain tar`,
      );
    }
    return make();
  }
  return undefined;
}

async function firstBytes(file: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 0);
    return buf;
  } finally {
    await fh.close();
  }
}

/**
 * An entry's name as a path inside the layer's filesystem: "./" prefixes and a trailing "/"
 * dropped; absolute names, ".." and NUL bytes refused (never "cleaned" into something else).
 */
export function entryPath(name: string, digest: string): string {
  const fail = (why: string): never => {
    throw new FetchError(`layer ${digest}: entry ${JSON.stringify(name)}: ${why}`);
  };
  if (name.includes('\0')) fail('the name holds a NUL byte');
  if (name.startsWith('/')) fail('absolute path');
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) fail('the path has a ".." segment (it would leave the root)');
  return segments.join('/');
}

/** `path` relative to the staged directory, or undefined when it lies outside it. */
function inside(dir: string, path: string): string | undefined {
  if (dir === '') return path === '' ? undefined : path;
  if (path.startsWith(`${dir}/`)) return path.slice(dir.length + 1);
  return undefined;
}

/**
 * Apply `layers` in order and write the staged directory's files under `workDir` (which must
 * exist and be empty). Returns every staged regular file with its size and sha256.
 */
export async function unpackLayers(
  layers: readonly LayerFile[],
  workDir: string,
  opts: UnpackOptions,
): Promise<TreeFile[]> {
  const nodes = new Map<string, Node>();
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  let entries = 0;
  let written = 0;
  const onDisk = (rel: string): string => posix.join(workDir, rel);

  /** Remove `path` and what lies under it, as far as lower layers put it there. */
  const removeLower = async (path: string, layer: number, childrenOnly: boolean): Promise<void> => {
    const doomed: string[] = [];
    for (const [p, n] of nodes) {
      if (n.layer >= layer) continue;
      if ((!childrenOnly && p === path) || p.startsWith(path === '' ? '' : `${path}/`)) {
        doomed.push(p);
      }
    }
    for (const p of doomed) nodes.delete(p);
    for (const p of doomed.sort().reverse()) {
      const rel = inside(opts.dir, p);
      if (rel !== undefined) await rm(onDisk(rel), { recursive: true, force: true });
    }
  };

  /** Take away what a lower layer (or an earlier entry of this one) left at `path`. */
  const replace = async (path: string, layer: number): Promise<void> => {
    const n = nodes.get(path);
    if (n === undefined) return;
    if (n.kind === 'dir') {
      await removeLower(path, layer + 1, false);
      return;
    }
    nodes.delete(path);
    const rel = inside(opts.dir, path);
    if (rel !== undefined) await rm(onDisk(rel), { force: true });
  };

  /** Make the staged parents of `path`, replacing a file or link a lower layer left there. */
  const parents = async (path: string, layer: number): Promise<void> => {
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const p = segs.slice(0, i).join('/');
      const n = nodes.get(p);
      if (n?.kind === 'dir') continue;
      if (n !== undefined) await removeLower(p, layer + 1, false);
      if (inside(opts.dir, p) !== undefined) {
        await mkdir(onDisk(inside(opts.dir, p) as string), { recursive: true });
      }
      nodes.set(p, { kind: 'dir', layer });
    }
  };

  for (const [index, layer] of layers.entries()) {
    const digest = layer.digest;
    const head = await firstBytes(layer.file);
    const unzip = decompressor(head, digest);
    const raw = createReadStream(layer.file);
    const tar = extract();
    const input: Readable = unzip ? raw.pipe(unzip) : raw;
    const fail = (err: unknown): void => {
      tar.destroy(err instanceof Error ? err : new Error(String(err)));
    };
    raw.on('error', fail);
    unzip?.on('error', (err) => {
      fail(new FetchError(`layer ${digest}: not a valid gzip stream (${err.message})`));
    });
    input.pipe(tar);
    const abort = (): void => {
      fail(opts.signal.reason);
    };
    opts.signal.addEventListener('abort', abort, { once: true });
    try {
      for await (const entry of tar) {
        const header: TarHeader = entry.header;
        if (++entries > maxEntries) {
          throw new FetchError(
            `the layers hold more than ${maxEntries} entries; refusing to unpack further`,
          );
        }
        const path = entryPath(header.name, digest);
        const what = `layer ${digest}: entry ${JSON.stringify(header.name)}`;
        const base = posix.basename(path);
        const parent = posix.dirname(path) === '.' ? '' : posix.dirname(path);
        // Whiteouts hide what lower layers put there; the marker itself is never staged.
        if (base === OPAQUE) {
          await removeLower(parent, index, true);
          entry.resume();
          continue;
        }
        if (base.startsWith(WHITEOUT)) {
          const hidden = posix.join(parent, base.slice(WHITEOUT.length));
          await removeLower(hidden, index, false);
          entry.resume();
          continue;
        }
        const rel = inside(opts.dir, path);
        // Typed as the kinds tar-stream names; an archive may carry others (GNU sparse, ...).
        const type: string = header.type;
        if (type === 'character-device' || type === 'block-device' || type === 'fifo') {
          if (rel !== undefined) {
            throw new FetchError(
              `${what}: a ${type === 'fifo' ? 'FIFO' : 'device file'} is never staged`,
            );
          }
          entry.resume();
          continue;
        }
        if (type === 'symlink' || type === 'link') {
          const linkname = header.linkname;
          // A hard link names a path of the archive; a symbolic link resolves from its own
          // directory, or from the filesystem's root when absolute (as in the container).
          const target =
            type === 'link'
              ? entryPath(linkname, digest)
              : posix
                  .normalize(
                    linkname.startsWith('/') ? linkname : posix.join('/', parent, linkname),
                  )
                  .replace(/^\/+/, '');
          if (rel === undefined) {
            entry.resume();
            continue;
          }
          if (inside(opts.dir, target) === undefined) {
            throw new FetchError(
              `${what}: a ${type === 'link' ? 'hard' : 'symbolic'} link to ${JSON.stringify(linkname)} leaves the staged directory`,
            );
          }
          await parents(path, index);
          await replace(path, index);
          if (type === 'symlink') {
            nodes.set(path, { kind: 'symlink', layer: index, target });
          } else {
            const t = nodes.get(target);
            if (t?.kind !== 'file') {
              throw new FetchError(
                `${what}: a hard link to ${JSON.stringify(linkname)}, which is not a file staged before it`,
              );
            }
            const trel = inside(opts.dir, target) as string;
            if (t.written && opts.keep(rel)) {
              await rm(onDisk(rel), { recursive: true, force: true });
              await link(onDisk(trel), onDisk(rel));
            }
            nodes.set(path, { ...t, layer: index, written: t.written && opts.keep(rel) });
          }
          entry.resume();
          continue;
        }
        if (type === 'directory') {
          if (rel !== undefined) {
            await parents(path, index);
            if (nodes.get(path)?.kind !== 'dir') await replace(path, index);
            await mkdir(onDisk(rel), { recursive: true });
          }
          if (path !== '' && nodes.get(path)?.kind !== 'dir') {
            nodes.set(path, { kind: 'dir', layer: index });
          }
          entry.resume();
          continue;
        }
        if (type !== 'file' && type !== 'contiguous-file') {
          if (rel !== undefined)
            throw new FetchError(`${what}: entries of type ${type} are not staged`);
          entry.resume();
          continue;
        }
        if (rel === undefined) {
          entry.resume();
          continue;
        }
        const reason = unsafePathReason(rel);
        if (reason !== undefined) throw new FetchError(`${what}: ${reason}`);
        await parents(path, index);
        await replace(path, index);
        const keep = opts.keep(rel);
        const size = header.size;
        if (keep && written + size > opts.maxBytes) {
          throw new FetchError(
            `${what}: unpacking it would exceed the ${opts.maxBytes} bytes the volume holds`,
          );
        }
        const hash = createHash('sha256');
        if (keep) {
          const dest = onDisk(rel);
          const fh = await open(
            dest,
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
            0o644,
          );
          try {
            // Chunks are hashed as they come and written in batches (one writev per 4 MiB).
            let at = 0;
            let batch: Buffer[] = [];
            let batched = 0;
            const flush = async (): Promise<void> => {
              if (batched === 0) return;
              await writeAll(fh, batch, at);
              at += batched;
              batch = [];
              batched = 0;
            };
            for await (const chunk of entry as AsyncIterable<Buffer>) {
              hash.update(chunk);
              batch.push(chunk);
              batched += chunk.length;
              if (batched >= WRITE_BATCH) await flush();
            }
            await flush();
            if (at !== size) throw new FetchError(`${what}: the archive ends inside the file`);
            await fh.sync();
          } finally {
            await fh.close();
          }
          written += size;
        } else {
          entry.resume();
        }
        nodes.set(path, {
          kind: 'file',
          layer: index,
          size,
          sha256: keep ? hash.digest('hex') : '',
          written: keep,
        });
      }
    } catch (err) {
      raw.destroy();
      throw err instanceof FetchError
        ? err
        : new FetchError(
            `layer ${digest}: not a valid tar archive (${err instanceof Error ? err.message : String(err)})`,
          );
    } finally {
      opts.signal.removeEventListener('abort', abort);
    }
    opts.signal.throwIfAborted();
  }

  // Symbolic links become hard links to the files they resolve to.
  const resolve = (from: string): { path: string; node: Node } | undefined => {
    let at = from;
    for (let hops = 0; hops < MAX_LINK_HOPS; hops++) {
      const n = nodes.get(at);
      if (n === undefined) return undefined;
      if (n.kind !== 'symlink') return { path: at, node: n };
      at = n.target;
    }
    return undefined;
  };
  const out: TreeFile[] = [];
  for (const [path, n] of [...nodes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const rel = inside(opts.dir, path);
    if (rel === undefined) continue;
    if (n.kind === 'symlink') {
      if (!opts.keep(rel)) continue;
      const r = resolve(path);
      const where = `symbolic link ${JSON.stringify(`/${path}`)}`;
      if (r === undefined) {
        throw new FetchError(`${where} leads to nothing staged (dangling, or a loop)`);
      }
      const trel = inside(opts.dir, r.path);
      if (trel === undefined) throw new FetchError(`${where} leaves the staged directory`);
      if (r.node.kind !== 'file') {
        throw new FetchError(`${where} leads to a directory; only links to files are staged`);
      }
      if (!r.node.written) {
        throw new FetchError(`${where} leads to ${trel}, which include/exclude leave out`);
      }
      await unlink(onDisk(rel)).catch(() => undefined);
      await link(onDisk(trel), onDisk(rel));
      out.push({ path: rel, file: onDisk(rel), size: r.node.size, sha256: r.node.sha256 });
      continue;
    }
    if (n.kind === 'file' && n.written) {
      out.push({ path: rel, file: onDisk(rel), size: n.size, sha256: n.sha256 });
    }
  }
  return out;
}
