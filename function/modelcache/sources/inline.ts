import type { InlineSpec, SourceContext, SourceParts } from './types.js';

/**
 * Inline files reach the Job through a ConfigMap. ConfigMap keys cannot hold '/', so
 * each file gets a positional key and the volume item maps it back to its path.
 */
export function inlineParts(spec: InlineSpec, ctx: SourceContext): SourceParts {
  const paths = Object.keys(spec.files).sort();
  const keyOf = (i: number): string => `file-${String(i).padStart(3, '0')}`;
  const data: Record<string, string> = {};
  paths.forEach((p, i) => {
    data[keyOf(i)] = spec.files[p] ?? '';
  });
  return {
    identity: { files: spec.files },
    summary: `inline (${paths.length} ${paths.length === 1 ? 'file' : 'files'})`,
    plan: { type: 'inline', dir: ctx.filesDir, paths },
    credentials: undefined,
    files: { from: 'inline', data, items: paths.map((path, i) => ({ key: keyOf(i), path })) },
  };
}
