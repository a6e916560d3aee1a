import { objectName } from '../api/common.js';
import { mountStepInput } from '../api/mountstep.js';
import { clusterRequirement, effectiveProviderConfig, parseClusters } from '../clusters.js';
import {
  API_VERSION,
  CONDITION_CACHES_READY,
  DEPLOY_REASON,
  KIND_MODEL_CACHE,
  MOUNT_REASON,
  REQUIRE_CACHE_PREFIX,
  REQUIRE_CLUSTERS,
} from '../constants.js';
import { cacheBlock, cacheView, type CacheView } from '../consumers/caches.js';
import { injectCaches, type CacheMount } from '../consumers/inject.js';
import { mapPodSpecs, workloadShape } from '../consumers/workloads.js';
import {
  describeIssues,
  previousConditions,
  type CoreCondition,
  type CoreEvent,
  type CoreRequest,
  type CoreResult,
  type CoreSelector,
} from '../core.js';
import { at, holdObserved, stringAt, type Json } from '../k8s/object.js';

const OUR_CONDITIONS = new Set([CONDITION_CACHES_READY]);

/** Cache names from the XR field the input points at: a list of names or of {name}. */
function cacheNames(composite: Json, path: string): string[] | string {
  const value = at(composite, ...path.split('.'));
  if (value === undefined) return [];
  if (!Array.isArray(value)) return `${path}: must be a list of ModelCache names or of {name}`;
  const names: string[] = [];
  for (const [i, item] of value.entries()) {
    const name = typeof item === 'string' ? item : stringAt(item, 'name');
    if (name === undefined || !objectName.safeParse(name).success) {
      return `${path}[${i}]: must be a ModelCache name or {name: <ModelCache name>}`;
    }
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

interface Decision {
  key: string;
  cluster: string | undefined;
  outcome: 'mounted' | 'kept' | 'withheld' | 'unmapped';
  reason: string;
  why: string;
}

/**
 * The mount step: after an author's own steps, mount every referenced ModelCache read-only
 * into every workload they composed, and hold back workloads not yet created on clusters
 * where a cache is not Ready. Workloads already running are never torn down.
 */
export function composeMountStep(req: CoreRequest): CoreResult {
  const input = mountStepInput.safeParse(req.input);
  if (!input.success)
    return { fatal: `invalid mount step input: ${describeIssues('input', input.error)}` };
  const namespace = stringAt(req.composite, 'metadata', 'namespace');
  if (namespace === undefined) {
    return { fatal: 'the ModelCache mount step needs a namespaced XR: ModelCaches are namespaced' };
  }
  const names = cacheNames(req.composite, input.data.cachesFrom);
  if (typeof names === 'string') return { fatal: `invalid XR: ${names}` };

  const requirements: Record<string, CoreSelector> = {
    [REQUIRE_CLUSTERS]: clusterRequirement(undefined),
  };
  for (const name of names) {
    requirements[`${REQUIRE_CACHE_PREFIX}${name}`] = {
      apiVersion: API_VERSION,
      kind: KIND_MODEL_CACHE,
      matchName: name,
      namespace,
    };
  }
  const desired = req.desired ?? {};
  const workloads = Object.entries(desired).flatMap(([key, res]) => {
    const shape = workloadShape(res);
    return shape ? [{ key, res, shape }] : [];
  });
  const common = { requirements, ttlSeconds: input.data.ttlSeconds, status: {} };

  const requiredClusters = req.required[REQUIRE_CLUSTERS];
  const requiredCaches = names.map((n) => req.required[`${REQUIRE_CACHE_PREFIX}${n}`]);
  const resources: Record<string, Json> = {};
  const withheld: string[] = [];
  /** Keep what runs exactly as it is; hold back what does not run yet. */
  const keepOrWithhold = (key: string): 'kept' | 'withheld' => {
    const kept = holdObserved(req.observed[key]);
    if (kept) {
      resources[key] = kept;
      return 'kept';
    }
    withheld.push(key);
    return 'withheld';
  };

  if (requiredClusters === undefined || requiredCaches.some((c) => c === undefined)) {
    for (const w of workloads) keepOrWithhold(w.key);
    return {
      ...common,
      resources,
      withheld,
      ready: withheld.length > 0 ? false : undefined,
      conditions: previousConditions(req.composite['status'], OUR_CONDITIONS),
      events: [],
    };
  }

  const caches = requiredCaches.map((list) => (list?.[0] ? cacheView(list[0]) : undefined));
  const missing = names.filter((_, i) => caches[i] === undefined);
  const found = caches.filter((c): c is CacheView => c !== undefined);
  const paths = found.map((c) => c.mountPath).filter((p) => p !== undefined);
  const wide =
    missing.length > 0
      ? {
          reason: DEPLOY_REASON.CacheNotFound,
          message: `ModelCache ${missing.join(', ')} not found in this namespace`,
        }
      : new Set(paths).size < paths.length
        ? {
            reason: DEPLOY_REASON.MountPathConflict,
            message: 'two referenced caches mount at the same path',
          }
        : undefined;

  // An Object's provider config tells which InferenceCluster it lands on.
  const byProviderConfig = new Map<string, string>();
  for (const { name, parsed } of parseClusters(requiredClusters)) {
    if (!parsed.success) continue;
    const ref = effectiveProviderConfig(parsed.data);
    const k = `${ref.kind}/${ref.name}`;
    if (!byProviderConfig.has(k)) byProviderConfig.set(k, name);
  }

  const decisions: Decision[] = [];
  for (const { key, res, shape } of workloads) {
    const ref = shape.providerConfigRef;
    const cluster = ref
      ? byProviderConfig.get(`${ref.kind}/${ref.name}`)
      : input.data.rawWorkloadCluster;
    if (cluster === undefined && ref !== undefined) {
      // Its InferenceCluster is unknown right now (malformed, deleted, provider config renamed):
      // a running workload keeps its mounts exactly as observed, a new one waits; neither is
      // ever rolled out without its model volume.
      decisions.push({
        key,
        cluster,
        outcome: keepOrWithhold(key),
        reason: MOUNT_REASON.WorkloadClusterUnknown,
        why: `its ${ref.kind} ${ref.name} belongs to no InferenceCluster that parses`,
      });
      continue;
    }
    if (cluster === undefined) {
      // Passed through untouched: the step is configured to mount nothing into raw workloads.
      decisions.push({
        key,
        cluster,
        outcome: 'unmapped',
        reason: MOUNT_REASON.WorkloadClusterUnknown,
        why: 'it is a raw workload and the step input sets no rawWorkloadCluster',
      });
      continue;
    }
    // A claim mounts only in its own namespace: a workload elsewhere would hang Pending.
    const workloadNs =
      stringAt(at(res, ...shape.manifestPath), 'metadata', 'namespace') ?? namespace;
    const claimNs = found
      .map((c) => c.clusters?.get(cluster)?.namespace)
      .find((n) => n !== undefined);
    const misplaced =
      claimNs !== undefined && claimNs !== workloadNs
        ? {
            reason: MOUNT_REASON.WorkloadNamespaceMismatch,
            message: `it is in namespace ${workloadNs} but the cache claims are in ${claimNs}`,
          }
        : undefined;
    const block =
      wide ?? misplaced ?? found.map((c) => cacheBlock(c, cluster)).find((b) => b !== undefined);
    if (block === undefined) {
      const mounts: CacheMount[] = found.flatMap((c) => {
        const entry = c.clusters?.get(cluster);
        return entry && c.mountPath !== undefined
          ? [{ cache: c.name, kind: c.kind, claimName: entry.claimName, mountPath: c.mountPath }]
          : [];
      });
      resources[key] = mapPodSpecs(res, shape, (ps) => injectCaches(ps, mounts));
      decisions.push({ key, cluster, outcome: 'mounted', reason: DEPLOY_REASON.Ready, why: '' });
    } else {
      decisions.push({
        key,
        cluster,
        outcome: keepOrWithhold(key),
        reason: block.reason,
        why: block.message,
      });
    }
  }

  const condition = conditionOf(names, decisions, workloads.length);
  const previousReason = previousConditions(req.composite['status'], OUR_CONDITIONS)[0]?.reason;
  const events: CoreEvent[] =
    previousReason === condition.reason
      ? []
      : [
          {
            severity: condition.status === 'True' ? 'Normal' : 'Warning',
            reason: condition.reason,
            message: condition.message,
          },
        ];
  return {
    ...common,
    resources,
    withheld,
    ready: withheld.length > 0 ? false : undefined,
    conditions: [condition],
    events,
  };
}

function conditionOf(names: string[], decisions: Decision[], workloads: number): CoreCondition {
  const waiting = decisions.filter((d) => d.outcome !== 'mounted');
  const first = waiting[0];
  if (first === undefined) {
    return {
      type: CONDITION_CACHES_READY,
      status: 'True',
      reason: DEPLOY_REASON.Ready,
      message: `${names.join(', ') || 'no caches'} mounted read-only into ${workloads} workload${workloads === 1 ? '' : 's'}`,
    };
  }
  const verb = {
    withheld: 'holding back',
    kept: 'keeping as is',
    unmapped: 'not mounting',
    mounted: '',
  } as const;
  return {
    type: CONDITION_CACHES_READY,
    status: 'False',
    reason: first.reason,
    message: waiting
      .slice(0, 5)
      .map(
        (d) =>
          `${verb[d.outcome]} ${d.key}${d.cluster !== undefined ? ` on cluster ${d.cluster}` : ''}: ${d.why}`,
      )
      .join('; '),
  };
}
