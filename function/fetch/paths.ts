// Path checks for every name a source hands us, and Hugging Face-style include/exclude globs.
import { hasSafeSegments } from '../contract/paths.js';

/** The program's own directory at the volume root; no artifact path may enter it. */
export const STATE_DIR = '.modelcache';

/**
 * Why `path` may not be written under the volume root, or undefined when it may. Every
 * source's names go through this: HF file names, S3 keys (relative to the prefix),
 * the HTTP target path, inline and ConfigMap keys.
 */
export function unsafePathReason(path: string): string | undefined {
  if (path === '') return 'empty path';
  if (path.includes('\0')) return 'path contains a NUL byte';
  if (path.startsWith('/')) return 'absolute path';
  if (path.length > 1024) return 'path longer than 1024 characters';
  if (!hasSafeSegments(path)) return 'path has an empty, "." or ".." segment';
  if (path.split('/').some((s) => Buffer.byteLength(s) > 255)) {
    return 'a path segment is longer than 255 bytes';
  }
  if (path.split('/')[0] === STATE_DIR) return `path enters the reserved ${STATE_DIR}/ directory`;
  return undefined;
}

/** Translate an fnmatch pattern (Python's, which huggingface_hub uses) into a RegExp. */
function fnmatchRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
      } else {
        let body = pattern.slice(i + 1, close);
        const negate = body.startsWith('!');
        if (negate) body = body.slice(1);
        body = body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^');
        re += `[${negate ? '^' : ''}${body}]`;
        i = close;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/**
 * The file filter huggingface_hub applies for allow_patterns / ignore_patterns: fnmatch
 * over the whole path ('*' crosses '/'), and a pattern ending in '/' means everything under
 * it. Kept identical so `include`/`exclude` select what `hf download --include` would.
 */
export function globFilter(
  include: readonly string[] | undefined,
  exclude: readonly string[] | undefined,
): (path: string) => boolean {
  const compile = (ps: readonly string[]): RegExp[] =>
    ps.map((p) => fnmatchRegExp(p.endsWith('/') ? `${p}*` : p));
  const inc = include && include.length > 0 ? compile(include) : undefined;
  const exc = exclude ? compile(exclude) : [];
  return (path) =>
    (inc === undefined || inc.some((r) => r.test(path))) && !exc.some((r) => r.test(path));
}
