// What the Function and the fetch program both spell on the prefetch Job: the environment the
// Function sets on it and the fetch program reads, and the annotations the fetch program
// writes on its own Job for the Function to read back. Changing one is an API change.

/** API group of every kind this project defines; the examples users already write use it. */
export const API_GROUP = 'modelplane.ai';

/** Written by the fetch program on its own Job so the Function can surface progress without I/O. */
export const ANNOTATION_BYTES_DONE = `${API_GROUP}/bytes-done`;
export const ANNOTATION_BYTES_TOTAL = `${API_GROUP}/bytes-total`;
/** Written by the fetch program on success: the commit / version id / digest actually staged. */
export const ANNOTATION_RESOLVED_REVISION = `${API_GROUP}/resolved-revision`;
/** Written by the fetch program on failure: one line naming the file and the cause, never a secret. */
export const ANNOTATION_FETCH_ERROR = `${API_GROUP}/fetch-error`;

/**
 * The fetch program's exit status for a failure the Job's next pod would meet again (the file
 * is not at the source, the credential is refused, the volume is too small): the Job's
 * podFailurePolicy fails the Job on it at once instead of spending its backoffLimit.
 */
export const EXIT_PERMANENT = 2;
/** The prefetch Job's one container, named in its podFailurePolicy. */
export const FETCH_CONTAINER = 'fetch';

/** Environment variable carrying the fetch plan (JSON) into the prefetch Job. */
export const ENV_FETCH_PLAN = 'MODELCACHE_PLAN';
/** Keys the AWS SDK's default chain reads; the S3 credential Secret must hold them. */
export const AWS_SECRET_KEYS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
] as const;
