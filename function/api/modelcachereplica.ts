import { z } from 'zod';
import { PHASES } from '../constants.js';
import { objectName } from './common.js';
import { providerConfigRef } from './inferencecluster.js';

/**
 * A ModelCacheReplica's spec: written by its parent ModelCache on every call, so it holds only
 * what the parent decides (which cluster, which identity, how to reach it). The artifact itself
 * is read from the parent through a required resource: carrying it here would put the cache's
 * spec once per cluster into the parent's Function response.
 */
export const modelCacheReplicaSpec = z.object({
  cacheRef: z.object({ name: objectName }),
  cluster: objectName,
  /** sha256 of the source identity and refetch token: what this replica's phase is latched to. */
  identity: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  /** The InferenceCluster's effective provider config; absent when the parent could not read it. */
  providerConfigRef: providerConfigRef.optional(),
  /**
   * 16 hex digits of a digest of the parent's spec and refetch token: while it is unchanged, a
   * replica that is Ready and steady need not read its parent (whose status grows with N).
   */
  cacheDigest: z
    .string()
    .regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex digits')
    .optional(),
});
export type ModelCacheReplicaSpec = z.infer<typeof modelCacheReplicaSpec>;

export const modelCacheReplicaMetadata = z.object({
  name: objectName,
  namespace: objectName,
});

const count = z.number().int().nonnegative();

/** A replica's status as the replica core writes it; read leniently (malformed: ignored). */
export const replicaStatus = z.object({
  phase: z.enum(PHASES),
  reason: z.string(),
  message: z.string(),
  namespace: z.string(),
  claimName: z.string(),
  progress: z.object({ bytesDone: count, bytesTotal: count }).optional(),
  resolvedRevision: z.string().optional(),
  identity: z.string(),
  claimUID: z.string().optional(),
  jobUnsyncedCalls: count.optional(),
  /**
   * Set when a reconcile that read every input found the replica Ready with nothing left to
   * change: what that reconcile saw (spec, Objects, claim). While the next calls see the same,
   * the replica holds everything and asks for no input.
   */
  steady: z.string().optional(),
});
export type ReplicaStatus = z.infer<typeof replicaStatus>;
