// A minimal stand-in for Crossplane + provider-kubernetes + workload clusters, enough to walk a
// ModelCache and its ModelCacheReplicas through reconciles: status is replaced by each response
// (as server-side apply does), a desired replica becomes an XR with its own reconcile, desired
// Objects become observed Objects, and the remote state of each cluster's claim and Job is set
// by the test. Transient inputs are switched on per reconcile with the flags below.
import {
  REQUIRE_CLUSTER,
  REQUIRE_CLUSTERS,
  REQUIRE_PARENT_CACHE,
  REQUIRE_PROVIDER_CONFIG,
} from '../../function/constants.js';
import type { CoreRequest, CoreResponse } from '../../function/core.js';
import { isFatal } from '../../function/core.js';
import type { Json } from '../../function/k8s/object.js';
import { composeModelCache } from '../../function/modelcache/compose.js';
import { composeModelCacheReplica } from '../../function/modelcachereplica/compose.js';
import * as f from './fixtures.js';

export type ClaimState = 'Pending' | 'Bound' | 'Lost';

export interface RemoteCluster {
  claim: ClaimState | undefined;
  /** The claim's UID on the workload cluster; a new one means it was re-created (empty). */
  claimUID?: string;
  /** undefined: no Job observed (not created yet, or removed). */
  job: f.JobObservation | undefined;
}

interface ReplicaXR {
  /** What the cache last asked for: apiVersion, kind, metadata, spec. */
  asked: Json;
  status: Json | undefined;
  /** The replica's desired Objects from its last reconcile, by role. */
  desired: Record<string, Json>;
}

export interface Round {
  cache: CoreResponse;
  replicas: Record<string, CoreResponse>;
}

export class World {
  /** The ModelCache's status as last written (our fields plus conditions). */
  status: Json | undefined;
  annotations: Record<string, string> = {};
  remote = new Map<string, RemoteCluster>();
  replicas = new Map<string, ReplicaXR>();
  /** false: Crossplane has not resolved the cache's requirements (the cluster list) this call. */
  resolved = true;
  /** false: no replica's requirements are resolved this call. */
  replicasResolved = true;
  /** Per cluster: what the replica's `inference-cluster` requirement returns instead of the real one. */
  clusterOverride = new Map<string, Json[] | undefined>();
  /** Provider configs that do not exist (Crossplane lists none for them). */
  missingProviderConfigs = new Set<string>();
  /** Clusters whose credential Secret copy cannot sync (the control-plane Secret is gone). */
  secretGone = new Set<string>();

  constructor(
    public spec: Json,
    public clusters: Json[],
  ) {
    for (const c of clusters) {
      this.remote.set(String((c['metadata'] as Json)['name']), {
        claim: undefined,
        job: undefined,
      });
    }
  }

  set(cluster: string, state: Partial<RemoteCluster>): void {
    const cur = this.remote.get(cluster);
    if (!cur) throw new Error(`unknown cluster ${cluster}`);
    this.remote.set(cluster, { ...cur, ...state });
  }

  cacheXR(): Json {
    return f.modelCache(this.spec, {
      annotations: this.annotations,
      ...(this.status ? { status: this.status } : {}),
    });
  }

  cacheRequest(): CoreRequest {
    const observed: Record<string, Json> = {};
    for (const [cluster, r] of this.replicas) {
      observed[cluster] = {
        ...r.asked,
        metadata: { ...(r.asked['metadata'] as Json), namespace: f.NS },
        spec: {
          ...(r.asked['spec'] as Json),
          crossplane: { compositionRef: { name: 'modelcachereplica' } },
        },
        ...(r.status ? { status: r.status } : {}),
      };
    }
    return {
      composite: this.cacheXR(),
      observed,
      required: this.resolved ? { [REQUIRE_CLUSTERS]: this.clusters } : {},
      input: undefined,
    };
  }

  /** The ModelCache's reconcile: status written, replicas created, updated or deleted. */
  reconcileCache(): CoreResponse {
    const res = composeModelCache(this.cacheRequest());
    if (isFatal(res)) throw new Error(res.fatal);
    this.status = { ...res.status, conditions: res.conditions };
    for (const cluster of [...this.replicas.keys()]) {
      if (res.resources[cluster] === undefined) {
        // Crossplane deletes the replica; garbage collection takes its Objects and the claim.
        this.replicas.delete(cluster);
        this.set(cluster, { claim: undefined, claimUID: undefined, job: undefined });
      }
    }
    for (const [cluster, asked] of Object.entries(res.resources)) {
      const cur = this.replicas.get(cluster);
      this.replicas.set(cluster, { asked, status: cur?.status, desired: cur?.desired ?? {} });
    }
    return res;
  }

  replicaRequest(cluster: string): CoreRequest {
    const r = this.replicas.get(cluster);
    if (!r) throw new Error(`no replica for ${cluster}`);
    const ic = this.clusters.find((c) => (c['metadata'] as Json)['name'] === cluster);
    const pc = ((r.asked['spec'] as Json)['providerConfigRef'] as Json | undefined)?.['name'];
    const required: CoreRequest['required'] = {
      [REQUIRE_PARENT_CACHE]: [this.cacheXR()],
      [REQUIRE_CLUSTER]: this.clusterOverride.has(cluster)
        ? this.clusterOverride.get(cluster)
        : ic
          ? [ic]
          : [],
      ...(typeof pc === 'string'
        ? {
            [REQUIRE_PROVIDER_CONFIG]: this.missingProviderConfigs.has(pc)
              ? []
              : [f.clusterProviderConfig(pc)],
          }
        : {}),
    };
    return {
      composite: {
        ...r.asked,
        metadata: { ...(r.asked['metadata'] as Json), namespace: f.NS },
        ...(r.status ? { status: r.status } : {}),
      },
      observed: this.observe(cluster, r.desired),
      required: this.replicasResolved ? required : {},
      input: undefined,
    };
  }

  reconcileReplica(cluster: string): CoreResponse {
    const res = composeModelCacheReplica(this.replicaRequest(cluster));
    if (isFatal(res)) throw new Error(res.fatal);
    const r = this.replicas.get(cluster);
    if (r) this.replicas.set(cluster, { ...r, status: { ...res.status }, desired: res.resources });
    return res;
  }

  /** One round as Crossplane runs it: the cache, each replica, then the cache seeing them. */
  reconcile(): Round {
    this.reconcileCache();
    const replicas: Record<string, CoreResponse> = {};
    for (const cluster of [...this.replicas.keys()].sort()) {
      replicas[cluster] = this.reconcileReplica(cluster);
    }
    return { cache: this.reconcileCache(), replicas };
  }

  /** A replica's Objects as Crossplane would hand them back now, given the cluster's remote state. */
  observe(cluster: string, desired: Record<string, Json>): Record<string, Json> {
    const observed: Record<string, Json> = {};
    const remote = this.remote.get(cluster);
    if (!remote) return observed;
    for (const [role, want] of Object.entries(desired)) {
      if (role === 'pvc') {
        observed[role] = remote.claim
          ? f.pvcObserved(want, remote.claim, remote.claimUID)
          : f.observedObject(want, undefined);
      } else if (role.startsWith('fetch-')) {
        // The Object exists once desired; its remote Job may not (not created yet, or removed).
        observed[role] = remote.job
          ? f.jobObserved(want, remote.job)
          : f.observedObject(want, undefined);
      } else if (role === 'credentials' && this.secretGone.has(cluster)) {
        observed[role] = f.syncFailed(want, 'cannot get referenced Secret team-a/hf-token');
      } else {
        observed[role] = f.synced(want);
      }
    }
    return observed;
  }
}

/** Roles of a replica's desired Objects, sorted, the Job's identity suffix dropped. */
export function rolesOf(res: CoreResponse | undefined): string[] {
  return Object.keys(res?.resources ?? {})
    .map((k) => k.replace(/^fetch-[0-9a-f]{8}$/, 'fetch'))
    .sort();
}
