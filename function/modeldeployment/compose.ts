import { functionInput } from '../api/input.js';
import { namespacedXrMetadata } from '../api/common.js';
import { modelDeploymentSpec, type ModelDeploymentSpec } from '../api/modeldeployment.js';
import { clusterRequirement, clusterView, parseClusters, type ClusterView } from '../clusters.js';
import {
  API_VERSION,
  CONDITION_CACHES_READY,
  CONDITION_SCHEDULED,
  DEPLOY_REASON,
  KIND_MODEL_CACHE,
  KIND_MODEL_DEPLOYMENT,
  REQUIRE_CACHE_PREFIX,
  REQUIRE_CLUSTERS,
} from '../constants.js';
import { cacheBlock, cacheView, type CacheBlock, type CacheView } from '../consumers/caches.js';
import type { CacheMount } from '../consumers/inject.js';
import {
  describeIssues,
  previousConditions,
  type CoreCondition,
  type CoreEvent,
  type CoreRequest,
  type CoreResult,
  type CoreSelector,
} from '../core.js';
import { dnsLabel } from '../k8s/names.js';
import { asJson, at, holdObserved, objectReady, type Json } from '../k8s/object.js';
import { workloadObject } from './workload.js';

const WORKLOAD_ROLE = 'workload';
const USAGE_PREFIX = 'usage/';
const workloadKey = (cluster: string): string => `${cluster}/${WORKLOAD_ROLE}`;

/** One selected cluster's outcome, reported in status.clusters[]. */
export interface DeploymentClusterStatus {
  name: string;
  replicas: number;
  reason: string;
  message: string;
}

function requirements(spec: ModelDeploymentSpec, namespace: string): Record<string, CoreSelector> {
  const out: Record<string, CoreSelector> = {
    [REQUIRE_CLUSTERS]: clusterRequirement(spec.clusterSelector?.matchLabels),
  };
  for (const ref of spec.caches) {
    out[`${REQUIRE_CACHE_PREFIX}${ref.name}`] = {
      apiVersion: API_VERSION,
      kind: KIND_MODEL_CACHE,
      matchName: ref.name,
      namespace,
    };
  }
  return out;
}

/** Problems with the set of caches as a whole: nothing new is placed while one stands. */
function deploymentBlocks(
  spec: ModelDeploymentSpec,
  caches: (CacheView | undefined)[],
): CoreCondition | undefined {
  const missing = spec.caches.filter((_, i) => caches[i] === undefined).map((r) => r.name);
  if (missing.length > 0) {
    return {
      type: CONDITION_CACHES_READY,
      status: 'False',
      reason: DEPLOY_REASON.CacheNotFound,
      message: `ModelCache ${missing.join(', ')} not found in this namespace`,
    };
  }
  const found = caches.filter((c): c is CacheView => c !== undefined);
  const mismatched = spec.caches.filter(
    (ref, i) =>
      ref.kind !== undefined && caches[i]?.kind !== undefined && caches[i].kind !== ref.kind,
  );
  if (mismatched.length > 0) {
    return {
      type: CONDITION_CACHES_READY,
      status: 'False',
      reason: DEPLOY_REASON.CacheKindMismatch,
      message: mismatched
        .map(
          (ref) =>
            `cache ${ref.name} holds ${found.find((c) => c.name === ref.name)?.kind ?? '?'}, not ${ref.kind ?? '?'}`,
        )
        .join('; '),
    };
  }
  if (spec.topology.pipeline > 1 && !found.some((c) => c.kind === 'Weights')) {
    return {
      type: CONDITION_CACHES_READY,
      status: 'False',
      reason: DEPLOY_REASON.CacheKindMismatch,
      message: 'a gang needs a Weights cache: every pod of a gang must load identical weights',
    };
  }
  const byPath = new Map<string, string[]>();
  for (const c of found) {
    if (c.mountPath !== undefined)
      byPath.set(c.mountPath, [...(byPath.get(c.mountPath) ?? []), c.name]);
  }
  const clash = [...byPath.entries()].find(([, names]) => names.length > 1);
  if (clash) {
    return {
      type: CONDITION_CACHES_READY,
      status: 'False',
      reason: DEPLOY_REASON.MountPathConflict,
      message: `caches ${clash[1].join(' and ')} both mount at ${clash[0]}: give one a different spec.mount.path`,
    };
  }
  return undefined;
}

/** Order in which a cluster-level block is reported when several stand. */
const BLOCK_ORDER = ['NoRWXStorageClass', 'CacheFailed', 'WaitingForCache', 'NotMatchedByCache'];

function firstBlock(blocks: CacheBlock[]): CacheBlock | undefined {
  return [...blocks].sort(
    (a, b) => BLOCK_ORDER.indexOf(a.reason) - BLOCK_ORDER.indexOf(b.reason),
  )[0];
}

/** replicas spread over clusters in name order: the first `replicas % n` get one more. */
export function spread(replicas: number, clusters: string[]): Map<string, number> {
  const out = new Map<string, number>();
  const n = clusters.length;
  clusters.forEach((c, i) =>
    out.set(c, n === 0 ? 0 : Math.floor(replicas / n) + (i < replicas % n ? 1 : 0)),
  );
  return out;
}

function previousClusters(status: unknown): Map<string, DeploymentClusterStatus> {
  const out = new Map<string, DeploymentClusterStatus>();
  const list = (status as { clusters?: unknown } | undefined)?.clusters;
  if (!Array.isArray(list)) return out;
  for (const e of list) {
    const j = asJson(e);
    if (
      j &&
      typeof j['name'] === 'string' &&
      typeof j['reason'] === 'string' &&
      typeof j['replicas'] === 'number'
    ) {
      out.set(j['name'], {
        name: j['name'],
        replicas: j['replicas'],
        reason: j['reason'],
        message: typeof j['message'] === 'string' ? j['message'] : '',
      });
    }
  }
  return out;
}

const OUR_CONDITIONS = new Set([CONDITION_CACHES_READY, CONDITION_SCHEDULED]);

/**
 * The ModelDeployment core: place replicas only on clusters the deployment selects and
 * where every referenced cache is Ready; mount every cache read-only into every pod.
 */
export function composeModelDeployment(req: CoreRequest): CoreResult {
  const input = functionInput.safeParse(req.input ?? {});
  if (!input.success)
    return { fatal: `invalid function input: ${describeIssues('input', input.error)}` };
  const meta = namespacedXrMetadata.safeParse(req.composite['metadata']);
  if (!meta.success)
    return { fatal: `invalid ${KIND_MODEL_DEPLOYMENT}: ${describeIssues('metadata', meta.error)}` };
  const parsed = modelDeploymentSpec.safeParse(req.composite['spec']);
  if (!parsed.success)
    return { fatal: `invalid ${KIND_MODEL_DEPLOYMENT}: ${describeIssues('spec', parsed.error)}` };
  const spec = parsed.data;
  const { name, namespace } = meta.data;
  const prevStatus = asJson(req.composite['status']);
  const previous = previousClusters(prevStatus);
  const common = { requirements: requirements(spec, namespace), ttlSeconds: input.data.ttlSeconds };

  const requiredClusters = req.required[REQUIRE_CLUSTERS];
  const requiredCaches = spec.caches.map(
    (ref) => req.required[`${REQUIRE_CACHE_PREFIX}${ref.name}`],
  );
  if (requiredClusters === undefined || requiredCaches.some((c) => c === undefined)) {
    // Not everything was fetched yet: keep every running workload and Usage exactly as is.
    const resources: Record<string, Json> = {};
    for (const [key, res] of Object.entries(req.observed)) {
      const held = holdObserved(res);
      if (held) resources[key] = held;
    }
    const conditions = previousConditions(prevStatus, OUR_CONDITIONS);
    const clusters = [...previous.values()];
    return {
      ...common,
      resources,
      status: statusOf(spec, clusters),
      ready: isReady(req.observed, clusters, spec.replicas),
      conditions,
      events: [],
    };
  }

  const caches = requiredCaches.map((list) => (list && list[0] ? cacheView(list[0]) : undefined));
  const wideBlock = deploymentBlocks(spec, caches);
  const found = caches.filter((c): c is CacheView => c !== undefined);
  const views = new Map<string, ClusterView>();
  // A selected InferenceCluster that does not parse is not a deselection: whatever runs there
  // keeps running exactly as observed until it parses again (or leaves the selection).
  const unreadable = new Map<string, string>();
  for (const { name: n, parsed: ic } of parseClusters(requiredClusters)) {
    if (ic.success) views.set(n, clusterView(ic.data));
    else unreadable.set(n, describeIssues('', ic.error));
  }

  // Decide each selected cluster: eligible; held (its workload runs and what blocks it may
  // pass: it is kept exactly as observed, never torn down or rewritten); or not used.
  const blocks = new Map<string, CacheBlock | undefined>();
  const eligible: string[] = [];
  const heldReplicas = new Map<string, number>();
  for (const cluster of views.keys()) {
    const block = firstBlock(found.flatMap((c) => cacheBlock(c, cluster) ?? []));
    blocks.set(cluster, block);
    const running = req.observed[workloadKey(cluster)];
    if (wideBlock === undefined && block === undefined) eligible.push(cluster);
    else if (running && (wideBlock !== undefined || block?.keepsRunning === true)) {
      const replicas = at(running, 'spec', 'forProvider', 'manifest', 'spec', 'replicas');
      heldReplicas.set(cluster, typeof replicas === 'number' ? replicas : 0);
    }
  }
  for (const cluster of unreadable.keys()) {
    const running = req.observed[workloadKey(cluster)];
    if (running === undefined) continue;
    const replicas = at(running, 'spec', 'forProvider', 'manifest', 'spec', 'replicas');
    heldReplicas.set(cluster, typeof replicas === 'number' ? replicas : 0);
  }
  const stillWanted = Math.max(
    0,
    spec.replicas - [...heldReplicas.values()].reduce((n, r) => n + r, 0),
  );
  const counts = spread(stillWanted, eligible);

  const resources: Record<string, Json> = {};
  const clusters: DeploymentClusterStatus[] = [];
  const workloadName = dnsLabel(name);
  for (const [cluster, view] of views) {
    const block = blocks.get(cluster);
    const held = heldReplicas.has(cluster);
    const replicas = held ? (heldReplicas.get(cluster) ?? 0) : (counts.get(cluster) ?? 0);
    if (held) {
      const kept = holdObserved(req.observed[workloadKey(cluster)]);
      if (kept) resources[workloadKey(cluster)] = kept;
    } else if (replicas > 0) {
      const mounts: CacheMount[] = found.flatMap((c) => {
        const entry = c.clusters?.get(cluster);
        return entry && c.mountPath !== undefined
          ? [{ cache: c.name, kind: c.kind, claimName: entry.claimName, mountPath: c.mountPath }]
          : [];
      });
      const ns = found[0]?.clusters?.get(cluster)?.namespace ?? namespace;
      resources[workloadKey(cluster)] = workloadObject(spec, {
        cluster: view,
        namespace: ns,
        name: workloadName,
        replicas,
        mounts,
      });
    }
    if (held) {
      clusters.push({
        name: cluster,
        replicas,
        reason: DEPLOY_REASON.Held,
        message: `kept running while ${wideBlock?.message ?? block?.message ?? 'a cache is unavailable'}`,
      });
    } else if (block !== undefined || (wideBlock !== undefined && replicas === 0)) {
      const why = block ?? { reason: wideBlock?.reason ?? '', message: wideBlock?.message ?? '' };
      clusters.push({ name: cluster, replicas: 0, reason: why.reason, message: why.message });
    } else if (replicas === 0) {
      clusters.push({
        name: cluster,
        replicas: 0,
        reason: DEPLOY_REASON.NoReplicasLeft,
        message:
          spec.replicas === 0
            ? 'eligible; spec.replicas is 0'
            : `eligible, but all ${spec.replicas} replicas went to clusters earlier in name order`,
      });
    } else {
      clusters.push({
        name: cluster,
        replicas,
        reason: DEPLOY_REASON.Placed,
        message: `${replicas} ${spec.topology.strategy === 'TensorPipeline' ? `gang${replicas === 1 ? '' : 's'} of ${spec.topology.pipeline} pods` : `replica${replicas === 1 ? '' : 's'}`}`,
      });
    }
  }
  for (const [cluster, why] of unreadable) {
    const held = heldReplicas.has(cluster);
    if (held) {
      const kept = holdObserved(req.observed[workloadKey(cluster)]);
      if (kept) resources[workloadKey(cluster)] = kept;
    }
    clusters.push({
      name: cluster,
      replicas: heldReplicas.get(cluster) ?? 0,
      reason: held ? DEPLOY_REASON.Held : DEPLOY_REASON.InvalidInferenceCluster,
      message: `${held ? 'kept running while ' : ''}InferenceCluster ${cluster} is invalid: ${why}`,
    });
  }
  clusters.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // A cache in use cannot be deleted out from under the deployment.
  for (const c of found) {
    resources[`${USAGE_PREFIX}${c.name}`] = {
      apiVersion: 'protection.crossplane.io/v1beta1',
      kind: 'Usage',
      spec: {
        of: { apiVersion: API_VERSION, kind: KIND_MODEL_CACHE, resourceRef: { name: c.name } },
        by: { apiVersion: API_VERSION, kind: KIND_MODEL_DEPLOYMENT, resourceRef: { name } },
        replayDeletion: true,
      },
    };
  }

  return {
    ...common,
    resources,
    status: statusOf(spec, clusters),
    ready: isReady(req.observed, clusters, spec.replicas),
    conditions: conditionsOf(spec, wideBlock, clusters, views.size),
    events: transitions(previous, clusters),
  };
}

function statusOf(spec: ModelDeploymentSpec, clusters: DeploymentClusterStatus[]): Json {
  const placed = clusters.reduce((n, c) => n + c.replicas, 0);
  return {
    replicas: { desired: spec.replicas, placed },
    clusters: clusters.map((c) => ({ ...c })),
  };
}

/** Ready: every replica placed and every workload reports Ready through its Object. */
function isReady(
  observed: Record<string, Json>,
  clusters: DeploymentClusterStatus[],
  desired: number,
): boolean {
  const placed = clusters.filter((c) => c.replicas > 0);
  if (placed.reduce((n, c) => n + c.replicas, 0) < desired) return false;
  return placed.every((c) => objectReady(observed[workloadKey(c.name)]));
}

function conditionsOf(
  spec: ModelDeploymentSpec,
  wideBlock: CoreCondition | undefined,
  clusters: DeploymentClusterStatus[],
  selected: number,
): CoreCondition[] {
  const blocked = clusters.filter(
    (c) => c.reason !== DEPLOY_REASON.Placed && c.reason !== DEPLOY_REASON.NoReplicasLeft,
  );
  const order = [
    DEPLOY_REASON.NoRWXStorageClass,
    DEPLOY_REASON.CacheFailed,
    DEPLOY_REASON.WaitingForCache,
    DEPLOY_REASON.NotMatchedByCache,
    DEPLOY_REASON.Held,
  ];
  const worst = [...blocked].sort(
    (a, b) =>
      order.indexOf(a.reason as (typeof order)[number]) -
      order.indexOf(b.reason as (typeof order)[number]),
  )[0];
  const cachesReady: CoreCondition =
    wideBlock ??
    (worst
      ? {
          type: CONDITION_CACHES_READY,
          status: 'False',
          reason:
            worst.reason === DEPLOY_REASON.Held ? DEPLOY_REASON.WaitingForCache : worst.reason,
          message: blocked
            .map((c) => `${c.name}: ${c.message}`)
            .slice(0, 5)
            .join('; '),
        }
      : {
          type: CONDITION_CACHES_READY,
          status: 'True',
          reason: DEPLOY_REASON.Ready,
          message: `${spec.caches.map((c) => c.name).join(', ')} Ready on ${selected} selected cluster${selected === 1 ? '' : 's'}`,
        });
  const placed = clusters.filter((c) => c.replicas > 0);
  const total = placed.reduce((n, c) => n + c.replicas, 0);
  const scheduled: CoreCondition =
    spec.replicas === 0
      ? {
          type: CONDITION_SCHEDULED,
          status: 'True',
          reason: DEPLOY_REASON.Placed,
          message: 'spec.replicas is 0: nothing to place',
        }
      : placed.length > 0
        ? {
            type: CONDITION_SCHEDULED,
            status: 'True',
            reason: DEPLOY_REASON.Placed,
            message: `${total}/${spec.replicas} placed: ${placed.map((c) => `${c.name} (${c.replicas})`).join(', ')}`,
          }
        : {
            type: CONDITION_SCHEDULED,
            status: 'False',
            reason: DEPLOY_REASON.NoEligibleClusters,
            message:
              selected === 0
                ? 'no InferenceCluster matches spec.clusterSelector'
                : 'no selected cluster has every referenced cache Ready',
          };
  return [cachesReady, scheduled];
}

function transitions(
  previous: Map<string, DeploymentClusterStatus>,
  clusters: DeploymentClusterStatus[],
): CoreEvent[] {
  return clusters.flatMap((c) => {
    const p = previous.get(c.name);
    if (p && p.reason === c.reason && p.replicas === c.replicas) return [];
    return [
      {
        severity:
          c.reason === DEPLOY_REASON.Placed ||
          c.reason === DEPLOY_REASON.Held ||
          c.reason === DEPLOY_REASON.NoReplicasLeft
            ? ('Normal' as const)
            : ('Warning' as const),
        reason: c.reason,
        message: `cluster ${c.name}: ${p ? `${p.reason} (${p.replicas})` : 'new'} -> ${c.reason} (${c.replicas}): ${c.message}`,
      },
    ];
  });
}
