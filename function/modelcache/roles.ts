// A ModelCacheReplica keys its composed Objects by role: it serves one cluster, so the role
// alone names each Object, and a refetch changes the Job's key (so its Object is replaced).

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
