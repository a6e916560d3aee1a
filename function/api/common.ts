import { z } from 'zod';

import { hasSafeSegments, relativePath } from '../contract/paths.js';

// Bounds shared by the zod schemas and the XRDs; the agreement test checks the XRDs use them.

/** A Kubernetes object name (DNS-1123 subdomain). */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);

/** A key of a Secret or ConfigMap. */
export const dataKey = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[-._a-zA-Z0-9]+$/);

/** A label value or key part as used in selectors. */
export const labelMap = z.record(z.string().min(1).max(317), z.string().max(63));

// The plan's path rule: defined in the contract, which the fetch program shares.
export { hasSafeSegments, relativePath };

/**
 * A path that becomes a ConfigMap volume item's path (inline files, ConfigMap keys): Kubernetes
 * refuses any such path that starts with "..", and the Job carrying it would never be created.
 */
export const volumeItemPath = relativePath.refine(
  (p) => !p.startsWith('..'),
  'must not start with ".." (Kubernetes refuses such volume item paths)',
);

/** A ConfigMap key staged as a file of the same name: a data key that is a valid item path. */
export const configMapItemKey = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^([-_a-zA-Z0-9]|\.[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$/,
    'must be a ConfigMap key that is not "." and does not start with ".." (Kubernetes refuses such volume item paths)',
  );

/** An absolute path with no empty, "." or ".." segments (a trailing "/" is not allowed either). */
export const absolutePath = z
  .string()
  .min(1)
  .max(255)
  .regex(/^\//, 'must be an absolute path')
  .refine(
    // "/" itself has an empty segment: mounting a cache over the root is never meant.
    (p) => hasSafeSegments(p.slice(1)),
    'must not contain empty, "." or ".." segments',
  );

/** An http(s) URL. */
export const httpUrl = z
  .string()
  .min(1)
  .max(2048)
  .regex(/^https?:\/\/[^\s]+$/, 'must be an http:// or https:// URL');

/** The metadata of a namespaced XR the cores read: its name, namespace and annotations. */
export const namespacedXrMetadata = z.object({
  name: objectName,
  namespace: objectName,
  uid: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
