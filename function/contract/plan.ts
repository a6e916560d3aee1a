import { z } from 'zod';

import { relativePath } from './paths.js';

/**
 * The fetch plan: the whole contract between the Function (which composes the prefetch
 * Job) and the fetch program (which the Job runs). It travels as JSON in the Job's
 * environment, so it carries no secret: credentials arrive as separate env vars read
 * from a Secret on the workload cluster, named here only by variable name.
 */
export const FETCH_PLAN_VERSION = 1;

/** Kinds v0.1 stages; Adapter and Engine are v0.2 and rejected by the XRD's enum. */
export const ARTIFACT_KINDS = ['Weights', 'Tokenizer', 'Bytes'] as const;

const huggingFace = z.object({
  type: z.literal('huggingFace'),
  repo: z.string().min(1),
  /** Branch, tag or commit; the program resolves it to a commit before downloading. */
  revision: z.string().min(1),
  include: z.array(z.string()).optional(),
  exclude: z.array(z.string()).optional(),
  /** Hub or mirror base URL; the public hub when absent. */
  endpoint: z.string().optional(),
  /** Name of the env var holding the token, when the repo is gated or private. */
  tokenEnv: z.string().optional(),
});

const s3 = z.object({
  type: z.literal('s3'),
  bucket: z.string().min(1),
  /** Key prefix to stage; '' for the whole bucket. Keys are staged relative to it. */
  prefix: z.string(),
  region: z.string().optional(),
  /** S3-compatible endpoint; path-style addressing is used when set. */
  endpoint: z.string().optional(),
  /** true: AWS_* env vars come from the credential Secret; false: the SDK's default chain. */
  credentialsFromEnv: z.boolean(),
});

const http = z.object({
  type: z.literal('http'),
  url: z.string().min(1),
  sha256: z.string().optional(),
  /** Where the file lands in the volume. */
  path: relativePath,
  tokenEnv: z.string().optional(),
});

/** An OCI artifact or image: the program resolves a tag to the manifest digest first. */
const oci = z.object({
  type: z.literal('oci'),
  /** registry/repository:tag, @sha256:<digest>, or both (the digest wins). */
  ref: z.string().min(1),
  /** Absent: image when the manifest's config is a container image config, else artifact. */
  layout: z.enum(['artifact', 'image']).optional(),
  /** Image layout: the directory of the image's filesystem staged at the volume root. */
  directory: z.string().min(1).optional(),
  include: z.array(z.string()).optional(),
  exclude: z.array(z.string()).optional(),
  /** Talk to the registry over plain HTTP. */
  plainHTTP: z.boolean().optional(),
  /** Name of the env var holding the docker config JSON, when the registry needs credentials. */
  dockerConfigEnv: z.string().optional(),
});

/** inline and configMap: files arrive on a mounted ConfigMap volume and are copied as files. */
const files = z.object({
  type: z.enum(['inline', 'configMap']),
  /** Directory the ConfigMap volume is mounted at. */
  dir: z.string().min(1),
  /** Relative paths to copy; absent: every entry of the ConfigMap (not its '..'-prefixed internals). */
  paths: z.array(relativePath).optional(),
});

export const fetchPlanSource = z.discriminatedUnion('type', [huggingFace, s3, http, oci, files]);
export type FetchPlanSource = z.infer<typeof fetchPlanSource>;

export const fetchPlan = z.object({
  version: z.literal(FETCH_PLAN_VERSION),
  /** Source identity plus refetch token; the completion marker is keyed to it. */
  identity: z.string().regex(/^[a-f0-9]{64}$/),
  artifactKind: z.enum(ARTIFACT_KINDS),
  source: fetchPlanSource,
  /** Where the volume is mounted in the Job. */
  targetDir: z.string().min(1),
  /** Requested volume size; the program also checks free space. Absent when not known. */
  capacityBytes: z.number().int().positive().optional(),
  /** The Job the program patches progress and results onto. */
  report: z.object({ namespace: z.string().min(1), jobName: z.string().min(1) }),
});
export type FetchPlan = z.infer<typeof fetchPlan>;
