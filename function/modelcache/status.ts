import { z } from 'zod';
import {
  CONDITION_ARTIFACT_READY,
  CONDITION_CLUSTERS_MATCHED,
  PHASES,
  REASON_ALL_STAGED,
  REASON_MATCHED,
  REASON_NO_CLUSTERS,
  REASON_SOME_FAILED,
  REASON_STAGING,
} from '../constants.js';
import type { CoreCondition, CoreEvent } from '../core.js';
import type { Json } from '../k8s/object.js';
import type { Progress } from './model.js';

// The ModelCache's status is compact — one short entry per cluster — so that it stays within
// etcd's object limit at thousands of clusters; the detail lives on each ModelCacheReplica.

/** One entry of a ModelCache's status.clusters[]. */
export interface ClusterEntry {
  name: string;
  phase: (typeof PHASES)[number];
  reason: string;
  /** Only while Hydrating, when the fetch program reports it; summed into status.progress. */
  progress?: Progress;
}

const entrySchema = z.object({ name: z.string(), phase: z.enum(PHASES), reason: z.string() });

/** The previous entries, by cluster name, read leniently: a malformed one is ignored. */
export function previousEntries(status: unknown): Map<string, ClusterEntry> {
  const out = new Map<string, ClusterEntry>();
  const list = (status as { clusters?: unknown } | undefined)?.clusters;
  if (!Array.isArray(list)) return out;
  for (const entry of list) {
    const parsed = entrySchema.safeParse(entry);
    if (parsed.success) out.set(parsed.data.name, parsed.data);
  }
  return out;
}

/** Names listed in a message, capped so a 1000-cluster fleet does not make a 1000-name line. */
function listed(items: string[], max = 5): string {
  return items.length <= max
    ? items.join(', ')
    : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

export interface StatusHead {
  mountPath: string;
  source: string;
  namespace: string;
  claimName: string;
}

export function buildStatus(head: StatusHead, clusters: ClusterEntry[]): Json {
  let ready = 0;
  let failed = 0;
  let bytesDone = 0;
  let bytesTotal = 0;
  let reporting = 0;
  for (const c of clusters) {
    if (c.phase === 'Ready') ready++;
    else if (c.phase === 'Failed') failed++;
    if (c.progress !== undefined) {
      reporting++;
      bytesDone += c.progress.bytesDone;
      bytesTotal += c.progress.bytesTotal;
    }
  }
  return {
    mountPath: head.mountPath,
    source: head.source,
    namespace: head.namespace,
    claimName: head.claimName,
    summary: {
      ready: `${ready}/${clusters.length}`,
      readyClusters: ready,
      matchedClusters: clusters.length,
      failedClusters: failed,
    },
    ...(reporting > 0 ? { progress: { bytesDone, bytesTotal } } : {}),
    clusters: clusters.map((c) => ({ name: c.name, phase: c.phase, reason: c.reason })),
  };
}

export function buildConditions(clusters: ClusterEntry[]): CoreCondition[] {
  if (clusters.length === 0) {
    const message = 'no InferenceCluster matches spec.clusterSelector';
    return [
      { type: CONDITION_CLUSTERS_MATCHED, status: 'False', reason: REASON_NO_CLUSTERS, message },
      { type: CONDITION_ARTIFACT_READY, status: 'False', reason: REASON_NO_CLUSTERS, message },
    ];
  }
  const names = clusters.map((c) => c.name);
  const matched: CoreCondition = {
    type: CONDITION_CLUSTERS_MATCHED,
    status: 'True',
    reason: REASON_MATCHED,
    message: `${clusters.length} InferenceCluster${clusters.length === 1 ? ' matches' : 's match'}: ${listed(names)}`,
  };
  const failed = clusters.filter((c) => c.phase === 'Failed');
  const waiting = clusters.filter((c) => c.phase === 'Pending' || c.phase === 'Hydrating');
  const ready = clusters.length - failed.length - waiting.length;
  const named = (list: ClusterEntry[], max?: number): string =>
    listed(
      list.map((c) => `${c.name} (${c.reason})`),
      max,
    );
  let artifact: CoreCondition;
  if (failed.length > 0) {
    artifact = {
      type: CONDITION_ARTIFACT_READY,
      status: 'False',
      reason: REASON_SOME_FAILED,
      message: `failed on ${named(failed, 3)}; see each cluster's ModelCacheReplica for why`,
    };
  } else if (waiting.length > 0) {
    artifact = {
      type: CONDITION_ARTIFACT_READY,
      status: 'False',
      reason: REASON_STAGING,
      message: `${ready}/${clusters.length} clusters staged; waiting on ${named(waiting)}`,
    };
  } else {
    artifact = {
      type: CONDITION_ARTIFACT_READY,
      status: 'True',
      reason: REASON_ALL_STAGED,
      message: `staged on ${clusters.length}/${clusters.length} clusters`,
    };
  }
  return [matched, artifact];
}

/** One event per cluster whose phase or reason changed, and per cluster that left. */
export function transitionEvents(
  previous: Map<string, ClusterEntry>,
  current: ClusterEntry[],
): CoreEvent[] {
  const events: CoreEvent[] = [];
  const seen = new Set<string>();
  for (const c of current) {
    seen.add(c.name);
    const p = previous.get(c.name);
    if (p && p.phase === c.phase && p.reason === c.reason) continue;
    const from = p ? `${p.phase}/${p.reason}` : 'new';
    events.push({
      severity: c.phase === 'Failed' ? 'Warning' : 'Normal',
      reason: c.reason,
      message: `cluster ${c.name}: ${from} -> ${c.phase}/${c.reason}`,
    });
  }
  for (const name of [...previous.keys()].sort()) {
    if (seen.has(name)) continue;
    events.push({
      severity: 'Normal',
      reason: 'ClusterDeselected',
      message: `cluster ${name}: no longer matched; its ModelCacheReplica, cache volume and Objects are removed`,
    });
  }
  return events;
}
