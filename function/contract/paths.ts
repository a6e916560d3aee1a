import { z } from 'zod';

// The Function validates every path it puts in a plan with these, and the fetch program
// re-checks every path a source hands it with the same segment rule.

/** True when no segment of a '/'-separated path is empty, '.' or '..'. */
export function hasSafeSegments(path: string): boolean {
  return !path.split('/').some((s) => s === '' || s === '.' || s === '..');
}

/**
 * A relative path inside the staged volume. Patterns stay RE2-compatible because the
 * same ones go into the XRDs (Kubernetes compiles them with Go's regexp); the segment
 * rule is a CEL rule there. The fetch program re-checks every path it writes.
 */
export const relativePath = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[^/]/, 'must be a relative path')
  .refine(hasSafeSegments, 'must not contain empty, "." or ".." segments');
