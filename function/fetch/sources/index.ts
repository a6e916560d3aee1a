import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from '../deadline.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import type { Source } from './types.js';

export type {
  AssembledFile,
  DownloadedArchive,
  Listing,
  OpenedBody,
  RemoteFile,
  Source,
} from './types.js';

/**
 * The module that serves `source.type`; credentials are read from `env` by variable name.
 * Imported on demand: a Job loads only its own source's client library (the AWS SDK and the
 * hub client are most of the program's start-up time). `limits` bound every request the
 * source makes on its own (listing, HEAD, API calls); the engine bounds the downloads.
 */
export async function sourceFor(
  source: FetchPlanSource,
  env: NodeJS.ProcessEnv,
  limits: RequestLimits = DEFAULT_REQUEST_LIMITS,
): Promise<Source> {
  switch (source.type) {
    case 'huggingFace':
      return (await import('./huggingface.js')).huggingFaceSource(source, env, limits);
    case 's3':
      return (await import('./s3.js')).s3Source(source, env, limits);
    case 'http':
      return (await import('./http.js')).httpSource(source, env, limits);
    case 'oci':
      return (await import('./oci.js')).ociSource(source, env, limits);
    case 'inline':
    case 'configMap':
      return (await import('./files.js')).filesSource(source);
    default: {
      const unreachable: never = source;
      return unreachable;
    }
  }
}
