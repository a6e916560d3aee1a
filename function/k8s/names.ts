import { createHash } from 'node:crypto';

/** Kubernetes caps labels (and the job-name label every Job pod gets) at 63 characters. */
export const DNS_LABEL_MAX = 63;
const HASH_LENGTH = 8;

/** Hex sha256 of a string; used for identities and for shortening names. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * A valid DNS-1123 label of at most 63 characters built from `base` and a fixed `suffix`.
 * When `base` had to be changed (dots or other characters replaced, or truncated) a short
 * hash of the original is inserted, so two different inputs never map to the same name.
 * `suffix` must already be a valid label fragment (lowercase alphanumerics and '-').
 */
export function dnsLabel(base: string, suffix = ''): string {
  const cleaned = base
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
  const fits = cleaned.length + suffix.length <= DNS_LABEL_MAX;
  if (cleaned === base && fits && cleaned.length > 0) return `${cleaned}${suffix}`;
  const hash = sha256Hex(base).slice(0, HASH_LENGTH);
  const room = DNS_LABEL_MAX - suffix.length - HASH_LENGTH - 1;
  const head = cleaned.slice(0, Math.max(0, room)).replace(/-+$/, '');
  return `${head.length > 0 ? `${head}-` : ''}${hash}${suffix}`;
}

/** Deterministic JSON: object keys sorted, so equal values always hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
