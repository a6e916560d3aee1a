import { z } from 'zod';
import { ARTIFACT_KINDS } from './modelcache.js';
import { labelMap, objectName } from './common.js';

export const STRATEGIES = ['Standalone', 'TensorPipeline'] as const;
export const CACHE_REFS_MAX = 8;
/** A Kubernetes quantity: a string, or an integer (the XRD says int-or-string, as Kubernetes does). */
const quantity = z.union([z.string().min(1).max(64), z.number().int()]);

/** A ModelCache in the deployment's namespace, by name. */
export const cacheRef = z.object({
  name: objectName,
  /** What the cache holds; declared so admission can require Weights for a gang. Checked against the cache. */
  kind: z.enum(ARTIFACT_KINDS).optional(),
});
export type CacheRef = z.infer<typeof cacheRef>;

export const envVar = z.object({
  name: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/),
  value: z.string().max(32_768).optional(),
});

export const modelDeploymentSpec = z
  .object({
    caches: z
      .array(cacheRef)
      .min(1)
      .max(CACHE_REFS_MAX)
      .refine(
        (refs) => new Set(refs.map((r) => r.name)).size === refs.length,
        'each cache may be referenced once',
      ),
    clusterSelector: z.object({ matchLabels: labelMap.optional() }).optional(),
    /** Total replicas (gangs, for TensorPipeline) spread over eligible clusters. */
    replicas: z.number().int().min(0).max(10_000).default(1),
    engine: z.object({
      image: z.string().min(1).max(512),
      command: z.array(z.string().max(4096)).max(64).optional(),
      args: z.array(z.string().max(4096)).max(256).optional(),
      env: z.array(envVar).max(128).optional(),
      imagePullSecrets: z
        .array(z.object({ name: objectName }))
        .max(16)
        .optional(),
      resources: z
        .object({
          requests: z.record(z.string().min(1).max(253), quantity).optional(),
          limits: z.record(z.string().min(1).max(253), quantity).optional(),
        })
        .optional(),
      port: z.number().int().min(1).max(65_535).default(8000),
    }),
    topology: z
      .object({
        strategy: z.enum(STRATEGIES).default('Standalone'),
        /** GPUs per pod (tensor parallelism inside a pod). */
        tensor: z.number().int().min(1).max(64).default(1),
        /** Pods per gang (pipeline parallelism across pods); > 1 only with TensorPipeline. */
        pipeline: z.number().int().min(1).max(64).default(1),
      })
      .prefault({}),
  })
  .superRefine((spec, ctx) => {
    const { strategy, pipeline } = spec.topology;
    if (strategy === 'Standalone' && pipeline > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['topology', 'pipeline'],
        message: 'must be 1 for Standalone; use strategy TensorPipeline for a multi-pod gang',
      });
    }
    if (pipeline > 1 && !spec.caches.some((c) => c.kind === 'Weights')) {
      ctx.addIssue({
        code: 'custom',
        path: ['caches'],
        message:
          'a gang (topology.pipeline > 1) needs at least one cache of kind Weights: every pod of a gang must load identical weights',
      });
    }
  });
export type ModelDeploymentSpec = z.infer<typeof modelDeploymentSpec>;
