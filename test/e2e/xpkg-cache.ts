// Registers the Function with Crossplane without any registry: Crossplane's package cache is
// pre-filled with the Function's package stream (package/function/crossplane.yaml and its input
// CRDs) under the file name its cached client looks up for a digest reference, so a
// FunctionRevision with `packagePullPolicy: Never` and an `image@sha256:` reference parses
// without a registry lookup.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const FUNCTION_SOURCE = 'xpkg.crossplane.io/modelplane-ai/function-modelcache';

/**
 * crossplane-runtime's xpkg.FriendlyID(source, digest): "source[:50]-digest[:12]" reduced to a
 * DNS label (lower-case alphanumerics; '.', '/', ':' and '-' become '-' except at the ends; at
 * most 63 characters).
 */
export function friendlyId(source: string, digest: string): string {
  const s = `${source.slice(0, 50)}-${digest.slice(0, 12)}`;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const b = s[i] ?? '';
    if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9')) out += b;
    if ('./:-'.includes(b) && i !== 0 && i !== 62 && i !== s.length - 1) out += '-';
    if (i === 62) break;
  }
  return out.replace(/^-+|-+$/g, '');
}

/** Writes the cache entry; returns the digest image reference for the FunctionRevision. */
export function prefillFunctionPackage(packageDir: string, cacheDir: string): string {
  const docs = [readFileSync(join(packageDir, 'crossplane.yaml'), 'utf8')];
  const inputDir = join(packageDir, 'input');
  for (const f of readdirSync(inputDir)
    .filter((n) => n.endsWith('.yaml'))
    .sort()) {
    docs.push(readFileSync(join(inputDir, f), 'utf8'));
  }
  const stream = docs.map((d) => d.replace(/^\n+|\n+$/g, '')).join('\n---\n') + '\n';
  const digest = `sha256:${createHash('sha256').update(stream).digest('hex')}`;
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(join(cacheDir, `${friendlyId(FUNCTION_SOURCE, digest)}.gz`), gzipSync(stream));
  return `${FUNCTION_SOURCE}@${digest}`;
}
