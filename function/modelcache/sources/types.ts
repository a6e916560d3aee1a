import type { z } from 'zod';
import type {
  configMapSource,
  httpSource,
  huggingFaceSource,
  inlineSource,
  ociSource,
  s3Source,
} from '../../api/modelcache.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import type { Json } from '../../k8s/object.js';

export type HuggingFaceSpec = z.infer<typeof huggingFaceSource>;
export type S3Spec = z.infer<typeof s3Source>;
export type HttpSpec = z.infer<typeof httpSource>;
export type OciSpec = z.infer<typeof ociSource>;
export type InlineSpec = z.infer<typeof inlineSource>;
export type ConfigMapSpec = z.infer<typeof configMapSource>;

/** The one set member of spec.artifact.source, tagged so switches over it are exhaustive. */
export type Source =
  | { type: 'huggingFace'; spec: HuggingFaceSpec }
  | { type: 's3'; spec: S3Spec }
  | { type: 'http'; spec: HttpSpec }
  | { type: 'oci'; spec: OciSpec }
  | { type: 'inline'; spec: InlineSpec }
  | { type: 'configMap'; spec: ConfigMapSpec };

/** Names the Job-side pieces of a source refer to. */
export interface SourceContext {
  /** The cache's namespace: control-plane Secrets and ConfigMaps are read from it. */
  namespace: string;
  /** Name of the credential Secret on the workload cluster. */
  remoteSecretName: string;
  /** Where the files ConfigMap is mounted in the Job. */
  filesDir: string;
}

/**
 * Credentials a source needs on the workload cluster: which control-plane Secret
 * provider-kubernetes copies (field by field), and how the Job's env reads the copy.
 * The Function only ever names Secrets; it never sees their values.
 */
export interface SourceCredentials {
  secretName: string;
  copies: { fieldPath: string; toFieldPath: string }[];
  env: Json[];
}

/** Small files a source ships through a ConfigMap mounted into the Job. */
export type SourceFiles =
  | { from: 'inline'; data: Record<string, string>; items: { key: string; path: string }[] }
  | { from: 'configMap'; name: string; items: { key: string; path: string }[] | undefined };

/** What each source module contributes; one module per source kind. */
export interface SourceParts {
  /** The fields that make "the same artifact": the completion marker is keyed to them. */
  identity: unknown;
  /** One line for printer columns and events. */
  summary: string;
  plan: FetchPlanSource;
  credentials: SourceCredentials | undefined;
  files: SourceFiles | undefined;
}
