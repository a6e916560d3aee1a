import { z } from 'zod';
import { ARTIFACT_KINDS } from '../api/modelcache.js';
import { PHASES } from '../constants.js';
import { replicaName } from '../modelcache/cache-model.js';
import { stringAt, type Json } from '../k8s/object.js';

/** One cluster of a cache's status.clusters[]: the contract consumers read. */
export interface CacheClusterView {
  phase: (typeof PHASES)[number];
  reason: string;
  message: string;
  namespace: string;
  claimName: string;
}

/** What a consumer knows about a referenced ModelCache, read only from its status. */
export interface CacheView {
  name: string;
  kind: (typeof ARTIFACT_KINDS)[number] | undefined;
  mountPath: string | undefined;
  namespace: string | undefined;
  /** undefined: the cache has no status yet (just created, or not reconciled yet). */
  clusters: Map<string, CacheClusterView> | undefined;
}

// A ModelCache's entries are compact ({name, phase, reason}) with the claim named once at the
// top of its status; an entry naming its own claim (status written before replicas) wins.
const clusterEntry = z.object({
  name: z.string(),
  phase: z.enum(PHASES),
  reason: z.string().default(''),
  message: z.string().default(''),
  namespace: z.string().optional(),
  claimName: z.string().optional(),
});

/** Read a required ModelCache leniently: a malformed status entry is ignored, never fatal. */
export function cacheView(raw: Json): CacheView {
  const kindRaw = stringAt(raw, 'spec', 'artifact', 'kind');
  const kind = ARTIFACT_KINDS.find((k) => k === kindRaw);
  const status = raw['status'];
  const list = (status as { clusters?: unknown } | undefined)?.clusters;
  const namespace = stringAt(status, 'namespace');
  const claimName = stringAt(status, 'claimName');
  let clusters: Map<string, CacheClusterView> | undefined;
  if (Array.isArray(list)) {
    clusters = new Map();
    for (const entry of list) {
      const parsed = clusterEntry.safeParse(entry);
      if (!parsed.success) continue;
      const { name, ...rest } = parsed.data;
      const ns = rest.namespace ?? namespace;
      const claim = rest.claimName ?? claimName;
      // Without a claim to mount the entry is no use to a consumer: as if not reported.
      if (ns === undefined || claim === undefined) continue;
      clusters.set(name, { ...rest, namespace: ns, claimName: claim });
    }
  }
  return {
    name: stringAt(raw, 'metadata', 'name') ?? '',
    kind,
    mountPath: stringAt(status, 'mountPath'),
    namespace: stringAt(raw, 'metadata', 'namespace'),
    clusters,
  };
}

/**
 * Why a cache does not allow placement on a cluster; undefined means it does. `keepsRunning`:
 * a workload already running there may stay (its volume still holds staged bytes); only a
 * cache that no longer covers the cluster at all (its claim goes) takes it away.
 */
export type CacheBlock =
  | {
      reason: 'WaitingForCache' | 'NoRWXStorageClass' | 'CacheFailed';
      keepsRunning: true;
      message: string;
    }
  | { reason: 'NotMatchedByCache'; keepsRunning: false; message: string };

/** ": <message>" when the entry carries one; compact entries leave it on the replica. */
function detail(cache: CacheView, cluster: string, message: string): string {
  return message === ''
    ? `; see ModelCacheReplica ${cache.namespace ?? ''}/${replicaName(cache.name, cluster)}`
    : `: ${message}`;
}

export function cacheBlock(cache: CacheView, cluster: string): CacheBlock | undefined {
  if (cache.clusters === undefined) {
    return {
      reason: 'WaitingForCache',
      keepsRunning: true,
      message: `cache ${cache.name} has not reported status yet`,
    };
  }
  const entry = cache.clusters.get(cluster);
  if (entry === undefined) {
    return {
      reason: 'NotMatchedByCache',
      keepsRunning: false,
      message: `cache ${cache.name} is not staged on cluster ${cluster}: its clusterSelector does not match it`,
    };
  }
  switch (entry.phase) {
    case 'Ready':
      return undefined;
    case 'Pending':
    case 'Hydrating':
      return {
        reason: 'WaitingForCache',
        keepsRunning: true,
        message: `cache ${cache.name} is ${entry.phase} on cluster ${cluster} (${entry.reason})`,
      };
    case 'Failed':
      return entry.reason === 'NoRWXStorageClass'
        ? {
            reason: 'NoRWXStorageClass',
            keepsRunning: true,
            message: `cache ${cache.name} cannot stage on cluster ${cluster}${detail(cache, cluster, entry.message)}`,
          }
        : {
            reason: 'CacheFailed',
            keepsRunning: true,
            message: `cache ${cache.name} failed on cluster ${cluster} (${entry.reason})${detail(cache, cluster, entry.message)}`,
          };
    default: {
      const unreachable: never = entry.phase;
      return unreachable;
    }
  }
}
