import { functionInput, type FunctionInput } from '../api/input.js';
import { clusterRequirement, clusterView, parseClusters, type ClusterView } from '../clusters.js';
import { modelCacheMetadata, modelCacheSpec, type ModelCacheSpec } from '../api/modelcache.js';
import {
  ANNOTATION_REFETCH,
  CONDITION_ARTIFACT_READY,
  CONDITION_CLUSTERS_MATCHED,
  FETCH_FILES_MOUNT,
  OBJECT_API_VERSION,
  type ProviderConfigKind,
  REASON,
  REQUIRE_CLUSTERS,
  REQUIRE_CLUSTER_PROVIDER_CONFIGS,
  REQUIRE_PROVIDER_CONFIGS,
} from '../constants.js';
import {
  describeIssues,
  previousConditions,
  type CoreRequest,
  type CoreResult,
  type CoreSelector,
} from '../core.js';
import { canonicalJson, dnsLabel, sha256Hex } from '../k8s/names.js';
import { asJson, holdObserved, stringAt, type Json } from '../k8s/object.js';
import { backendFor } from './backends/index.js';
import { ClusterMemo } from './cluster-memo.js';
import type { Blocker, CacheModel, ClusterStatus } from './model.js';
import { NEVER_HELD, resourceKey, splitKey } from './roles.js';
import { sourceOf, sourceParts } from './sources/index.js';
import { buildConditions, buildStatus, previousClusters, transitionEvents } from './status.js';

const IDENTITY_VERSION = 1;

/** Backend results of each ModelCache's last call, reused for clusters whose inputs are unchanged. */
export const clusterMemo = new ClusterMemo();

/** Everything derived from the cache's spec and metadata, computed once per call. */
export function cacheModel(
  name: string,
  namespace: string,
  spec: ModelCacheSpec,
  refetch: string | undefined,
): CacheModel {
  const source = sourceOf(spec.artifact.source);
  const base = `modelcache-${name}`;
  const remoteSecretName = dnsLabel(base, '-credentials');
  const parts = sourceParts(source, { namespace, remoteSecretName, filesDir: FETCH_FILES_MOUNT });
  const identity = sha256Hex(
    canonicalJson({
      v: IDENTITY_VERSION,
      kind: spec.artifact.kind,
      source: { type: source.type, ...(parts.identity as Json) },
      refetch: refetch ?? '',
    }),
  );
  return {
    name,
    namespace,
    spec,
    source,
    parts,
    identity,
    names: {
      claim: dnsLabel(base),
      secret: remoteSecretName,
      files: dnsLabel(base, '-files'),
      job: dnsLabel(base, `-fetch-${identity.slice(0, 8)}`),
      reporter: dnsLabel(base, '-fetch'),
    },
  };
}

/** The same three requirements on every call, so Crossplane's requirement loop settles at once. */
function requirements(spec: ModelCacheSpec, namespace: string): Record<string, CoreSelector> {
  return {
    [REQUIRE_CLUSTERS]: clusterRequirement(spec.clusterSelector?.matchLabels),
    [REQUIRE_CLUSTER_PROVIDER_CONFIGS]: {
      apiVersion: OBJECT_API_VERSION,
      kind: 'ClusterProviderConfig',
      matchLabels: {},
    },
    [REQUIRE_PROVIDER_CONFIGS]: {
      apiVersion: OBJECT_API_VERSION,
      kind: 'ProviderConfig',
      matchLabels: {},
      namespace,
    },
  };
}

/** Names of the provider configs Crossplane listed, per kind; undefined when not fetched yet. */
type ProviderConfigNames = Record<ProviderConfigKind, Set<string> | undefined>;

function providerConfigNames(required: CoreRequest['required']): ProviderConfigNames {
  const names = (list: Json[] | undefined): Set<string> | undefined =>
    list && new Set(list.map((pc) => stringAt(pc, 'metadata', 'name') ?? ''));
  return {
    ClusterProviderConfig: names(required[REQUIRE_CLUSTER_PROVIDER_CONFIGS]),
    ProviderConfig: names(required[REQUIRE_PROVIDER_CONFIGS]),
  };
}

/** A provider config that is known not to exist blocks the cluster; not knowing does not. */
function providerConfigBlocker(view: ClusterView, known: ProviderConfigNames): Blocker | undefined {
  const ref = view.providerConfigRef;
  const names = known[ref.kind];
  if (names === undefined || names.has(ref.name)) return undefined;
  return {
    reason: REASON.ProviderConfigNotFound,
    message: `${ref.kind} ${ref.name} named by InferenceCluster ${view.name} does not exist${ref.kind === 'ProviderConfig' ? ' in this namespace' : ''}`,
  };
}

/** Observed composed resources grouped by cluster, then by role. */
function groupObserved(observed: Record<string, Json>): Map<string, Record<string, Json>> {
  const byCluster = new Map<string, Record<string, Json>>();
  for (const key of Object.keys(observed)) {
    const k = splitKey(key);
    const res = observed[key];
    if (!k || res === undefined) continue;
    let roles = byCluster.get(k.cluster);
    if (roles === undefined) {
      roles = {};
      byCluster.set(k.cluster, roles);
    }
    roles[k.role] = res;
  }
  return byCluster;
}

/** Echo every observed resource (but never ones that may carry copied data). */
function holdAll(observed: Map<string, Record<string, Json>>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [cluster, roles] of observed) {
    for (const [role, res] of Object.entries(roles)) {
      if (NEVER_HELD.has(role)) continue;
      const held = holdObserved(res);
      if (held) out[resourceKey(cluster, role)] = held;
    }
  }
  return out;
}

const OUR_CONDITIONS = new Set([CONDITION_CLUSTERS_MATCHED, CONDITION_ARTIFACT_READY]);

/**
 * The ModelCache core: fan out over matched InferenceClusters, let the storage backend
 * compose each, aggregate status. Pure: the same request always gives the same response.
 */
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
  const previous = previousClusters(prevStatus);
  const observed = groupObserved(req.observed);
  const common = {
    requirements: requirements(spec, cache.namespace),
    ttlSeconds: input.ttlSeconds,
  };
  const backend = backendFor(spec.storage.backend);

  const requiredClusters = req.required[REQUIRE_CLUSTERS];
  if (requiredClusters === undefined) {
    // Crossplane has not fetched the clusters yet: keep everything exactly as it was.
    const kept = [...previous.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    return {
      ...common,
      resources: holdAll(observed),
      status: buildStatus(spec.mount.path, cache.parts.summary, kept),
      ready: kept.length > 0 && kept.every((c) => c.phase === 'Ready'),
      conditions: previousConditions(prevStatus, OUR_CONDITIONS),
      events: [],
    };
  }

  const resources: Record<string, Json> = {};
  const observedReady: Record<string, boolean> = {};
  const clusters: ClusterStatus[] = [];
  const knownProviderConfigs = providerConfigNames(req.required);
  const memo = clusterMemo.begin(
    `${cache.namespace}/${cache.name}`,
    JSON.stringify([cache.name, cache.namespace, spec, cache.identity, input]),
  );
  for (const { name, parsed } of parseClusters(requiredClusters)) {
    const clusterObserved = observed.get(name) ?? {};
    if (!parsed.success) {
      // Keep what exists; the InferenceCluster itself reports why it is invalid.
      Object.assign(resources, holdAll(new Map([[name, clusterObserved]])));
      clusters.push({
        name,
        phase: 'Failed',
        reason: REASON.InvalidInferenceCluster,
        message: describeIssues('', parsed.error),
        namespace: cache.namespace,
        claimName: cache.names.claim,
        identity: cache.identity,
      });
      continue;
    }
    const view = clusterView(parsed.data);
    const prev = previous.get(name);
    const { result, observedReady: ready } = memo.cluster(
      {
        cache,
        cluster: view,
        observed: clusterObserved,
        latched: prev?.identity === cache.identity ? prev : undefined,
        blocker: providerConfigBlocker(view, knownProviderConfigs),
        input,
      },
      backend,
    );
    // Keyed loops: on 1000 clusters these run 14,000 times per call.
    for (const role of Object.keys(result.resources)) {
      const res = result.resources[role];
      if (res !== undefined) resources[resourceKey(name, role)] = res;
    }
    if (ready !== undefined) {
      for (const role of Object.keys(ready)) {
        observedReady[resourceKey(name, role)] = ready[role] === true;
      }
    }
    clusters.push(result.status);
  }
  memo.end();

  return {
    ...common,
    resources,
    status: buildStatus(spec.mount.path, cache.parts.summary, clusters),
    ready: clusters.length > 0 && clusters.every((c) => c.phase === 'Ready'),
    conditions: buildConditions(clusters),
    events: transitionEvents(previous, clusters),
    // Known only for clusters the memo keyed; the dispatch layer reads the rest itself.
    ...(Object.keys(observedReady).length > 0 ? { observedReady } : {}),
  };
}
