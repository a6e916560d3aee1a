// Composed resources are keyed "<cluster>/<role>": InferenceCluster names cannot hold '/',
// so the key splits unambiguously, and the key alone tells which cluster a resource serves.

export const ROLE_NAMESPACE = 'namespace';
export const ROLE_PVC = 'pvc';
export const ROLE_CREDENTIALS = 'credentials';
export const ROLE_FILES = 'files';
/** The prefetch Job's own identity and its right to annotate itself (progress, result). */
export const ROLE_REPORTER_ACCOUNT = 'reporter-serviceaccount';
export const ROLE_REPORTER_ROLE = 'reporter-role';
export const ROLE_REPORTER_BINDING = 'reporter-rolebinding';
/** The Job's role carries the identity so a refetch replaces (deletes) the old Job's Object. */
export const jobRole = (identity: string): string => `fetch-${identity.slice(0, 8)}`;
export const isJobRole = (role: string): boolean => role.startsWith('fetch-');
/** Objects whose spec may carry copied Secret or ConfigMap data: never echoed back. */
export const NEVER_HELD = new Set([ROLE_CREDENTIALS, ROLE_FILES]);

/**
 * Keys already built, by cluster then role: a ModelCache on 1000 clusters keys 7000 resources on
 * every call, and the same string each time is hashed once. Starts over past KEYS_MAX clusters.
 */
const keys = new Map<string, Map<string, string>>();
const KEYS_MAX = 65_536;

export function resourceKey(cluster: string, role: string): string {
  let byRole = keys.get(cluster);
  if (byRole === undefined) {
    if (keys.size >= KEYS_MAX) keys.clear();
    byRole = new Map();
    keys.set(cluster, byRole);
  }
  let key = byRole.get(role);
  if (key === undefined) {
    key = `${cluster}/${role}`;
    byRole.set(role, key);
  }
  return key;
}

export function splitKey(key: string): { cluster: string; role: string } | undefined {
  const i = key.lastIndexOf('/');
  if (i <= 0 || i === key.length - 1) return undefined;
  return { cluster: key.slice(0, i), role: key.slice(i + 1) };
}
