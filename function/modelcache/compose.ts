import { functionInput, type FunctionInput } from '../api/input.js';
import { modelCacheMetadata, modelCacheSpec, type ModelCacheSpec } from '../api/modelcache.js';
import { replicaStatus } from '../api/modelcachereplica.js';
import { clusterRequirement, effectiveProviderConfig, parseClusters } from '../clusters.js';
import {
  ANNOTATION_REFETCH,
  API_VERSION,
  CONDITION_ARTIFACT_READY,
  CONDITION_CLUSTERS_MATCHED,
  KIND_MODEL_CACHE_REPLICA,
  REASON,
  REQUIRE_CLUSTERS,
} from '../constants.js';
import { describeIssues, previousConditions, type CoreRequest, type CoreResult } from '../core.js';
import type { ProviderConfigRef } from '../api/inferencecluster.js';
import { asJson, stringAt, type Json } from '../k8s/object.js';
import { cacheModel, replicaName } from './cache-model.js';
import type { CacheModel } from './model.js';
import {
  buildConditions,
  buildStatus,
  previousEntries,
  transitionEvents,
  type ClusterEntry,
  type StatusHead,
} from './status.js';

// The ModelCache core: one ModelCacheReplica per matched InferenceCluster, keyed by the
// cluster's name, and a compact aggregate of what the replicas report. It composes nothing
// else: each replica composes its own cluster's Objects in a Function call of its own.

const OUR_CONDITIONS = new Set([CONDITION_CLUSTERS_MATCHED, CONDITION_ARTIFACT_READY]);

function desiredReplica(
  cache: CacheModel,
  cluster: string,
  providerConfigRef: ProviderConfigRef | undefined,
): Json {
  return {
    apiVersion: API_VERSION,
    kind: KIND_MODEL_CACHE_REPLICA,
    // No labels of our own: Crossplane labels every composed resource with
    // crossplane.io/composite=<cache>, and each byte here is paid once per cluster per call.
    metadata: { name: replicaName(cache.name, cluster) },
    spec: {
      cacheRef: { name: cache.name },
      cluster,
      identity: cache.identity,
      cacheDigest: cache.digest,
      ...(providerConfigRef !== undefined
        ? { providerConfigRef: { kind: providerConfigRef.kind, name: providerConfigRef.name } }
        : {}),
    },
  };
}

/**
 * An observed replica, echoed as this core last asked for it. Crossplane's own fields
 * (spec.crossplane: composition and resource refs) belong to the replica's reconciler and are
 * never sent back, so holding one changes nothing about it.
 */
function holdReplica(observed: Json | undefined): Json | undefined {
  const spec = asJson(observed?.['spec']);
  const name = stringAt(observed, 'metadata', 'name');
  if (spec === undefined || name === undefined) return undefined;
  if (observed?.['kind'] !== KIND_MODEL_CACHE_REPLICA) return undefined;
  const ours: Json = {};
  for (const k of Object.keys(spec)) if (k !== 'crossplane') ours[k] = spec[k];
  return {
    apiVersion: API_VERSION,
    kind: KIND_MODEL_CACHE_REPLICA,
    metadata: { name },
    spec: ours,
  };
}

/**
 * The cluster's entry, from what its replica reports for the cache's current identity; a
 * replica that has not reported for it yet (new, or a refetch in flight) is Pending.
 */
function entryOf(
  cluster: string,
  observed: Json | undefined,
  identity: string,
  unreported: Omit<ClusterEntry, 'name'>,
): ClusterEntry {
  const s = replicaStatus.safeParse(observed?.['status']);
  if (!s.success || s.data.identity !== identity) return { name: cluster, ...unreported };
  return {
    name: cluster,
    phase: s.data.phase,
    reason: s.data.reason,
    ...(s.data.phase === 'Hydrating' && s.data.progress !== undefined
      ? { progress: s.data.progress }
      : {}),
  };
}

const NOT_REPORTED = { phase: 'Pending', reason: REASON.ReplicaPending } as const;

export function composeModelCache(req: CoreRequest): CoreResult {
  const input = functionInput.safeParse(req.input ?? {});
  if (!input.success)
    return { fatal: `invalid function input: ${describeIssues('input', input.error)}` };
  const meta = modelCacheMetadata.safeParse(req.composite['metadata']);
  if (!meta.success)
    return { fatal: `invalid ModelCache: ${describeIssues('metadata', meta.error)}` };
  const spec = modelCacheSpec.safeParse(req.composite['spec']);
  if (!spec.success) return { fatal: `invalid ModelCache: ${describeIssues('spec', spec.error)}` };
  return composeParsed(req, input.data, meta.data, spec.data);
}

function composeParsed(
  req: CoreRequest,
  input: FunctionInput,
  meta: { name: string; namespace: string; annotations?: Record<string, string> | undefined },
  spec: ModelCacheSpec,
): CoreResult {
  const cache = cacheModel(meta.name, meta.namespace, spec, meta.annotations?.[ANNOTATION_REFETCH]);
  const prevStatus = asJson(req.composite['status']);
  const previous = previousEntries(prevStatus);
  const head: StatusHead = {
    mountPath: spec.mount.path,
    source: cache.parts.summary,
    namespace: cache.namespace,
    claimName: cache.names.mounted,
  };
  const common = {
    requirements: { [REQUIRE_CLUSTERS]: clusterRequirement(spec.clusterSelector?.matchLabels) },
    ttlSeconds: input.ttlSeconds,
  };
  const clusterOf = (key: string): string => stringAt(req.observed[key], 'spec', 'cluster') ?? key;

  const requiredClusters = req.required[REQUIRE_CLUSTERS];
  if (requiredClusters === undefined) {
    // Crossplane has not listed the clusters yet: keep every replica exactly as it is.
    const resources: Record<string, Json> = {};
    const entries: ClusterEntry[] = [];
    for (const key of Object.keys(req.observed).sort()) {
      const held = holdReplica(req.observed[key]);
      if (held === undefined) continue;
      resources[key] = held;
      const name = clusterOf(key);
      const before = previous.get(name);
      entries.push(entryOf(name, req.observed[key], cache.identity, before ?? NOT_REPORTED));
    }
    return {
      ...common,
      resources,
      status: buildStatus(head, entries),
      ready: entries.length > 0 && entries.every((c) => c.phase === 'Ready'),
      conditions: previousConditions(prevStatus, OUR_CONDITIONS),
      events: [],
    };
  }

  const resources: Record<string, Json> = {};
  const entries: ClusterEntry[] = [];
  for (const { name, parsed } of parseClusters(requiredClusters)) {
    const observed = req.observed[name];
    if (parsed.success) {
      resources[name] = desiredReplica(cache, name, effectiveProviderConfig(parsed.data));
      entries.push(entryOf(name, observed, cache.identity, NOT_REPORTED));
      continue;
    }
    // A malformed InferenceCluster: its replica is kept as it is (it holds its own latch);
    // a cluster that never had one gets one that reports why.
    resources[name] = holdReplica(observed) ?? desiredReplica(cache, name, undefined);
    entries.push(
      entryOf(name, observed, cache.identity, {
        phase: 'Failed',
        reason: REASON.InvalidInferenceCluster,
      }),
    );
  }
  return {
    ...common,
    resources,
    status: buildStatus(head, entries),
    ready: entries.length > 0 && entries.every((c) => c.phase === 'Ready'),
    conditions: buildConditions(entries),
    events: transitionEvents(previous, entries),
  };
}
