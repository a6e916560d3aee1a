import { z } from 'zod';
import { PROVIDER_CONFIG_KINDS } from '../constants.js';
import { labelMap, objectName } from './common.js';

/** How provider-kubernetes reaches the workload cluster. */
export const providerConfigRef = z.object({
  kind: z.enum(PROVIDER_CONFIG_KINDS).default('ClusterProviderConfig'),
  name: objectName,
});
export type ProviderConfigRef = z.infer<typeof providerConfigRef>;

export const inferenceClusterSpec = z.object({
  providerConfigRef,
  storage: z
    .object({
      storageClassName: objectName.optional(),
    })
    .optional(),
});
export type InferenceClusterSpec = z.infer<typeof inferenceClusterSpec>;

/** What the InferenceCluster composition reports; ModelCaches read it. */
export const inferenceClusterStatus = z.object({
  providerConfigRef: providerConfigRef.optional(),
  storage: z
    .object({
      storageClassName: objectName.optional(),
      /** true: observed on the cluster; false: observed absent; unset: not observed yet. */
      classExists: z.boolean().optional(),
      provisioner: z.string().max(253).optional(),
    })
    .optional(),
});
export type InferenceClusterStatus = z.infer<typeof inferenceClusterStatus>;

/** An InferenceCluster as it arrives observed or as a required resource. */
export const inferenceCluster = z.object({
  metadata: z.object({
    name: objectName,
    labels: labelMap.optional(),
  }),
  spec: inferenceClusterSpec,
  status: inferenceClusterStatus.optional(),
});
export type InferenceCluster = z.infer<typeof inferenceCluster>;
