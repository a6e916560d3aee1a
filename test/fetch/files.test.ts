// inline and configMap sources against a ConfigMap volume laid out the way kubelet lays
// it out (..data → ..<timestamp>/, top-level links into ..data), and links the source
// itself tries to introduce.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import { planFor, run, scratch, tree } from '../support/fetch-harness.js';
import { sha256 } from '../support/fetch-serve.js';

const CONFIG = '{"temperature":0.7}\n';
const TEMPLATE = '{% for m in messages %}{{ m.content }}{% endfor %}\n';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A ConfigMap volume as kubelet writes it: real files under a timestamped dir. */
function configMapVolume(
  files: Record<string, string>,
  extra?: (data: string, dir: string) => void,
): string {
  const s = scratch('fetch-cm-');
  cleanups.push(s.cleanup);
  const dir = join(s.dir, 'files');
  const stamp = '..2026_11_27_09_00_00.123456789';
  const data = join(dir, stamp);
  mkdirSync(data, { recursive: true });
  const top = new Set<string>();
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(data, path, '..'), { recursive: true });
    writeFileSync(join(data, path), content);
    top.add(path.split('/')[0] ?? path);
  }
  symlinkSync(stamp, join(dir, '..data'));
  for (const t of top) symlinkSync(join('..data', t), join(dir, t));
  extra?.(data, dir);
  return dir;
}

function volume(): string {
  const s = scratch();
  cleanups.push(s.cleanup);
  return s.dir;
}

describe('inline and configMap sources', () => {
  it.each([
    {
      reason: 'configMap without paths copies every entry but kubelet’s ..-prefixed internals',
      source: (dir: string): FetchPlanSource => ({ type: 'configMap', dir }),
      expected: { 'chat/template.jinja': sha256(TEMPLATE), 'config.json': sha256(CONFIG) },
    },
    {
      reason: 'configMap with paths copies only those',
      source: (dir: string): FetchPlanSource => ({
        type: 'configMap',
        dir,
        paths: ['config.json'],
      }),
      expected: { 'config.json': sha256(CONFIG) },
    },
    {
      reason: 'inline copies its listed paths, nested ones included',
      source: (dir: string): FetchPlanSource => ({
        type: 'inline',
        dir,
        paths: ['chat/template.jinja', 'config.json'],
      }),
      expected: { 'chat/template.jinja': sha256(TEMPLATE), 'config.json': sha256(CONFIG) },
    },
  ])('$reason', async ({ source, expected }) => {
    const dir = configMapVolume({ 'config.json': CONFIG, 'chat/template.jinja': TEMPLATE });
    const target = volume();
    const plan = planFor(source(dir), target);
    const result = await run(plan);
    const files = Object.entries(expected as Record<string, string>).map(([path, digest]) => ({
      path,
      size: path === 'config.json' ? CONFIG.length : TEMPLATE.length,
      sha256: digest,
      verifiedBy: 'none' as const,
    }));
    expect(result.manifest).toEqual({
      version: 1,
      identity: plan.identity,
      sourceType: plan.source.type,
      resolvedRevision:
        files.length === 1
          ? `sha256:${files[0]?.sha256 ?? ''}`
          : `sha256:${sha256(files.map((f) => `${f.sha256}  ${f.path}\n`).join(''))}`,
      totalBytes: files.reduce((n, f) => n + f.size, 0),
      files,
    });
    expect(tree(target)).toEqual(expected);
  });

  it.each([
    {
      reason: 'a link to a file outside, listed by walking the volume',
      setup: (data: string) => {
        symlinkSync('/etc/hostname', join(data, 'evil'));
      },
      paths: undefined,
      file: 'evil',
      message: 'the source holds a symbolic link here',
    },
    {
      reason: 'a link named in paths',
      setup: (data: string) => {
        symlinkSync('/etc/hostname', join(data, 'evil'));
      },
      paths: ['evil'],
      file: 'evil',
      message: 'the source holds a symbolic link here',
    },
    {
      reason: 'a linked directory on the way to a named path',
      setup: (data: string) => {
        symlinkSync('/etc', join(data, 'sub'));
      },
      paths: ['sub/hostname'],
      file: 'sub/hostname',
      message: 'the source holds a symbolic link here',
    },
    {
      reason: 'a path that is not there',
      setup: () => undefined,
      paths: ['missing.txt'],
      file: 'missing.txt',
      message: 'not found in the mounted files',
    },
    {
      reason: 'a parent-directory escape in paths',
      setup: () => undefined,
      paths: ['../../etc/hostname'],
      file: '../../etc/hostname',
      message: 'unsafe path from the source: path has an empty, "." or ".." segment',
    },
  ])('rejects $reason', async ({ setup, paths, file, message }) => {
    const dir = configMapVolume({ 'config.json': CONFIG }, setup);
    const target = volume();
    const source: FetchPlanSource = { type: 'configMap', dir, ...(paths ? { paths } : {}) };
    const err = await run(planFor(source, target)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect([(err as FetchError).file, (err as FetchError).message]).toEqual([file, message]);
    expect(tree(target)).toEqual({});
  });

  it('rejects a ..data link that points outside the mounted directory', async () => {
    const s = scratch('fetch-cm-');
    cleanups.push(s.cleanup);
    const dir = join(s.dir, 'files');
    mkdirSync(join(s.dir, 'elsewhere'), { recursive: true });
    mkdirSync(dir);
    writeFileSync(join(s.dir, 'elsewhere', 'config.json'), CONFIG);
    symlinkSync('../elsewhere', join(dir, '..data'));
    const target = volume();
    const err = await run(planFor({ type: 'configMap', dir }, target)).catch((e: unknown) => e);
    expect(err).toEqual(
      new FetchError(
        `listing configMap files from ${dir}: ..data in ${dir} points outside it (../elsewhere)`,
      ),
    );
  });

  it('rejects a top-level link in a plain directory (no kubelet ..data)', async () => {
    const s = scratch('fetch-cm-');
    cleanups.push(s.cleanup);
    writeFileSync(join(s.dir, 'config.json'), CONFIG);
    symlinkSync('/etc/hostname', join(s.dir, 'hostname'));
    const target = volume();
    const err = await run(planFor({ type: 'configMap', dir: s.dir }, target)).catch(
      (e: unknown) => e,
    );
    expect([(err as FetchError).file, (err as FetchError).message]).toEqual([
      'hostname',
      'the source holds a symbolic link here',
    ]);
  });
});
