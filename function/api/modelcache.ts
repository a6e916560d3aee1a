import { z } from 'zod';
import {
  absolutePath,
  configMapItemKey,
  dataKey,
  httpUrl,
  labelMap,
  namespacedXrMetadata,
  objectName,
  relativePath,
  volumeItemPath,
} from './common.js';
import { ARTIFACT_KINDS } from '../contract/plan.js';

// Defined with the fetch plan, which carries the kind to the fetch program.
export { ARTIFACT_KINDS };
/** Members of spec.artifact.source, exactly one of which is set. */
export const SOURCE_MEMBERS = ['huggingFace', 's3', 'http', 'oci', 'inline', 'configMap'] as const;
export type SourceMember = (typeof SOURCE_MEMBERS)[number];
/** Sources whose size is unknown to the Function: sizeGiB must be given. */
export const REMOTE_SOURCES: readonly SourceMember[] = ['huggingFace', 's3', 'http', 'oci'];
/** Sources that carry small text only; never Weights. */
export const LOCAL_SOURCES: readonly SourceMember[] = ['inline', 'configMap'];
export const STORAGE_BACKENDS = ['PVC', 'ExistingPVC'] as const;
export type StorageBackendName = (typeof STORAGE_BACKENDS)[number];

/** Cap on the summed size of inline files: they travel in the XR and in a ConfigMap (1 MiB max). */
export const INLINE_TOTAL_MAX_BYTES = 262_144;
export const INLINE_MAX_FILES = 64;
export const GLOBS_MAX = 64;
export const CONFIGMAP_ITEMS_MAX = 64;
export const SIZE_GIB_MAX = 65_536;
export const DEFAULT_MOUNT_PATH = '/mnt/model';
export const DEFAULT_HF_TOKEN_KEY = 'HF_TOKEN';
/** The directory of a modelcar image staged when oci.directory is not given (KServe's). */
export const DEFAULT_OCI_IMAGE_DIRECTORY = '/models';
export const OCI_LAYOUTS = ['artifact', 'image'] as const;

// An OCI reference, RE2-compatible (the same pattern goes into the XRD): a registry host that
// is unmistakably one (localhost, a dotted name or a name with a port: "library/ubuntu" is not
// read as a registry called "library"), a repository of lowercase path components (the
// distribution spec's grammar), then a tag, a digest, or both.
const OCI_LABEL = String.raw`[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`;
const OCI_PORT = String.raw`:[0-9]{1,5}`;
const OCI_HOST = String.raw`(localhost(${OCI_PORT})?|${OCI_LABEL}(\.${OCI_LABEL})+(${OCI_PORT})?|${OCI_LABEL}${OCI_PORT})`;
const OCI_COMPONENT = String.raw`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`;
const OCI_TAG = String.raw`:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
const OCI_DIGEST = String.raw`@sha256:[a-f0-9]{64}`;
export const OCI_REF_PATTERN = `^${OCI_HOST}/${OCI_COMPONENT}(/${OCI_COMPONENT})*(${OCI_TAG}(${OCI_DIGEST})?|${OCI_DIGEST})$`;

const glob = z.string().min(1).max(256);

export const huggingFaceSource = z.object({
  repo: z
    .string()
    .min(1)
    .max(200)
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/,
      'must be "name" or "owner/name"',
    ),
  revision: z.string().min(1).max(255).default('main'),
  include: z.array(glob).max(GLOBS_MAX).optional(),
  exclude: z.array(glob).max(GLOBS_MAX).optional(),
  secretRef: z.object({ name: objectName, key: dataKey.default(DEFAULT_HF_TOKEN_KEY) }).optional(),
  endpoint: httpUrl.optional(),
});

export const s3Source = z.object({
  uri: z
    .string()
    .min(6)
    .max(1024)
    .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'must be s3://bucket/prefix'),
  region: z.string().min(1).max(64).optional(),
  endpoint: httpUrl.optional(),
  secretRef: z.object({ name: objectName }).optional(),
});

export const httpSource = z.object({
  url: httpUrl,
  sha256: z
    .string()
    .regex(/^[a-f0-9]{64}$/, 'must be 64 lowercase hex digits')
    .optional(),
  path: relativePath.optional(),
  secretRef: z.object({ name: objectName, key: dataKey }).optional(),
});

export const ociSource = z.object({
  ref: z
    .string()
    .min(1)
    .max(1024)
    .regex(
      new RegExp(OCI_REF_PATTERN),
      'must be registry/repository:tag, registry/repository@sha256:<64 hex digits> or both, e.g. ghcr.io/org/model:v1',
    ),
  secretRef: z.object({ name: objectName }).optional(),
  layout: z.enum(OCI_LAYOUTS, { error: () => 'must be artifact or image' }).optional(),
  directory: absolutePath.optional(),
  include: z.array(glob).max(GLOBS_MAX).optional(),
  exclude: z.array(glob).max(GLOBS_MAX).optional(),
  plainHTTP: z.boolean().optional(),
});

export const inlineSource = z.object({
  files: z
    .record(volumeItemPath, z.string().max(INLINE_TOTAL_MAX_BYTES))
    .refine((f) => Object.keys(f).length >= 1, 'must hold at least one file')
    .refine(
      (f) => Object.keys(f).length <= INLINE_MAX_FILES,
      `must hold at most ${INLINE_MAX_FILES} files`,
    )
    .refine(
      (f) =>
        Object.values(f).reduce((n, v) => n + Buffer.byteLength(v, 'utf8'), 0) <=
        INLINE_TOTAL_MAX_BYTES,
      `inline files must total at most ${INLINE_TOTAL_MAX_BYTES} bytes; use a ConfigMap or a remote source`,
    ),
});

export const configMapSource = z.object({
  name: objectName,
  items: z.array(configMapItemKey).min(1).max(CONFIGMAP_ITEMS_MAX).optional(),
});

export const sourceSpec = z.object({
  huggingFace: huggingFaceSource.optional(),
  s3: s3Source.optional(),
  http: httpSource.optional(),
  oci: ociSource.optional(),
  inline: inlineSource.optional(),
  configMap: configMapSource.optional(),
});

export const modelCacheSpec = z
  .object({
    artifact: z.object({
      kind: z.enum(ARTIFACT_KINDS, {
        error: (issue) =>
          issue.input === 'Adapter' || issue.input === 'Engine'
            ? `${issue.input} artifacts arrive in v0.2; v0.1 stages Weights, Tokenizer or Bytes`
            : 'must be Weights, Tokenizer or Bytes',
      }),
      source: sourceSpec,
    }),
    mount: z
      .object({
        path: absolutePath.default(DEFAULT_MOUNT_PATH),
      })
      .prefault({}),
    storage: z
      .object({
        backend: z
          .enum(STORAGE_BACKENDS, {
            error: (issue) =>
              issue.input === 'ContentAddressed'
                ? 'the ContentAddressed backend arrives in v0.2; v0.1 stores on PVC or ExistingPVC'
                : 'must be PVC or ExistingPVC',
          })
          .default('PVC'),
        pvc: z
          .object({
            sizeGiB: z.number().int().min(1).max(SIZE_GIB_MAX).optional(),
            storageClassName: objectName.optional(),
          })
          .optional(),
        existingPVC: z.object({ claimName: objectName }).optional(),
      })
      .prefault({}),
    clusterSelector: z.object({ matchLabels: labelMap.optional() }).optional(),
    replication: z.enum(['AllMatchingClusters']).default('AllMatchingClusters'),
  })
  .superRefine((spec, ctx) => {
    const set = SOURCE_MEMBERS.filter((m) => spec.artifact.source[m] !== undefined);
    if (set.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['artifact', 'source'],
        message: `exactly one of ${SOURCE_MEMBERS.join(', ')} must be set (found ${set.length === 0 ? 'none' : set.join(', ')})`,
      });
      return;
    }
    const member = set[0] as SourceMember;
    const oci = spec.artifact.source.oci;
    if (oci?.directory !== undefined && oci.layout === 'artifact') {
      ctx.addIssue({
        code: 'custom',
        path: ['artifact', 'source', 'oci', 'directory'],
        message: 'is for the image layout (a directory of the image filesystem), not artifact',
      });
    }
    if (spec.artifact.kind === 'Weights' && LOCAL_SOURCES.includes(member)) {
      ctx.addIssue({
        code: 'custom',
        path: ['artifact', 'source', member],
        message: 'inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights',
      });
    }
    if (
      spec.storage.backend === 'PVC' &&
      REMOTE_SOURCES.includes(member) &&
      spec.storage.pvc?.sizeGiB === undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['storage', 'pvc', 'sizeGiB'],
        message: `is required for ${member} sources: the volume is sized before the download starts`,
      });
    }
    if (spec.storage.backend === 'ExistingPVC' && spec.storage.existingPVC === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['storage', 'existingPVC'],
        message: 'is required when storage.backend is ExistingPVC',
      });
    }
  });
export type ModelCacheSpec = z.infer<typeof modelCacheSpec>;

/** The metadata of a ModelCache the Function uses. */
export const modelCacheMetadata = namespacedXrMetadata;
