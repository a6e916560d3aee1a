import { z } from 'zod';
import { DEFAULT_TTL_SECONDS, INPUT_API_VERSION, MOUNT_STEP_INPUT_KIND } from '../constants.js';
import { objectName } from './common.js';

/**
 * Input of the mount step: run after an author's own steps, it mounts the ModelCaches an
 * XR references into the workloads those steps produced.
 */
export const mountStepInput = z.object({
  apiVersion: z.literal(INPUT_API_VERSION),
  kind: z.literal(MOUNT_STEP_INPUT_KIND),
  /** Dotted path in the XR of the cache references: a list of names or of {name}. */
  cachesFrom: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be a dotted field path such as spec.caches')
    .default('spec.caches'),
  /** InferenceCluster that raw (not Object-wrapped) workloads run on; unset: raw workloads are left alone. */
  rawWorkloadCluster: objectName.optional(),
  ttlSeconds: z.number().int().min(5).max(3600).default(DEFAULT_TTL_SECONDS),
});
export type MountStepInput = z.infer<typeof mountStepInput>;
