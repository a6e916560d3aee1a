import { z } from 'zod';

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

/**
 * A relative path inside the staged volume: no leading '/', no '..' segment, no empty
 * segment. The fetch program re-checks every path it writes; this rejects bad input early.
 */
export const relativePath = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^(?!\/)(?!.*(^|\/)\.\.?(\/|$))(?!.*\/\/)[^\0]+$/, 'must be a relative path without "." or ".." segments');

/** An http(s) URL. */
export const httpUrl = z
  .string()
  .min(1)
  .max(2048)
  .regex(/^https?:\/\/[^\s]+$/, 'must be an http:// or https:// URL');
