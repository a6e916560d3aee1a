import { functionInput, type FunctionInput } from '../api/input.js';
import { inferenceCluster } from '../api/inferencecluster.js';
import { modelCacheMetadata, modelCacheSpec } from '../api/modelcache.js';
import {
  modelCacheReplicaMetadata,
  modelCacheReplicaSpec,
  replicaStatus,
  type ModelCacheReplicaSpec,
  type ReplicaStatus,
} from '../api/modelcachereplica.js';
import { clusterView, effectiveProviderConfig } from '../clusters.js';
import {
  ANNOTATION_REFETCH,
  API_VERSION,
  CONDITION_ARTIFACT_READY,
  CONDITION_INPUTS_OBSERVED,
  INPUTS_REASON,
  KIND_INFERENCE_CLUSTER,
  KIND_MODEL_CACHE,
  OBJECT_API_VERSION,
  REASON,
  REQUIRE_CLUSTER,
  REQUIRE_PARENT_CACHE,
  REQUIRE_PROVIDER_CONFIG,
} from '../constants.js';
import {
  describeIssues,
  type CoreCondition,
  type CoreEvent,
  type CoreRequest,
  type CoreResult,
  type CoreSelector,
} from '../core.js';
import { canonicalJson, sha256Hex } from '../k8s/names.js';
import { asJson, objectReady, remoteManifest, stringAt, type Json } from '../k8s/object.js';
import { backendFor } from '../modelcache/backends/index.js';
import { holdRoles } from '../modelcache/backends/observe.js';
import { cacheModel } from '../modelcache/cache-model.js';
import type { Blocker, ClusterStatus } from '../modelcache/model.js';
import { NEVER_HELD } from '../modelcache/roles.js';

// The ModelCacheReplica core: one cluster of one cache. It reads its parent ModelCache, its
// InferenceCluster and that cluster's provider config as required resources, lets the storage
// backend compose the cluster's Objects, and latches the cluster's phase on its own status.
// Whatever it cannot read this call, it holds: Objects exactly as observed, status as it was.

/** The same requirements on every call of a replica: all follow from its own spec. */
function requirements(
  spec: ModelCacheReplicaSpec,
  namespace: string,
): Record<string, CoreSelector> {
  const out: Record<string, CoreSelector> = {
    [REQUIRE_PARENT_CACHE]: {
      apiVersion: API_VERSION,
      kind: KIND_MODEL_CACHE,
      matchName: spec.cacheRef.name,
      namespace,
    },
    [REQUIRE_CLUSTER]: {
      apiVersion: API_VERSION,
      kind: KIND_INFERENCE_CLUSTER,
      matchName: spec.cluster,
    },
  };
  const pc = spec.providerConfigRef;
  if (pc !== undefined) {
    out[REQUIRE_PROVIDER_CONFIG] = {
      apiVersion: OBJECT_API_VERSION,
      kind: pc.kind,
      matchName: pc.name,
      ...(pc.kind === 'ProviderConfig' ? { namespace } : {}),
    };
  }
  return out;
}

/** Every observed Object, echoed unchanged (but never ones that may carry copied data). */
function holdAll(observed: Record<string, Json>): Record<string, Json> {
  return holdRoles(
    observed,
    Object.keys(observed)
      .filter((role) => !NEVER_HELD.has(role))
      .sort(),
  );
}

/**
 * What a steady replica must still see to stay steady: its spec (the parent's digest, the
 * identity, the provider config), which Objects exist, and each remote object's UID, phase
 * and readiness. A claim re-created (a new UID) or Lost, an Object gone or added, or a new
 * cacheDigest changes it, and the replica reads its inputs again.
 */
function steadyKey(spec: ModelCacheReplicaSpec, observed: Record<string, Json>): string {
  const objects = Object.keys(observed)
    .sort()
    .map((role) => {
      const remote = remoteManifest(observed[role]);
      return [
        role,
        stringAt(remote, 'metadata', 'uid') ?? '',
        stringAt(remote, 'status', 'phase') ?? '',
        objectReady(observed[role]),
      ];
    });
  return sha256Hex(canonicalJson({ spec, objects })).slice(0, 32);
}

/** Same roles, each observed: the reconcile that composed these changes nothing. */
function sameRoles(desired: Record<string, Json>, observed: Record<string, Json>): boolean {
  const a = Object.keys(desired).sort();
  const b = Object.keys(observed).sort();
  return a.length === b.length && a.every((role, i) => role === b[i]);
}

function previousStatus(status: unknown): ReplicaStatus | undefined {
  const parsed = replicaStatus.safeParse(status);
  return parsed.success ? parsed.data : undefined;
}

/** A backend's cluster status without the cluster's name: the replica's spec names it. */
function toReplicaStatus(c: ClusterStatus): ReplicaStatus {
  return {
    phase: c.phase,
    reason: c.reason,
    message: c.message,
    namespace: c.namespace,
    claimName: c.claimName,
    ...(c.progress !== undefined ? { progress: c.progress } : {}),
    ...(c.resolvedRevision !== undefined ? { resolvedRevision: c.resolvedRevision } : {}),
    identity: c.identity,
    ...(c.claimUID !== undefined ? { claimUID: c.claimUID } : {}),
    ...(c.jobUnsyncedCalls !== undefined ? { jobUnsyncedCalls: c.jobUnsyncedCalls } : {}),
  };
}

function artifactCondition(s: ReplicaStatus): CoreCondition {
  return {
    type: CONDITION_ARTIFACT_READY,
    status: s.phase === 'Ready' ? 'True' : 'False',
    reason: s.reason,
    message: s.message,
  };
}

function steadyCondition(namespace: string, spec: ModelCacheReplicaSpec): CoreCondition {
  return {
    type: CONDITION_INPUTS_OBSERVED,
    status: 'True',
    reason: INPUTS_REASON.Steady,
    message: `Ready and unchanged since ModelCache ${namespace}/${spec.cacheRef.name} was last read: no input is read until the cache, the claim or an Object changes`,
  };
}

function transition(
  cluster: string,
  prev: ReplicaStatus | undefined,
  next: ReplicaStatus,
): CoreEvent[] {
  if (prev && prev.phase === next.phase && prev.reason === next.reason) return [];
  const from = prev ? `${prev.phase}/${prev.reason}` : 'new';
  return [
    {
      severity: next.phase === 'Failed' ? 'Warning' : 'Normal',
      reason: next.reason,
      message: `cluster ${cluster}: ${from} -> ${next.phase}/${next.reason}: ${next.message}`,
    },
  ];
}

interface Hold {
  reason: (typeof INPUTS_REASON)[keyof typeof INPUTS_REASON];
  message: string;
  /** Status to report when the replica never reported before (nothing to keep). */
  first: Omit<ReplicaStatus, 'namespace' | 'claimName' | 'identity'>;
}

export function composeModelCacheReplica(req: CoreRequest): CoreResult {
  const input = functionInput.safeParse(req.input ?? {});
  if (!input.success)
    return { fatal: `invalid function input: ${describeIssues('input', input.error)}` };
  const meta = modelCacheReplicaMetadata.safeParse(req.composite['metadata']);
  if (!meta.success)
    return { fatal: `invalid ModelCacheReplica: ${describeIssues('metadata', meta.error)}` };
  const spec = modelCacheReplicaSpec.safeParse(req.composite['spec']);
  if (!spec.success)
    return { fatal: `invalid ModelCacheReplica: ${describeIssues('spec', spec.error)}` };
  return composeParsed(req, input.data, meta.data.namespace, spec.data);
}

function composeParsed(
  req: CoreRequest,
  input: FunctionInput,
  namespace: string,
  spec: ModelCacheReplicaSpec,
): CoreResult {
  const prev = previousStatus(req.composite['status']);
  // Steady: Ready, and nothing this replica composes from has changed since a reconcile that
  // read every input found nothing to change. Reading the parent again would only move its
  // status (which grows with the cache's clusters) once per replica per reconcile.
  if (
    spec.cacheDigest !== undefined &&
    prev?.phase === 'Ready' &&
    prev.identity === spec.identity &&
    prev.steady !== undefined &&
    prev.steady === steadyKey(spec, req.observed)
  ) {
    return {
      requirements: {},
      ttlSeconds: input.ttlSeconds,
      resources: holdAll(req.observed),
      status: { ...prev },
      ready: true,
      conditions: [steadyCondition(namespace, spec), artifactCondition(prev)],
      events: [],
    };
  }
  const common = { requirements: requirements(spec, namespace), ttlSeconds: input.ttlSeconds };
  const pending = { phase: 'Pending', reason: REASON.Unknown } as const;

  const hold = (h: Hold, claimName: string): CoreResult => {
    const status: ReplicaStatus = prev ?? {
      ...h.first,
      namespace,
      claimName,
      identity: spec.identity,
    };
    return {
      ...common,
      resources: holdAll(req.observed),
      status: { ...status },
      ready: status.phase === 'Ready',
      conditions: [
        { type: CONDITION_INPUTS_OBSERVED, status: 'False', reason: h.reason, message: h.message },
        artifactCondition(status),
      ],
      events: transition(spec.cluster, prev, status),
    };
  };

  const parents = req.required[REQUIRE_PARENT_CACHE];
  const parentName = `ModelCache ${namespace}/${spec.cacheRef.name}`;
  if (parents === undefined) {
    const message = `waiting for ${parentName} to be read`;
    return hold({ reason: INPUTS_REASON.Resolving, message, first: { ...pending, message } }, '');
  }
  const parent = parents[0];
  const parentMeta = modelCacheMetadata.safeParse(parent?.['metadata']);
  const parentSpec = modelCacheSpec.safeParse(parent?.['spec']);
  if (!parentMeta.success || !parentSpec.success) {
    const message =
      parent === undefined
        ? `${parentName} not found`
        : `${parentName} is invalid: ${
            !parentSpec.success
              ? describeIssues('spec', parentSpec.error)
              : !parentMeta.success
                ? describeIssues('metadata', parentMeta.error)
                : ''
          }`;
    return hold(
      { reason: INPUTS_REASON.CacheUnavailable, message, first: { ...pending, message } },
      '',
    );
  }
  const cache = cacheModel(
    parentMeta.data.name,
    namespace,
    parentSpec.data,
    parentMeta.data.annotations?.[ANNOTATION_REFETCH],
  );
  const claimName = cache.names.mounted;
  if (cache.identity !== spec.identity) {
    const message = `${parentName} is at identity ${cache.identity.slice(0, 12)}, this replica at ${spec.identity.slice(0, 12)}: waiting for the cache to update it`;
    return hold(
      { reason: INPUTS_REASON.IdentityMismatch, message, first: { ...pending, message } },
      claimName,
    );
  }

  const clusters = req.required[REQUIRE_CLUSTER];
  if (clusters === undefined) {
    const message = `waiting for InferenceCluster ${spec.cluster} to be read`;
    return hold(
      { reason: INPUTS_REASON.Resolving, message, first: { ...pending, message } },
      claimName,
    );
  }
  const ic = inferenceCluster.safeParse(clusters[0]);
  if (!ic.success) {
    const message =
      clusters[0] === undefined
        ? `InferenceCluster ${spec.cluster} not found`
        : `InferenceCluster ${spec.cluster} is invalid: ${describeIssues('', ic.error)}`;
    return hold(
      {
        reason: INPUTS_REASON.InvalidInferenceCluster,
        message,
        first: { phase: 'Failed', reason: REASON.InvalidInferenceCluster, message },
      },
      claimName,
    );
  }
  const view = clusterView(ic.data);
  const wanted = effectiveProviderConfig(ic.data);
  const pcs = req.required[REQUIRE_PROVIDER_CONFIG];
  if (
    spec.providerConfigRef === undefined ||
    spec.providerConfigRef.kind !== wanted.kind ||
    spec.providerConfigRef.name !== wanted.name
  ) {
    const message = `InferenceCluster ${spec.cluster} reaches its cluster through ${wanted.kind} ${wanted.name}: waiting for the cache to update this replica`;
    return hold(
      { reason: INPUTS_REASON.Resolving, message, first: { ...pending, message } },
      claimName,
    );
  }
  if (pcs === undefined) {
    const message = `waiting for ${wanted.kind} ${wanted.name} to be read`;
    return hold(
      { reason: INPUTS_REASON.Resolving, message, first: { ...pending, message } },
      claimName,
    );
  }
  const blocker: Blocker | undefined =
    pcs.length === 0
      ? {
          reason: REASON.ProviderConfigNotFound,
          message: `${wanted.kind} ${wanted.name} named by InferenceCluster ${view.name} does not exist${wanted.kind === 'ProviderConfig' ? ' in this namespace' : ''}`,
        }
      : undefined;

  const result = backendFor(cache.spec.storage.backend)({
    cache,
    cluster: view,
    observed: req.observed,
    latched: prev?.identity === cache.identity ? { ...prev, name: view.name } : undefined,
    blocker,
    input,
  });
  const composed = toReplicaStatus(result.status);
  // Steady from the next call on when this one read the parent at the digest the spec names
  // and changes nothing: Ready already before it (the call that reaches Ready still composes
  // the Job its next call removes), Ready now, and exactly the Objects already observed.
  const steady =
    prev?.phase === 'Ready' &&
    prev.identity === cache.identity &&
    composed.phase === 'Ready' &&
    spec.cacheDigest === cache.digest &&
    sameRoles(result.resources, req.observed)
      ? steadyKey(spec, req.observed)
      : undefined;
  const status: ReplicaStatus = { ...composed, ...(steady !== undefined ? { steady } : {}) };
  return {
    ...common,
    resources: result.resources,
    status: asJson({ ...status }) ?? {},
    ready: status.phase === 'Ready',
    conditions: [
      // The call that finds the replica steady says so already: every later call says the same.
      steady !== undefined
        ? steadyCondition(namespace, spec)
        : {
            type: CONDITION_INPUTS_OBSERVED,
            status: 'True',
            reason: INPUTS_REASON.Observed,
            message: `read ${parentName}, InferenceCluster ${spec.cluster} and ${wanted.kind} ${wanted.name}`,
          },
      artifactCondition(status),
    ],
    events: transition(spec.cluster, prev, status),
  };
}
