// Layer extraction on its own (function/fetch/sources/oci-layers.ts): the filesystem a stack of
// tar layers makes, whole, for the orderings a container runtime must get right. The registry
// round trip is covered by oci.test.ts; here each case is a few entries and a precise tree.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterEach, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import { globFilter } from '../../function/fetch/paths.js';
import { unpackLayers } from '../../function/fetch/sources/oci-layers.js';
import { tree } from '../support/fetch-harness.js';
import { tarball, type TarEntry } from '../oci/peers.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function unpack(
  layers: TarEntry[][],
  opts: { dir?: string; include?: string[]; exclude?: string[]; gzip?: boolean } = {},
): Promise<{ files: Record<string, string>; listed: { path: string; size: number }[] }> {
  const root = mkdtempSync(join(tmpdir(), 'modelcache-layers-'));
  dirs.push(root);
  const blobs = join(root, 'blobs');
  const out = join(root, 'out');
  mkdirSync(blobs);
  mkdirSync(out);
  const files = [];
  for (const [i, l] of layers.entries()) {
    const tar = await tarball(l);
    const file = join(blobs, String(i));
    writeFileSync(file, opts.gzip === true ? gzipSync(tar) : tar);
    files.push({ digest: `sha256:layer${String(i)}`, file });
  }
  const listed = await unpackLayers(files, out, {
    dir: opts.dir ?? 'models',
    maxBytes: 1 << 20,
    keep: globFilter(opts.include, opts.exclude),
    signal: new AbortController().signal,
  });
  return { files: tree(out), listed: listed.map((f) => ({ path: f.path, size: f.size })) };
}

const cases: {
  reason: string;
  layers: TarEntry[][];
  opts?: Parameters<typeof unpack>[1];
  want: Record<string, string>;
}[] = [
  {
    reason: 'a later layer replaces a file; entries outside the directory are not staged',
    layers: [
      [
        { name: 'models/a', data: 'one' },
        { name: 'etc/x', data: 'x' },
      ],
      [{ name: 'models/a', data: 'two' }],
    ],
    want: { a: 'two' },
  },
  {
    reason: 'a whiteout removes a lower directory with everything in it',
    layers: [
      [
        { name: 'models/sub/a', data: 'a' },
        { name: 'models/sub/deep/b', data: 'b' },
        { name: 'models/keep', data: 'k' },
      ],
      [{ name: 'models/.wh.sub', data: '' }],
    ],
    want: { keep: 'k' },
  },
  {
    reason: 'an opaque marker hides what lower layers put in its directory, not its own layer’s',
    layers: [
      [
        { name: 'models/cache/old', data: 'old' },
        { name: 'models/top', data: 't' },
      ],
      [
        { name: 'models/cache/new', data: 'new' },
        { name: 'models/cache/.wh..wh..opq', data: '' },
      ],
    ],
    want: { 'cache/new': 'new', top: 't' },
  },
  {
    reason: 'a whiteout of the staged directory itself, then new files in it',
    layers: [
      [{ name: 'models/a', data: 'a' }],
      [
        { name: '.wh.models', data: '' },
        { name: 'models/b', data: 'b' },
      ],
    ],
    want: { b: 'b' },
  },
  {
    reason: 'a file replaced by a directory, and a directory by a file',
    layers: [
      [
        { name: 'models/x', data: 'file' },
        { name: 'models/y/inner', data: 'inner' },
      ],
      [
        { name: 'models/x/now-a-dir', data: 'd' },
        { name: 'models/y', data: 'now a file' },
      ],
    ],
    want: { 'x/now-a-dir': 'd', y: 'now a file' },
  },
  {
    reason: 'a hard link keeps the bytes it was made with when its target is overwritten later',
    layers: [
      [
        { name: 'models/a', data: 'first' },
        { name: 'models/b', type: 'link', linkname: 'models/a' },
      ],
      [{ name: 'models/a', data: 'second' }],
    ],
    want: { a: 'second', b: 'first' },
  },
  {
    reason: 'a chain of symbolic links (relative, then absolute) ends at a file',
    layers: [
      [
        { name: 'models/real', data: 'r' },
        { name: 'models/l1', type: 'symlink', linkname: 'l2' },
        { name: 'models/l2', type: 'symlink', linkname: '/models/real' },
      ],
    ],
    want: { l1: 'r', l2: 'r', real: 'r' },
  },
  {
    reason: 'include/exclude apply to paths in the directory; gzip layers are recognised',
    layers: [
      [
        { name: 'models/w.safetensors', data: 'w' },
        { name: 'models/notes.md', data: 'n' },
        { name: 'models/sub/x.safetensors', data: 'x' },
      ],
    ],
    opts: { include: ['*.safetensors'], exclude: ['sub/*'], gzip: true },
    want: { 'w.safetensors': 'w' },
  },
  {
    reason: "the whole filesystem with dir ''",
    layers: [[{ name: './a/b', data: 'ab' }]],
    opts: { dir: '' },
    want: { 'a/b': 'ab' },
  },
];

describe('unpackLayers', () => {
  it.each(cases)('$reason', async ({ layers, opts, want }) => {
    const got = await unpack(layers, opts);
    expect(got).toEqual({
      files: Object.fromEntries(Object.entries(want).map(([p, d]) => [p, sha(d)])),
      listed: Object.entries(want)
        .map(([path, d]) => ({ path, size: Buffer.byteLength(d) }))
        .sort((a, b) => (a.path < b.path ? -1 : 1)),
    });
  });

  const refused: { reason: string; layers: TarEntry[][]; error: string }[] = [
    {
      reason: 'a symbolic link to a directory',
      layers: [
        [
          { name: 'models/d/f', data: 'f' },
          { name: 'models/l', type: 'symlink', linkname: 'd' },
        ],
      ],
      error: 'symbolic link "/models/l" leads to a directory; only links to files are staged',
    },
    {
      reason: 'a dangling symbolic link',
      layers: [[{ name: 'models/l', type: 'symlink', linkname: 'gone' }]],
      error: 'symbolic link "/models/l" leads to nothing staged (dangling, or a loop)',
    },
    {
      reason: 'a loop of symbolic links',
      layers: [
        [
          { name: 'models/a', type: 'symlink', linkname: 'b' },
          { name: 'models/b', type: 'symlink', linkname: 'a' },
        ],
      ],
      error: 'symbolic link "/models/a" leads to nothing staged (dangling, or a loop)',
    },
    {
      reason: 'a hard link to a name no earlier entry made',
      layers: [[{ name: 'models/h', type: 'link', linkname: 'models/none' }]],
      error:
        'layer sha256:layer0: entry "models/h": a hard link to "models/none", which is not a file staged before it',
    },
    {
      reason: 'more bytes than the volume holds',
      layers: [[{ name: 'models/big', data: 'x'.repeat((1 << 20) + 1) }]],
      error: `layer sha256:layer0: entry "models/big": unpacking it would exceed the ${String(1 << 20)} bytes the volume holds`,
    },
  ];
  it.each(refused)('refuses $reason', async ({ layers, error }) => {
    await expect(unpack(layers)).rejects.toThrow(new FetchError(error));
  });
});
