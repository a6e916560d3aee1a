// inline and configMap: files on a mounted ConfigMap volume, copied as regular files.
//
// Kubelet builds a ConfigMap volume from symlinks: `<dir>/..data` links to a timestamped
// `<dir>/..2024_…` directory holding the real files, and each top-level entry links into
// `..data`. Those links are the volume's own plumbing, so this source resolves `..data`
// once (it must stay inside `dir`) and then reads only inside that directory with lstat
// and O_NOFOLLOW: any link found there was put there by the source and is rejected.
import { constants, createReadStream } from 'node:fs';
import { lstat, open, readdir, readlink, realpath } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

import { FetchError } from '../errors.js';
import { unsafePathReason } from '../paths.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import type { Listing, OpenedBody, RemoteFile, Source } from './types.js';

type FilesPlan = Extract<FetchPlanSource, { type: 'inline' | 'configMap' }>;

const DATA_LINK = '..data';

/** The directory that really holds the files: `dir/..data` resolved when it is a link inside `dir`. */
async function dataRoot(dir: string): Promise<string> {
  const root = await realpath(dir);
  let st;
  try {
    st = await lstat(join(root, DATA_LINK));
  } catch {
    return root;
  }
  if (!st.isSymbolicLink()) return st.isDirectory() ? join(root, DATA_LINK) : root;
  const target = await realpath(join(root, DATA_LINK));
  const rel = relative(root, target);
  if (rel === '' || rel.startsWith('..' + sep) || rel === '..' || rel.includes(sep)) {
    throw new FetchError(
      `${DATA_LINK} in ${dir} points outside it (${await readlink(join(root, DATA_LINK))})`,
    );
  }
  return target;
}

/** lstat every segment of `rel` under `root`: directories on the way, a regular file at the end. */
async function regularFile(root: string, rel: string): Promise<number> {
  const reason = unsafePathReason(rel);
  if (reason !== undefined) throw new FetchError(`unsafe path from the source: ${reason}`, rel);
  const segments = rel.split('/');
  let at = root;
  for (const [i, s] of segments.entries()) {
    at = join(at, s);
    let st;
    try {
      st = await lstat(at);
    } catch {
      throw FetchError.permanent('not found in the mounted files', rel);
    }
    if (st.isSymbolicLink()) throw new FetchError('the source holds a symbolic link here', rel);
    const last = i === segments.length - 1;
    if (!last && !st.isDirectory()) throw new FetchError('a parent is not a directory', rel);
    if (last && !st.isFile()) throw new FetchError('not a regular file', rel);
    if (last) return st.size;
  }
  throw new FetchError('empty path', rel);
}

/** Every regular file under `root/rel`, rejecting links; '..'-prefixed entries are kubelet's. */
async function walk(root: string, rel: string, out: string[]): Promise<void> {
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  for (const e of entries) {
    if (rel === '' && e.name.startsWith('..')) continue;
    const path = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isSymbolicLink()) throw new FetchError('the source holds a symbolic link here', path);
    if (e.isDirectory()) await walk(root, path, out);
    else if (e.isFile()) out.push(path);
    else throw new FetchError('not a regular file', path);
  }
}

export function filesSource(plan: FilesPlan): Source {
  let root: string | undefined;
  return {
    describe: `${plan.type} files from ${plan.dir}`,
    secrets: [],

    async list(): Promise<Listing> {
      root = await dataRoot(plan.dir);
      let paths = plan.paths;
      if (paths === undefined) {
        const found: string[] = [];
        await walk(root, '', found);
        paths = found.sort();
      }
      const files: RemoteFile[] = [];
      for (const path of paths) files.push({ path, size: await regularFile(root, path) });
      return { files };
    },

    async open(file, offset): Promise<OpenedBody> {
      if (root === undefined) throw new Error('open() before list()');
      await regularFile(root, file.path);
      // O_NOFOLLOW: a link swapped in after the check is refused by the kernel.
      const fh = await open(join(root, file.path), constants.O_RDONLY | constants.O_NOFOLLOW);
      return { start: offset, body: createReadStream('', { fd: fh, start: offset }) };
    },
  };
}
