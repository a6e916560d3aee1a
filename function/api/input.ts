import { z } from 'zod';
import { DEFAULT_TTL_SECONDS, INPUT_API_VERSION, INPUT_KIND } from '../constants.js';

/** Image the prefetch Job runs when the Composition does not say: the Function's own image. */
export const DEFAULT_FETCH_IMAGE = 'xpkg.crossplane.io/modelplane-ai/function-modelcache:v0.1.0';
/** The fetch program's entrypoint inside that image; exec form, no shell. */
export const DEFAULT_FETCH_COMMAND = ['/nodejs/bin/node', '/app/dist/function/fetch/main.js'];

const quantity = z
  .string()
  .regex(/^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a Kubernetes quantity');
const resourceList = z.object({ cpu: quantity.optional(), memory: quantity.optional() });

/**
 * The Function's input in a Composition step. Everything has a default, so a step may
 * omit the input entirely.
 */
export const functionInput = z.object({
  apiVersion: z.literal(INPUT_API_VERSION).optional(),
  kind: z.literal(INPUT_KIND).optional(),
  /** How long Crossplane may wait before calling again; required resources are not watched. */
  ttlSeconds: z.number().int().min(5).max(3600).default(DEFAULT_TTL_SECONDS),
  fetch: z
    .object({
      image: z.string().min(1).max(512).default(DEFAULT_FETCH_IMAGE),
      imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
      command: z.array(z.string().min(1)).min(1).default(DEFAULT_FETCH_COMMAND),
      /**
       * Hard stop for one fetch pod, counted from its start (after its claim is bound): the wait
       * for storage is not counted. Each of the backoffLimit retries gets its own.
       */
      activeDeadlineSeconds: z.number().int().min(60).default(21_600),
      /**
       * Pod retries before the fetch is reported Failed; each retry resumes. Only a failure that
       * may pass is retried (a dropped connection, a 5xx, a pod killed): a permanent one (HTTP
       * 401/403/404/410 from the source, an invalid plan, a volume too small) fails the Job on
       * its first pod, and an evicted or preempted pod does not use one up.
       */
      backoffLimit: z.number().int().min(0).max(20).default(3),
      resources: z
        .object({ requests: resourceList.optional(), limits: resourceList.optional() })
        .default({
          requests: { cpu: '500m', memory: '512Mi' },
          limits: { cpu: '2', memory: '2Gi' },
        }),
    })
    .prefault({}),
  /** Namespace of the Objects an InferenceCluster composes (it is cluster-scoped; Objects are not). */
  inferenceClusterNamespace: z.string().min(1).max(63).default('crossplane-system'),
});
export type FunctionInput = z.infer<typeof functionInput>;
