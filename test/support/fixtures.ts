// Builders for XRs, InferenceClusters and observed provider-kubernetes Objects, shaped as
// Crossplane and provider-kubernetes deliver them, so tests read as scenarios.
import {
  ANNOTATION_BYTES_DONE,
  ANNOTATION_BYTES_TOTAL,
  ANNOTATION_FETCH_ERROR,
  ANNOTATION_RESOLVED_REVISION,
  API_VERSION,
  REQUIRE_CLUSTER,
  REQUIRE_CLUSTERS,
  REQUIRE_CLUSTER_PROVIDER_CONFIGS,
  REQUIRE_PARENT_CACHE,
  REQUIRE_PROVIDER_CONFIG,
  REQUIRE_PROVIDER_CONFIGS,
} from '../../function/constants.js';
import { isFatal, type CoreRequest } from '../../function/core.js';
import type { Json } from '../../function/k8s/object.js';
import { composeModelCache } from '../../function/modelcache/compose.js';

export const NS = 'team-a';

export function modelCache(
  spec: Json,
  opts: { name?: string; annotations?: Record<string, string>; status?: Json } = {},
): Json {
  return {
    apiVersion: API_VERSION,
    kind: 'ModelCache',
    metadata: {
      name: opts.name ?? 'llama',
      namespace: NS,
      uid: '7f8e6c1a-0000-4000-8000-000000000001',
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec,
    ...(opts.status ? { status: opts.status } : {}),
  };
}

export const HF_WEIGHTS: Json = {
  artifact: {
    kind: 'Weights',
    source: {
      huggingFace: {
        repo: 'meta-llama/Llama-3.1-8B-Instruct',
        revision: 'main',
        secretRef: { name: 'hf-token' },
      },
    },
  },
  storage: { pvc: { sizeGiB: 40 } },
};

export function inferenceClusterXR(
  name: string,
  opts: {
    labels?: Record<string, string>;
    storageClassName?: string;
    classExists?: boolean;
    providerConfig?: { kind: string; name: string };
  } = {},
): Json {
  const pc = opts.providerConfig ?? { kind: 'ClusterProviderConfig', name: name };
  const storage =
    opts.storageClassName !== undefined ? { storageClassName: opts.storageClassName } : undefined;
  return {
    apiVersion: API_VERSION,
    kind: 'InferenceCluster',
    metadata: { name, labels: opts.labels ?? {} },
    spec: { providerConfigRef: pc, ...(storage ? { storage } : {}) },
    status: {
      providerConfigRef: pc,
      ...(storage
        ? {
            storage: {
              ...storage,
              ...(opts.classExists !== undefined ? { classExists: opts.classExists } : {}),
            },
          }
        : {}),
    },
  };
}

export function clusterProviderConfig(name: string): Json {
  return {
    apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
    kind: 'ClusterProviderConfig',
    metadata: { name },
    spec: { credentials: { source: 'InjectedIdentity' } },
  };
}

/** A request whose clusters and provider configs have all been resolved. */
export function request(
  xr: Json,
  clusters: Json[],
  observed: Record<string, Json> = {},
  input?: unknown,
): CoreRequest {
  return {
    composite: xr,
    observed,
    required: {
      [REQUIRE_CLUSTERS]: clusters,
      [REQUIRE_CLUSTER_PROVIDER_CONFIGS]: clusters.map((c) =>
        clusterProviderConfig(String((c['metadata'] as Json)['name'])),
      ),
      [REQUIRE_PROVIDER_CONFIGS]: [],
    },
    input,
  };
}

/**
 * An observed Object: what Crossplane hands back for a desired Object once
 * provider-kubernetes has synced it, with the remote object (status included).
 */
export function observedObject(
  desired: Json,
  remote: Json | undefined,
  conditions: Json[] = [],
): Json {
  const spec = desired['spec'] as Json;
  return {
    ...desired,
    metadata: {
      name: 'llama-x1y2z',
      namespace: NS,
      annotations: { 'crossplane.io/composition-resource-name': 'x' },
    },
    spec: { ...spec, managementPolicies: spec['managementPolicies'] ?? ['*'] },
    status: {
      ...(remote ? { atProvider: { manifest: remote } } : {}),
      conditions,
    },
  };
}

function manifestOf(desired: Json): Json {
  return ((desired['spec'] as Json)['forProvider'] as Json)['manifest'] as Json;
}

/** The remote PVC as observed, in the given phase. */
export function pvcObserved(
  desired: Json,
  phase: 'Pending' | 'Bound' | 'Lost',
  uid?: string,
): Json {
  const m = manifestOf(desired);
  const metadata = { ...(m['metadata'] as Json), ...(uid !== undefined ? { uid } : {}) };
  return observedObject(desired, { ...m, metadata, status: { phase } });
}

export type JobObservation =
  | { state: 'created' }
  | { state: 'running'; done?: number; total?: number }
  | { state: 'complete'; revision?: string }
  | { state: 'failed'; error?: string };

/** The remote Job as observed in one of its states, with the fetch program's annotations. */
export function jobObserved(desired: Json, obs: JobObservation): Json {
  const m = manifestOf(desired);
  const meta = m['metadata'] as Json;
  const annotations = { ...(meta['annotations'] as Record<string, string>) };
  let status: Json = {};
  switch (obs.state) {
    case 'created':
      break;
    case 'running':
      status = { active: 1, ready: 1 };
      if (obs.done !== undefined) annotations[ANNOTATION_BYTES_DONE] = String(obs.done);
      if (obs.total !== undefined) annotations[ANNOTATION_BYTES_TOTAL] = String(obs.total);
      break;
    case 'complete':
      status = { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] };
      if (obs.revision !== undefined) annotations[ANNOTATION_RESOLVED_REVISION] = obs.revision;
      break;
    case 'failed':
      status = {
        failed: 4,
        conditions: [
          {
            type: 'Failed',
            status: 'True',
            reason: 'BackoffLimitExceeded',
            message: 'Job has reached the specified backoff limit',
          },
        ],
      };
      if (obs.error !== undefined) annotations[ANNOTATION_FETCH_ERROR] = obs.error;
      break;
  }
  return observedObject(desired, { ...m, metadata: { ...meta, annotations }, status });
}

/** An Object provider-kubernetes cannot sync (e.g. the Secret it copies from is missing). */
export function syncFailed(desired: Json, message: string): Json {
  return observedObject(desired, undefined, [
    { type: 'Synced', status: 'False', reason: 'ReconcileError', message },
  ]);
}

/** Fully synced Object with its remote object as desired (namespace, Secret, ConfigMap). */
export function synced(desired: Json): Json {
  return observedObject(desired, manifestOf(desired), [
    { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' },
  ]);
}

/**
 * The ModelCacheReplica a ModelCache composes for one cluster, as Crossplane creates it (the
 * parent's desired replica, in the parent's namespace), with the status it last wrote.
 */
export function modelCacheReplica(cacheXR: Json, clusterXR: Json, status?: Json): Json {
  const name = String((clusterXR['metadata'] as Json)['name']);
  const res = composeModelCache(request(cacheXR, [clusterXR]));
  if (isFatal(res)) throw new Error(res.fatal);
  const desired = res.resources[name];
  if (desired === undefined) throw new Error(`the cache composes no replica for ${name}`);
  return {
    ...desired,
    metadata: { ...(desired['metadata'] as Json), namespace: NS },
    ...(status !== undefined ? { status } : {}),
  };
}

/**
 * A replica's request with its parent, its InferenceCluster and that cluster's provider
 * config resolved (`providerConfigs: []`: the provider config does not exist).
 */
export function replicaRequest(
  cacheXR: Json,
  clusterXR: Json,
  opts: {
    observed?: Record<string, Json>;
    status?: Json;
    providerConfigs?: Json[];
    input?: unknown;
  } = {},
): CoreRequest {
  const replica = modelCacheReplica(cacheXR, clusterXR, opts.status);
  const pc = ((clusterXR['status'] as Json | undefined)?.['providerConfigRef'] ??
    (clusterXR['spec'] as Json)['providerConfigRef']) as Json;
  return {
    composite: replica,
    observed: opts.observed ?? {},
    required: {
      [REQUIRE_PARENT_CACHE]: [cacheXR],
      [REQUIRE_CLUSTER]: [clusterXR],
      [REQUIRE_PROVIDER_CONFIG]: opts.providerConfigs ?? [
        clusterProviderConfig(String(pc['name'])),
      ],
    },
    input: opts.input,
  };
}

export function modelDeployment(spec: Json, opts: { name?: string; status?: Json } = {}): Json {
  return {
    apiVersion: API_VERSION,
    kind: 'ModelDeployment',
    metadata: { name: opts.name ?? 'chat', namespace: NS },
    spec,
    ...(opts.status ? { status: opts.status } : {}),
  };
}

export type CachePhase = 'Pending' | 'Hydrating' | 'Ready' | 'Failed';

/**
 * A ModelCache as a consumer requires it: spec kind and mount path, and per-cluster
 * status as the cache core reports it. `phases` maps cluster name to phase (and reason).
 */
export function cacheWithStatus(
  name: string,
  kind: 'Weights' | 'Tokenizer' | 'Bytes',
  mountPath: string,
  phases: Record<string, CachePhase | [CachePhase, string]>,
): Json {
  const defaultReason: Record<CachePhase, string> = {
    Pending: 'PVCPending',
    Hydrating: 'Downloading',
    Ready: 'Staged',
    Failed: 'FetchFailed',
  };
  return {
    apiVersion: API_VERSION,
    kind: 'ModelCache',
    metadata: { name, namespace: NS },
    spec: { artifact: { kind }, mount: { path: mountPath } },
    status: {
      mountPath,
      namespace: NS,
      claimName: `modelcache-${name}`,
      clusters: Object.entries(phases).map(([cluster, p]) => {
        const [phase, reason] = Array.isArray(p) ? p : [p, defaultReason[p]];
        return { name: cluster, phase, reason };
      }),
    },
  };
}

/** A ModelDeployment request with clusters and caches resolved. */
export function deploymentRequest(
  xr: Json,
  clusters: Json[],
  caches: Record<string, Json | undefined>,
  observed: Record<string, Json> = {},
): CoreRequest {
  const required: CoreRequest['required'] = { [REQUIRE_CLUSTERS]: clusters };
  for (const [name, cache] of Object.entries(caches))
    required[`cache-${name}`] = cache ? [cache] : [];
  return { composite: xr, observed, required, input: undefined };
}
