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
import type { ClusterStatus } from './model.js';

const count = z.number().int().nonnegative();

/** Lenient reading of a previous status entry: a malformed one is ignored, never fatal. */
const clusterStatusSchema = z.object({
  name: z.string(),
  phase: z.enum(PHASES),
  reason: z.string(),
  message: z.string(),
  namespace: z.string(),
  claimName: z.string(),
  progress: z.object({ bytesDone: count, bytesTotal: count }).optional(),
  resolvedRevision: z.string().optional(),
  identity: z.string(),
  claimUID: z.string().optional(),
});

/** The previous per-cluster status, by cluster name, read back from the observed XR. */
export function previousClusters(status: unknown): Map<string, ClusterStatus> {
  const out = new Map<string, ClusterStatus>();
  const list = (status as { clusters?: unknown } | undefined)?.clusters;
  if (!Array.isArray(list)) return out;
  for (const entry of list) {
    const parsed = clusterStatusSchema.safeParse(entry);
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

export function buildStatus(mountPath: string, source: string, clusters: ClusterStatus[]): Json {
  const ready = clusters.filter((c) => c.phase === 'Ready').length;
  return {
    mountPath,
    source,
    summary: {
      ready: `${ready}/${clusters.length}`,
      readyClusters: ready,
      matchedClusters: clusters.length,
    },
    clusters: clusters.map((c) => ({ ...c })),
  };
}

export function buildConditions(clusters: ClusterStatus[]): CoreCondition[] {
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
  let artifact: CoreCondition;
  if (failed.length > 0) {
    artifact = {
      type: CONDITION_ARTIFACT_READY,
      status: 'False',
      reason: REASON_SOME_FAILED,
      message: `failed on ${listed(
        failed.map((c) => `${c.name} (${c.reason}: ${c.message})`),
        3,
      )}`,
    };
  } else if (waiting.length > 0) {
    artifact = {
      type: CONDITION_ARTIFACT_READY,
      status: 'False',
      reason: REASON_STAGING,
      message: `${ready}/${clusters.length} clusters staged; waiting on ${listed(waiting.map((c) => `${c.name} (${c.reason})`))}`,
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
  previous: Map<string, ClusterStatus>,
  current: ClusterStatus[],
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
      message: `cluster ${c.name}: ${from} -> ${c.phase}/${c.reason}: ${c.message}`,
    });
  }
  for (const name of [...previous.keys()].sort()) {
    if (seen.has(name)) continue;
    events.push({
      severity: 'Normal',
      reason: 'ClusterDeselected',
      message: `cluster ${name}: no longer matched; its cache volume and Objects are removed`,
    });
  }
  return events;
}
